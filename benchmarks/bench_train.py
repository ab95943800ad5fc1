"""One training epoch of the temporal-attention model: contiguous-tensor loop vs per-sample DataLoader.

Claim (issue 5): indexing batches out of one [N, T, 128] tensor already on the device is at least
10x faster than the textbook per-sample ``Dataset`` + ``DataLoader`` (one ``__getitem__`` and a
collate per clip), on the same model, loss, optimiser and batch size, in the same run. Each mode
runs in its own subprocess so that its peak memory (RSS; CUDA peak allocation on a GPU) is its own.

Features are random AudioSet-like uint8 embeddings (throughput does not depend on their values).

    python benchmarks/bench_train.py                          # 20,000 clips x 10 segments, CPU
    python benchmarks/bench_train.py --clips 2000000 --device cuda --batch-size 1024
        (the naive baseline then runs on --naive-clips clips; clips/s are compared)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from zeroshot_audio.device import resolve_device
from zeroshot_audio.model.attention import ModelConfig, TemporalAttentionModel, dequantize
from zeroshot_audio.model.loss import warp_loss
from zeroshot_audio.model.training import (
    FitConfig,
    fit,
    make_clip_set,
    segments_to_device,
)

N_SEGMENTS = 10
SEMANTIC_DIM = 384
VALIDATION_CLIPS = 512


def make_data(n_clips: int, n_classes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """About 3 positives per clip (AudioSet has ~2.7 labels per clip over its 527 classes)."""
    rng = np.random.default_rng(seed)
    targets = rng.random((n_clips, n_classes)) < 2.0 / n_classes
    targets[np.arange(n_clips), rng.integers(0, n_classes, n_clips)] = True
    return {
        "segments": rng.integers(0, 256, (n_clips, N_SEGMENTS, 128), dtype=np.uint8),
        "n_valid": rng.integers(7, N_SEGMENTS + 1, n_clips),
        "targets": targets,
        "labels": rng.normal(size=(n_classes, SEMANTIC_DIM)).astype(np.float32),
    }


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


RSS_AFTER_IMPORTS_MB = _peak_rss_mb()  # torch and friends; the loops' own memory is above this


def peak_memory_mb(device: torch.device) -> dict[str, float]:
    peak = {"peak_rss_mb": _peak_rss_mb(), "rss_after_imports_mb": RSS_AFTER_IMPORTS_MB}
    if device.type == "cuda":
        peak["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 1024**2
    return peak


def run_fast(
    n_clips: int, device: torch.device, batch_size: int, n_classes: int
) -> dict[str, float]:
    """The project's loop (``training.fit``): one epoch, timing the training part only."""
    data = make_data(n_clips + VALIDATION_CLIPS, n_classes)
    segments, n_valid = segments_to_device(data["segments"], data["n_valid"], device)
    rows = np.arange(n_clips + VALIDATION_CLIPS)
    train = make_clip_set(
        segments, n_valid, rows[:n_clips], data["targets"][:n_clips], data["labels"]
    )
    validation = make_clip_set(
        segments, n_valid, rows[n_clips:], data["targets"][n_clips:], data["labels"]
    )
    torch.manual_seed(0)
    model = TemporalAttentionModel(ModelConfig(semantic_dim=SEMANTIC_DIM))
    config = FitConfig(epochs=1, batch_size=batch_size, show_progress=False)
    result = fit(model, train, validation, config, seed=0, description="bench")

    started = time.perf_counter()  # the data path alone: batches as the model receives them
    order = torch.randperm(n_clips, device=device)
    for start in range(0, n_clips, batch_size):
        x, mask, targets = train.batch(order[start : start + batch_size])
        x = dequantize(x)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    data_seconds = time.perf_counter() - started
    return {
        "clips": n_clips,
        "seconds": result.train_seconds,
        "data_seconds": data_seconds,
        **peak_memory_mb(device),
    }


class PerSampleClips(Dataset):
    """The textbook baseline: one clip per ``__getitem__``, dequantised on the host."""

    def __init__(self, data: dict[str, np.ndarray]) -> None:
        self.segments, self.n_valid, self.targets = (
            data["segments"],
            data["n_valid"],
            data["targets"],
        )

    def __len__(self) -> int:
        return len(self.segments)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = dequantize(torch.from_numpy(self.segments[i]))
        mask = torch.arange(N_SEGMENTS) < int(self.n_valid[i])
        return x, mask, torch.from_numpy(self.targets[i])


def run_naive(
    n_clips: int, device: torch.device, batch_size: int, n_classes: int
) -> dict[str, float]:
    data = make_data(n_clips, n_classes)
    labels = torch.from_numpy(data["labels"]).to(device)
    torch.manual_seed(0)
    model = TemporalAttentionModel(ModelConfig(semantic_dim=SEMANTIC_DIM)).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(PerSampleClips(data), batch_size=batch_size, shuffle=True, num_workers=0)
    started = time.perf_counter()
    for batch in loader:
        x, mask, targets = (t.to(device) for t in batch)
        loss = warp_loss(model(x, mask, labels).scores, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started

    started = time.perf_counter()  # the data path alone
    for batch in loader:
        x, mask, targets = (t.to(device) for t in batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return {
        "clips": n_clips,
        "seconds": seconds,
        "data_seconds": time.perf_counter() - started,
        **peak_memory_mb(device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20_000)
    parser.add_argument("--naive-clips", type=int, default=None, help="default: min(clips, 20000)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--classes",
        type=int,
        default=25,
        help="classes per clip's score vector (an AudioSet training fold has ~350)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads for both loops (the train stage's default cpu_threads is 1)",
    )
    parser.add_argument("--mode", choices=["fast", "naive"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.mode:  # child process: one measurement, printed as JSON
        torch.set_num_threads(args.threads)
        device = resolve_device(args.device)
        runner = run_fast if args.mode == "fast" else run_naive
        print(json.dumps(runner(args.clips, device, args.batch_size, args.classes)))
        return

    naive_clips = args.naive_clips or min(args.clips, 20_000)
    results = {}
    for mode, clips in (("fast", args.clips), ("naive", naive_clips)):
        command = [
            sys.executable,
            __file__,
            "--mode",
            mode,
            "--clips",
            str(clips),
            "--device",
            args.device,
            "--batch-size",
            str(args.batch_size),
            "--threads",
            str(args.threads),
            "--classes",
            str(args.classes),
        ]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[mode] = json.loads(output.strip().splitlines()[-1])
        results[mode]["clips_per_s"] = results[mode]["clips"] / results[mode]["seconds"]
        results[mode]["data_clips_per_s"] = results[mode]["clips"] / results[mode]["data_seconds"]

    print(
        f"one training epoch, T={N_SEGMENTS}, C={args.classes}, batch {args.batch_size}, "
        f"device {args.device}, torch CPU threads {args.threads}"
    )
    header = (
        f"{'loop':<34}{'clips':>10}{'seconds':>10}{'clips/s':>12}{'peak RSS MB':>13}"
        f"{'above imports':>15}"
    )
    cuda = "cuda_peak_allocated_mb" in results["fast"]
    print(header + (f"{'CUDA peak MB':>14}" if cuda else ""))
    names = {"fast": "contiguous tensors (training.fit)", "naive": "per-sample Dataset+DataLoader"}
    for mode, r in results.items():
        line = (
            f"{names[mode]:<34}{r['clips']:>10}{r['seconds']:>10.2f}{r['clips_per_s']:>12.0f}"
            f"{r['peak_rss_mb']:>13.0f}{r['peak_rss_mb'] - r['rss_after_imports_mb']:>15.0f}"
        )
        print(line + (f"{r['cuda_peak_allocated_mb']:>14.0f}" if cuda else ""))
    ratio = results["fast"]["clips_per_s"] / results["naive"]["clips_per_s"]
    data_ratio = results["fast"]["data_clips_per_s"] / results["naive"]["data_clips_per_s"]
    print(f"training epoch speed-up: {ratio:.1f}x (target >= 10x)")
    print(
        f"data path alone (batches ready for the model, no model): "
        f"{results['fast']['data_clips_per_s']:.0f} vs {results['naive']['data_clips_per_s']:.0f} "
        f"clips/s, {data_ratio:.1f}x"
    )


if __name__ == "__main__":
    main()
