"""A trained checkpoint with the audio embedder and text encoder it was trained with, and scoring.

Everything that shapes the model's inputs comes from the :class:`Checkpoint` alone: the VGGish
set-up and segment layout from its ``embedder`` spec (not from today's ``featurize`` parameters),
the label encoder from its ``label_encoder`` spec. What cannot be reproduced here (features brought
from outside, official weights that are absent or differ, an encoder that is not installed) is
refused with a :class:`~zeroshot_audio.audio.embed.ProvenanceError` that says what differs and
what to do. Today's parameters only say where this machine keeps the VGGish files.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from zeroshot_audio.audio import vggish
from zeroshot_audio.audio.embed import (
    Embedder,
    ProvenanceError,
    SegmentBatcher,
    check_reproducible,
    embedder_for_spec,
    layout_for_spec,
)
from zeroshot_audio.audio.precision import check_precision, resolve_precision
from zeroshot_audio.contracts.checkpoint import Checkpoint
from zeroshot_audio.contracts.label_table import LabelEncoderSpec
from zeroshot_audio.device import resolve_device
from zeroshot_audio.inference.inputs import AudioWindows, cut_file
from zeroshot_audio.model.attention import ModelConfig, TemporalAttentionModel
from zeroshot_audio.model.metrics import ThresholdConfig

logger = logging.getLogger(__name__)


class ModelNotTrainedError(RuntimeError):
    """No trained checkpoint to predict with; the message says what to run."""


def as_checkpoints(trained_models: Mapping[str, Checkpoint | Mapping[str, Any]]) -> dict:
    """``trained_models`` as ``{name: Checkpoint}``.

    TEMPORARY: until the typed ``TorchModelDataset`` (which loads Checkpoints itself) is merged,
    the catalog hands over plain dicts in ``Checkpoint.to_dict()`` form; this is the one place
    that converts them. An entry of an older format is refused naming it.
    """
    out: dict[str, Checkpoint] = {}
    for name, entry in trained_models.items():
        if isinstance(entry, Checkpoint):
            out[name] = entry
            continue
        try:
            out[name] = Checkpoint.from_dict(entry)
        except ValueError as err:
            raise ValueError(
                f"trained_models[{name!r}] is not a checkpoint of this version ({err}); retrain: "
                "`kedro run --pipelines=train`"
            ) from err
    return out


def select_checkpoint(
    trained_models: Mapping[str, Checkpoint], name: str = "auto"
) -> tuple[str, Checkpoint]:
    """The checkpoint to predict with: ``name``, or for ``auto`` the temporal-attention model of
    the rotation with the best validation micro-F1 (ties: the first name in sorted order)."""
    if not trained_models:
        raise ModelNotTrainedError(
            "no trained model: `trained_models` is empty. Train first: `kedro run` (everything) "
            "or `kedro run --pipelines=ingest,split,featurize,embed_labels,train`."
        )
    if name != "auto":
        if name not in trained_models:
            raise ValueError(
                f"predict.model={name!r} is not a trained checkpoint; available: "
                f"{sorted(trained_models)} (or 'auto')"
            )
        return name, trained_models[name]
    methods = {k: c.method for k, c in trained_models.items()}
    candidates = [k for k, m in methods.items() if m == "temporal_attention"]
    candidates = candidates or [k for k, m in methods.items() if m != "supervised"]
    candidates = candidates or list(trained_models)

    def f1(key: str) -> float:
        value = float(trained_models[key].validation_micro_f1)
        return value if math.isfinite(value) else float("-inf")

    best = max(sorted(candidates), key=f1)
    return best, trained_models[best]


def text_encoder_for_spec(spec: LabelEncoderSpec, device: torch.device) -> Any:
    """The text encoder that made the model's label vectors, or a ProvenanceError."""
    from zeroshot_audio.text import EncoderConfig, TextEncoder
    from zeroshot_audio.text.encoder import ModelNotAvailableError

    if spec.source != "text_encoder" or not spec.model_name_or_path:
        raise ProvenanceError(
            f"the model's label vectors came from {spec.source!r} (not this project's text "
            "encoder), so new label texts cannot be embedded in their space. Predict needs a "
            "model trained on embed_labels' vectors; retrain on those."
        )
    config = EncoderConfig(
        model_name_or_path=spec.model_name_or_path,
        revision=spec.revision,
        pooling=spec.pooling,
        normalize=spec.normalize,
        max_length=spec.max_length,
    )
    try:
        return TextEncoder(config, device=device)
    except ModelNotAvailableError as err:
        raise ProvenanceError(
            f"the label encoder the model was trained with ({spec.model_name_or_path!r}, "
            f"revision {spec.revision!r}) is not available here: {err}"
        ) from err


def load_model(checkpoint: Checkpoint, where: str = "checkpoint") -> TemporalAttentionModel:
    """The checkpoint's model with its weights, in eval mode. Refuses (:class:`ProvenanceError`)
    a checkpoint whose parts contradict each other: weights that do not fit its model config,
    segments of another width than its embedder spec says, label vectors of another width than
    its label-encoder spec says. Every reader of a checkpoint (predict, export, the served
    model) goes through here."""
    config = ModelConfig.from_dict(checkpoint.model_config)
    if checkpoint.embedder.width != config.acoustic_dim:
        raise ProvenanceError(
            f"{where}: the model takes {config.acoustic_dim}-d segments but its embedder spec "
            f"says the segments were {checkpoint.embedder.width}-d "
            f"({checkpoint.embedder.to_dict()}); the checkpoint is inconsistent"
        )
    dimension = checkpoint.label_encoder.dimension
    if dimension and dimension != config.semantic_dim:
        raise ProvenanceError(
            f"{where}: the model takes {config.semantic_dim}-d label vectors but its label "
            f"encoder spec ({checkpoint.label_encoder.model_name_or_path!r}) gives {dimension}-d; "
            "the checkpoint is inconsistent"
        )
    model = TemporalAttentionModel(config)
    try:
        model.load_state_dict(checkpoint.state_dict, strict=True)
    except RuntimeError as error:
        raise ProvenanceError(
            f"{where}: the weights do not fit the model config: {error}"
        ) from error
    return model.eval()


class Predictor:
    """A checkpoint with its VGGish embedder and text encoder, each built once on first use.

    ``embedder`` and ``text_encoder`` may be injected (a notebook that holds them, tests); they
    must then be the ones the checkpoint's specs describe. ``weights_location`` says where the
    VGGish files are on this machine (``featurize.weights``; default: the published URLs and the
    default cache folder).
    """

    def __init__(
        self,
        checkpoint: Checkpoint,
        *,
        name: str | None = None,
        device: str | torch.device = "auto",
        weights_location: vggish.WeightsSpec | None = None,
        min_sound_s: float = 0.1,
        precision: str = "auto",
        embedder: Embedder | None = None,
        text_encoder: Any | None = None,
    ) -> None:
        if not isinstance(checkpoint, Checkpoint):
            raise TypeError(f"Predictor needs a Checkpoint, got {type(checkpoint).__name__}")
        check_reproducible(checkpoint.embedder)
        self.checkpoint = checkpoint
        self.name = name or checkpoint.name
        self.spec = checkpoint.embedder
        self.layout = layout_for_spec(self.spec, min_sound_s)
        self.device = resolve_device(device)
        self.weights_location = weights_location or vggish.WeightsSpec()
        self.precision = check_precision(precision)
        self.model = load_model(checkpoint, where=f"checkpoint {self.name!r}").to(self.device)
        self._embedder = embedder
        self._text_encoder = text_encoder
        self.vggish_weights = "injected" if embedder is not None else None

    # -- the two encoders, built lazily ---------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder, weights = embedder_for_spec(
                self.spec,
                self.weights_location,
                device=self.device,
                precision=resolve_precision(self.precision, self.device),
            )
            self.vggish_weights = weights.source
            logger.info(
                "predict embeds audio like the model's training clips: %s VGGish (%s), "
                "postprocess=%s, final_relu=%s, %d x %.3g-s segments",
                weights.source,
                weights.fingerprint[:24],
                self.spec.postprocess,
                self.spec.final_relu,
                self.spec.n_segments,
                self.spec.segment_s,
            )
        return self._embedder

    @property
    def text_encoder(self) -> Any:
        if self._text_encoder is None:
            self._text_encoder = text_encoder_for_spec(self.checkpoint.label_encoder, self.device)
        return self._text_encoder

    # -- steps ----------------------------------------------------------------------------------

    def encode_labels(self, labels: pd.DataFrame) -> np.ndarray:
        """``[C, E]`` float32 embeddings of ``labels['text']``, checked against the model."""
        vectors = np.asarray(self.text_encoder.encode(labels["text"].tolist()), dtype=np.float32)
        expected = self.model.config.semantic_dim
        if vectors.shape != (len(labels), expected):
            raise ProvenanceError(
                f"the label encoder gives {vectors.shape[-1]}-d vectors but the model expects "
                f"{expected}-d: predict must use the encoder the model was trained with "
                f"({self.checkpoint.label_encoder.model_name_or_path!r})"
            )
        return vectors

    def windows(
        self, path: str | Path, hop_s: float | None = None, batch_size: int = 64
    ) -> AudioWindows:
        """Decode, cut into windows and embed every valid segment (batched across windows)."""
        cut = cut_file(path, self.layout, hop_s)
        batcher = SegmentBatcher(
            self.embedder, self.layout.n_segments, batch_size, device=self.device
        )
        for clip in cut.clips:
            batcher.add(clip.example_windows(self.layout))
        return AudioWindows(
            path=cut.path,
            duration_s=cut.duration_s,
            sample_rate=cut.sample_rate,
            window_start_s=cut.window_start_s,
            n_valid=np.asarray([c.n_valid_segments for c in cut.clips], dtype=np.int64),
            coverage=np.stack([self.layout.coverage(c.n_real_samples) for c in cut.clips]),
            embeddings=batcher.finish(),
            envelope=cut.envelope,
        )

    @torch.inference_mode()
    def score(
        self, windows: AudioWindows, label_vectors: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores ``[W, C]`` and attention ``[W, T, C]`` of every window for every label."""
        segments = torch.from_numpy(np.ascontiguousarray(windows.embeddings)).to(self.device)
        mask = torch.from_numpy(windows.valid_mask).to(self.device)
        labels = torch.from_numpy(np.asarray(label_vectors, dtype=np.float32)).to(self.device)
        out = self.model(segments, mask, labels)
        return out.scores.float().cpu().numpy(), out.attention.float().cpu().numpy()

    def threshold(self, config: ThresholdConfig) -> float | None:
        if config.rule == "tuned":
            if not math.isfinite(float(self.checkpoint.threshold)):
                raise ValueError(
                    f"checkpoint {self.name!r} has no tuned threshold; use threshold rule "
                    "'fixed' or 'top_k'"
                )
            return float(self.checkpoint.threshold)
        if config.rule == "fixed":
            return float(config.fixed)
        return None
