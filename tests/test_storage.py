"""Local paths and fsspec URLs alike: atomic writes, and temp files of a live writer are kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import fsspec
import pytest

from zeroshot_audio import storage
from zeroshot_audio.storage import TMP_MARK, remove_stale_temp_files


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
    assert remove_stale_temp_files(f"file://{tmp_path}") == 1  # now its writer is gone too
    assert not of_live_writer.exists()


def test_temp_names_are_unique_per_write_and_carry_the_pid(tmp_path):
    target = tmp_path / "shard.parquet"
    first, second = storage.temp_sibling(target), storage.temp_sibling(target)
    assert first != second
    assert storage.writer_pid(first) == storage.writer_pid(second)
    assert first.name.startswith(".shard.parquet.tmp-")


@pytest.mark.parametrize("scheme", ["local", "file", "memory"])
def test_a_failed_write_leaves_nothing_and_a_finished_one_the_whole_file(tmp_path, scheme):
    base = {
        "local": str(tmp_path),
        "file": f"file://{tmp_path}",
        "memory": f"memory://{tmp_path.name}",
    }[scheme]
    target = storage.join(base, "sub/shard.json")
    with pytest.raises(RuntimeError), storage.open_output(target) as f:
        f.write(b"half")
        raise RuntimeError("writer died")
    assert not storage.exists(target) and storage.stamp(target) is None
    storage.write_json({"ok": 1}, target)
    assert storage.read_text(target) == '{\n "ok": 1\n}'
    assert storage.exists(target) and storage.size(target) == len('{\n "ok": 1\n}')
    if scheme != "memory":
        assert [p.name for p in (tmp_path / "sub").iterdir()] == ["shard.json"]  # no temp left


def test_a_rewritten_remote_file_gets_a_new_stamp():
    """The stamp keys featurize's shards: new audio under the same name must not reuse them."""
    url = "memory://stamps/clip.flac"
    fsspec.filesystem("memory").pipe_file("/stamps/clip.flac", b"one")
    first = storage.stamp(url)
    fsspec.filesystem("memory").pipe_file("/stamps/clip.flac", b"other")
    assert storage.stamp(url) != first and storage.stamp("memory://stamps/none") is None


def test_locations_spelled_for_local_paths_and_urls(tmp_path):
    assert storage.local_path(f"file://{tmp_path}") == tmp_path
    assert storage.local_path("s3://bucket/x") is None
    assert storage.join("s3://bucket/work/", "ab") == "s3://bucket/work/ab"
    assert storage.join(tmp_path, "ab") == str(tmp_path / "ab")
    assert storage.canonical("relative/dir") == str(Path("relative/dir").resolve())
    assert storage.canonical("gs://b/a") == "gs://b/a"
