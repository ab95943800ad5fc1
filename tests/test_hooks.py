"""The project hooks put what nodes report on the active MLflow run."""

from __future__ import annotations

import json

import mlflow
import pytest
from kedro.io import DataCatalog, Version
from kedro_datasets.json import JSONDataset

from zeroshot_audio.hooks import MlflowArtifactHook, MlflowReportHook


@pytest.fixture
def run(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("hooks")
    with mlflow.start_run() as active:
        yield active
    mlflow.set_tracking_uri(None)


def test_report_tags_and_metrics_reach_the_run_with_valid_names(run):
    report = {
        "mlflow_tags": {"vggish_weights": "random"},
        "mlflow_metrics": {"loc/uniform+all_active/f1_mean": 0.5, "count": 3, "bad": float("nan")},
    }
    MlflowReportHook().after_node_run(node=None, outputs={"x_report": report, "y": {"a": 1}})
    data = mlflow.get_run(run.info.run_id).data
    assert data.tags["vggish_weights"] == "random"
    assert data.metrics == {"loc/uniform_all_active/f1_mean": 0.5, "count": 3.0}


def test_datasets_flagged_as_artifacts_are_logged_from_the_versioned_file(run, tmp_path):
    catalog = DataCatalog(
        {
            "a_report": JSONDataset(
                filepath=str(tmp_path / "a_report.json"),
                version=Version(None, "2026-01-01T00.00.00.000Z"),  # as the catalog sets it
                metadata={"mlflow_artifact": "reports"},
            ),
            "b_report": JSONDataset(
                filepath=str(tmp_path / "b_report.json"), metadata={"mlflow_artifact": "reports"}
            ),
            "plain": JSONDataset(filepath=str(tmp_path / "plain.json")),
        }
    )
    hook = MlflowArtifactHook()
    hook.after_catalog_created(catalog)
    for name in ("a_report", "b_report", "plain"):
        catalog.save(name, {"n": 1})
        hook.after_dataset_saved(dataset_name=name, data={"n": 1}, node=None)
    client = mlflow.MlflowClient()
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["reports"]
    logged = [a.path for a in client.list_artifacts(run.info.run_id, "reports")]
    assert logged == ["reports/a_report.json", "reports/b_report.json"]
    local = client.download_artifacts(run.info.run_id, logged[0], str(tmp_path / "dl"))
    assert json.loads(open(local).read()) == {"n": 1}


def test_an_artifact_output_that_wrote_nothing_is_skipped(run, tmp_path):
    """``predict --no-figures``: the figures dataset is flagged but its folder never appeared."""
    from kedro_datasets.matplotlib import MatplotlibDataset

    catalog = DataCatalog(
        {
            "prediction_figures": MatplotlibDataset(
                filepath=str(tmp_path / "figures"),
                version=Version(None, "2026-01-01T00.00.00.000Z"),
                metadata={"mlflow_artifact": "figures/predictions"},
            )
        }
    )
    hook = MlflowArtifactHook()
    hook.after_catalog_created(catalog)
    hook.after_dataset_saved(dataset_name="prediction_figures", data={}, node=None)
    assert mlflow.MlflowClient().list_artifacts(run.info.run_id) == []
