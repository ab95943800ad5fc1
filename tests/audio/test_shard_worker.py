"""``audio.shard_worker``: one shard -> one atomic Parquet file carrying the EmbedderSpec, plus its
failure list."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq

from tests.audio.sounds import write_clips
from zeroshot_audio.audio import featurize as fz
from zeroshot_audio.audio.io import DECODE_ERROR, ClipFailure
from zeroshot_audio.audio.shard_worker import ClipSpec, ShardTask, prefetch, result_of, run_shard
from zeroshot_audio.contracts.segment_table import EmbedderSpec, embedder_spec


def test_a_shard_is_written_with_its_spec_and_failures(tmp_path: Path) -> None:
    (ytid,) = write_clips(tmp_path, [2.0])
    config = fz.FeaturizeConfig.from_params(
        {
            "audio_root": str(tmp_path),
            "n_segments": 3,
            "weights": {"allow_random": True, "download": False, "cache_dir": str(tmp_path)},
        },
        seed=2,
        device="cpu",
    )
    spec = EmbedderSpec(n_segments=3, postprocess="none", final_relu=False, weights="random")
    clips = (
        ClipSpec(ytid, 0.0, 3.0, str(tmp_path / f"{ytid}.flac")),
        ClipSpec("gone", 0.0, 3.0, str(tmp_path / "gone.flac")),
    )
    task = ShardTask(
        0, clips, str(tmp_path / "s.parquet"), str(tmp_path / "s.json"), config, None, spec
    )
    result = run_shard(task, fingerprint="test")
    assert (result.n_ok, result.n_failed, result.n_examples, result.n_padded) == (1, 1, 2, 0)
    table = pq.read_table(tmp_path / "s.parquet")
    assert table.column("ytid").to_pylist() == [ytid] and embedder_spec(table.schema) == spec
    failures = json.loads((tmp_path / "s.json").read_text())
    assert [(f["ytid"], f["reason"]) for f in failures] == [("gone", "missing_file")]


def crash_on_poison(name: str) -> str:
    """A decoder that takes its process down on one input, as FFmpeg can on a hostile file."""
    if name == "poison":
        os._exit(3)
    return name.upper()


def test_a_decoder_that_kills_its_process_fails_only_its_own_clip() -> None:
    """Decode processes (``decode_workers``): the pool breaks, every pending clip is retried alone,
    and only the file that kills its decoder is reported."""
    names = ["a", "b", "poison", "c", "d"]
    outcomes = {}
    for name, future in prefetch(crash_on_poison, names, depth=4, workers=2):
        try:
            outcomes[name] = result_of(future, crash_on_poison, name)
        except ClipFailure as failure:
            outcomes[name] = failure.reason
    assert outcomes == {"a": "A", "b": "B", "poison": DECODE_ERROR, "c": "C", "d": "D"}
    # The next shard gets a working pool again.
    assert [
        result_of(f, crash_on_poison, n) for n, f in prefetch(crash_on_poison, ["e"], 1, 2)
    ] == ["E"]


def test_overlapping_shards_restore_torchs_thread_count():
    """Two shards in threads of one Dask worker: the first to finish must not restore the count
    while the other runs, nor may the last leave the process at a shard's count."""
    import torch

    from zeroshot_audio.audio.shard_worker import _torch_threads

    before = torch.get_num_threads()
    first, second = _torch_threads(1), _torch_threads(1)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert torch.get_num_threads() == 1  # the second shard still runs with its count
    second.__exit__(None, None, None)
    assert torch.get_num_threads() == before
