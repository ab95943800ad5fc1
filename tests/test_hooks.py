"""The project hooks put what nodes report on the active MLflow run, and show the results."""

from __future__ import annotations

import io
import json
import logging
import os
from unittest import mock

import mlflow
import pytest
from kedro.io import DataCatalog, Version
from kedro.pipeline import node, pipeline
from kedro_datasets.json import JSONDataset
from rich.console import Console

from zeroshot_audio.datasets.tables import MarkdownDataset
from zeroshot_audio.hooks import (
    HOST_TAG,
    PID_TAG,
    START_TAG,
    MissingInputError,
    MissingInputsHook,
    MlflowArtifactHook,
    MlflowReportHook,
    MlflowStaleRunHook,
    ResultsTableHook,
    _producers,
    missing_input_hints,
    process_start,
    relocate_artifact_root,
)


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


# --------------------------------------------------------------------------------------------
# Missing inputs: one line naming the stage to run
# --------------------------------------------------------------------------------------------


def _evaluate_like(tmp_path, with_model: bool):
    from kedro.pipeline import Pipeline, node

    from zeroshot_audio.datasets.torch_model import TorchModelDataset

    models = TorchModelDataset(
        filepath=str(tmp_path / "trained_models.pt"), version=Version(None, None)
    )
    if with_model:
        from tests.inference.checkpoints import make_checkpoint

        models.save({"rot0/temporal_attention": make_checkpoint()})
    catalog = DataCatalog({"trained_models": models})
    pipeline = Pipeline([node(lambda m, p: m, ["trained_models", "params:x"], "out", name="n")])
    return pipeline, catalog


def test_a_missing_trained_model_is_one_line_naming_the_stage_to_run(tmp_path):
    pipeline, catalog = _evaluate_like(tmp_path, with_model=False)
    hints = missing_input_hints(pipeline, catalog, lambda: {"trained_models": ["train"]}, set())
    assert hints == [
        f"no trained model found in {tmp_path / 'trained_models.pt'}: "
        "run `kedro run --pipeline=train` first"
    ]
    run_params = {"load_versions": {}}
    with pytest.raises(MissingInputError, match=r"^no trained model found in .*--pipeline=train"):
        with mock.patch("zeroshot_audio.hooks._producers", lambda: {"trained_models": ["train"]}):
            MissingInputsHook().before_pipeline_run(run_params, pipeline, catalog)


def test_no_hint_when_the_model_exists_or_its_version_is_pinned(tmp_path):
    called = []

    def producers():
        called.append(1)
        return {"trained_models": ["train"]}

    pipeline, catalog = _evaluate_like(tmp_path, with_model=True)
    assert missing_input_hints(pipeline, catalog, producers, set()) == []
    assert called == []  # the stage folders are only imported when something is missing
    pipeline, catalog = _evaluate_like(tmp_path / "b", with_model=False)
    assert missing_input_hints(pipeline, catalog, producers, {"trained_models"}) == []


def test_stage_outputs_are_found_even_when_only_one_pipeline_is_loaded():
    from kedro.framework.project import configure_project

    configure_project("zeroshot_audio")
    made_by = _producers()
    assert made_by["trained_models"] == ["train"]
    assert made_by["model_splits"] == ["train"]  # consumed inside train: not a free output
    assert made_by["segment_embeddings"] == ["featurize"]


@pytest.mark.slow
def test_kedro_run_evaluate_without_a_model_prints_the_hint_not_a_traceback(tmp_path):
    import subprocess
    import sys

    from tests.kedro_project import make_project_copy, mlflow_runs

    project = make_project_copy(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "run", "--pipeline=evaluate"],
        cwd=project, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "MPLBACKEND": "Agg"},
    )  # fmt: skip
    assert result.returncode == 1
    model = project / "data" / "06_models" / "trained_models.pt"
    assert f"no trained model found in {model}: run `kedro run --pipeline=train` first" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr and "DatasetError" not in result.stderr
    error = result.stderr[result.stderr.index("Error: ") :]
    assert len(error.splitlines()) <= 6  # one line per missing input, and nothing after
    assert len(mlflow_runs(project)) == 0  # stopped before kedro-mlflow opened a run


# --------------------------------------------------------------------------------------------
# Runs left RUNNING by killed processes
# --------------------------------------------------------------------------------------------


def _running_run(client, experiment_id, name, tags):
    run = client.create_run(experiment_id, run_name=name, tags=tags)
    assert client.get_run(run.info.run_id).info.status == "RUNNING"
    return run.info.run_id


def test_runs_of_dead_processes_are_marked_killed_and_said_so(run, caplog):
    import socket
    import subprocess
    import sys

    client = mlflow.MlflowClient()
    experiment = run.info.experiment_id
    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live_start = process_start(live.pid)
        ids = {
            "killed": _running_run(client, experiment, "killed", {
                PID_TAG: str(dead.pid), HOST_TAG: host, START_TAG: "123"}),
            "alive": _running_run(client, experiment, "alive", {
                PID_TAG: str(live.pid), HOST_TAG: host, START_TAG: live_start or ""}),
            "pid_reused": _running_run(client, experiment, "pid_reused", {
                PID_TAG: str(live.pid), HOST_TAG: host, START_TAG: "1"}),
            "other_host": _running_run(client, experiment, "other_host", {
                PID_TAG: str(dead.pid), HOST_TAG: host + "-elsewhere"}),
            "untagged": _running_run(client, experiment, "untagged", {}),
        }  # fmt: skip
        with caplog.at_level(logging.WARNING, logger="zeroshot_audio.hooks"):
            MlflowStaleRunHook().before_pipeline_run()
        status = {name: client.get_run(i).info.status for name, i in ids.items()}
    finally:
        live.kill()
        live.wait()
    assert status == {
        "killed": "KILLED",
        "alive": "RUNNING",
        "pid_reused": "KILLED" if live_start else "RUNNING",
        "other_host": "RUNNING",
        "untagged": "RUNNING",
    }
    assert f"'killed' ({ids['killed']}) was left RUNNING by process {dead.pid}" in caplog.text
    own = client.get_run(run.info.run_id)
    assert own.info.status == "RUNNING"
    assert own.data.tags[PID_TAG] == str(os.getpid()) and own.data.tags[HOST_TAG] == host


# --------------------------------------------------------------------------------------------
# A copied project keeps its MLflow artifacts to itself
# --------------------------------------------------------------------------------------------


def _files(folder) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("how", ["copied", "moved"])
def test_a_copied_project_writes_its_artifacts_into_itself(tmp_path, monkeypatch, caplog, how):
    import shutil

    original, copy = tmp_path / "original", tmp_path / "copy"
    original.mkdir()
    (original / "note.txt").write_text("first")
    monkeypatch.chdir(original)  # kedro runs in the project root: MLflow's default ./mlruns
    # absolute: MLflow caches its database engine by URI, across the tests of this process
    mlflow.set_tracking_uri(f"sqlite:///{original / 'mlflow.db'}")
    experiment_id = mlflow.set_experiment("zeroshot_audio").experiment_id
    with mlflow.start_run():
        mlflow.log_artifact("note.txt", "reports")
    mlflow.set_tracking_uri(None)
    monkeypatch.chdir(tmp_path)
    shutil.copytree(original, copy) if how == "copied" else shutil.move(original, copy)
    before = _files(original) if how == "copied" else set()

    monkeypatch.chdir(copy)
    with caplog.at_level(logging.WARNING, logger="zeroshot_audio.hooks"):
        assert relocate_artifact_root(copy, "sqlite:///mlflow.db") == 2  # Default and ours
    assert f"written by a project in {original}" in caplog.text
    assert relocate_artifact_root(copy, "sqlite:///mlflow.db") == 0  # done once
    mlflow.set_tracking_uri(f"sqlite:///{copy / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    assert client.get_experiment(experiment_id).artifact_location == str(copy / "mlruns" / "1")
    (old_run,) = client.search_runs([experiment_id])
    assert old_run.info.artifact_uri.startswith(str(copy / "mlruns"))
    assert client.download_artifacts(old_run.info.run_id, "reports/note.txt", str(tmp_path))
    (copy / "note.txt").write_text("second")
    mlflow.set_experiment("zeroshot_audio")
    with mlflow.start_run():
        mlflow.log_artifact(str(copy / "note.txt"), "reports")
    mlflow.set_tracking_uri(None)
    assert not original.exists() or _files(original) == before  # nothing written there
    assert len([p for p in _files(copy) if p.endswith("reports/note.txt")]) == 2


def test_an_artifact_location_chosen_elsewhere_is_left_alone(tmp_path, caplog, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    # MLflow roots the new database's Default experiment at <cwd>/mlruns: keep the checkout out
    monkeypatch.chdir(project)
    uri = f"sqlite:///{project / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.MlflowClient().create_experiment("x", artifact_location=str(tmp_path / "store"))
    mlflow.set_tracking_uri(None)
    with caplog.at_level(logging.WARNING, logger="zeroshot_audio.hooks"):
        assert relocate_artifact_root(project, uri) == 0
    assert "outside this project" in caplog.text
    # a database outside the project (a shared server) is never touched
    assert relocate_artifact_root(tmp_path / "elsewhere", uri) == 0


TABLE = """## Multi-label zero-shot audio classification

| Method | micro-F1 | macro-F1 | mAP |
| --- | ---: | ---: | ---: |
| Zero-rule | 1.0 ± 0.1 | 2.0 ± 0.2 | 3.0 ± 0.3 |
| Zero-shot, temporal attention | 41.5 ± 1.2 | 22.0 ± 2.0 | 33.3 ± 3.0 |
"""


def _evaluate_end(tmp_path, version: str):
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
    catalog, evaluate = _evaluate_end(tmp_path, newer)
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
    catalog, _ = _evaluate_end(tmp_path, "2026-01-01T00.00.00.000Z")
    other = pipeline([node(lambda: {"a": 1}, inputs=None, outputs="evaluation_report")])
    out = io.StringIO()
    ResultsTableHook(Console(file=out)).after_pipeline_run(
        run_params={}, pipeline=other, catalog=catalog
    )
    assert out.getvalue() == ""
