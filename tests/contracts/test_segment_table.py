"""Sharded, atomic storage of the segment table: temp files of a live writer are never removed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa

from zeroshot_audio.contracts import segment_table
from zeroshot_audio.contracts.segment_table import TMP_MARK, remove_stale_temp_files


def _temp(folder: Path, pid: int) -> Path:
    path = folder / f".shard-000001.parquet{TMP_MARK}{pid}-0a1b2c3d"
    path.write_bytes(b"half a shard")
    return path


def test_stale_temp_cleanup_keeps_the_files_of_a_running_writer(tmp_path):
    """Two featurize runs in one work folder: the second one's start-up cleanup must not delete
    the first one's shard being written, only what killed runs left."""
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        of_live_writer = _temp(tmp_path, live.pid)
        of_killed_writer = _temp(tmp_path, dead.pid)
        legacy = tmp_path / f".shard-000002.parquet{TMP_MARK}notapid"
        legacy.write_bytes(b"?")
        finished = tmp_path / "shard-000000.parquet"
        finished.write_bytes(b"done")
        assert remove_stale_temp_files(tmp_path) == 2
        assert of_live_writer.exists() and finished.exists()
        assert not of_killed_writer.exists() and not legacy.exists()
    finally:
        live.kill()
        live.wait()
    assert remove_stale_temp_files(tmp_path) == 1  # now its writer is gone too
    assert not of_live_writer.exists()


def test_temp_names_are_unique_per_write_and_carry_the_pid(tmp_path):
    target = tmp_path / "shard.parquet"
    first, second = segment_table._tmp_path(target), segment_table._tmp_path(target)
    assert first != second
    assert segment_table._writer_pid(first) == segment_table._writer_pid(second)
    assert first.name.startswith(".shard.parquet.tmp-")


def test_atomic_write_leaves_only_the_finished_file(tmp_path):
    table = pa.table({"x": [1, 2, 3]})
    segment_table.atomic_write_parquet(table, tmp_path / "a.parquet")
    assert [p.name for p in tmp_path.iterdir()] == ["a.parquet"]
