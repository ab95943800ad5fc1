"""Project hooks: turn what nodes report into MLflow tags and metrics.

Nodes stay pure: they return a report dict, and this hook (not the node) talks to MLflow. Any output
whose dataset name ends in ``_report`` may carry ``mlflow_tags`` (str -> str: degraded modes such as
``vggish_weights=random``) and ``mlflow_metrics`` (str -> number: counts of skipped or dropped items).
"""

from __future__ import annotations

import logging
import math
from numbers import Number
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.pipeline.node import Node

log = logging.getLogger(__name__)


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
                str(k): float(v)
                for k, v in (value.get("mlflow_metrics") or {}).items()
                if isinstance(v, Number) and math.isfinite(float(v))
            }
            if metrics:
                mlflow.log_metrics(metrics)
