"""Featurize throughput: the batched driver vs a naive baseline, side by side in one run.

Baseline (what a first implementation does): decode each clip, numpy float64 log-mel frontend
(the reference formulas, one clip at a time), then one VGGish forward per clip (its 10 examples)
with the model in PyTorch's default NCHW layout under ``torch.no_grad``.

Ours: ``zeroshot_audio.audio.featurize.featurize`` (background decoding, torch frontend, batches
gathered across clips, channels_last weights, ``inference_mode``) for several batch sizes.

Every configuration runs in its own fresh process (so peak RSS is its own) on the same N real
10-s clips (the bundled default dataset, else mixtures of ../shared sound events) with the same
randomly initialised weights (the FLOPs are identical to the official ones). Also printed: the
FLOPs of one 0.96-s example counted by torch's FlopCounterMode and by hand, the machine's
measured float32 matmul GFLOP/s, and the fraction of it each configuration reaches.

    python benchmarks/bench_featurize.py                 # default: 16 clips, ~1-3 min on 2 cores
    python benchmarks/bench_featurize.py --n-clips 64 --batch-sizes 32 128 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

DEFAULT_AUDIO = REPO / "data" / "01_raw" / "default" / "audio"
SHARED_SOUNDS = REPO / ".." / "shared" / "data" / "sounds"
SR = 16_000


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


def clip_files(n: int, scratch: Path) -> list[Path]:
    """N real 10-s clips: the default dataset's, else mixtures of the shared sound events."""
    files = sorted(DEFAULT_AUDIO.glob("*.ogg"))
    if len(files) >= n:
        return files[:n]
    import numpy as np
    import soundfile as sf

    events = sorted(SHARED_SOUNDS.glob("*/*.flac"))
    if not events:
        sys.exit(f"no audio: neither {DEFAULT_AUDIO} nor {SHARED_SOUNDS} has files")
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        mix = np.zeros(10 * SR, dtype=np.float32)
        for _ in range(4):
            ev, _ = sf.read(events[rng.integers(len(events))], dtype="float32")
            at = int(rng.integers(0, 9 * SR))
            take = min(len(ev), len(mix) - at)
            mix[at : at + take] += 0.5 * ev[:take]
        path = scratch / f"mix{i:04d}.ogg"
        sf.write(path, mix, SR)
        out.append(path)
    return out


# ---------------------------------------------------------------------------------------------
# Children: one configuration each
# ---------------------------------------------------------------------------------------------


def _peak_rss_mb(workers: int) -> float:
    """This process's peak RSS, plus ``workers`` x the largest worker's for a process pool (the
    kernel reports only the largest child's peak: an upper bound of the pool's total)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if workers > 1 else 0
    return (own + workers * children) / 1024  # Linux: KiB


def numpy_examples(wave):
    """The reference frontend in numpy float64 for one clip: [n, 96, 64], 0.96-s hop."""
    import numpy as np

    from zeroshot_audio.audio.vggish import mel_weight_matrix

    win, hop = 400, 160
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    n_frames = 1 + (len(wave) - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(n_frames)[:, None]
    spec = np.abs(np.fft.rfft(wave.astype(np.float64)[idx] * window, 512))
    log_mel = np.log(spec @ mel_weight_matrix() + 0.01)
    n = 1 + (n_frames - 96) // 96
    return np.stack([log_mel[i * 96 : (i + 1) * 96] for i in range(n)])


def run_baseline(files: list[str], seed: int) -> dict:
    import soundfile as sf
    import torch

    from zeroshot_audio.audio import vggish

    net = vggish.random_init_(vggish.VGGish(), seed).eval()
    n_examples = 0
    with torch.no_grad():
        net(
            torch.from_numpy(numpy_examples(sf.read(files[0], dtype="float32")[0]))
            .float()
            .unsqueeze(1)
        )
        started = time.perf_counter()
        for f in files:
            wave, sr = sf.read(f, dtype="float32")
            assert sr == SR and wave.ndim == 1
            examples = numpy_examples(wave[: 10 * SR])
            x = torch.from_numpy(examples).float().unsqueeze(1)
            net(x)
            n_examples += len(x)
    return {"seconds": time.perf_counter() - started, "n_examples": n_examples}


def run_ours(files: list[str], seed: int, batch_size: int, workers: int) -> dict:
    import pandas as pd

    from zeroshot_audio.audio import featurize as fz

    def config(work: str, workers: int) -> fz.FeaturizeConfig:
        return fz.FeaturizeConfig.from_params(
            {
                "audio_root": str(Path(files[0]).parent),
                "filename_pattern": "{ytid}" + Path(files[0]).suffix,
                "weights": {"allow_random": True, "download": False, "cache_dir": work},
                "batch_size": batch_size,
                "shard_size": max(1, len(files) // workers),
                "executor": {"max_workers": workers},
                "work_dir": work,
            },
            seed=seed,
            device="auto",
        )

    clips = pd.DataFrame({"ytid": [Path(f).stem for f in files], "start_s": 0.0, "end_s": 10.0})
    with tempfile.TemporaryDirectory() as warm, tempfile.TemporaryDirectory() as work:
        if workers == 1:  # build the model and warm oneDNN up, like the baseline (pools start cold)
            fz.featurize(clips.iloc[:1], config(warm, 1), progress=False)
        started = time.perf_counter()
        result = fz.featurize(clips, config(work, workers), progress=False)
        seconds = time.perf_counter() - started
    assert result.report["n_failed"] == 0, result.report["failures"][:3]
    return {"seconds": seconds, "n_examples": result.report["n_examples_computed"]}


def child_main(spec: dict) -> None:
    import logging

    logging.disable(logging.WARNING)  # the random-weights warning, once per child
    if spec["kind"] == "baseline":
        out = run_baseline(spec["files"], spec["seed"])
    else:
        out = run_ours(spec["files"], spec["seed"], spec["batch_size"], spec["workers"])
    out["peak_rss_mb"] = _peak_rss_mb(spec.get("workers", 1))
    print("RESULT " + json.dumps(out), flush=True)


def run_child(spec: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(
        f"child {spec['kind']} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    )


# ---------------------------------------------------------------------------------------------
# FLOPs and the machine
# ---------------------------------------------------------------------------------------------


def count_flops() -> tuple[float, float]:
    """GFLOP of one example: (torch FlopCounterMode, by hand from the layer shapes)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from zeroshot_audio.audio import vggish

    with torch.device("meta"):
        net = vggish.VGGish()
        x = torch.empty(1, 1, 96, 64)
    counter = FlopCounterMode(display=False)
    with counter:
        net(x)
    counted = counter.get_total_flops() / 1e9

    by_hand, h, w, c = 0, 96, 64, 1
    for item in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
        if item == "M":
            h, w = h // 2, w // 2
        else:
            by_hand += 2 * h * w * item * c * 9  # multiply-adds of a 3x3 conv
            c = item
    for fan_in, fan_out in ((512 * 6 * 4, 4096), (4096, 4096), (4096, 128)):
        by_hand += 2 * fan_in * fan_out
    return counted, by_hand / 1e9


def matmul_gflops(n: int = 2048, reps: int = 5) -> float:
    """Best-of-``reps`` float32 GEMM throughput at torch's thread count."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n-clips", type=int, default=16)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument(
        "--workers", type=int, default=0, help="also run a process pool of this size"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(json.loads(args.child))
        return

    import torch

    with tempfile.TemporaryDirectory() as scratch:
        files = [str(f) for f in clip_files(args.n_clips, Path(scratch))]
        source = (
            "default dataset" if str(DEFAULT_AUDIO) in files[0] else "mixtures of ../shared sounds"
        )
        print(
            f"{len(files)} real 10-s clips ({source}); torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, CUDA: {torch.cuda.is_available()}"
        )
        counted, by_hand = count_flops()
        print(
            f"VGGish FLOPs per 0.96-s example: {counted:.3f} GFLOP (FlopCounterMode), {by_hand:.3f} GFLOP (by hand)"
        )
        peak_before = matmul_gflops()
        print(f"float32 matmul (2048^3, best of 5): {peak_before:.1f} GFLOP/s")

        specs = [("baseline: numpy frontend + 1 forward/clip", {"kind": "baseline"})]
        specs += [
            (f"ours: batch {b} examples", {"kind": "ours", "batch_size": b, "workers": 1})
            for b in args.batch_sizes
        ]
        if args.workers > 1:
            b = args.batch_sizes[-1]
            specs.append(
                (
                    f"ours: {args.workers} processes, batch {b}",
                    {"kind": "ours", "batch_size": b, "workers": args.workers},
                )
            )
        results = []
        for name, spec in specs:
            r = run_child({**spec, "files": files, "seed": args.seed})
            r["name"] = name
            results.append(r)
            print(f"  done: {name} ({r['seconds']:.1f} s)", flush=True)
        peak_after = matmul_gflops()
        peak = max(peak_before, peak_after)

    base = results[0]
    base_rate = len(files) / base["seconds"]
    print(
        f"\nfloat32 matmul after the runs: {peak_after:.1f} GFLOP/s; fractions below use {peak:.1f}"
    )
    print(
        f"{'configuration':44s} {'clips/s':>8s} {'ex/s':>7s} {'GFLOP/s':>8s} {'of peak':>8s} {'vs base':>8s} {'peak RSS':>9s}"
    )
    for r in results:
        rate = len(files) / r["seconds"]
        ex_rate = r["n_examples"] / r["seconds"]
        gflops = ex_rate * counted
        print(
            f"{r['name']:44s} {rate:8.2f} {ex_rate:7.1f} {gflops:8.1f} {gflops / peak:8.0%} "
            f"{rate / base_rate:7.2f}x {r['peak_rss_mb']:7.0f} MB"
        )
    print(
        "\nTimes cover decoding, frontend and network after one warm-up clip (model built); the "
        "process pool starts cold (worker start-up and model builds included). "
        "The CPU may be shared with other processes: compare rows of one run, not across runs."
    )


if __name__ == "__main__":
    main()
