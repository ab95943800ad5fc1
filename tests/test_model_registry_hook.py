"""After train/evaluate the chosen tagger is registered, even once kedro-mlflow closed its run."""

from __future__ import annotations

import mlflow
import pytest
from kedro.pipeline import Pipeline, node

from tests.inference.checkpoints import make_checkpoint, temp_store
from zeroshot_audio.contracts.checkpoint import Checkpoint
from zeroshot_audio.model_registry_hook import ModelRegistryHook


def _with(checkpoint: Checkpoint, **changes) -> Checkpoint:
    return Checkpoint.from_dict({**checkpoint.to_dict(), **changes})


@pytest.fixture(scope="module")
def trained_models():
    base = make_checkpoint()
    rot1 = {"name": "rot1", "train": [1], "validation": 2, "test": 0}
    return {
        "rot0/temporal_attention": _with(base, validation_micro_f1=0.2),
        "rot1/temporal_attention": _with(base, rotation=rot1, validation_micro_f1=0.4),
        "rot1/uniform": _with(base, method="uniform", validation_micro_f1=0.9),
    }


PREDICT_PARAMS = {
    "threshold": {"rule": "top_k", "fixed": 0.0, "top_k": 2},
    "localisation": {"rule": "max_ratio", "value": 0.5, "min_gap_s": 0.0, "min_duration_s": 0.0},
    "hop_s": None,
    "file_score": "max",
}


class _Catalog:
    """What the hook reads from Kedro's catalog: ``load`` by name."""

    def __init__(self, data: dict) -> None:
        self.data = data

    def load(self, name: str):
        return self.data[name]


def _pipeline(*outputs: str) -> Pipeline:
    return Pipeline([node(lambda: None, None, list(outputs) or None, name="n")])


def test_registers_after_the_run_was_closed_with_the_evaluation_metrics(trained_models, tmp_path):
    temp_store(tmp_path, "registry-hook")
    report = {
        "mlflow_metrics": {
            "evaluate/rot1/temporal_attention/micro_f1": 0.33,
            "evaluate/temporal_attention/micro_f1_mean": 0.3,
            "evaluate/rot0/temporal_attention/micro_f1": 0.1,  # another rotation: not attached
            "evaluate/uniform/micro_f1_mean": 0.2,  # another method: not attached
        }
    }
    localisation = {
        "mlflow_metrics": {
            "evaluate/localisation/rot1/temporal_attention/true_tags/f1": 0.5,
            "evaluate/localisation/rot1/uniform/true_tags/f1": 0.9,  # another method
        }
    }
    hook = ModelRegistryHook()
    try:
        hook.before_pipeline_run()
        with mlflow.start_run() as run:  # what kedro-mlflow opens, and closes before our hook
            hook.after_node_run({"trained_models": trained_models})
            hook.after_node_run({"localisation_report": localisation})
            hook.after_node_run({"evaluation_report": report})
        catalog = _Catalog({"params:predict": PREDICT_PARAMS})
        hook.after_pipeline_run(_pipeline("trained_models", "evaluation_report"), catalog)
        version = mlflow.MlflowClient().get_model_version("zeroshot_audio_tagger", "1")
        served = mlflow.pyfunc.load_model("models:/zeroshot_audio_tagger/1").model_config
        assert served["threshold_rule"] == "top_k" and served["top_k"] == 2
        assert served["localisation"] == PREDICT_PARAMS["localisation"]
        assert version.run_id == run.info.run_id
        assert version.tags["checkpoint.name"] == "rot1/temporal_attention"
        assert version.tags["evaluate/rot1/temporal_attention/micro_f1"] == "0.33"
        assert version.tags["evaluate/temporal_attention/micro_f1_mean"] == "0.3"
        assert version.tags["evaluate/localisation/rot1/temporal_attention/true_tags/f1"] == "0.5"
        assert version.tags["train/rot1/temporal_attention/validation_micro_f1"] == "0.4"
        attached = {k for k in version.tags if k.startswith(("evaluate/", "train/"))}
        assert attached == {
            "evaluate/rot1/temporal_attention/micro_f1",
            "evaluate/temporal_attention/micro_f1_mean",
            "evaluate/localisation/rot1/temporal_attention/true_tags/f1",
            "train/rot1/temporal_attention/validation_micro_f1",
        }
        tags = mlflow.get_run(run.info.run_id).data.tags
        assert tags["model_registry"].startswith("zeroshot_audio_tagger v1")
        assert mlflow.active_run() is None  # the reopened run is closed again

        # a predict run registers nothing
        hook.before_pipeline_run()
        with mlflow.start_run():
            hook.after_node_run({"predictions": None})
        hook.after_pipeline_run(_pipeline("predictions"), catalog=None)
        assert len(mlflow.MlflowClient().search_model_versions("name='zeroshot_audio_tagger'")) == 1
    finally:
        mlflow.set_tracking_uri(None)


def test_a_registration_failure_is_tagged_not_raised(tmp_path):
    temp_store(tmp_path, "registry-hook-failure")
    hook = ModelRegistryHook()
    try:
        hook.before_pipeline_run()
        with mlflow.start_run() as run:
            uniform = _with(make_checkpoint(), method="uniform").to_dict()
            hook.after_node_run({"trained_models": {"rot0/uniform": uniform}})
        hook.after_pipeline_run(_pipeline("trained_models"), catalog=None)
        tags = mlflow.get_run(run.info.run_id).data.tags
        assert tags["model_registry"].startswith("failed: ValueError: no temporal_attention")
    finally:
        mlflow.set_tracking_uri(None)
