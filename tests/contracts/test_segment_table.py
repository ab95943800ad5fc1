"""Shards of the segment table: written whole, read back from a local path or an fsspec URL."""

from __future__ import annotations

import pyarrow as pa

from zeroshot_audio.contracts import segment_table


def test_atomic_write_leaves_only_the_finished_file(tmp_path):
    table = pa.table({"x": [1, 2, 3]})
    segment_table.atomic_write_parquet(table, tmp_path / "a.parquet")
    assert [p.name for p in tmp_path.iterdir()] == ["a.parquet"]


def test_a_sharded_table_reads_shards_on_any_fsspec_url(tmp_path):
    first, second = pa.table({"x": [1, 2]}), pa.table({"x": [3]})
    local, remote = tmp_path / "a.parquet", f"memory://{tmp_path.name}/b.parquet"
    segment_table.atomic_write_parquet(first, local)
    segment_table.atomic_write_parquet(second, remote)
    sharded = segment_table.ShardedTable(paths=[local, remote], schema=first.schema)
    assert sharded.num_rows == 3
    assert sharded.read().column("x").to_pylist() == [1, 2, 3]
