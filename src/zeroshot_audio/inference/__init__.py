"""Zero-shot tagging and time stamps for any audio file and any label text (Kedro-free).

A trained temporal-attention model scores T-segment windows against any set of label embeddings,
so predicting is: cut each file into windows of the training layout (``inputs``), embed each
window's segments with the VGGish set-up recorded in the checkpoint and the label texts with its
recorded encoder (``predictor``), score, threshold as in ``evaluate`` and turn per-label attention
into ``onset_s``/``offset_s`` events (``tagging``); ``figures`` draws one figure per file.

Usable from a notebook, e.g.::

    predictor = Predictor(checkpoint, device="cpu")
    labels = resolve_labels(["dog barking", "/m/07cx4"], label_embeddings)
    result = predict_files(predictor, ["long.wav"], labels, PredictConfig(audio=..., labels=...))
"""

from zeroshot_audio.audio.embed import ProvenanceError
from zeroshot_audio.inference.config import (
    FigureConfig,
    PredictConfig,
    parse_labels,
    weights_location,
)
from zeroshot_audio.inference.inputs import FileFailure, list_audio_files, resolve_labels
from zeroshot_audio.inference.predictor import (
    ModelNotTrainedError,
    Predictor,
    as_checkpoints,
    select_checkpoint,
)
from zeroshot_audio.inference.tagging import PredictResult, predict_files, tag_audio
from zeroshot_audio.model.metrics import ThresholdConfig

__all__ = [
    "FigureConfig",
    "FileFailure",
    "ModelNotTrainedError",
    "PredictConfig",
    "PredictResult",
    "Predictor",
    "ProvenanceError",
    "ThresholdConfig",
    "as_checkpoints",
    "list_audio_files",
    "parse_labels",
    "predict_files",
    "resolve_labels",
    "select_checkpoint",
    "tag_audio",
    "weights_location",
]
