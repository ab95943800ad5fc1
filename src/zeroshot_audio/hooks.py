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
"""

from __future__ import annotations

import logging
import math
import re
from numbers import Number
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
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
