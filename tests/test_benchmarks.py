"""The benchmark scripts still run (on tiny inputs): a refactor must not leave them broken.

Their numbers are not asserted here (speed is measured by running them, not in unit tests); only
that each one runs to the end and prints the comparison it exists for.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import DEFAULT_DATA, REPO_ROOT


def run_benchmark(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize(
    ("folder", "n_clips"),
    [
        ("audioset_dir", "4,000"),  # the committed slice
        pytest.param("full_audioset_dir", "20,371", marks=pytest.mark.full_data),
    ],
)
def test_bench_split_runs_on_a_real_file(request, folder, n_clips):
    audioset = request.getfixturevalue(folder)
    out = run_benchmark(
        "benchmarks/bench_split.py", f"--audioset={audioset}", "--file=eval_segments.csv"
    )
    assert "ingest + split wall time" in out and "peak RSS" in out
    assert f"{n_clips} kept" in out


def test_bench_train_compares_with_the_naive_loop():
    out = run_benchmark("benchmarks/bench_train.py", "--clips=600")
    assert "training epoch speed-up" in out


@pytest.mark.slow
def test_bench_featurize_compares_with_the_naive_baseline():
    if not (DEFAULT_DATA / "segments.csv").exists():
        pytest.skip("the bundled default dataset is missing")
    out = run_benchmark(
        "benchmarks/bench_featurize.py", "--n-clips=2", "--repeats=1", "--batch-size=8"
    )
    assert "vs per-clip" in out and "bytes differ" in out and "precision auto" in out


@pytest.mark.slow
@pytest.mark.full_data
def test_bench_audioset_scale_runs_the_audioset_env_on_release_tfrecords(full_audioset_dir):
    """Half a percent of the real rows, every stage through `kedro run --env audioset`."""
    out = run_benchmark(
        "benchmarks/bench_audioset_scale.py", f"--audioset={full_audioset_dir}", "--fraction=0.005",
        "--epochs=2", "--min-clips=10",
    )  # fmt: skip
    for stage in ("ingest", "split", "featurize", "embed_labels", "train", "evaluate"):
        assert re.search(rf"{stage} +[\d.]+ s +\d+ MB peak RSS +[\d.]+ MB written", out), stage
    # Every clip written was read back; no defect was planted, so none may be reported.
    assert "failed {}, short clips 0, label mismatches 0" in out
    assert "Zero-shot, temporal attention" in out and "Zero-shot localisation" in out
    # The planted structure is a function of the label embeddings: zero-shot transfer must work.
    assert "planted-structure check: zero-shot uniform mAP" in out
    assert "NOT recovered" not in out, out[-3000:]


def test_bench_memory_measures_every_stage_against_the_payload():
    out = run_benchmark("benchmarks/bench_memory.py", "--clips=2000", "--tfrecord-clips=400")
    assert "x payload" in out and "@2.08M GiB" in out
    for stage in ("load", "train", "released"):
        assert any(line.startswith(stage) for line in out.splitlines()), stage
    assert "validation" in out and "on 400 clips" in out  # 20 % of 2,000, all of them


def test_bench_sed_metrics_compares_with_the_libraries():
    out = run_benchmark("benchmarks/bench_sed_metrics.py", "--clips=60")
    assert out.count("equal to the textbook calls") == 3 and out.count("speed-up") == 3


def test_bench_tag_metrics_compares_threads_and_scikit_learn():
    out = run_benchmark("benchmarks/bench_tag_metrics.py", "--clips=3000", "--bootstrap-clips=600")
    assert "project, every core" in out and "max |difference| to scikit-learn" in out
    assert "paired bootstrap, 600 clips" in out
