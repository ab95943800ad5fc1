"""Kedro hook: after a run that trained or evaluated, the chosen tagger goes to the model registry.

Which checkpoint: ``inference.export.select_checkpoint(trained_models, "auto")``, the
temporal-attention model of the rotation with the best validation micro-F1 (ties: the first name
in sorted order), the same rule as ``predict``'s ``model: auto``. It is chosen on validation, never
on the test fold, so the registered model's test metrics stay honest.

What is attached (keys as in docs/users.md, "MLflow metric names"): the run's evaluation metrics
of that rotation and method (``evaluate/<rotation>/temporal_attention/*``), the method's means and
spreads over rotations (``evaluate/temporal_attention/*_mean``, ``*_std``) and the same two for
localisation (``evaluate/localisation/<rotation>/temporal_attention/*``,
``evaluate/localisation/temporal_attention/*``), as model-version tags; always the checkpoint's
validation micro-F1 (``train/<rotation>/temporal_attention/validation_micro_f1``). They are already run metrics (``MlflowReportHook`` logs every report), so
they are not logged twice. The served model's decision rules (threshold rule, localisation, hop)
are the run's ``predict`` parameters, so it decides as ``zeroshot-audio predict`` does.

kedro-mlflow ends its run in its own ``after_pipeline_run``, which may come before this one; the
run id is remembered while nodes run and the run reopened to log the model. A failure to register
never fails a finished run: it is logged and tagged on the run (``model_registry``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl

from zeroshot_audio.contracts.checkpoint import Checkpoint
from zeroshot_audio.inference.config import weights_location
from zeroshot_audio.inference.export import select_checkpoint

log = logging.getLogger(__name__)

TRAINED = "trained_models"
EVALUATED = "evaluation_report"
LOCALISED = "localisation_report"
REPORTS = (EVALUATED, LOCALISED)
METHOD = "temporal_attention"


def registry_metrics(checkpoint: Checkpoint, *reports: Mapping[str, Any] | None) -> dict:
    """The metrics attached to the registered version, from the ``mlflow_metrics`` of
    ``evaluation_report`` and ``localisation_report`` (see module doc)."""
    rotation = checkpoint.rotation["name"]
    metrics = {f"train/{rotation}/{METHOD}/validation_micro_f1": checkpoint.validation_micro_f1}
    prefixes = tuple(
        f"evaluate/{scope}{part}/"
        for scope in ("", "localisation/")
        for part in (f"{rotation}/{METHOD}", METHOD)
    )
    for report in reports:
        for key, value in ((report or {}).get("mlflow_metrics") or {}).items():
            if key.startswith(prefixes):
                metrics[key] = value
    return metrics


class ModelRegistryHook:
    """Logs and registers the selected tagger after ``train`` and/or ``evaluate`` (module doc)."""

    def __init__(self, registered_model_name: str | None = None) -> None:
        self.registered_model_name = registered_model_name
        self._run_id: str | None = None
        self._outputs: dict[str, Any] = {}

    @hook_impl
    def before_pipeline_run(self) -> None:
        self._run_id, self._outputs = None, {}

    @hook_impl
    def after_node_run(self, outputs: dict[str, Any]) -> None:
        run = mlflow.active_run()
        if run is not None:
            self._run_id = run.info.run_id
        for name in (TRAINED, *REPORTS):
            if name in outputs:
                self._outputs[name] = outputs[name]

    @hook_impl
    def after_pipeline_run(self, pipeline: Any, catalog: Any) -> None:
        produced = {TRAINED, EVALUATED} & set(pipeline.all_outputs())
        if not produced:
            return
        if self._run_id is None and mlflow.active_run() is None:
            log.info("model registry: no MLflow run (tracking disabled); nothing registered")
            return
        active = mlflow.active_run()
        reopen = active is None or active.info.run_id != self._run_id
        run = mlflow.start_run(run_id=self._run_id) if reopen and self._run_id else None
        try:
            self._register(catalog)
        except Exception as error:  # a finished run must not fail on its registration
            log.warning("model registry: the tagger was not registered: %s", error)
            mlflow.set_tag("model_registry", f"failed: {type(error).__name__}: {error}"[:250])
        finally:
            if run is not None:
                mlflow.end_run()

    def _register(self, catalog: Any) -> None:
        from zeroshot_audio.inference.mlflow_model import (
            REGISTERED_MODEL_NAME,
            TaggerSettings,
            log_tagger,
        )

        trained = self._outputs.get(TRAINED)
        if trained is None:
            trained = catalog.load(TRAINED)
        checkpoint = select_checkpoint(trained, "auto")
        version = log_tagger(
            checkpoint,
            self.registered_model_name or REGISTERED_MODEL_NAME,
            metrics=registry_metrics(checkpoint, *(self._outputs.get(n) for n in REPORTS)),
            settings=TaggerSettings.from_predict_params(_params(catalog, "predict")),
            log_run_metrics=False,
            weights_location=weights_location(_params(catalog, "featurize")),
        )
        mlflow.set_tag("model_registry", f"{version.name} v{version.version} ({checkpoint.name})")
        log.info(
            "model registry: %s version %s <- %s", version.name, version.version, checkpoint.name
        )


def _params(catalog: Any, name: str) -> dict[str, Any]:
    """The run's ``predict`` (the served model's decision rules) or ``featurize`` (where the
    VGGish files are) parameters; {} when absent."""
    try:
        return dict(catalog.load(f"params:{name}") or {})
    except Exception:  # a catalog without them (e.g. a test double): the defaults
        return {}
