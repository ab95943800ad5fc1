"""Parquet shards of the ``segment_embeddings`` table: atomic writes and a lazy handle.

Kept free of torch and Kedro so the catalog dataset can import it cheaply.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

TMP_MARK = ".tmp-"


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")


def atomic_write_parquet(table: pa.Table, path: Path, compression: str = "zstd") -> None:
    """Write to a temp file in the same folder, fsync, then rename: readers (and a rerun after
    a kill) see either no file or the complete one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            pq.write_table(table, f, compression=compression)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_json(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_temp_files(folder: Path) -> int:
    """Delete temp files left by a killed writer; returns how many."""
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.iterdir() if p.name.startswith(".") and TMP_MARK in p.name]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


@dataclass(frozen=True)
class ShardedTable:
    """Finished Parquet shards that together form one table, in row order.

    What the featurize node hands to the catalog: the dataset links (or copies) the files into
    its version folder instead of materialising millions of rows in memory.
    """

    paths: Sequence[Path]
    schema: pa.Schema

    def read(self) -> pa.Table:
        tables = [pq.read_table(p, schema=self.schema) for p in self.paths]
        if not tables:
            return self.schema.empty_table()
        return pa.concat_tables(tables)

    @property
    def num_rows(self) -> int:
        return sum(pq.ParquetFile(p).metadata.num_rows for p in self.paths)
