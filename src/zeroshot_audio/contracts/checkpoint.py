"""``Checkpoint``: one trained model and everything a later stage needs to use it honestly.

``train`` makes one per (rotation, method); ``evaluate``, ``predict`` and ``export`` read them. It
carries the weights and the model config, the decision rule tuned on validation, the class lists
of the protocol, and the provenance of both inputs: the :class:`EmbedderSpec` of the segment table
it was trained on and the :class:`LabelEncoderSpec` of its label vectors. Predict builds its audio
embedder and text encoder from these alone.

Stored as plain data (``to_dict``): tensors, numbers, strings, lists and dicts, so the file loads
with ``torch.load(weights_only=True)`` and nothing in it can run code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from zeroshot_audio.config import build_strict
from zeroshot_audio.contracts.label_table import LabelEncoderSpec
from zeroshot_audio.contracts.segment_table import EmbedderSpec

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    """A trained model (see module docstring). ``model_config`` is the strict dict form of
    ``model.attention.ModelConfig`` (gamma lives there, once); ``rotation`` is
    ``{name, train, validation, test}``."""

    model_config: dict[str, Any]
    state_dict: dict[str, Any]
    method: str
    rotation: dict[str, Any]
    threshold: float
    train_classes: list[str]
    validation_classes: list[str]
    test_classes: list[str]
    embedder: EmbedderSpec
    label_encoder: LabelEncoderSpec
    threshold_rule: str = "tuned"
    validation_micro_f1: float = float("nan")
    monitor: str = ""
    best_value: float = float("nan")
    best_epoch: int = 0
    epochs_run: int = 0
    n_train_clips: int = 0
    n_validation_clips: int = 0
    segment_dtype: str = "float32"
    gamma_grid: list[float] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    # cross-fitted supervised model: the part of the test fold it scores (None: not cross-fitted)
    crossfit_part: int | None = None
    format_version: int = FORMAT_VERSION

    @property
    def gamma(self) -> float:
        return float(self.model_config["gamma"])

    @property
    def name(self) -> str:
        """``<rotation>/<method>`` (``/k<part>`` for a cross-fitted model), its key in
        ``trained_models``."""
        name = f"{self.rotation['name']}/{self.method}"
        return name if self.crossfit_part is None else f"{name}/k{self.crossfit_part}"

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["embedder"] = self.embedder.to_dict()
        out["label_encoder"] = self.label_encoder.to_dict()
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Checkpoint:
        """Strict inverse of ``to_dict``: an unknown or missing key is an error naming it."""
        values = dict(values)
        version = values.get("format_version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise ValueError(
                f"checkpoint format_version {version} is not {FORMAT_VERSION}; retrain with this "
                "version of zeroshot-audio (kedro run --pipeline=train)"
            )
        for key, spec in (("embedder", EmbedderSpec), ("label_encoder", LabelEncoderSpec)):
            if isinstance(values.get(key), Mapping):
                values[key] = spec.from_dict(values[key])
        try:
            return build_strict(cls, values, "checkpoint")
        except TypeError as error:  # a required field is missing
            raise ValueError(f"checkpoint is incomplete: {error}") from error


def checkpoints_from_dict(data: Mapping[str, Mapping[str, Any]]) -> dict[str, Checkpoint]:
    """``trained_models`` as stored (name -> plain dict) -> name -> Checkpoint."""
    return {name: Checkpoint.from_dict(entry) for name, entry in data.items()}
