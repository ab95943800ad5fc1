"""Evaluate's tag metrics at test-fold scale: per-class AP and the paired bootstrap, on one core
and on every core, against scikit-learn's AP in the same run.

Evaluate computes the AP of every test class for 15 (rotation, method) pairs of ~290k clips and
resamples 20,000 clips per rotation 1,000 times for the paired bootstrap (issue 11). Both loop
over classes in numpy kernels that release the GIL, so ``model.metrics.parallel_map`` runs the
classes on a thread per core; the numbers must not change.

Clips and labels are real AudioSet rows (the unbalanced segments file: its first ``--clips``
rows), restricted to a seeded third of the classes as a test fold; scores are the labels plus
seeded noise.

    python benchmarks/bench_tag_metrics.py [--audioset ../shared/data/audioset] [--clips 290000]
"""

from __future__ import annotations

import argparse
import gzip
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from zeroshot_audio.metadata.audioset import parse_segments
from zeroshot_audio.model import metrics
from zeroshot_audio.model.uncertainty import PairedScores, stratified_paired_bootstrap

REPO = Path(__file__).resolve().parents[1]


def test_fold(audioset: Path, n_clips: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """[N, C] targets of real clips over a seeded third of the classes, and noisy scores."""
    rng = np.random.default_rng(seed)
    mids = pd.read_csv(audioset / "class_labels_indices.csv")["mid"].to_numpy()
    path = audioset / "unbalanced_train_segments.csv.gz"
    with gzip.open(path, "rt") as handle:
        text = "".join(line for _, line in zip(range(n_clips + 3), handle, strict=False))
    rows, _, _ = parse_segments(text, str(path), "unbalanced", mids, strict=False)
    classes = sorted(rng.choice(mids, size=len(mids) // 3, replace=False).tolist())
    column = {mid: j for j, mid in enumerate(classes)}
    targets = np.zeros((len(rows), len(classes)), dtype=bool)
    for i, labels in enumerate(rows["labels"]):
        targets[i, [column[m] for m in labels if m in column]] = True
    scores = (targets + rng.normal(scale=0.8, size=targets.shape)).astype(np.float32)
    return targets, scores


@contextmanager
def cores(n: int):
    """Run the metrics as if this process had ``n`` cores."""
    original = metrics.available_cores
    metrics.available_cores = lambda: n
    try:
        yield
    finally:
        metrics.available_cores = original


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audioset", type=Path, default=REPO / "tests/fixtures/audioset")
    parser.add_argument("--clips", type=int, default=290_000)
    parser.add_argument("--bootstrap-clips", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    targets, scores = test_fold(args.audioset, args.clips, args.seed)
    present = np.flatnonzero(targets.any(axis=0))
    print(
        f"{len(targets):,} real clips x {targets.shape[1]} classes ({present.size} with a "
        f"positive), {metrics.available_cores()} cores"
    )

    reference, t_sklearn = timed(
        lambda: average_precision_score(targets[:, present], scores[:, present], average=None)
    )
    with cores(1):
        one, t_one = timed(lambda: metrics.average_precision(targets, scores))
    every, t_every = timed(lambda: metrics.average_precision(targets, scores))
    assert np.array_equal(one, every, equal_nan=True), "AP depends on the number of threads"
    error = float(np.max(np.abs(every[present] - reference)))
    print("per-class AP (one rotation and method):")
    print(f"  scikit-learn                 {t_sklearn:7.2f} s   1.00x")
    print(f"  project, one core            {t_one:7.2f} s  {t_sklearn / t_one:5.2f}x")
    print(
        f"  project, every core          {t_every:7.2f} s  {t_sklearn / t_every:5.2f}x "
        f"(max |difference| to scikit-learn {error:.1e})"
    )

    rng = np.random.default_rng(args.seed + 1)
    rows = np.sort(rng.choice(len(targets), min(args.bootstrap_clips, len(targets)), False))
    y = targets[rows]
    weaker = y * 0.6 + rng.normal(scale=0.8, size=y.shape)
    paired = PairedScores(y, scores[rows], weaker, scores[rows] > 0.5, weaker > 0.5)
    with cores(1):
        serial, t_serial = timed(lambda: stratified_paired_bootstrap([paired]))
    threaded, t_threaded = timed(lambda: stratified_paired_bootstrap([paired]))
    assert serial == threaded, "the bootstrap depends on the number of threads"
    print(f"paired bootstrap, {len(rows):,} clips, 1,000 resamples (one rotation):")
    print(f"  one core                     {t_serial:7.2f} s   1.00x")
    print(f"  every core                   {t_threaded:7.2f} s  {t_serial / t_threaded:5.2f}x")
    print(
        "  mAP difference:",
        [round(100 * v, 2) for v in (threaded[1]["map"].low, threaded[1]["map"].high)],
    )


if __name__ == "__main__":
    main()
