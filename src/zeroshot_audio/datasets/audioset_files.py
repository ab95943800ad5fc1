"""Catalog entry for AudioSet segment CSVs: several files, each tagged with its source split."""

from __future__ import annotations

import csv
import itertools
from pathlib import PurePosixPath
from typing import Any

import fsspec
from kedro.io import AbstractDataset, DatasetError
from kedro.io.core import get_protocol_and_path
from kedro_datasets._typing import TablePreview


class AudioSetSegmentFiles(AbstractDataset[None, dict[str, tuple[str, str]]]):
    """Loads ``{source_split: (file name, text)}`` for AudioSet segment CSVs (plain or ``.gz``).

    Parsing is left to the ``ingest`` node so that strict/lenient handling is a parameter and every
    error can name the file and line. Read-only: the files are inputs as published.
    """

    def __init__(
        self,
        filepaths: dict[str, str],
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        if not filepaths:
            raise DatasetError("AudioSetSegmentFiles needs at least one filepath")
        self._filepaths = dict(filepaths)
        self._fs_args = dict(fs_args or {})
        self.metadata = metadata

    def _open(self, filepath: str):
        protocol, path = get_protocol_and_path(filepath)
        fs = fsspec.filesystem(protocol, **self._fs_args)
        compression = "gzip" if PurePosixPath(path).suffix == ".gz" else None
        return fs.open(path, mode="rt", encoding="utf-8", compression=compression)

    def load(self) -> dict[str, tuple[str, str]]:
        out = {}
        for split, filepath in self._filepaths.items():
            try:
                with self._open(filepath) as handle:
                    out[split] = (filepath, handle.read())
            except UnicodeDecodeError as exc:
                raise DatasetError(
                    f"AudioSet segments file {filepath} is not UTF-8 text: {exc}"
                ) from exc
            except FileNotFoundError as exc:
                raise DatasetError(
                    f"AudioSet segments file for split {split!r} not found: {filepath}. "
                    "Download it from https://research.google.com/audioset/download.html or fix "
                    "the path in conf/<env>/catalog_ingest.yml."
                ) from exc
        return out

    def save(self, data: None) -> None:
        raise DatasetError("AudioSetSegmentFiles is read-only")

    def _exists(self) -> bool:
        return all(fsspec.core.url_to_fs(p)[0].exists(p) for p in self._filepaths.values())

    def _describe(self) -> dict[str, Any]:
        return {"filepaths": self._filepaths}

    def preview(self, nrows: int = 5) -> TablePreview:
        """The first segments as published (before validation), ``nrows`` shared among the files."""
        per_file = max(1, nrows // len(self._filepaths))
        rows = []
        for split, filepath in self._filepaths.items():
            with self._open(filepath) as handle:
                lines = (line for line in handle if not line.startswith("#"))
                for fields in itertools.islice(csv.reader(lines, skipinitialspace=True), per_file):
                    rows.append([split, *(fields + [""] * 4)[:4]])
        columns = ["split", "YTID", "start_seconds", "end_seconds", "positive_labels"]
        return TablePreview({"columns": columns, "index": list(range(len(rows))), "data": rows})
