"""Project hooks: what nodes produce reaches the MLflow run that kedro-mlflow opened.

Nodes stay pure: they return data, and these hooks (not the nodes) talk to MLflow.

- Any output whose dataset name ends in ``_report`` may carry ``mlflow_tags`` (str -> str: degraded
  modes such as ``vggish_weights=random``) and ``mlflow_metrics`` (str -> number: counts of skipped or
  dropped items).
- Any dataset whose catalog ``metadata`` has ``mlflow_artifact: <folder>`` is logged as an artifact
  of the run once saved, from the exact versioned file Kedro wrote. (kedro-mlflow's
  ``MlflowArtifactDataset`` cannot wrap a *versioned* dataset under Kedro 1.x: it stamps its own save
  version and the catalog rejects it, so reports, tables and figures are logged here instead.)
  An output that wrote nothing (no figures when figures are disabled) is skipped.

Guards around a run:

- :class:`MissingInputsHook`: an input that an earlier stage makes (``trained_models`` for
  ``evaluate`` and ``predict``) is missing -> one line naming the stage to run, before anything
  starts (no MLflow run is opened for it).
- :class:`MlflowStaleRunHook`: every run is tagged with its pid, host and process start time; a
  RUNNING run of this experiment whose process is gone (a killed run) is marked KILLED, loudly.
- :class:`MlflowArtifactRootHook`: ``mlflow.db`` stores absolute artifact paths; in a copied or
  moved project they are pointed back into the project instead of the original folder.

And one for the person at the terminal: a run that produced ``evaluation_table`` (``kedro run``,
``kedro run --pipeline=evaluate``) ends by printing it, rendered, with where its files are.
"""

from __future__ import annotations

import importlib
import importlib.resources
import logging
import math
import os
import re
import socket
import sqlite3
import sys
from collections.abc import Callable
from contextlib import closing
from numbers import Number
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import click
import mlflow
from kedro.framework.hooks import hook_impl
from kedro.pipeline import Pipeline
from kedro.pipeline.node import Node

from zeroshot_audio.datasets.paths import dataset_path

log = logging.getLogger(__name__)


def mlflow_metric_name(name: str) -> str:
    """MLflow accepts only alphanumerics, ``_ - . : /`` and spaces in metric names."""
    return re.sub(r"[^A-Za-z0-9_\-.:/ ]", "_", name)


class MlflowReportHook:
    @hook_impl
    def after_node_run(self, node: Node, outputs: dict[str, Any]) -> None:
        if mlflow.active_run() is None:
            return
        for name, value in outputs.items():
            if not (name.endswith("_report") and isinstance(value, dict)):
                continue
            tags = value.get("mlflow_tags") or {}
            if tags:
                mlflow.set_tags({str(k): str(v) for k, v in tags.items()})
                log.info("MLflow run tagged from %s: %s", name, tags)
            metrics = {
                mlflow_metric_name(str(k)): float(v)
                for k, v in (value.get("mlflow_metrics") or {}).items()
                if isinstance(v, Number) and math.isfinite(float(v))
            }
            if metrics:
                mlflow.log_metrics(metrics)


class MlflowArtifactHook:
    def __init__(self) -> None:
        self._catalog = None

    @hook_impl
    def after_catalog_created(self, catalog) -> None:
        self._catalog = catalog

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Node) -> None:
        if self._catalog is None or mlflow.active_run() is None:
            return
        dataset = self._catalog.get(dataset_name)
        folder = (getattr(dataset, "metadata", None) or {}).get("mlflow_artifact")
        if folder is None:
            return
        path = dataset_path(dataset)
        if path is None:
            log.warning("cannot log %s to MLflow: no local file path", dataset_name)
            return
        if not path.exists():  # e.g. figures disabled: an empty dict of figures writes nothing
            log.info("nothing to log to MLflow for %s: %s was not written", dataset_name, path)
            return
        if path.is_dir():  # e.g. one figure per predicted file
            mlflow.log_artifacts(str(path), artifact_path=str(folder) or None)
        else:
            mlflow.log_artifact(str(path), artifact_path=str(folder) or None)


# --------------------------------------------------------------------------------------------
# Before a run: the inputs earlier stages should have made
# --------------------------------------------------------------------------------------------

#: How a hint names a dataset (default: its catalog name).
_FRIENDLY = {"trained_models": "trained model"}


class MissingInputError(click.ClickException):
    """A pipeline's input that an earlier stage makes is not there: one line saying which stage
    to run, instead of a ``DatasetError ... Did not find any versions`` traceback. A
    ``ClickException`` so that ``kedro run`` prints just ``Error: <hint>``."""


def missing_input_hints(
    pipeline: Pipeline,
    catalog: Any,
    producers: Callable[[], dict[str, list[str]]],
    pinned: set[str],
) -> list[str]:
    """One hint per free input of ``pipeline`` that a stage produces, that is stored in a file
    (not passed in memory) and of which no version exists yet."""
    hints = []
    made_by: dict[str, list[str]] | None = None
    for name in sorted(pipeline.inputs()):
        dataset = None if name in pinned else catalog.get(name)
        path = getattr(dataset, "_filepath", None)
        if dataset is None or path is None or dataset.exists():
            continue
        made_by = producers() if made_by is None else made_by  # only when something is missing
        if name not in made_by:  # a raw input: its own load error names the file
            continue
        stage = made_by[name][0]
        hints.append(
            f"no {_FRIENDLY.get(name, name)} found in {path}: run `kedro run --pipeline={stage}` "
            "first"
        )
    return hints


def _producers() -> dict[str, list[str]]:
    """``{dataset: [stage, ...]}`` over every stage folder under ``pipelines/``. Not from
    ``kedro.framework.project.pipelines``: ``kedro run --pipeline=X`` loads only X there."""
    from kedro.framework.project import PACKAGE_NAME

    package = f"{PACKAGE_NAME}.pipelines"
    out: dict[str, list[str]] = {}
    for entry in sorted(importlib.resources.files(package).iterdir(), key=lambda e: e.name):
        if not entry.is_dir() or entry.name.startswith("_"):
            continue
        create = getattr(
            importlib.import_module(f"{package}.{entry.name}"), "create_pipeline", None
        )
        for output in create().all_outputs() if create else ():
            out.setdefault(output, []).append(entry.name)
    return out


class MissingInputsHook:
    @hook_impl(tryfirst=True)  # before kedro-mlflow opens a run that would only fail
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: Any
    ) -> None:
        pinned = set((run_params.get("load_versions") or {}).keys())
        hints = missing_input_hints(pipeline, catalog, _producers, pinned)
        if len(hints) > 1:
            hints.append("or `kedro run` to run every stage in order")
        if hints:
            raise MissingInputError("\n".join(hints))


# --------------------------------------------------------------------------------------------
# MLflow bookkeeping: runs left RUNNING by killed processes, artifact paths of moved projects
# --------------------------------------------------------------------------------------------

PID_TAG, HOST_TAG, START_TAG = (
    "zeroshot_audio.pid",
    "zeroshot_audio.host",
    "zeroshot_audio.proc_start",
)


def process_start(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (Linux ``/proc``), or None: with the
    pid it tells a live process from a later one that reuses the number."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22, counted after the "(comm)" field


def process_alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        pass
    now = process_start(pid)
    return not (started and now and now != started)


def process_tags() -> dict[str, str]:
    return {
        PID_TAG: str(os.getpid()),
        HOST_TAG: socket.gethostname(),
        START_TAG: process_start(os.getpid()) or "",
    }


def mark_stale_runs(client: mlflow.MlflowClient, experiment_id: str, current: str) -> list[str]:
    """Mark KILLED the RUNNING runs of the experiment whose process (pid + host tags, recorded by
    :class:`MlflowRunGuardHook`) is gone; returns their ids. Runs of other hosts, or without
    the tags, are left alone: nothing here can tell whether they still run."""
    host = socket.gethostname()
    stale = []
    runs = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'")
    for run in runs:
        tags = run.data.tags
        if run.info.run_id == current or tags.get(HOST_TAG) != host:
            continue
        pid = tags.get(PID_TAG, "")
        if not pid.isdigit() or process_alive(int(pid), tags.get(START_TAG) or None):
            continue
        client.set_terminated(run.info.run_id, status="KILLED")
        log.warning(
            "MLflow run '%s' (%s) was left RUNNING by process %s on %s, which is gone (killed?): "
            "marked KILLED; its outputs may be incomplete",
            run.info.run_name, run.info.run_id, pid, host,
        )  # fmt: skip
        stale.append(run.info.run_id)
    return stale


def _local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    return None


_ARTIFACT_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
)


def relocate_artifact_root(project_path: Path, tracking_uri: str) -> int:
    """Point the artifact paths of a copied or moved project's ``mlflow.db`` back into it.

    MLflow stores absolute artifact paths (``<project>/mlruns/<experiment id>``) in the database.
    A copied project keeps the old paths and would write its artifacts into the original folder.
    When the database lies inside ``project_path`` and an experiment's artifact location is the
    default layout of another project (``<other>/mlruns/<id>``, where ``<other>`` is gone or holds
    its own copy of the database), its paths (experiment, runs, logged models) are rewritten to
    ``<project_path>/mlruns/...``. Any other location outside the project is left as configured,
    with a warning. Returns the experiments moved.
    """
    if not tracking_uri.startswith("sqlite:///"):
        return 0
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    project = project_path.resolve()
    if not db.is_file() or project not in db.resolve().parents:
        return 0
    moved, origins = 0, set()
    with closing(sqlite3.connect(db)) as con, con:
        tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master")}
        experiments = con.execute("SELECT experiment_id, artifact_location FROM experiments")
        for experiment_id, location in experiments.fetchall():
            path = _local_path(location or "")
            if path is None or path.is_relative_to(project):
                continue
            origin = path.parent.parent  # the project that wrote it, if it is the default layout
            copied_from = (origin / db.resolve().relative_to(project)).is_file()
            if (
                path.name != str(experiment_id)
                or path.parent.name != "mlruns"
                or (origin.exists() and not copied_from)  # moved: gone; copied: has its own db
            ):
                log.warning(
                    "MLflow experiment %s stores its artifacts outside this project, in %s",
                    experiment_id, location,
                )  # fmt: skip
                continue
            old, new = str(path.parent), str(project / "mlruns")
            if old not in location:  # e.g. a percent-encoded file URI: say it, change nothing
                log.warning("MLflow artifacts of experiment %s go to %s", experiment_id, location)
                continue
            prefix = location[: location.index(old) + len(old)] + "/"
            target = prefix[: -len(old) - 1] + new + "/"
            for table, column in _ARTIFACT_COLUMNS:
                if table not in tables:
                    continue
                con.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) "  # noqa: S608
                    f"WHERE experiment_id = ? AND substr({column}, 1, ?) = ?",
                    (target, len(prefix) + 1, experiment_id, len(prefix), prefix),
                )
            origins.add(str(origin))
            moved += 1
    if moved:
        log.warning(
            "mlflow.db was written by a project in %s (copied or moved here): the artifact paths "
            "of its %d experiment(s) now point into %s",
            ", ".join(sorted(origins)), moved, project / "mlruns",
        )  # fmt: skip
    return moved


class MlflowArtifactRootHook:
    @hook_impl(tryfirst=True)  # before kedro-mlflow starts the run (its artifact path is set then)
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        relocate_artifact_root(Path(run_params["project_path"]), mlflow.get_tracking_uri())


class MlflowStaleRunHook:
    @hook_impl(trylast=True)  # kedro-mlflow's before_pipeline_run has started this run
    def before_pipeline_run(self) -> None:
        active = mlflow.active_run()
        if active is None:
            return
        mlflow.set_tags(process_tags())
        mark_stale_runs(mlflow.MlflowClient(), active.info.experiment_id, active.info.run_id)


# What the end-of-run summary points to, in this order, when the run wrote it.
RESULT_DATASETS = (
    "evaluation_table",
    "evaluation_report",
    "localisation_report",
    "evaluation_f1_chart",
    "attention_heatmaps",
)


class ResultsTableHook:
    """Print the evaluation table (Markdown, rendered by rich) and its files at the end of a run.

    Only for runs whose pipeline produced ``evaluation_table``; it reads the exact version this
    run saved, so what is printed is what was written.
    """

    def __init__(self, console: Any = None) -> None:
        self._console = console

    @hook_impl(trylast=True)  # after every other hook (model registry...): the results end the log
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        written = pipeline.all_outputs()
        if "evaluation_table" not in written:
            return
        table = dataset_path(catalog.get("evaluation_table"))
        if table is None or not table.is_file():
            log.warning("evaluation_table was not written to a file; nothing to show")
            return
        from rich.console import Console
        from rich.markdown import Markdown

        # Not a terminal (a log file, CI): wide enough that the tables' rows do not wrap.
        console = self._console or Console(width=None if sys.stdout.isatty() else 160)
        console.print()
        console.print(Markdown(table.read_text(encoding="utf-8")))
        console.print()
        console.print("[bold]Results written to[/]:")
        root = Path(run_params.get("project_path") or Path.cwd())
        for name in RESULT_DATASETS:
            path = dataset_path(catalog.get(name)) if name in written else None
            if path is not None and path.exists():
                console.print(f"  {name}: {_relative(path, root)}", highlight=False, soft_wrap=True)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
