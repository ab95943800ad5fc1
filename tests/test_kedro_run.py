"""`kedro run` as a user types it, on the base env, in a fresh copy of the project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from tests.conftest import DEFAULT_DATA, REPO_ROOT

DATA_LAYERS = (
    "01_raw", "02_intermediate", "03_primary", "04_feature", "05_model_input", "06_models",
    "07_model_output", "08_reporting",
)  # fmt: skip


def make_project_copy(destination: Path) -> Path:
    """What a fresh clone has: pyproject, src, conf (empty conf/local) and the bundled data."""
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(REPO_ROOT / name, destination / name)
    shutil.copytree(
        REPO_ROOT / "src", destination / "src", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(
        REPO_ROOT / "conf", destination / "conf", ignore=shutil.ignore_patterns("local")
    )
    (destination / "conf" / "local").mkdir()
    for layer in DATA_LAYERS:
        (destination / "data" / layer).mkdir(parents=True)
    shutil.copytree(DEFAULT_DATA, destination / "data" / "01_raw" / "default", dirs_exist_ok=True)
    return destination


def kedro(project: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, "-m", "kedro", *args],
        cwd=project, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return result


def latest(project: Path, relative: str) -> Path:
    """The newest version of a versioned dataset written under ``data/``."""
    folder = project / "data" / relative
    versions = sorted(p for p in folder.iterdir() if p.is_dir())
    assert versions, f"no version of {relative}"
    return versions[-1] / folder.name


def mlflow_runs(project: Path) -> pd.DataFrame:
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    return mlflow.search_runs(experiment_names=["zeroshot_audio"], order_by=["start_time DESC"])


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    if not (DEFAULT_DATA / "segments.csv").exists():
        pytest.skip("the bundled default dataset is missing")
    return make_project_copy(tmp_path_factory.mktemp("project"))


def test_ingest_and_split_run_on_the_base_env_and_are_tracked(project):
    kedro(project, "run", "--pipelines=ingest,split")
    clip_folds = pd.read_parquet(latest(project, "03_primary/clip_folds.parquet"))
    class_folds = pd.read_parquet(latest(project, "03_primary/class_folds.parquet"))
    assert set(clip_folds["fold"]) == set(class_folds["fold"]) == {0, 1, 2}
    assert clip_folds["fold"].value_counts().min() >= 150

    run = mlflow_runs(project).iloc[0]
    assert run["status"] == "FINISHED"
    assert run["params.folds.n_folds"] == "3"
    assert run["params.split.cross_fold_policy"] == "drop"
    assert run["metrics.split_kept_clips"] == len(clip_folds)
    assert run["metrics.ingest_quarantined_rows"] == 0
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(run["run_id"], "reports")]
    assert {"reports/ingest_report.json", "reports/split_report.json"} <= set(artifacts)


@pytest.mark.slow
def test_audioset_env_ingests_and_splits_the_real_metadata(tmp_path, audioset_dir):
    project = make_project_copy(tmp_path)
    kedro(
        project,
        "run",
        "--env=audioset",
        "--pipelines=ingest,split",
        f"--params=audioset_root={audioset_dir}",
    )
    report = pd.read_json(latest(project, "08_reporting/ingest_report.json"), typ="series")
    assert report["n_clips"] == 22_160 + 20_371 + 2_041_789
    assert report["n_quarantined"] == 0
    split = pd.read_json(latest(project, "08_reporting/split_report.json"), typ="series")
    assert split["n_selected_classes"] > 300
    assert len(split["clips_per_fold"]) == 3


@pytest.mark.slow
def test_full_run_then_evaluate_alone_reuses_the_trained_models(project):
    # A quarter of the bundled clips and a few epochs keep this under a few minutes on 2 cores;
    # the stages, datasets and MLflow wiring are the ones of a full `kedro run`.
    kedro(project, "run", "--params=featurize.max_clips=200,train.fit.epochs=4")
    table = latest(project, "08_reporting/evaluation_table.md").read_text()
    for method in ("Zero-rule", "uniform", "temporal attention", "Supervised"):
        assert method in table
    models = project / "data" / "06_models" / "trained_models.pt"
    n_model_versions = len(list(models.iterdir()))
    n_tables = len(list((project / "data" / "08_reporting" / "evaluation_table.md").iterdir()))

    kedro(project, "run", "--pipeline=evaluate")
    assert len(list(models.iterdir())) == n_model_versions  # nothing was retrained
    assert len(list((project / "data/08_reporting/evaluation_table.md").iterdir())) == n_tables + 1

    runs = mlflow_runs(project)
    evaluate_run, full_run = runs.iloc[0], runs.iloc[1]
    assert full_run["tags.vggish_weights"] == "random"  # degraded mode is visible on the run
    assert "metrics.eval/temporal_attention/micro_f1_mean" in runs.columns
    assert evaluate_run["status"] == full_run["status"] == "FINISHED"
    client = mlflow.MlflowClient()
    logged = {a.path for a in client.list_artifacts(full_run["run_id"])}
    assert {"models", "reports", "figures"} <= logged
    history = client.get_metric_history(
        full_run["run_id"], "training_history.rot0/temporal_attention/train_loss"
    )
    assert 1 <= len(history) <= 4
