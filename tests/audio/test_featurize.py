"""The featurize driver: batching across clips, masking, bad files, resume after kill, executors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest
import torch

from tests.audio.sounds import write_clips
from tests.audio.test_io import _has_torchcodec, write_bad_files
from zeroshot_audio.audio import featurize as fz
from zeroshot_audio.audio import io as audio_io
from zeroshot_audio.audio import vggish
from zeroshot_audio.contracts import segment_table

REPO_ROOT = Path(__file__).resolve().parents[2]


def make_params(tmp_path: Path, audio_root: Path, **overrides) -> dict:
    params = {
        "audio_root": str(audio_root),
        "filename_pattern": "{ytid}.flac",
        "n_segments": 3,
        "weights": {
            "allow_random": True,
            "download": False,
            "cache_dir": str(tmp_path / "weights"),
        },
        "work_dir": str(tmp_path / "work"),
        "shard_size": 2,
        "batch_size": 4,
    }
    params.update(overrides)
    return params


def make_config(tmp_path: Path, audio_root: Path, **overrides) -> fz.FeaturizeConfig:
    return fz.FeaturizeConfig.from_params(
        make_params(tmp_path, audio_root, **overrides), seed=1, device="cpu"
    )


def clip_table(ytids: list[str], seconds: float = 3.0) -> pd.DataFrame:
    return pd.DataFrame({"ytid": ytids, "start_s": 0.0, "end_s": seconds})


@pytest.fixture(scope="module")
def audio_folder(tmp_path_factory) -> tuple[Path, list[str]]:
    """Five real-audio clips of 3.0, 2.6, 1.2, 3.5 and 0.99 s."""
    folder = tmp_path_factory.mktemp("audio")
    return folder, write_clips(folder, [3.0, 2.6, 1.2, 3.5, 0.99])


def test_batched_across_clips_equals_one_clip_at_a_time(tmp_path, audio_folder) -> None:
    folder, ytids = audio_folder
    clips = clip_table(ytids)
    small = fz.featurize(clips, make_config(tmp_path, folder, batch_size=1), progress=False)
    large = fz.featurize(
        clips,
        make_config(tmp_path, folder, batch_size=64, work_dir=str(tmp_path / "w2")),
        progress=False,
    )
    a = segment_table.to_arrays(small.table.read())
    b = segment_table.to_arrays(large.table.read())
    assert list(a.ytid) == ytids  # input order kept
    assert list(a.n_valid_segments) == [3, 2, 1, 3, 1]  # 2.6 s -> 2 segments, 0.99 s -> 1
    np.testing.assert_allclose(a.embeddings, b.embeddings, rtol=1e-4, atol=1e-4)
    # Masked segments are zeros, valid ones are not.
    assert np.all(a.embeddings[~a.valid_mask] == 0)
    assert np.all(np.abs(a.embeddings[a.valid_mask]).sum(axis=-1) > 0)

    # Same numbers as running the embedder directly on the clip's example windows.
    cfg = make_config(tmp_path, folder)
    weights = vggish.resolve_weights(cfg.weights, cfg.seed, need_pca=False)
    embedder = vggish.build_embedder(weights, seed=cfg.seed)
    clip = audio_io.load_clip(folder / f"{ytids[1]}.flac", 0.0, 3.0, cfg.layout)
    with torch.inference_mode():
        direct = embedder(torch.from_numpy(clip.example_windows(cfg.layout).copy())).numpy()
    np.testing.assert_allclose(a.embeddings[1, :2], direct, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("decode_workers", [0, 2], ids=["decode-thread", "decode-processes"])
def test_every_bad_file_kind_is_reported_and_the_run_goes_on(
    tmp_path, audio_folder, decode_workers
) -> None:
    folder, ytids = audio_folder
    bad = write_bad_files(tmp_path / "bad")
    # the good clip is copied next to the bad ones; the pattern takes the file name as ytid
    good = tmp_path / "bad" / "good.flac"
    good.write_bytes((folder / f"{ytids[0]}.flac").read_bytes())
    names = [p.name for p in bad.values()] + ["good.flac"]
    clips = pd.DataFrame({"ytid": names, "start_s": 0.0, "end_s": 10.0})
    result = fz.featurize(
        clips,
        make_config(
            tmp_path, tmp_path / "bad", filename_pattern="{ytid}", decode_workers=decode_workers
        ),
        progress=False,
    )
    table = result.table.read()
    assert table.column("ytid").to_pylist() == ["good.flac"]
    alone = fz.featurize(
        clips.tail(1), make_config(tmp_path, tmp_path / "bad", filename_pattern="{ytid}",
                                   work_dir=str(tmp_path / "alone")), progress=False,
    )  # fmt: skip
    _equal_tables(alone.table.read(), table)  # decoded elsewhere, embedded the same
    report = result.report
    by_file = {Path(f["path"]).name: f["reason"] for f in report["failures"]}
    for reason, path in bad.items():
        expected = reason
        if reason == audio_io.UNSUPPORTED_FORMAT and _has_torchcodec():
            expected = audio_io.DECODE_ERROR
        assert by_file[path.name] == expected
    assert report["n_failed"] == len(bad) and report["n_featurized"] == 1
    assert all(f["detail"] for f in report["failures"] if f["reason"] != audio_io.MISSING_FILE)
    json.dumps(report)  # the report is plain JSON


def test_a_run_where_nothing_works_stops_with_a_clear_error(tmp_path) -> None:
    clips = clip_table(["a", "b"])
    with pytest.raises(RuntimeError, match="none of the 2 clips.*missing_file"):
        fz.featurize(clips, make_config(tmp_path, tmp_path / "nowhere"), progress=False)


_CHILD = """
import json, sys
import pandas as pd
from zeroshot_audio.audio import featurize as fz
args = json.load(open(sys.argv[1]))
config = fz.FeaturizeConfig.from_params(args["params"], seed=1, device="cpu")
fz.featurize(pd.DataFrame(args["clips"]), config, progress=False)
"""


def _shard_stamps(work_dir: Path) -> dict[str, tuple[int, int]]:
    return {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in work_dir.rglob("shard-*.parquet")
    }


def test_resume_after_kill_recomputes_nothing_and_gives_the_same_table(
    tmp_path, audio_folder
) -> None:
    folder, ytids = audio_folder
    clips = clip_table(ytids, seconds=2.0)
    params = make_params(tmp_path, folder, n_segments=2, shard_size=1, batch_size=2)
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"params": params, "clips": clips.to_dict(orient="list")}))
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    child = subprocess.Popen([sys.executable, str(script), str(args)], env=env, cwd=REPO_ROOT)
    work = Path(params["work_dir"])
    deadline = time.monotonic() + 180
    try:
        while not list(work.rglob("shard-*.parquet")):
            assert child.poll() is None, "the child ended before writing a shard"
            assert time.monotonic() < deadline, "no shard written in time"
            time.sleep(0.01)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    finished = _shard_stamps(work)
    assert 1 <= len(finished) < len(ytids), "the kill must interrupt the run"
    # what a kill mid-write leaves behind
    run_folder = next(p.parent for p in work.rglob("config.json"))
    (run_folder / ".shard-000004-0000000000000000.parquet.tmp-999").write_bytes(b"partial")

    config = fz.FeaturizeConfig.from_params(params, seed=1, device="cpu")
    resumed = fz.featurize(clips, config, progress=False)
    assert resumed.report["n_shards_reused"] == len(finished)
    assert resumed.report["n_clips_computed"] == len(ytids) - len(finished)
    assert resumed.report["n_stale_temp_files_removed"] >= 1
    after = _shard_stamps(work)
    assert all(after[name] == stamp for name, stamp in finished.items()), (
        "finished shards rewritten"
    )

    fresh_params = {**params, "work_dir": str(tmp_path / "fresh")}
    fresh = fz.featurize(
        clips, fz.FeaturizeConfig.from_params(fresh_params, seed=1, device="cpu"), progress=False
    )
    assert resumed.table.read().equals(fresh.table.read())

    # A third run computes nothing at all.
    again = fz.featurize(clips, config, progress=False)
    assert again.report["n_clips_computed"] == 0 and again.report["n_shards_reused"] == len(ytids)


def test_fingerprint_tracks_what_changes_embeddings_and_ignores_speed_knobs(
    tmp_path, audio_folder
) -> None:
    folder, _ = audio_folder
    base = make_config(tmp_path, folder)
    fp = fz.config_fingerprint(base, "w")
    for change in ({"batch_size": 99}, {"shard_size": 7}, {"torch_threads": 1}, {"max_clips": 2}):
        assert fz.config_fingerprint(make_config(tmp_path, folder, **change), "w") == fp
    for change in (
        {"n_segments": 4},
        {"postprocess": "pca"},
        {"final_relu": True},
        {"min_sound_s": 0.5},  # which short clips are accepted
        {"filename_pattern": "{ytid}.wav"},
    ):
        assert fz.config_fingerprint(make_config(tmp_path, folder, **change), "w") != fp
    assert fz.config_fingerprint(base, "other-weights") != fp


def test_changed_audio_file_invalidates_only_its_shard(tmp_path, audio_folder) -> None:
    folder, ytids = audio_folder
    local = tmp_path / "audio"
    write_clips(local, [3.0, 3.0, 3.0, 3.0], seed=20)
    names = [f"clip{i:03d}" for i in range(4)]
    config = make_config(tmp_path, local, n_segments=2, shard_size=2)
    first = fz.featurize(clip_table(names), config, progress=False)
    write_clips(local, [3.0], seed=99)  # rewrites clip000 with other audio
    os.utime(local / "clip000.flac", ns=(time.time_ns(), time.time_ns() + 10**9))
    second = fz.featurize(clip_table(names), config, progress=False)
    assert second.report["n_shards_reused"] == 1 and second.report["n_clips_computed"] == 2
    a = segment_table.to_arrays(first.table.read()).embeddings
    b = segment_table.to_arrays(second.table.read()).embeddings
    assert not np.allclose(a[0], b[0]) and np.array_equal(a[2:], b[2:])


@pytest.fixture
def environ_restored():
    """distributed's LocalCluster leaves OMP_NUM_THREADS=1 (and more) in this process's
    environment: every subprocess a later test starts would run single-threaded."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def on_one_thread(tmp_path: Path, audio_root, work_dir: str, **overrides) -> fz.FeaturizeConfig:
    """One torch thread everywhere, so that a serial run and a cluster's are bit-identical."""
    return make_config(tmp_path, audio_root, torch_threads=1, work_dir=work_dir, **overrides)


def _equal_tables(a, b) -> None:
    a, b = segment_table.to_arrays(a), segment_table.to_arrays(b)
    assert list(a.ytid) == list(b.ytid) and np.array_equal(a.n_valid_segments, b.n_valid_segments)
    np.testing.assert_array_equal(a.embeddings, b.embeddings)


def test_a_dask_cluster_reads_audio_and_writes_shards_on_an_fsspec_url(
    tmp_path, audio_folder, environ_restored
):
    """Workers elsewhere share no disk: audio and shards on a URL (here ``memory://``, which the
    in-process workers of this cluster share, as machines would share a bucket)."""
    distributed = pytest.importorskip("distributed")
    folder, ytids = audio_folder
    clips = clip_table(ytids[:4])
    memory = fsspec.filesystem("memory")
    for ytid in ytids[:4]:
        memory.put_file(str(folder / f"{ytid}.flac"), f"/{tmp_path.name}/audio/{ytid}.flac")
    serial = fz.featurize(
        clips, on_one_thread(tmp_path, folder, str(tmp_path / "a")), progress=False
    )
    threads_before = torch.get_num_threads()
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        config = on_one_thread(
            tmp_path,
            f"memory://{tmp_path.name}/audio",
            f"memory://{tmp_path.name}/work",
            executor={"scheduler_address": cluster.scheduler_address},
        )
        on_dask = fz.featurize(clips, config, progress=False)
    assert on_dask.report["executor"] == "dask" and on_dask.report["n_failed"] == 0
    assert all(str(p).startswith("memory://") for p in on_dask.table.paths)
    # Two shards ran at once in this process; torch's process-wide thread count is restored.
    assert torch.get_num_threads() == threads_before
    _equal_tables(serial.table.read(), on_dask.table.read())
    # A rerun finds the finished shards on the URL and computes nothing.
    again = fz.featurize(clips, replace(config, executor=fz.ExecutorSpec()), progress=False)
    assert again.report["n_shards_reused"] == 2 and again.report["n_clips_computed"] == 0


@pytest.mark.slow  # two worker processes that each import torch and build the model
def test_a_killed_dask_worker_s_shard_is_redone_elsewhere(tmp_path, audio_folder, environ_restored):
    """One worker process dies (os._exit) while decoding its first clip; the scheduler hands its
    shard to another worker and the table is the serial run's, bit for bit."""
    distributed = pytest.importorskip("distributed")
    folder, ytids = audio_folder
    clips = clip_table(ytids[:4])
    serial = fz.featurize(
        clips, on_one_thread(tmp_path, folder, str(tmp_path / "a")), progress=False
    )
    marker = str(tmp_path / "a-worker-died")

    def die_on_the_first_clip(marker: str) -> None:  # runs in each worker process
        import os as worker_os

        from zeroshot_audio.audio import io as worker_io

        load_clip = worker_io.load_clip

        def load_or_die(*args, **kwargs):
            try:
                worker_os.close(worker_os.open(marker, worker_os.O_CREAT | worker_os.O_EXCL))
            except FileExistsError:  # another worker already died: behave
                return load_clip(*args, **kwargs)
            worker_os._exit(1)

        worker_io.load_clip = load_or_die

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.run(die_on_the_first_clip, marker)
        config = on_one_thread(
            tmp_path,
            f"file://{folder}",
            f"file://{tmp_path / 'shared'}",
            executor={"scheduler_address": cluster.scheduler_address},
        )
        on_cluster = fz.featurize(clips, config, progress=False)
    assert Path(marker).exists()  # a worker did die mid-shard
    assert on_cluster.report["n_failed"] == 0 and on_cluster.report["n_featurized"] == 4
    _equal_tables(serial.table.read(), on_cluster.table.read())


@pytest.mark.slow  # spawns two workers that each import torch and build the model
def test_process_pool_gives_the_same_table(tmp_path, audio_folder) -> None:
    folder, ytids = audio_folder
    clips = clip_table(ytids[:4], seconds=2.0)
    inline = fz.featurize(
        clips,
        make_config(tmp_path, folder, n_segments=2, work_dir=str(tmp_path / "a")),
        progress=False,
    )
    config = make_config(
        tmp_path, folder, n_segments=2, work_dir=str(tmp_path / "b"), executor={"max_workers": 2}
    )
    pooled = fz.featurize(clips, config, progress=False)
    assert pooled.report["executor"] == "process"
    np.testing.assert_allclose(
        segment_table.to_arrays(inline.table.read()).embeddings,
        segment_table.to_arrays(pooled.table.read()).embeddings,
        rtol=1e-4,
        atol=1e-4,
    )


def test_unknown_parameters_are_rejected(tmp_path) -> None:
    with pytest.raises(ValueError, match="batchsize"):
        fz.FeaturizeConfig.from_params({"audio_root": "x", "batchsize": 3})
    with pytest.raises(ValueError, match="featurize.weights"):
        fz.FeaturizeConfig.from_params({"audio_root": "x", "weights": {"pth": "x"}})


def test_the_embedder_spec_is_recorded_and_a_short_clip_is_padded(tmp_path, audio_folder) -> None:
    import pyarrow.parquet as pq
    import soundfile as sf

    from tests.audio.sounds import SR, mixed_clip
    from zeroshot_audio.contracts.segment_table import EmbedderSpec

    folder, ytids = audio_folder
    short = tmp_path / "audio"
    short.mkdir()
    (short / f"{ytids[0]}.flac").write_bytes((folder / f"{ytids[0]}.flac").read_bytes())
    sf.write(short / "beep.flac", mixed_clip(0.4, seed=11), SR)  # a 0.4-s event
    result = fz.featurize(
        clip_table([ytids[0], "beep"]), make_config(tmp_path, short), progress=False
    )
    table = result.table.read()
    assert segment_table.to_arrays(table).n_valid_segments.tolist() == [3, 1]
    assert result.report["n_short_clips_padded"] == 1 and result.report["n_failed"] == 0
    expected = EmbedderSpec(
        source="vggish",
        n_segments=3,
        segment_s=1.0,
        postprocess="none",
        final_relu=False,
        weights="random",
        weights_fingerprint="random:he-normal:1",
        min_coverage=1.0,
    )
    assert segment_table.embedder_spec(table.schema) == expected
    assert result.report["embedder"] == expected.to_dict()
    for path in result.table.paths:  # every shard carries it too
        assert segment_table.embedder_spec(pq.read_schema(path)) == expected


def test_precision_auto_resolves_to_fp32_here_and_the_spec_records_the_mode(
    tmp_path, audio_folder
) -> None:
    """``auto`` keeps only modes within the AudioSet byte bound (measured: fp32 only), so on
    this machine it is fp32, sharing the explicit fp32 work folder (same fingerprint); an
    explicit bf16 run is recorded as bf16 in the spec, the report and its own work folder."""
    folder, ytids = audio_folder
    clips = clip_table(ytids[:2])
    auto = fz.featurize(clips, make_config(tmp_path, folder), progress=False)
    assert auto.report["precision"] == "fp32"
    assert segment_table.embedder_spec(auto.table.read().schema).precision == "fp32"
    exact = fz.featurize(clips, make_config(tmp_path, folder, precision="fp32"), progress=False)
    assert exact.report["fingerprint"] == auto.report["fingerprint"]
    assert exact.report["n_shards_reused"] == exact.report["n_shards"]  # same work folder

    bf16 = fz.featurize(clips, make_config(tmp_path, folder, precision="bf16"), progress=False)
    assert bf16.report["precision"] == "bf16"
    assert bf16.report["embedder"]["precision"] == "bf16"
    assert segment_table.embedder_spec(bf16.table.read().schema).precision == "bf16"
    assert bf16.report["fingerprint"] != auto.report["fingerprint"]
    a = segment_table.to_arrays(auto.table.read()).embeddings
    b = segment_table.to_arrays(bf16.table.read()).embeddings
    assert not np.array_equal(a, b)  # bf16 really ran
    np.testing.assert_allclose(a, b, rtol=0.05, atol=0.05 * np.abs(a).max())

    with pytest.raises(ValueError, match="int8.*not offered"):
        make_config(tmp_path, folder, precision="int8")
    with pytest.raises(ValueError, match="precision must be one of"):
        make_config(tmp_path, folder, precision="fp16")


def test_decode_processes_are_refused_where_each_worker_decodes_its_own_clips(tmp_path):
    with pytest.raises(ValueError, match="decode_workers > 0 is for one process"):
        make_config(tmp_path, tmp_path, decode_workers=2, executor={"max_workers": 2})
    with pytest.raises(ValueError, match="decode_workers must be >= 0"):
        make_config(tmp_path, tmp_path, decode_workers=-1)
