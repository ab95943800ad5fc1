"""Catalog entry for AudioSet segment CSVs: several files, each tagged with its source split."""

from __future__ import annotations

import csv
import itertools
import logging
from pathlib import PurePosixPath
from typing import Any

import fsspec
from kedro.io import AbstractDataset, DatasetError
from kedro.io.core import get_protocol_and_path
from kedro_datasets._typing import TablePreview

logger = logging.getLogger(__name__)


class AudioSetSegmentFiles(AbstractDataset[None, dict[str, tuple[str, str | None]]]):
    """Loads ``{source_split: (file name, text)}`` for AudioSet segment CSVs (plain or ``.gz``).

    Parsing is left to the ``ingest`` node so that strict/lenient handling is a parameter and every
    error can name the file and line. Read-only: the files are inputs as published.

    ``optional`` names splits whose file may be absent (e.g. the 2M-row unbalanced file when one
    works with balanced + eval only): a missing optional file loads as ``(file name, None)`` with a
    warning, so the ingest node can say in its report that the split was not read. A missing
    required file is an error naming the split and the path.
    """

    def __init__(
        self,
        filepaths: dict[str, str],
        optional: list[str] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        if not filepaths:
            raise DatasetError("AudioSetSegmentFiles needs at least one filepath")
        self._filepaths = dict(filepaths)
        self._optional = set(optional or [])
        unknown = self._optional - set(self._filepaths)
        if unknown:
            raise DatasetError(
                f"AudioSetSegmentFiles: optional splits {sorted(unknown)} are not among the "
                f"filepaths {sorted(self._filepaths)}"
            )
        if self._optional == set(self._filepaths):
            raise DatasetError("AudioSetSegmentFiles: at least one split must be required")
        self._fs_args = dict(fs_args or {})
        self.metadata = metadata

    def _open(self, filepath: str):
        protocol, path = get_protocol_and_path(filepath)
        fs = fsspec.filesystem(protocol, **self._fs_args)
        compression = "gzip" if PurePosixPath(path).suffix == ".gz" else None
        return fs.open(path, mode="rt", encoding="utf-8", compression=compression)

    def load(self) -> dict[str, tuple[str, str | None]]:
        out: dict[str, tuple[str, str | None]] = {}
        for split, filepath in self._filepaths.items():
            try:
                with self._open(filepath) as handle:
                    out[split] = (filepath, handle.read())
            except UnicodeDecodeError as exc:
                raise DatasetError(
                    f"AudioSet segments file {filepath} is not UTF-8 text: {exc}"
                ) from exc
            except FileNotFoundError as exc:
                if split in self._optional:
                    logger.warning(
                        "optional AudioSet segments file for split %r not found (%s): "
                        "ingesting without it",
                        split, filepath,
                    )  # fmt: skip
                    out[split] = (filepath, None)
                    continue
                raise DatasetError(
                    f"AudioSet segments file for split {split!r} not found: {filepath}. "
                    "Download it from https://research.google.com/audioset/download.html or fix "
                    "the path in conf/<env>/catalog_ingest.yml."
                ) from exc
        return out

    def save(self, data: None) -> None:
        raise DatasetError("AudioSetSegmentFiles is read-only")

    def _exists(self) -> bool:
        return all(
            fsspec.core.url_to_fs(p)[0].exists(p)
            for split, p in self._filepaths.items()
            if split not in self._optional
        )

    def _describe(self) -> dict[str, Any]:
        return {"filepaths": self._filepaths, "optional": sorted(self._optional)}

    def preview(self, nrows: int = 5) -> TablePreview:
        """The first segments as published (before validation), ``nrows`` shared among the files."""
        present = {
            split: path
            for split, path in self._filepaths.items()
            if split not in self._optional or fsspec.core.url_to_fs(path)[0].exists(path)
        }
        per_file = max(1, nrows // len(present))
        rows = []
        for split, filepath in present.items():
            with self._open(filepath) as handle:
                lines = (line for line in handle if not line.startswith("#"))
                for fields in itertools.islice(csv.reader(lines, skipinitialspace=True), per_file):
                    rows.append([split, *(fields + [""] * 4)[:4]])
        columns = ["split", "YTID", "start_seconds", "end_seconds", "positive_labels"]
        return TablePreview({"columns": columns, "index": list(range(len(rows))), "data": rows})
