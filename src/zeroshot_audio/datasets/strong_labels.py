"""Catalog entry for AudioSet's strong-label TSVs (parsing: :mod:`zeroshot_audio.metadata.strong_labels`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from zeroshot_audio.metadata.strong_labels import read_strong_labels

logger = logging.getLogger(__name__)


class StrongLabelsDataset(AbstractDataset[None, pd.DataFrame]):
    """Loads one events table (clip, mid, onset_s, offset_s, start_s) from several TSV files.

    ``missing_ok``: a file that is absent is skipped with a warning (a user may have the eval
    strong labels only, or none: ``evaluate`` then reports localisation as not scored). Read-only.
    """

    def __init__(
        self,
        filepaths: list[str],
        missing_ok: bool = False,
        metadata: dict[str, Any] | None = None,
    ):
        if not filepaths:
            raise DatasetError("StrongLabelsDataset needs at least one filepath")
        self._filepaths = [str(p) for p in filepaths]
        self._missing_ok = bool(missing_ok)
        self.metadata = metadata

    def load(self) -> pd.DataFrame:
        present = [p for p in self._filepaths if Path(p).is_file()]
        for path in sorted(set(self._filepaths) - set(present)):
            if not self._missing_ok:
                raise DatasetError(
                    f"strong-label file not found: {path}. Download audioset_*_strong.tsv from "
                    "https://research.google.com/audioset/download_strong.html"
                )
            logger.warning("strong-label file %s not found: localisation goes without it", path)
        return read_strong_labels(present)

    def save(self, data: None) -> None:
        raise DatasetError("StrongLabelsDataset is read-only")

    def _exists(self) -> bool:
        return any(Path(p).is_file() for p in self._filepaths)

    def _describe(self) -> dict[str, Any]:
        return {"filepaths": self._filepaths, "missing_ok": self._missing_ok}
