"""``FigureFolderDataset``: a versioned folder of figures that may be empty.

kedro-datasets' ``MatplotlibDataset`` writes nothing for an empty dict of figures, and its versioned
save then fails looking for the version it has just "written" (``Did not find any versions``).
``predict.figures.enabled: false`` (``zeroshot-audio predict --no-figures``) returns exactly that, so
this subclass writes an empty version folder instead: the run succeeds and the folder says that no
figure was asked for.
"""

from __future__ import annotations

from typing import Any

from kedro.io.core import get_filepath_str

from zeroshot_audio.datasets.atomic import AtomicSaveMixin, MatplotlibDataset


class FigureFolderDataset(MatplotlibDataset):
    """``matplotlib.MatplotlibDataset`` that saves an empty dict as an empty folder; other saves
    are crash-safe (a temp folder renamed into place)."""

    def save(self, data: Any) -> None:
        if isinstance(data, dict) and not data:
            path = get_filepath_str(self._get_save_path(), self._protocol)
            self._fs.mkdirs(path, exist_ok=True)
            self._invalidate_cache()
            return
        AtomicSaveMixin.save(self, data)  # Kedro's versioning wrapper already runs around this
