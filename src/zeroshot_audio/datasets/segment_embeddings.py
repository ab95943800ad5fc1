"""``SegmentEmbeddingsDataset``: the versioned, sharded ``segment_embeddings`` table.

Kedro's PartitionedDataset cannot be versioned, and one Parquet file per table would force
the whole table through memory at save time. This dataset stores a folder of Parquet shards
under each version (``<filepath>/<version>/<name>/part-000000.parquet ...``) and loads them
back as one ``pyarrow.Table`` with the schema of ``segment_table.segment_schema``. The table's
:class:`~zeroshot_audio.contracts.segment_table.EmbedderSpec` (schema metadata) is kept through save
and load: every shard carries it, and shards that disagree are refused.

``save`` accepts a ``pyarrow.Table`` (split into ``rows_per_shard`` rows per file) or a
:class:`~zeroshot_audio.contracts.segment_table.ShardedTable` (finished shards from the featurize work
folder, hard-linked when on the same local filesystem, else copied). A version folder appears
only once complete: shards are written into a hidden sibling folder that is renamed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
from copy import deepcopy
from pathlib import PurePosixPath
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from kedro.io.core import (
    AbstractVersionedDataset,
    DatasetError,
    Version,
    get_filepath_str,
    get_protocol_and_path,
)
from kedro_datasets._typing import TablePreview

from zeroshot_audio import storage
from zeroshot_audio.contracts import segment_table
from zeroshot_audio.contracts.segment_table import ShardedTable

PART_GLOB = "part-*.parquet"


def _part_name(index: int) -> str:
    return f"part-{index:06d}.parquet"


def _check_schema(schema: pa.Schema, where: str) -> None:
    """The table must follow the contract of ``segment_table.segment_schema`` (any T and D)."""
    try:
        segment_table.check_schema(schema, where)
    except ValueError as err:
        raise DatasetError(str(err)) from err


class SegmentEmbeddingsDataset(AbstractVersionedDataset[pa.Table | ShardedTable, pa.Table]):
    """Versioned folder of Parquet shards holding the ``segment_embeddings`` table.

    Example catalog entry::

        segment_embeddings:
          type: zeroshot_audio.datasets.segment_embeddings.SegmentEmbeddingsDataset
          filepath: data/04_feature/segment_embeddings
          versioned: true
    """

    # Row groups of 8192 rows: a reader decodes one group at a time (bounded memory at any N).
    DEFAULT_SAVE_ARGS: dict[str, Any] = {
        "rows_per_shard": 50_000,
        "row_group_size": 8192,
        "compression": "zstd",
    }
    READ_BATCH_ROWS = 8192
    DEFAULT_LOAD_ARGS: dict[str, Any] = {"memory_map": True}

    def __init__(  # noqa: PLR0913
        self,
        *,
        filepath: str,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        protocol, path = get_protocol_and_path(filepath, version)
        self._protocol = protocol
        self._storage_options = {**deepcopy(credentials or {}), **deepcopy(fs_args or {})}
        self._fs = fsspec.filesystem(protocol, **self._storage_options)
        self.metadata = metadata
        self._load_args = {**self.DEFAULT_LOAD_ARGS, **(load_args or {})}
        self._save_args = {**self.DEFAULT_SAVE_ARGS, **(save_args or {})}
        super().__init__(
            filepath=PurePosixPath(path),
            version=version,
            exists_function=self._fs.exists,
            glob_function=self._fs.glob,
        )

    # -- load ------------------------------------------------------------------------------

    def _parts(self, folder: str) -> list[str]:
        return sorted(self._fs.glob(f"{folder}/{PART_GLOB}"))

    def load(self) -> pa.Table:
        """All shards as ONE table whose embedding column is a single buffer, filled shard by
        shard: peak memory is the table plus one decompressed shard, and ``to_arrays`` (hence
        training's ClipTable) reads it without a copy. (Concatenating the shards' tables and
        combining them later held the table twice.)"""
        folder = get_filepath_str(self._get_load_path(), self._protocol)
        parts = self._parts(folder)
        if not parts:
            raise DatasetError(f"No shards ({PART_GLOB}) in {folder}")
        filesystem = None if self._protocol == "file" else self._fs
        metadata = [pq.read_metadata(p, filesystem=filesystem) for p in parts]
        schemas = [m.schema.to_arrow_schema() for m in metadata]
        specs = set()
        for part, schema in zip(parts, schemas, strict=True):
            _check_schema(schema, part)
            spec = segment_table.embedder_spec(schema)
            specs.add(None if spec is None else json.dumps(spec.to_dict(), sort_keys=True))
        if len(specs) > 1:
            raise DatasetError(
                f"{folder}: the shards record different embedder specs {sorted(map(str, specs))}; "
                "a segment table must come from one embedder"
            )
        emb_type = schemas[0].field("embedding").type
        n_segments, width = emb_type.list_size, emb_type.value_type.list_size
        dtype = emb_type.value_type.value_type.to_pandas_dtype()
        embeddings = np.empty((sum(m.num_rows for m in metadata), n_segments, width), dtype)
        columns: dict[str, list[pa.Array]] = {"ytid": [], "start_s": [], "n_valid_segments": []}
        offset = 0
        for part in parts:
            # Record batches, not read_table: decoding a whole shard's nested list column at once
            # took ~10 bytes per value transiently (measured: +700 MB for a 64 MB shard).
            reader = pq.ParquetFile(part, filesystem=filesystem, **self._load_args)
            for batch in reader.iter_batches(batch_size=self.READ_BATCH_ROWS):
                shard = pa.Table.from_batches([batch])
                arrays = segment_table.to_arrays(shard)
                if arrays.embeddings.shape[1:] != (n_segments, width):
                    raise DatasetError(
                        f"{part}: embeddings of shape {arrays.embeddings.shape[1:]}, the first "
                        f"shard's are {(n_segments, width)}"
                    )
                embeddings[offset : offset + len(shard)] = arrays.embeddings
                offset += len(shard)
                for name, chunks in columns.items():
                    chunks.extend(shard.column(name).chunks)
                del shard, arrays
        spec = segment_table.embedder_spec(schemas[0])
        return segment_table.from_arrays(
            *(
                pa.chunked_array(chunks, type=schemas[0].field(name).type).combine_chunks()
                for name, chunks in columns.items()
            ),
            embeddings,
            embedder=spec,
        )

    # -- save ------------------------------------------------------------------------------

    def save(self, data: pa.Table | ShardedTable) -> None:
        final = get_filepath_str(self._get_save_path(), self._protocol)
        staging = f"{final.rsplit('/', 1)[0]}/.{final.rsplit('/', 1)[1]}.staging"
        if self._fs.exists(staging):
            self._fs.rm(staging, recursive=True)
        self._fs.mkdirs(staging, exist_ok=True)
        if isinstance(data, ShardedTable):
            _check_schema(data.schema, "ShardedTable")
            spec = segment_table.embedder_spec(data.schema)
            for index, src in enumerate(data.paths):
                dest = f"{staging}/{_part_name(index)}"
                with storage.open_input(src) as f:
                    src_spec = segment_table.embedder_spec(pq.read_schema(f))
                if spec is None or src_spec == spec:
                    self._put_file(src, dest)
                else:  # a shard written without the spec: rewrite it with the table's
                    with storage.open_input(src) as f:
                        shard = segment_table.with_embedder_spec(pq.read_table(f), spec)
                    self._write_table(shard, dest)
            if not data.paths:
                self._write_table(data.schema.empty_table(), f"{staging}/{_part_name(0)}")
        elif isinstance(data, pa.Table):
            _check_schema(data.schema, "table")
            rows = int(self._save_args["rows_per_shard"])
            offsets = range(0, max(len(data), 1), rows)
            for index, offset in enumerate(offsets):
                self._write_table(data.slice(offset, rows), f"{staging}/{_part_name(index)}")
        else:
            raise DatasetError(
                f"segment_embeddings saves a pyarrow.Table or a ShardedTable, got {type(data).__name__}"
            )
        self._fs.mv(staging, final, recursive=True)
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))

    def _write_table(self, table: pa.Table, path: str) -> None:
        with self._fs.open(path, "wb") as f:
            pq.write_table(
                table,
                f,
                compression=self._save_args["compression"],
                row_group_size=self._save_args["row_group_size"],
            )

    def _put_file(self, src: storage.Location, dest: str) -> None:
        local = storage.local_path(src)
        if local is not None and self._protocol == "file":
            try:
                os.link(local, dest)  # shards are immutable: a hard link is a free, safe copy
                return
            except OSError:
                shutil.copyfile(local, dest)
                return
        if local is not None:
            self._fs.put_file(str(local), dest)
            return
        # A shard on another filesystem (a Dask cluster's shared bucket): stream it across.
        with storage.open_input(src) as source, self._fs.open(dest, "wb") as target:
            shutil.copyfileobj(source, target, length=8 << 20)

    # -- the rest --------------------------------------------------------------------------

    def _exists(self) -> bool:
        try:
            folder = get_filepath_str(self._get_load_path(), self._protocol)
        except DatasetError:
            return False
        return bool(self._parts(folder))

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": self._filepath,
            "protocol": self._protocol,
            "load_args": self._load_args,
            "save_args": self._save_args,
            "version": self._version,
        }

    def _release(self) -> None:
        super()._release()
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))

    def preview(self, nrows: int = 5) -> TablePreview:
        """First rows for kedro-viz: ids, valid segments and per-clip embedding statistics
        (the [T x 128] arrays themselves do not fit in a table cell)."""
        folder = get_filepath_str(self._get_load_path(), self._protocol)
        parts = self._parts(folder)
        filesystem = None if self._protocol == "file" else self._fs
        table = pq.read_table(parts[0], filesystem=filesystem)[:nrows] if parts else None
        if table is None or len(table) == 0:
            return TablePreview({"columns": [], "index": [], "data": []})
        arrays = segment_table.to_arrays(table)
        emb = arrays.embeddings.astype("float32")
        data = [
            [
                str(arrays.ytid[i]),
                float(arrays.start_s[i]),
                int(arrays.n_valid_segments[i]),
                f"{emb.shape[1]}x{emb.shape[2]} {arrays.embeddings.dtype}",
                round(float(emb[i, : arrays.n_valid_segments[i]].mean()), 4),
                round(float(emb[i, : arrays.n_valid_segments[i]].std()), 4),
            ]
            for i in range(len(table))
        ]
        return TablePreview(
            {
                "columns": ["ytid", "start_s", "n_valid_segments", "embedding", "mean", "std"],
                "index": list(range(len(data))),
                "data": data,
            }
        )
