"""The MLflow UI as `make mlflow-ui` starts it, after a real `kedro run`, read over its REST API.

What a user looks for in the UI must be there: the project's experiment, the run, every parameter the
stages read, the counts their reports publish as metrics, and the reports as downloadable artifacts.
Expectations come from the run's own pipelines, parameters and report files, so stages that land
later are covered by the same checks.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from kedro.config import OmegaConfigLoader

from tests.kedro_project import SMALL_RUN_PARAMS, latest
from tests.test_viz import (
    CHROMIUM,
    chromium,
    dataset_names,
    free_port,
    http,
    http_json,
    port_closes,
    start_process_group,
    stop_process_group,
    wait_for_http,
)
from zeroshot_audio.hooks import mlflow_metric_name

pytestmark = pytest.mark.slow

SERVER_START_S = 240


@pytest.fixture(scope="module")
def project(full_run_project) -> Path:
    return full_run_project


@pytest.fixture(scope="module")
def config(project) -> OmegaConfigLoader:
    return OmegaConfigLoader(
        conf_source=str(project / "conf"),
        base_env="base",
        default_run_env="local",
        config_patterns={"mlflow": ["mlflow*", "mlflow*/**"]},
    )


@pytest.fixture(scope="module")
def run_pipelines():
    from kedro.framework.project import configure_project, pipelines

    configure_project("zeroshot_audio")
    return [pipelines["__default__"]]


@pytest.fixture(scope="module")
def mlflow_url(project, tmp_path_factory):
    """`make mlflow-ui`: ``mlflow ui --backend-store-uri sqlite:///mlflow.db`` in the project root,
    on a free loopback port, with one worker; its whole process group is stopped afterwards."""
    port = free_port()
    log = tmp_path_factory.mktemp("mlflow_server") / "mlflow-ui.log"
    args = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", "sqlite:///mlflow.db"]
    server = start_process_group(
        [*args, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], project, log
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/health", server, log, SERVER_START_S)
        yield url
    finally:
        stop_process_group(server)
    assert port_closes(port), "the MLflow UI still listens after its process group was stopped"


@pytest.fixture(scope="module")
def run(mlflow_url, config) -> dict[str, Any]:
    """The run the UI lists first in the project's experiment."""
    experiment_name = config["mlflow"]["tracking"]["experiment"]["name"]
    api = f"{mlflow_url}/api/2.0/mlflow"
    experiments = http_json(f"{api}/experiments/search", {"max_results": 100})["experiments"]
    matching = [e for e in experiments if e["name"] == experiment_name]
    assert matching, f"experiment {experiment_name!r} not in {[e['name'] for e in experiments]}"
    runs = http_json(
        f"{api}/runs/search",
        {"experiment_ids": [matching[0]["experiment_id"]], "max_results": 10},
    ).get("runs", [])
    assert len(runs) == 1, f"expected the one `kedro run`, found {len(runs)} runs"
    return runs[0]


def flatten(prefix: str, value: Any) -> dict[str, str]:
    """Parameters as kedro-mlflow logs them (mlflow.yml: flatten, recursive, sep '.')."""
    if not isinstance(value, dict):
        return {prefix: str(value)}
    flat: dict[str, str] = {}
    for key, item in value.items():
        flat |= flatten(f"{prefix}.{key}", item)
    return flat


def test_run_is_listed_with_every_parameter_the_stages_read(run, run_pipelines, config):
    assert run["info"]["status"] == "FINISHED"
    parameters = config["parameters"]
    expected: dict[str, str] = {}
    for pipe in run_pipelines:
        for name in pipe.inputs():
            if name.startswith("params:"):
                value = parameters
                for part in name.removeprefix("params:").split("."):
                    value = value[part]
                expected |= flatten(name.removeprefix("params:"), value)
    # the run was started with --params overrides, which the run must record instead
    for override in SMALL_RUN_PARAMS.removeprefix("--params=").split(","):
        key, value = override.split("=")
        expected[key] = value
    logged = {p["key"]: p["value"] for p in run["data"].get("params", [])}
    assert expected, "the run's pipelines read no parameters"
    assert {k: logged.get(k) for k in expected} == expected


def test_reports_counts_are_listed_as_metrics(run, run_pipelines, project):
    """Every ``mlflow_metrics`` entry of a written ``*_report`` is a metric of the run, same value."""
    metrics = {m["key"]: m["value"] for m in run["data"].get("metrics", [])}
    reports = sorted(n for p in run_pipelines for n in dataset_names(p) if n.endswith("_report"))
    assert reports
    for report in reports:
        published = json.loads(latest(project, f"08_reporting/{report}.json").read_text())
        expected = published.get("mlflow_metrics") or {}
        assert expected, f"{report} publishes no mlflow_metrics"
        expected = {mlflow_metric_name(k): v for k, v in expected.items()}  # as the hook names them
        assert {k: metrics.get(k) for k in expected} == pytest.approx(expected), report


def test_reports_are_listed_and_downloadable_as_artifacts(
    mlflow_url, run, run_pipelines, config, project
):
    """Each dataset with ``metadata.mlflow_artifact`` is listed under that folder and serves the
    exact bytes of the version the run wrote."""
    run_id = run["info"]["run_id"]
    catalog = config["catalog"]
    logged = {
        name: catalog[name]["metadata"]["mlflow_artifact"]
        for p in run_pipelines
        for name in dataset_names(p)
        if "mlflow_artifact" in (catalog.get(name, {}).get("metadata") or {})
    }
    assert logged, "the run's pipelines log no artifact"
    for name, folder in sorted(logged.items()):
        relative = catalog[name]["filepath"].removeprefix("data/")
        local = latest(project, relative)
        query = urllib.parse.urlencode({"run_id": run_id, "path": folder})
        listing = http_json(f"{mlflow_url}/api/2.0/mlflow/artifacts/list?{query}")
        paths = {f["path"]: f for f in listing.get("files", [])}
        # a folder dataset (one figure per predicted file) is logged file by file into `folder`
        files = sorted(local.iterdir()) if local.is_dir() else [local]
        assert files, f"{name}: the run wrote an empty folder"
        for file in files:
            artifact = f"{folder}/{file.name}"
            assert artifact in paths, f"{name}: {artifact} not in {sorted(paths)}"
            assert int(paths[artifact]["file_size"]) == file.stat().st_size
            query = urllib.parse.urlencode({"path": artifact, "run_uuid": run_id})
            status, body = http(f"{mlflow_url}/get-artifact?{query}")
            assert status == 200 and body == file.read_bytes(), f"{name}: download differs"


@pytest.mark.browser
@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is not installed (`make test` installs it where apt allows: .ci/install-chromium)",
)
def test_ui_pages_show_the_run_in_headless_chromium(mlflow_url, run, config, tmp_path):
    """The run page, rendered by a browser, shows its name, metrics and parameters; its artifacts
    tab shows the artifact folders. (MLflow 3 opens an experiment on its GenAI overview, so the
    test goes to the run's own page, as the README tells users to.)"""
    info = run["info"]
    page = f"{mlflow_url}/#/experiments/{info['experiment_id']}/runs/{info['run_id']}"
    dom = chromium(page, tmp_path / "run", "--dump-dom")
    keys = [m["key"] for m in run["data"]["metrics"]] + [p["key"] for p in run["data"]["params"]]
    missing = [key for key in [info["run_name"], *keys] if key not in dom]
    assert not missing, f"not on the run page ({len(dom)} bytes of DOM): {missing}"

    dom = chromium(f"{page}/artifacts", tmp_path / "artifacts", "--dump-dom")
    folders = {
        (entry.get("metadata") or {}).get("mlflow_artifact") for entry in config["catalog"].values()
    }
    listed = http_json(
        f"{mlflow_url}/api/2.0/mlflow/artifacts/list?"
        + urllib.parse.urlencode({"run_id": info["run_id"]})
    )["files"]
    assert listed and all(f["path"] in dom for f in listed), f"artifacts tab lacks {listed}"
    assert {f["path"] for f in listed} <= folders
