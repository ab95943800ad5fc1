"""Nodes of the ``predict`` stage: thin wrappers over ``zeroshot_audio.predict``.

Audio paths and label texts are parameters (``predict.audio``, ``predict.labels``), so
``kedro run --pipelines=predict --params "predict.audio=my/folder,predict.labels=dog barking;siren"``
tags any audio with any words; the model, its threshold and the label encoder come from the
latest ``trained_models``.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from zeroshot_audio.contracts.checkpoint import Checkpoint
from zeroshot_audio.predict import (
    PredictConfig,
    Predictor,
    featurize_config_for_model,
    list_audio_files,
    predict_files,
    prediction_figure,
    resolve_labels,
    select_checkpoint,
)

logger = logging.getLogger(__name__)


def _as_mapping(checkpoint: Checkpoint) -> dict[str, Any]:
    """The plain mapping ``zeroshot_audio.predict`` reads (until it reads a Checkpoint itself):
    ``config``/``gamma`` keys and the label encoder as ``EncoderConfig`` parameters."""
    spec = checkpoint.label_encoder
    fields = ("model_name_or_path", "revision", "pooling", "normalize", "max_length")
    encoder = {k: getattr(spec, k) for k in fields} if spec.source == "text_encoder" else {}
    return {
        **checkpoint.to_dict(),
        "config": checkpoint.model_config,
        "gamma": checkpoint.gamma,
        "label_encoder": encoder,
    }


def select_predict_model(
    trained_models: dict[str, Checkpoint], predict_params: dict[str, Any]
) -> dict[str, Any]:
    """The checkpoint named by ``predict.model`` (``auto``: best temporal-attention rotation)."""
    config = PredictConfig.from_params(predict_params)
    plain = {name: _as_mapping(checkpoint) for name, checkpoint in trained_models.items()}
    name, checkpoint = select_checkpoint(plain, config.model)
    logger.info(
        "predict with %s (method %s, gamma %s, validation micro-F1 %s)",
        name,
        checkpoint.get("method"),
        checkpoint.get("gamma"),
        checkpoint.get("validation_micro_f1"),
    )
    return {"name": name, "checkpoint": checkpoint}


def resolve_predict_labels(
    predict_model: dict[str, Any],
    label_embeddings: pd.DataFrame,
    predict_params: dict[str, Any],
) -> pd.DataFrame:
    """Label texts to embed: free text as given, mids through their class text.

    ``seen_in_training`` says whether a label is one of the model's training classes (same mid,
    or the same text as a training class): every other label is zero-shot.
    """
    config = PredictConfig.from_params(predict_params)
    labels = resolve_labels(config.labels, label_embeddings)
    trained = set(predict_model["checkpoint"].get("train_classes") or [])
    texts = dict(zip(label_embeddings["mid"].astype(str), label_embeddings["text"].astype(str)))
    trained_texts = {texts[m].casefold() for m in trained if m in texts}
    labels["seen_in_training"] = [
        (mid in trained) if mid is not None else (text.casefold() in trained_texts)
        for mid, text in zip(labels["mid"], labels["text"])
    ]
    return labels


def tag_audio_files(
    predict_model: dict[str, Any],
    predict_labels: pd.DataFrame,
    predict_params: dict[str, Any],
    featurize_params: dict[str, Any],
    label_encoder: dict[str, Any],
    seed: int,
    device: str,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any], dict[str, Any]]:
    """Per file: every label's score, the tags, the events; plus what the figures need and a report.

    Files that cannot be read are skipped and listed in the report; if none can, the node fails
    with their reasons.
    """
    config = PredictConfig.from_params(predict_params)
    files, missing = list_audio_files(config.audio, config.extensions, config.max_files)
    predictor = Predictor(
        predict_model["checkpoint"],
        featurize_config_for_model(featurize_params, seed=int(seed), device=device),
        name=predict_model["name"],
        device=device,
        encoder_fallback=label_encoder,
    )
    result = predict_files(predictor, files, predict_labels, config)
    failures = [f.to_dict() for f in [*missing, *result.failures]]
    if not len(result.audio):
        shown = "; ".join(f"{f['file']}: {f['reason']}: {f['detail']}" for f in failures[:5])
        raise RuntimeError(
            f"predict: none of the {len(files)} audio file(s) from {list(config.audio)} could be "
            f"tagged. {shown}"
        )
    report = _report(predictor, predict_labels, config, result, failures, len(files), len(missing))
    return result.predictions, result.events, result.segments, result.audio, report


def _report(
    predictor: Predictor,
    labels: pd.DataFrame,
    config: PredictConfig,
    result: Any,
    failures: list[dict[str, str]],
    n_files: int,
    n_unmatched_sources: int,
) -> dict[str, Any]:
    checkpoint = predictor.checkpoint
    tagged = result.predictions.groupby("label")["predicted"].sum()
    reasons = Counter(f["reason"] for f in failures)
    layout = predictor.layout
    realtime = result.audio_seconds / result.seconds if result.seconds > 0 else None
    vggish_weights = str(predictor.vggish_weights)
    return {
        "model": predictor.name,
        "method": checkpoint.get("method"),
        "rotation": (checkpoint.get("rotation") or {}).get("name"),
        "gamma": checkpoint.get("gamma"),
        "n_training_classes": len(checkpoint.get("train_classes") or []),
        "label_encoder": predictor.encoder_config,
        "vggish_weights": vggish_weights,
        "threshold": {
            "rule": config.threshold.rule,
            "value": predictor.threshold(config.threshold),
            "top_k": config.threshold.top_k if config.threshold.rule == "top_k" else None,
        },
        "windows": {
            "window_s": layout.n_segments * layout.segment_s,
            "hop_s": config.hop_s or layout.n_segments * layout.segment_s,
            "segment_s": layout.segment_s,
            "file_score": config.file_score,
        },
        "localisation": config.localisation.to_dict(),
        "labels": [
            {
                "label": row.label,
                "mid": row.mid,
                "text": row.text,
                "seen_in_training": bool(row.seen_in_training),
                "n_files_tagged": int(tagged.get(row.label, 0)),
            }
            for row in labels.itertuples(index=False)
        ],
        "n_files_found": n_files,
        "n_sources_without_files": n_unmatched_sources,
        "n_files_tagged": len(result.audio),
        "n_files_failed": len(failures),
        "failures_by_reason": dict(sorted(reasons.items())),
        "failures": failures,
        "n_events": len(result.events),
        "audio_seconds": round(result.audio_seconds, 3),
        "seconds": round(result.seconds, 3),
        "realtime_factor": None if realtime is None else round(realtime, 2),
        "mlflow_tags": {
            "predict.model": predictor.name,
            "predict.threshold_rule": config.threshold.rule,
            "predict.localisation": config.localisation.describe(),
            "vggish_weights": vggish_weights,
        },
        "mlflow_metrics": {
            "predict.files_tagged": len(result.audio),
            "predict.files_failed": len(failures),
            "predict.n_events": len(result.events),
            "predict.audio_seconds": round(result.audio_seconds, 3),
            "predict.seconds": round(result.seconds, 3),
            **({"predict.realtime_factor": round(realtime, 2)} if realtime else {}),
        },
    }


def plot_predictions(
    predictions: pd.DataFrame,
    sound_events: pd.DataFrame,
    segment_attention: pd.DataFrame,
    prediction_audio: dict[str, Any],
    predict_params: dict[str, Any],
) -> dict[str, Figure]:
    """One figure per file (waveform with events, attention over time, label scores), named
    ``<n>_<file stem>.png``; none when ``predict.figures.enabled`` is false."""
    config = PredictConfig.from_params(predict_params)
    if not config.figures.enabled:
        return {}
    figures: dict[str, Figure] = {}
    for n, file in enumerate(list(prediction_audio)[: config.figures.max_files]):
        stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in _stem(file))
        figures[f"{n:03d}_{stem}.png"] = prediction_figure(
            file,
            prediction_audio[file],
            predictions[predictions["file"] == file],
            sound_events[sound_events["file"] == file],
            segment_attention[segment_attention["file"] == file],
            max_labels=config.figures.max_labels,
        )
    return figures


def _stem(path: str) -> str:
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name
