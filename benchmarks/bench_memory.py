"""Memory per clip of the AudioSet-scale path: is the segment table held once, as uint8?

Claim (issue 11 item 3): the payload is T x 128 = 1,280 bytes per 10-s clip (uint8), and each
stage should hold about that, not several copies (before: ~4.5 KB per clip in the released
featurize, train peaking at 7.35 GiB for 823k clips). Measured here, each in its own subprocess
so that its peak RSS (VmHWM) is its own:

(a) ``load``: the ``segment_embeddings`` dataset (SegmentEmbeddingsDataset, Parquet shards read
    memory-mapped into one buffer) + ``ClipTable.load`` (the table as one uint8 tensor on the
    device, joined to ``clip_folds``);
(b) ``train``: (a) + one epoch of one temporal-attention model (80 % of the clips, per-epoch
    validation on the seeded subset, then the full validation split scored once);
(c) ``released``: ``featurize.source: released_embeddings`` on release-format TFRecords written
    with the ``tfrecord`` package (a smaller N: writing them is slow in pure Python).

Each stage runs at N and at N/4; the difference of the two peaks over 3N/4 clips is the marginal
memory of one clip (constants such as imports and the model cancel out), printed as bytes per
clip and as a ratio to the 1,280-byte payload, with the linear extrapolation to the 2,084,320
clips of AudioSet (peak at N + marginal bytes x the remaining clips).

    python benchmarks/bench_memory.py                       # 200,000 clips; 20,000 TFRecord clips
    python benchmarks/bench_memory.py --clips 2000 --tfrecord-clips 500    # seconds (the test)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PAYLOAD = 10 * 128  # bytes of one clip's uint8 embeddings
AUDIOSET_CLIPS = 2_084_320
N_CLASSES = 50
SEMANTIC_DIM = 384


def _rss_mb() -> float:
    """Peak RSS of this process image (VmHWM). Not ``ru_maxrss``: Linux carries that over exec
    from the forking parent, so a child would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _clip_ids(n: int) -> list[str]:
    return [f"c{i:010d}" for i in range(n)]


def write_inputs(folder: Path, n_clips: int, seed: int = 0) -> None:
    """N synthetic uint8 clips saved as the project saves them, and their clip_folds."""
    import numpy as np
    import pandas as pd
    from kedro.io import Version

    from zeroshot_audio.contracts.segment_table import EmbedderSpec, from_arrays
    from zeroshot_audio.datasets.segment_embeddings import SegmentEmbeddingsDataset

    rng = np.random.default_rng(seed)
    ytid = _clip_ids(n_clips)
    table = from_arrays(
        ytid,
        np.zeros(n_clips),
        rng.integers(7, 11, n_clips),
        rng.integers(0, 256, (n_clips, 10, 128), dtype=np.uint8),
        embedder=EmbedderSpec(source="released", final_relu=False),
    )
    SegmentEmbeddingsDataset(
        filepath=str(folder / "segment_embeddings"), version=Version(None, "bench")
    ).save(table)
    mids = [f"/m/{j:03d}" for j in range(N_CLASSES)]
    labels = [[mids[j] for j in rng.choice(N_CLASSES, 2, replace=False)] for _ in range(n_clips)]
    pd.DataFrame(
        {"ytid": ytid, "start_s": 0.0, "fold": rng.integers(0, 3, n_clips), "labels": labels}
    ).to_parquet(folder / "clip_folds.parquet")


def write_tfrecords(folder: Path, n_clips: int, per_file: int = 5000, seed: int = 1) -> None:
    """Release-format SequenceExamples (context video_id, times, labels; one 128-byte string per
    second), written with the ``tfrecord`` package."""
    import numpy as np
    from tfrecord.writer import TFRecordWriter

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ids = _clip_ids(n_clips)
    for start in range(0, n_clips, per_file):
        writer = TFRecordWriter(str(folder / f"{start // per_file:05d}.tfrecord"))
        for i in range(start, min(start + per_file, n_clips)):
            frames = rng.integers(0, 256, (10, 128), dtype=np.uint8)
            writer.write(
                {
                    "video_id": (ids[i].encode(), "byte"),
                    "start_time_seconds": (0.0, "float"),
                    "end_time_seconds": (10.0, "float"),
                    "labels": ([int(rng.integers(0, 527))], "int"),
                },
                {"audio_embedding": ([f.tobytes() for f in frames], "byte")},
            )
        writer.close()


# --------------------------------------------------------------------------------------------
# The measured stages (each runs in its own process: `bench_memory.py --stage NAME`)
# --------------------------------------------------------------------------------------------


def _load(folder: Path, device: str):
    import pandas as pd
    from kedro.io import Version

    from zeroshot_audio.datasets.segment_embeddings import SegmentEmbeddingsDataset
    from zeroshot_audio.experiment.clips import ClipTable

    table = SegmentEmbeddingsDataset(
        filepath=str(folder / "segment_embeddings"), version=Version("bench", None)
    ).load()
    clip_folds = pd.read_parquet(folder / "clip_folds.parquet")
    return ClipTable.load(table, clip_folds, device), table


def stage_load(folder: Path, device: str) -> dict:
    clip_table, _ = _load(folder, device)
    assert str(clip_table.segments.dtype) == "torch.uint8"
    return {"clips": len(clip_table.clips)}


def stage_train(folder: Path, device: str) -> dict:
    import numpy as np
    import torch

    from zeroshot_audio.experiment.protocol import multi_hot
    from zeroshot_audio.experiment.train import final_threshold
    from zeroshot_audio.model.attention import ModelConfig, TemporalAttentionModel
    from zeroshot_audio.model.training import FitConfig, fit, make_clip_set

    clip_table, _ = _load(folder, device)
    clips = clip_table.clips
    mids = [f"/m/{j:03d}" for j in range(N_CLASSES)]
    targets = multi_hot(clips["labels"], mids)
    labels = np.random.default_rng(2).normal(size=(N_CLASSES, SEMANTIC_DIM)).astype(np.float32)
    n_train = int(0.8 * len(clips))
    rows = clips["row"].to_numpy()
    split = [
        make_clip_set(clip_table.segments, clip_table.n_valid, r, t, labels)
        for r, t in ((rows[:n_train], targets[:n_train]), (rows[n_train:], targets[n_train:]))
    ]
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = TemporalAttentionModel(ModelConfig(semantic_dim=SEMANTIC_DIM))
    config = FitConfig(epochs=1, batch_size=256, show_progress=False)
    started = time.perf_counter()
    result = fit(model, *split, config, seed=0)
    final_threshold(model, split[1], result, config)  # the whole validation split, once
    return {
        "clips": len(clips),
        "train_seconds": round(result.train_seconds, 1),
        "validation_seconds": round(result.validation_seconds, 1),
        "validation_clips_per_epoch": result.n_validation_clips_per_epoch,
        "fit_seconds": round(time.perf_counter() - started, 1),
    }


def stage_released(folder: Path, device: str) -> dict:
    import pandas as pd

    from zeroshot_audio.audio.released import from_released_embeddings

    paths = sorted((folder / "tfrecords").glob("*.tfrecord"))
    n = int((folder / "tfrecord_clips.txt").read_text())
    clips = pd.DataFrame({"ytid": _clip_ids(n), "start_s": 0.0, "end_s": 10.0})
    table, report = from_released_embeddings(clips, paths)
    assert report["n_featurized"] == n, report["failures_by_reason"]
    return {"clips": len(table)}


STAGES = {"load": stage_load, "train": stage_train, "released": stage_released}


def run_stage(name: str, folder: Path, device: str) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--stage", name, "--folder", str(folder), "--device", device],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"stage {name} failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=200_000)
    parser.add_argument("--tfrecord-clips", type=int, default=20_000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--folder", type=Path, default=None, help="work folder (default: a temp)")
    parser.add_argument(
        "--stages", nargs="+", choices=sorted(STAGES), default=["load", "train", "released"]
    )
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.stage:  # a child: import, note the RSS, run, report the increase
        import numpy  # noqa: F401
        import pandas  # noqa: F401
        import pyarrow.parquet  # noqa: F401
        import torch  # noqa: F401

        from zeroshot_audio.datasets import segment_embeddings  # noqa: F401
        from zeroshot_audio.experiment import clips  # noqa: F401

        base = _rss_mb()
        facts = STAGES[args.stage](args.folder, args.device)
        print(json.dumps({**facts, "rss_imports_mb": base, "rss_peak_mb": _rss_mb()}))
        return

    with tempfile.TemporaryDirectory() as tmp:
        root = args.folder or Path(tmp)
        started = time.perf_counter()
        folders = {}
        for label, scale in (("small", 4), ("full", 1)):
            folder = folders[label] = root / label
            folder.mkdir(parents=True, exist_ok=True)
            write_inputs(folder, args.clips // scale)
            write_tfrecords(folder / "tfrecords", args.tfrecord_clips // scale)
            (folder / "tfrecord_clips.txt").write_text(str(args.tfrecord_clips // scale))
        print(
            f"inputs: {args.clips:,} (and {args.clips // 4:,}) uint8 clips in Parquet, "
            f"{args.tfrecord_clips:,} (and {args.tfrecord_clips // 4:,}) in TFRecords, written "
            f"in {time.perf_counter() - started:.0f} s; payload {PAYLOAD} B/clip"
        )
        print(
            "B/clip = (peak RSS at N - peak RSS at N/4) / (3N/4): the marginal memory of a clip, "
            "free of the constant parts (imports, model, buffers)"
        )
        print(
            f"{'stage':<10}{'N':>10}{'imports MB':>12}{'peak N/4':>10}{'peak N':>9}"
            f"{'B/clip':>9}{'x payload':>11}{'@2.08M GiB':>12}"
        )
        for name in args.stages:
            small = run_stage(name, folders["small"], args.device)
            facts = run_stage(name, folders["full"], args.device)
            n, n_small = facts["clips"], small["clips"]
            per_clip = (facts["rss_peak_mb"] - small["rss_peak_mb"]) * 2**20 / max(n - n_small, 1)
            at_scale = (facts["rss_peak_mb"] * 2**20 + per_clip * (AUDIOSET_CLIPS - n)) / 2**30
            print(
                f"{name:<10}{n:>10,}{facts['rss_imports_mb']:>12.0f}{small['rss_peak_mb']:>10.0f}"
                f"{facts['rss_peak_mb']:>9.0f}{per_clip:>9.0f}{per_clip / PAYLOAD:>11.2f}"
                f"{at_scale:>12.2f}"
            )
            if name == "train":
                print(
                    f"{'':<10}one epoch: training {facts['train_seconds']} s, validation "
                    f"{facts['validation_seconds']} s on {facts['validation_clips_per_epoch']:,} "
                    f"clips, whole fit {facts['fit_seconds']} s"
                )
        print("memory per clip vs payload: see 'x payload' (1.00 = the uint8 table held once)")


if __name__ == "__main__":
    main()
