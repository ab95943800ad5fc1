"""The project hooks put what nodes report on the active MLflow run, and show the results."""

from __future__ import annotations

import io
import json

import mlflow
import pytest
from kedro.io import DataCatalog, Version
from kedro.pipeline import node, pipeline
from kedro_datasets.json import JSONDataset
from rich.console import Console

from zeroshot_audio.datasets.tables import MarkdownDataset
from zeroshot_audio.hooks import MlflowArtifactHook, MlflowReportHook, ResultsTableHook


@pytest.fixture(scope="module")
def tracking_db(tmp_path_factory):
    """One MLflow database for the module: creating one runs MLflow's migrations (seconds)."""
    return tmp_path_factory.mktemp("mlflow") / "mlflow.db"


@pytest.fixture
def run(tracking_db, tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tracking_db}")
    mlflow.set_experiment("hooks")
    with mlflow.start_run() as active:  # a run of its own per test
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


TABLE = """## Multi-label zero-shot audio classification

| Method | micro-F1 | macro-F1 | mAP |
| --- | ---: | ---: | ---: |
| Zero-rule | 1.0 ± 0.1 | 2.0 ± 0.2 | 3.0 ± 0.3 |
| Zero-shot, temporal attention | 41.5 ± 1.2 | 22.0 ± 2.0 | 33.3 ± 3.0 |
"""


def _evaluate_like(tmp_path, version: str):
    """A catalog and pipeline shaped like `evaluate`'s end: a versioned table and report."""
    catalog = DataCatalog(
        {
            "evaluation_table": MarkdownDataset(
                filepath=str(tmp_path / "data/08_reporting/evaluation_table.md"),
                version=Version(None, version),
            ),
            "evaluation_report": JSONDataset(
                filepath=str(tmp_path / "data/08_reporting/evaluation_report.json"),
                version=Version(None, version),
            ),
        }
    )
    summarise = node(
        lambda: ({"micro_f1": 0.415}, TABLE),
        inputs=None,
        outputs=["evaluation_report", "evaluation_table"],
        name="summarise",
    )
    return catalog, pipeline([summarise])


def test_a_run_that_evaluated_ends_with_the_rendered_table_and_its_files(tmp_path):
    newer = "2026-01-02T00.00.00.000Z"
    catalog, evaluate = _evaluate_like(tmp_path, newer)
    catalog.save("evaluation_report", {"micro_f1": 0.415})
    catalog.save("evaluation_table", TABLE)
    # a later version on disk must not be shown in place of the one this run wrote
    later = tmp_path / "data/08_reporting/evaluation_table.md/2026-02-01T00.00.00.000Z"
    later.mkdir(parents=True)
    (later / "evaluation_table.md").write_text("| Method |\n| --- |\n| STALE |\n")
    out = io.StringIO()
    ResultsTableHook(Console(file=out, width=120)).after_pipeline_run(
        run_params={"project_path": str(tmp_path)}, pipeline=evaluate, catalog=catalog
    )
    text = out.getvalue()
    assert "Multi-label zero-shot audio classification" in text
    assert "Zero-shot, temporal attention" in text and "41.5 ± 1.2" in text
    assert "| ---" not in text  # rendered as a table, not echoed as Markdown source
    assert "STALE" not in text
    assert (
        f"evaluation_table: data/08_reporting/evaluation_table.md/{newer}/evaluation_table.md"
        in (text)
    )
    assert f"evaluation_report: data/08_reporting/evaluation_report.json/{newer}/" in text


def test_a_run_without_evaluation_prints_nothing(tmp_path):
    catalog, _ = _evaluate_like(tmp_path, "2026-01-01T00.00.00.000Z")
    other = pipeline([node(lambda: {"a": 1}, inputs=None, outputs="evaluation_report")])
    out = io.StringIO()
    ResultsTableHook(Console(file=out)).after_pipeline_run(
        run_params={}, pipeline=other, catalog=catalog
    )
    assert out.getvalue() == ""
