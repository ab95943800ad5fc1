"""`kedro run` as a user types it, on the base env, in a fresh copy of the project."""

from __future__ import annotations

import json
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
@pytest.mark.parametrize(
    ("folder", "n_clips", "min_classes"),
    [
        ("audioset_dir", 4_000 + 4_000 + 3_000, 20),  # the committed slices
        pytest.param(
            "full_audioset_dir", 22_160 + 20_371 + 2_041_789, 300, marks=pytest.mark.full_data
        ),
    ],
)
def test_audioset_env_ingests_and_splits_the_real_metadata(
    tmp_path, request, folder, n_clips, min_classes
):
    project = make_project_copy(tmp_path)
    kedro(
        project,
        "run",
        "--env=audioset",
        "--pipelines=ingest,split",
        f"--params=audioset_root={request.getfixturevalue(folder)}",
    )
    report = pd.read_json(latest(project, "audioset/08_reporting/ingest_report.json"), typ="series")
    assert report["n_clips"] == n_clips
    assert report["n_quarantined"] == 0
    split = pd.read_json(latest(project, "audioset/08_reporting/split_report.json"), typ="series")
    assert split["n_selected_classes"] > min_classes
    assert len(split["clips_per_fold"]) == 3


@pytest.mark.slow
def test_full_run_reports_every_method_and_evaluate_alone_reuses_the_models(
    full_run_project, tmp_path
):
    table = latest(full_run_project, "08_reporting/evaluation_table.md").read_text()
    for method in ("Zero-rule", "uniform", "temporal attention", "Supervised"):
        assert method in table
    # every test-fold clip is scored: the per-rotation clip counts add up to all embedded clips
    report = json.loads(latest(full_run_project, "08_reporting/evaluation_report.json").read_text())
    training = json.loads(latest(full_run_project, "08_reporting/training_report.json").read_text())
    n_scored = sum(r["n_test_clips"] for r in report["rotations"].values())
    assert n_scored == training["clips"]["with_embeddings"] > 0
    assert "- attention - uniform:" in table and "### DCASE metrics" in table
    per_class = pd.read_parquet(latest(full_run_project, "08_reporting/per_class_ap.parquet"))
    assert {"ap_temporal_attention", "ap_uniform", "ap_difference"} <= set(per_class.columns)
    runs = mlflow_runs(full_run_project)
    full_run = runs.iloc[0]
    assert "metrics.evaluate/difference/temporal_attention_minus_uniform/micro_f1_low" in runs
    assert full_run["tags.vggish_weights"] == "random"  # degraded mode is visible on the run
    assert "metrics.evaluate/temporal_attention/micro_f1_mean" in runs.columns
    client = mlflow.MlflowClient()
    logged = {a.path for a in client.list_artifacts(full_run["run_id"])}
    assert {"models", "reports", "figures"} <= logged
    figures = {a.path for a in client.list_artifacts(full_run["run_id"], "figures")}
    assert "figures/per_class_ap_figure.png" in figures
    history = client.get_metric_history(
        full_run["run_id"], "train/rot0/temporal_attention/train_loss"
    )
    assert 1 <= len(history) <= 4

    project = tmp_path / "project"
    shutil.copytree(full_run_project, project, symlinks=True)
    models = project / "data" / "06_models" / "trained_models.pt"
    tables = project / "data" / "08_reporting" / "evaluation_table.md"
    n_model_versions, n_tables = len(list(models.iterdir())), len(list(tables.iterdir()))
    evaluated = kedro(project, "run", "--pipelines=evaluate")
    assert len(list(models.iterdir())) == n_model_versions  # nothing was retrained
    assert len(list(tables.iterdir())) == n_tables + 1
    newest = sorted(tables.iterdir())[-1].name
    assert "Zero-shot, temporal attention" in evaluated.stdout  # the table, printed at the end
    assert f"evaluation_table: data/08_reporting/evaluation_table.md/{newest}/" in evaluated.stdout
    runs = mlflow_runs(project)
    assert len(runs) == 2 and (runs["status"] == "FINISHED").all()


def test_the_run_log_reads_one_line_per_node_and_ends_with_the_results(full_run_project):
    """No third-party deprecation warning, no Kedro echo lines; the table and its files last."""
    log = (full_run_project / "kedro_run.log").read_text()
    for noise in ("register_new_resolver", "Add type hints", "Replacing dataset", "Completed node"):
        assert noise not in log
    assert "Warning" not in log  # no Python warning of any kind reached the log
    nodes = log.count("Running node:")
    assert nodes >= 10 and log.count(" INFO ") < 6 * nodes  # a few lines per node, not a dozen
    assert "Loading data from" not in log and "Saving data to" not in log
    results = log[log.index("Pipeline execution completed") :]
    assert "Multi-label zero-shot audio classification" in results
    assert "Zero-shot, temporal attention" in results and "| ---" not in results
    assert "evaluation_table: data/08_reporting/evaluation_table.md/" in results
    assert "attention_heatmaps: data/08_reporting/attention_heatmaps.png/" in results
