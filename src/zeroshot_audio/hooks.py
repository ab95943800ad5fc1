"""Project hooks: what nodes produce reaches the MLflow run that kedro-mlflow opened.

Nodes stay pure: they return data, and these hooks (not the nodes) talk to MLflow.

- Any output whose dataset name ends in ``_report`` may carry ``mlflow_tags`` (str -> str: degraded
  modes such as ``vggish_weights=random``) and ``mlflow_metrics`` (str -> number: counts of skipped or
  dropped items).
- Any dataset whose catalog ``metadata`` has ``mlflow_artifact: <folder>`` is logged as an artifact
  of the run once saved, from the exact versioned file Kedro wrote. (kedro-mlflow's
  ``MlflowArtifactDataset`` cannot wrap a *versioned* dataset under Kedro 1.x: it stamps its own save
  version and the catalog rejects it, so reports, tables and figures are logged here instead.)

And one for the person at the terminal: a run that produced ``evaluation_table`` (``kedro run``,
``kedro run --pipeline=evaluate``) ends by printing it, rendered, with where its files are.
"""

from __future__ import annotations

import logging
import math
import re
from numbers import Number
from pathlib import Path
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.io import AbstractVersionedDataset
from kedro.pipeline.node import Node

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


def saved_path(dataset: Any) -> Path | None:
    """The file a dataset's save of this run went to (its run version, if versioned)."""
    if isinstance(dataset, AbstractVersionedDataset) and dataset._version is not None:
        return Path(dataset._get_versioned_path(dataset.resolve_save_version()))
    path = getattr(dataset, "_filepath", None)
    return None if path is None else Path(path)


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
        path = saved_path(dataset)
        if path is None:
            log.warning("cannot log %s to MLflow: no local file path", dataset_name)
            return
        if Path(path).is_dir():  # e.g. one figure per predicted file
            mlflow.log_artifacts(str(path), artifact_path=str(folder) or None)
        else:
            mlflow.log_artifact(str(path), artifact_path=str(folder) or None)


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

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        written = pipeline.all_outputs()
        if "evaluation_table" not in written:
            return
        table = saved_path(catalog.get("evaluation_table"))
        if table is None or not table.is_file():
            log.warning("evaluation_table was not written to a file; nothing to show")
            return
        from rich.console import Console
        from rich.markdown import Markdown

        console = self._console or Console()
        console.print()
        console.print(Markdown(table.read_text(encoding="utf-8")))
        console.print()
        console.print("[bold]Results written to[/]:")
        root = Path(run_params.get("project_path") or Path.cwd())
        for name in RESULT_DATASETS:
            path = saved_path(catalog.get(name)) if name in written else None
            if path is not None and path.exists():
                console.print(f"  {name}: {_relative(path, root)}", highlight=False, soft_wrap=True)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
