"""Ingest + split of the full unbalanced AudioSet file (2,041,789 rows): wall time and peak RSS.

Target (issue 2): under 60 s and 4 GB on a 2-core machine. The baseline in the same run is the I/O
floor: decompressing the file and splitting it into lines, which any parser must do; the ratio says
how much the validation and the greedy split cost on top of reading the bytes.

    python benchmarks/bench_split.py [--audioset ../shared/data/audioset] [--file unbalanced_train_segments.csv.gz]
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import time
from pathlib import Path

import pandas as pd

from zeroshot_audio.datasets.audioset_files import AudioSetSegmentFiles
from zeroshot_audio.pipelines.ingest.nodes import build_classes, parse_segment_files
from zeroshot_audio.pipelines.split.nodes import split_folds

REPO = Path(__file__).resolve().parents[1]
SPLIT_PARAMS = {
    "class_selection": {
        "drop_restrictions": ["abstract", "blacklist"],
        "leaf_only": True,
        "min_clips": 8,
    },
    "cross_fold_policy": "drop",
    "balance_tolerance": 0.1,
}
FOLDS = {"n_folds": 3, "rotations": []}


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audioset", type=Path, default=REPO.parent / "shared/data/audioset")
    parser.add_argument("--file", default="unbalanced_train_segments.csv.gz")
    args = parser.parse_args()
    path = args.audioset / args.file

    t0 = time.perf_counter()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        n_lines = len(handle.read().split("\n"))
    floor = time.perf_counter() - t0

    t0 = time.perf_counter()
    files = AudioSetSegmentFiles({"unbalanced": str(path)}).load()
    class_index = pd.read_csv(args.audioset / "class_labels_indices.csv")
    ontology = json.loads((args.audioset / "ontology.json").read_text())
    t_read = time.perf_counter()
    clips, report = parse_segment_files(files, class_index, {"mode": "lenient"})
    classes = build_classes(class_index, ontology, clips)
    t_ingest = time.perf_counter()
    class_folds, clip_folds, split_report = split_folds(
        clips, classes, SPLIT_PARAMS, FOLDS, 20240901
    )
    t_split = time.perf_counter()

    total = t_split - t0
    print(f"file: {path} ({n_lines - 4:,} data lines)")
    print(f"I/O floor (gunzip + split lines): {floor:.1f} s")
    print(
        f"read {t_read - t0:.1f} s | ingest (parse + validate + class table) {t_ingest - t_read:.1f} s | split {t_split - t_ingest:.1f} s"
    )
    print(
        f"ingest + split wall time: {total:.1f} s  ({total / floor:.1f}x the I/O floor); target < 60 s"
    )
    print(f"peak RSS: {peak_rss_gb():.2f} GB; target < 4 GB")
    print(f"clips: {report['n_clips']:,} kept, {report['n_quarantined']} quarantined")
    print(
        f"selected classes: {split_report['n_selected_classes']} (dropped: {split_report['dropped_classes']})"
    )
    for fold, info in split_report["folds"].items():
        print(
            f"  fold {fold}: {info['n_classes']} classes, {info['n_clips']:,} clips, {info['labels_per_clip_mean']} labels/clip"
        )
    print(f"dropped clips: {split_report['dropped_clips_by_reason']}")
    print(f"max relative fold-size deviation: {split_report['max_relative_fold_deviation']}")


if __name__ == "__main__":
    main()
