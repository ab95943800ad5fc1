"""Nodes of the ``predict`` stage: doorways to ``zeroshot_audio.inference``.

Audio paths and label texts are parameters (``predict.audio``, ``predict.labels``), so
``kedro run --pipelines=predict --params "predict.audio=my/folder,predict.labels=dog barking;siren"``
tags any audio with any words. The model, its threshold, its VGGish set-up and its label encoder
all come from the chosen checkpoint of ``trained_models``; ``params:featurize`` only says where
the VGGish weight files are on this machine.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from zeroshot_audio.contracts.checkpoint import Checkpoint
from zeroshot_audio.inference import (
    PredictConfig,
    Predictor,
    as_checkpoints,
    resolve_labels,
    select_checkpoint,
    tag_audio,
    weights_location,
)
from zeroshot_audio.inference.figures import prediction_figures

logger = logging.getLogger(__name__)


def select_predict_model(
    trained_models: Mapping[str, Checkpoint | dict[str, Any]], predict_params: dict[str, Any]
) -> dict[str, Any]:
    """The checkpoint named by ``predict.model`` (``auto``: best temporal-attention rotation)."""
    config = PredictConfig.from_params(predict_params)
    name, checkpoint = select_checkpoint(as_checkpoints(trained_models), config.model)
    logger.info(
        "predict with %s (method %s, gamma %s, validation micro-F1 %s)",
        name,
        checkpoint.method,
        checkpoint.gamma,
        checkpoint.validation_micro_f1,
    )
    return {"name": name, "checkpoint": checkpoint}


def resolve_predict_labels(
    predict_model: dict[str, Any], label_embeddings: pd.DataFrame, predict_params: dict[str, Any]
) -> pd.DataFrame:
    """Label texts to embed (free text as given, mids through their class text), each flagged
    ``seen_in_training`` or zero-shot."""
    config = PredictConfig.from_params(predict_params)
    train_classes = predict_model["checkpoint"].train_classes
    return resolve_labels(config.labels, label_embeddings, train_classes)


def tag_audio_files(
    predict_model: dict[str, Any],
    predict_labels: pd.DataFrame,
    predict_params: dict[str, Any],
    featurize_params: dict[str, Any],
    device: str,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any], dict[str, Any]]:
    """Per file: every label's score, the tags, the events; plus what the figures need and a
    report. Unreadable files are skipped and listed; if none can be read, the node fails."""
    config = PredictConfig.from_params(predict_params)
    predictor = Predictor(
        predict_model["checkpoint"],
        name=predict_model["name"],
        device=device,
        weights_location=weights_location(featurize_params),
        min_sound_s=config.min_sound_s,
        precision=config.precision,
    )
    result, report = tag_audio(predictor, predict_labels, config)
    return result.predictions, result.events, result.segments, result.audio, report


def plot_predictions(
    predictions: pd.DataFrame,
    sound_events: pd.DataFrame,
    segment_attention: pd.DataFrame,
    prediction_audio: dict[str, Any],
    predict_params: dict[str, Any],
) -> dict[str, Figure]:
    """One figure per file, named ``<n>_<file stem>.png``; none when ``predict.figures.enabled``
    is false (the catalog then writes no folder, and the MLflow hook logs nothing)."""
    config = PredictConfig.from_params(predict_params)
    return prediction_figures(
        predictions, sound_events, segment_attention, prediction_audio, config.figures
    )
