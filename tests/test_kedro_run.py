"""`kedro run` as a user types it, on the base env, in a fresh copy of the project."""

from __future__ import annotations

import shutil

import mlflow
import pandas as pd
import pytest

from tests.kedro_project import kedro, latest, make_project_copy, mlflow_runs


def test_ingest_and_split_outputs_of_the_default_run_are_versioned_and_tracked(full_run_project):
    project = full_run_project
    clip_folds = pd.read_parquet(latest(project, "03_primary/clip_folds.parquet"))
    class_folds = pd.read_parquet(latest(project, "03_primary/class_folds.parquet"))
    assert set(clip_folds["fold"]) == set(class_folds["fold"]) == {0, 1, 2}
    assert clip_folds["fold"].value_counts().min() >= 150

    run = mlflow_runs(project).iloc[0]
    assert run["status"] == "FINISHED"
    assert run["params.folds.n_folds"] == "3"
    assert run["params.split.cross_fold_policy"] == "drop"
    assert run["metrics.split/kept_clips"] == len(clip_folds)
    assert run["metrics.ingest/quarantined_rows"] == 0
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
def test_full_run_reports_every_method_and_evaluate_alone_reuses_the_models(
    full_run_project, tmp_path
):
    table = latest(full_run_project, "08_reporting/evaluation_table.md").read_text()
    for method in ("Zero-rule", "uniform", "temporal attention", "Supervised"):
        assert method in table
    runs = mlflow_runs(full_run_project)
    full_run = runs.iloc[0]
    assert full_run["tags.vggish_weights"] == "random"  # degraded mode is visible on the run
    assert "metrics.evaluate/temporal_attention/micro_f1_mean" in runs.columns
    client = mlflow.MlflowClient()
    logged = {a.path for a in client.list_artifacts(full_run["run_id"])}
    assert {"models", "reports", "figures"} <= logged
    history = client.get_metric_history(
        full_run["run_id"], "train/rot0/temporal_attention/train_loss"
    )
    assert 1 <= len(history) <= 4

    project = tmp_path / "project"
    shutil.copytree(full_run_project, project, symlinks=True)
    models = project / "data" / "06_models" / "trained_models.pt"
    tables = project / "data" / "08_reporting" / "evaluation_table.md"
    n_model_versions, n_tables = len(list(models.iterdir())), len(list(tables.iterdir()))
    kedro(project, "run", "--pipeline=evaluate")
    assert len(list(models.iterdir())) == n_model_versions  # nothing was retrained
    assert len(list(tables.iterdir())) == n_tables + 1
    runs = mlflow_runs(project)
    assert len(runs) == 2 and (runs["status"] == "FINISHED").all()
