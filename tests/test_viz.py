"""kedro viz as a user meets it: the static build's API, the live server, and the page in Chromium.

A fresh copy of the project runs ``ingest`` and ``split`` first, so that the datasets they write
exist and their previews can be checked for real. Expectations come from the pipeline registry and
the catalog configuration, so a stage that lands is covered without editing this file.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io.core import parse_dataset_definition
from kedro.pipeline import Pipeline
from PIL import Image

from tests.kedro_project import kedro

pytestmark = pytest.mark.slow

LAYERS = (
    "raw", "intermediate", "primary", "feature", "model_input", "models", "model_output",
    "reporting",
)  # fmt: skip
# The preview types the kedro-viz front end knows how to draw (kedro_datasets._typing); anything
# else (a plain ``dict`` annotation) is fetched but never shown.
RENDERABLE_PREVIEWS = {"TablePreview", "JSONPreview", "ImagePreview", "PlotlyPreview"}
# Datasets with nothing on disk to preview: in-memory hand-overs and MLflow-backed metrics.
UNPERSISTED = {"MemoryDataset", "MlflowMetricsHistoryDataset"}
# Written, but with nothing kedro-viz can preview, and why.
NO_PREVIEW_BY_DESIGN = {
    "prediction_figures": "one PNG per predicted file (a dict of figures in a folder); kedro-viz "
    "previews a single image",
}
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
SERVER_START_S = 240


# ---------------------------------------------------------------------------------------------
# Servers on loopback, each in its own process group (shared with tests/test_mlflow_ui.py).


def free_port() -> int:
    """A free loopback port below the ephemeral range (kedro viz refuses ports above 49151)."""
    for port in random.sample(range(20000, 49000), 200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                continue
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port on 127.0.0.1")


def start_process_group(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    """A server and every worker it forks share one new process group, so one signal stops all."""
    env = {
        **os.environ,
        "KEDRO_DISABLE_TELEMETRY": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "HF_HUB_OFFLINE": "1",
        "MPLBACKEND": "Agg",
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_process_group(process: subprocess.Popen, grace_s: float = 15) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            continue
        if sig is signal.SIGTERM:  # the leader is gone; make sure no worker outlives it
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return


def port_closes(port: int, deadline_s: float = 20) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return True
        time.sleep(0.5)
    return False


def http(url: str, data: bytes | None = None, timeout: float = 30) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"} if data is not None else {}
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (loopback)
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def http_json(url: str, payload: dict | None = None) -> Any:
    status, body = http(url, None if payload is None else json.dumps(payload).encode())
    assert status == 200, f"{url}: HTTP {status}: {body[:500]!r}"
    return json.loads(body)


def wait_for_http(url: str, process: subprocess.Popen, log: Path, deadline_s: float) -> None:
    """Poll until the server answers 200, it dies, or the deadline passes (then fail with its log)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if http(url, timeout=5)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"{url} did not answer within {deadline_s} s:\n{log.read_text()[-4000:]}")


# ---------------------------------------------------------------------------------------------
# What the project declares: pipelines from the registry, datasets from the catalog config.


def is_parameter(name: str) -> bool:
    return name == "parameters" or name.startswith("params:")


def dataset_names(pipe: Pipeline) -> set[str]:
    return {name for name in pipe.datasets() if not is_parameter(name)}


@pytest.fixture(scope="module")
def registry() -> dict[str, Pipeline]:
    from kedro.framework.project import configure_project, pipelines

    configure_project("zeroshot_audio")
    return {name: pipelines[name] for name in pipelines}


@pytest.fixture(scope="module")
def stages(registry) -> dict[str, Pipeline]:
    return {name: pipe for name, pipe in registry.items() if name != "__default__"}


@pytest.fixture(scope="module")
def project(full_run_project) -> Path:
    """The project after one whole (small) ``kedro run``: every stage's outputs exist."""
    return full_run_project


@pytest.fixture(scope="module")
def catalog_config(project) -> dict[str, dict]:
    loader = OmegaConfigLoader(
        conf_source=str(project / "conf"), base_env="base", default_run_env="local"
    )
    return dict(loader["catalog"])


@pytest.fixture(scope="module")
def written(registry) -> set[str]:
    """Datasets that exist after the run: their previews must show data."""
    return dataset_names(registry["__default__"]) - set(NO_PREVIEW_BY_DESIGN)


def preview_problems(
    name: str, config: dict | None, detail: dict, stats: dict | None, written: set[str]
) -> list[str]:
    """What keeps a dataset's preview from reaching a kedro-viz user, in words (empty: none)."""
    if config is None:
        return [f"{name}: not in the catalog (an implicit MemoryDataset without layer or preview)"]
    dataset_class, _ = parse_dataset_definition(copy.deepcopy(config))
    preview = getattr(dataset_class, "preview", None)
    if preview is None:
        if dataset_class.__name__ in UNPERSISTED:
            return []
        return [f"{name}: {dataset_class.__qualname__} has no preview()"]
    problems = []
    preview_type = detail.get("preview_type")
    if preview_type not in RENDERABLE_PREVIEWS:
        problems.append(
            f"{name}: preview() is annotated {preview_type!r}, which the viz front end does not"
            f" draw (annotate it with one of {sorted(RENDERABLE_PREVIEWS)})"
        )
    preview_args = ((config.get("metadata") or {}).get("kedro-viz") or {}).get("preview_args")
    if len(inspect.signature(preview).parameters) > 1 and preview_args is None:
        problems.append(f"{name}: metadata.kedro-viz.preview_args is missing")
    if name not in written:
        return problems
    shown = detail.get("preview")
    if not shown:
        problems.append(f"{name}: written by `kedro run` but its preview is empty")
    elif preview_type == "TablePreview" and preview_args and "nrows" in preview_args:
        rows, nrows = len(shown["data"]), preview_args["nrows"]
        expected = min(nrows, stats["rows"]) if stats and "rows" in stats else None
        if not shown["columns"] or not 0 < rows <= nrows or expected not in (None, rows):
            problems.append(f"{name}: table preview has {rows} rows, expected {expected or nrows}")
    return problems


# ---------------------------------------------------------------------------------------------
# 1. The static build (`kedro viz build --include-previews`), as deployed for sharing.


def test_viz_build_has_every_node_dataset_layer_and_preview(
    project, registry, stages, catalog_config, written
):
    result = kedro(project, "viz", "build", "--include-previews")
    # `kedro viz build` exits 0 even when it fails half-way (e.g. a preview it cannot serialise).
    logged = result.stdout + result.stderr  # log lines go to stderr (conf/logging.yml)
    failure = [line for line in logged.splitlines() if "ERROR" in line]
    assert "Success!" in result.stdout, "\n".join(failure) or result.stdout[-3000:]
    api = project / "build" / "api"
    main = json.loads((api / "main").read_text())
    tasks = {n["full_name"]: n for n in main["nodes"] if n["type"] == "task"}
    data = {n["name"]: n for n in main["nodes"] if n["type"] == "data"}

    assert {p["id"] for p in main["pipelines"]} == set(registry)
    assert set(tasks) == {n.name for n in registry["__default__"].nodes}
    assert set(main["modular_pipelines"]) - {"__root__"} == set(stages)
    for stage, pipe in stages.items():
        for node in pipe.nodes:
            assert node.namespace == stage, f"{node.name} is not in the {stage!r} namespace"
            assert tasks[node.name]["modular_pipelines"] == [stage]
            short_name = node.name.removeprefix(f"{stage}.")
            assert re.fullmatch(r"[a-z][a-z0-9_]*", short_name), f"unreadable node name {node.name}"

    assert set(data) == dataset_names(registry["__default__"])
    problems = [
        f"{name}: layer {n.get('layer')!r} is not one of {LAYERS}"
        for name, n in sorted(data.items())
        if n.get("layer") not in LAYERS
    ]
    # kedro-viz sorts the layers along the data flow and silently drops them all (an empty list, a
    # warning in its log) when a dataset's layer comes before a layer it is derived from.
    used = {n.get("layer") for n in data.values()}
    if main["layers"] != [layer for layer in LAYERS if layer in used]:
        problems.append(
            f"kedro-viz layers {main['layers']}: some dataset's layer contradicts the data flow"
        )
    for name, node in sorted(data.items()):
        detail = json.loads((api / "nodes" / node["id"]).read_text())
        stats = (node.get("node_extras") or {}).get("stats")
        problems += preview_problems(name, catalog_config.get(name), detail, stats, written)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------------
# 2. The live app (`kedro viz run`), over HTTP and in headless Chromium.


@pytest.fixture(scope="module")
def viz_url(project, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("viz_server") / "kedro-viz.log"
    args = [sys.executable, "-m", "kedro", "viz", "run", "--no-browser", "--host", "127.0.0.1"]
    server = start_process_group([*args, "--port", str(port)], project, log)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/api/main", server, log, SERVER_START_S)
        yield url
    finally:
        stop_process_group(server)
    assert port_closes(port), "kedro viz still listens after its process group was stopped"


def test_live_viz_serves_the_graph_and_every_written_preview(viz_url, registry, written):
    main = http_json(f"{viz_url}/api/main")
    assert {n["full_name"] for n in main["nodes"] if n["type"] == "task"} == {
        n.name for n in registry["__default__"].nodes
    }
    data = {n["name"]: n for n in main["nodes"] if n["type"] == "data"}
    failures = []
    for name in sorted(written):
        status, body = http(f"{viz_url}/api/nodes/{data[name]['id']}")
        if status != 200:  # what the side panel shows when a user clicks the dataset
            failures.append(f"{name}: HTTP {status} {body[:200]!r}")
        elif json.loads(body).get("preview_type") and not json.loads(body).get("preview"):
            failures.append(f"{name}: empty preview")
    assert not failures, "\n".join(failures)


def chromium(url: str, profile: Path, *mode: str, timeout_s: float = 180) -> str:
    """Headless Chromium on a fresh profile, its helpers in one process group; returns its output."""
    args = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-quic", f"--user-data-dir={profile}", "--window-size=1400,900",
        "--virtual-time-budget=20000", *mode, url,
    ]  # fmt: skip
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish within {timeout_s} s on {url}")
    finally:
        stop_process_group(process, grace_s=5)
    return output


def image_content(path: Path) -> tuple[int, float]:
    """Distinct colours and pixel standard deviation: both near zero for a blank page."""
    pixels = np.asarray(Image.open(path).convert("RGB"))
    return len(np.unique(pixels.reshape(-1, 3), axis=0)), float(pixels.std())


def looks_blank(path: Path) -> bool:
    colours, spread = image_content(path)
    return colours < 64 or spread < 8


def rendered_nodes(dom: str) -> list[tuple[str, str]]:
    """(type, full name) of every node drawn in the flowchart's SVG."""
    nodes = []
    for tag in re.findall(r"<g [^>]*data-node-type=[^>]*>", dom):
        attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', tag))
        nodes.append((attributes["data-node-type"], attributes.get("data-node-fullname", "")))
    return nodes


@pytest.mark.browser
@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is not installed (`make test` installs it where apt allows: .ci/install-chromium)",
)
def test_live_viz_renders_the_stages_in_headless_chromium(viz_url, stages, tmp_path):
    blank = tmp_path / "blank.png"
    chromium("data:text/html,<html><body></body></html>", tmp_path / "p0", f"--screenshot={blank}")
    assert looks_blank(blank), "the blankness check does not recognise a blank page"

    dom = chromium(viz_url, tmp_path / "p1", "--dump-dom")
    nodes = rendered_nodes(dom)
    # The graph opens collapsed into the stages: one box per stage, no task node, and the
    # datasets that flow between stages.
    assert sorted(name for kind, name in nodes if kind == "modularPipeline") == sorted(stages)
    assert not [name for kind, name in nodes if kind == "task"]
    between_stages = set().union(*(p.inputs() | p.outputs() for p in stages.values()))
    expected = {name for name in between_stages if not is_parameter(name)}
    assert expected <= {name for kind, name in nodes if kind == "data"}
    layer_names = re.findall(r'class="pipeline-layer-name[^"]*"[^>]*>([^<]+)<', dom)
    assert layer_names, "no layer bands drawn: kedro-viz turned layers off (its log says why)"
    assert layer_names == [layer for layer in LAYERS if layer in layer_names]

    screenshot = tmp_path / "kedro-viz.png"
    chromium(viz_url, tmp_path / "p2", f"--screenshot={screenshot}")
    assert screenshot.exists()
    assert not looks_blank(screenshot), f"blank screenshot: {image_content(screenshot)}"
