"""Crash-safe saves for the catalog's file datasets: write a temp file, fsync, rename
(:func:`zeroshot_audio.storage.write_atomically`).

Kedro writes a versioned dataset straight into ``<filepath>/<version>/<name>`` and loads the newest
``<filepath>/*/<name>`` that exists. A run killed during a save (out of memory, Ctrl-C twice, a
pre-empted machine) therefore leaves a truncated file that is the *latest* version, and the next
stage loads it. Here the bytes go to a hidden sibling (``.<name>.tmp-<pid>-<random>``, which the
version glob never matches), are fsynced, and only then renamed onto ``<name>``: a reader sees the
previous version or the complete new one, never half a file. A folder (a dict of figures) is
staged the same way and renamed as a whole.

:class:`AtomicSaveMixin` does this for any kedro-datasets file dataset whose ``save`` writes to
``self._get_save_path()`` (all of those used in ``conf/base``); the thin subclasses below are the
``type:`` of the catalog entries. Remote filesystems (``s3://``...) are written as kedro-datasets
does: an object store's put is already all-or-nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import get_filepath_str
from kedro_datasets.json import JSONDataset as _JSONDataset
from kedro_datasets.matplotlib import MatplotlibDataset as _MatplotlibDataset
from kedro_datasets.pandas import CSVDataset as _CSVDataset

from zeroshot_audio.storage import write_atomically


def _unwrapped_parent_save(instance: Any) -> Callable[[Any, Any], None]:
    """The dataset's own ``save`` body, without Kedro's logging/versioning wrapper (the wrapper
    already runs around :meth:`AtomicSaveMixin.save`; running it twice would re-stamp versions)."""
    for klass in type(instance).__mro__:
        if issubclass(klass, AtomicSaveMixin) or "save" not in vars(klass):
            continue
        save = vars(klass)["save"]
        return getattr(save, "__wrapped__", save)
    raise TypeError(f"{type(instance).__name__} has no save to make atomic")


class AtomicSaveMixin:
    """Put first in the bases of a kedro-datasets file dataset to make its saves crash-safe."""

    def save(self, data: Any) -> None:
        """Save as the parent dataset does, into a temp sibling that is renamed when complete."""
        parent_save = _unwrapped_parent_save(self)
        final_path = self._get_save_path()  # type: ignore[attr-defined]
        if getattr(self, "_protocol", "file") != "file":
            parent_save(self, data)
            return
        final = Path(get_filepath_str(final_path, "file"))

        def write(tmp: Path) -> None:
            # The parent's save asks for its path once; for this call, it is the temp path.
            self._get_save_path = lambda: PurePosixPath(tmp.as_posix())  # type: ignore[method-assign]
            try:
                parent_save(self, data)
            finally:
                del self._get_save_path

        write_atomically(final, write)
        self._invalidate_cache()  # type: ignore[attr-defined]


class JSONDataset(AtomicSaveMixin, _JSONDataset):
    """``json.JSONDataset`` with crash-safe saves."""


class CSVDataset(AtomicSaveMixin, _CSVDataset):
    """``pandas.CSVDataset`` with crash-safe saves."""


class MatplotlibDataset(AtomicSaveMixin, _MatplotlibDataset):
    """``matplotlib.MatplotlibDataset`` with crash-safe saves (a dict of figures is one folder,
    renamed into place as a whole)."""
