"""Scores and attention -> tags, sound events with time stamps, and the three output tables.

Tags follow ``evaluate``'s threshold rules; events follow its localisation rule
(``model.localisation``): in a window where a label is tagged, segments of high attention are
active, and adjacent active segments merge into one event (across window boundaries too, since all
windows share one segment grid).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from zeroshot_audio.audio import io as audio_io
from zeroshot_audio.inference.config import PredictConfig
from zeroshot_audio.inference.inputs import (
    UNEXPECTED_ERROR,
    AudioWindows,
    FileFailure,
    list_audio_files,
)
from zeroshot_audio.inference.predictor import Predictor
from zeroshot_audio.model.localisation import (
    LocalisationRule,
    active_segments,
    segments_to_events,
)
from zeroshot_audio.model.metrics import ThresholdConfig, apply_threshold_rule

logger = logging.getLogger(__name__)


@dataclass
class FilePrediction:
    """Everything predicted for one file (arrays over windows W, segments T, labels C)."""

    windows: AudioWindows
    window_scores: np.ndarray  # [W, C]
    attention: np.ndarray  # [W, T, C]
    window_tags: np.ndarray  # [W, C] bool
    file_scores: np.ndarray  # [C]
    file_tags: np.ndarray  # [C] bool
    active: np.ndarray  # [W, T, C] bool: tagged window and high attention
    events: list[list[tuple[float, float]]]  # per label: (onset_s, offset_s)


def tag_and_localise(
    windows: AudioWindows,
    window_scores: np.ndarray,
    attention: np.ndarray,
    *,
    threshold: ThresholdConfig,
    threshold_value: float | None,
    localisation: LocalisationRule,
    segment_s: float,
    file_score: str = "max",
) -> FilePrediction:
    """Tags per window and per file, active segments and merged events.

    File score: the max (or mean) over windows, so a sound heard in any window tags the file.
    A label's segments can only be active in windows where the label is tagged and the file is
    tagged with it; windows share one grid of segments (hop = a multiple of the segment), so
    events merge across window boundaries. Events end at the file's end at the latest (a
    zero-padded short sound's segment is as long as the sound).
    """
    rule = threshold.rule
    window_tags = apply_threshold_rule(
        window_scores, rule, threshold=threshold_value, k=threshold.top_k
    )
    file_scores = window_scores.max(axis=0) if file_score == "max" else window_scores.mean(axis=0)
    file_tags = apply_threshold_rule(
        file_scores[None, :], rule, threshold=threshold_value, k=threshold.top_k
    )[0]
    high = active_segments(attention, windows.valid_mask, localisation)
    active = high & window_tags[:, None, :] & file_tags[None, None, :]

    first_segment = np.rint(windows.window_start_s / segment_s).astype(np.int64)
    n_grid = int((first_segment + windows.n_valid).max()) if len(first_segment) else 0
    grid = np.zeros((n_grid, window_scores.shape[1]), dtype=bool)
    for w, g0 in enumerate(first_segment):
        n = int(windows.n_valid[w])
        grid[g0 : g0 + n] |= active[w, :n]
    events = [
        segments_to_events(
            grid[:, c],
            segment_s,
            end_s=windows.duration_s,
            min_gap_s=localisation.min_gap_s,
            min_duration_s=localisation.min_duration_s,
        )
        for c in range(window_scores.shape[1])
    ]
    return FilePrediction(
        windows=windows,
        window_scores=window_scores,
        attention=attention,
        window_tags=window_tags,
        file_scores=file_scores,
        file_tags=file_tags,
        active=active,
        events=events,
    )


PREDICTION_COLUMNS = [
    "file", "label", "mid", "text", "score", "predicted", "rank", "best_window_start_s",
    "n_windows", "duration_s", "threshold_rule", "threshold", "model",
]  # fmt: skip
EVENT_COLUMNS = ["file", "label", "mid", "text", "onset_s", "offset_s", "score"]
SEGMENT_COLUMNS = [
    "file", "label", "window", "window_start_s", "segment_start_s", "segment_end_s", "coverage",
    "window_score", "window_predicted", "attention", "active",
]  # fmt: skip


@dataclass
class PredictResult:
    predictions: pd.DataFrame  # one row per (file, label)
    events: pd.DataFrame  # one row per sound event
    segments: pd.DataFrame  # one row per (file, label, valid segment of a window)
    failures: list[FileFailure]
    audio: dict[str, dict[str, Any]]  # per file: envelope and duration, for figures
    seconds: float = 0.0
    audio_seconds: float = 0.0


def predict_files(
    predictor: Predictor,
    files: Sequence[str],
    labels: pd.DataFrame,
    config: PredictConfig,
    *,
    progress: bool = True,
) -> PredictResult:
    """Tag every file with every label; a file that fails is reported, the others go on.

    The embedder and the label vectors are built before the first file, so a checkpoint whose
    provenance cannot be reproduced stops the run with its reason instead of failing every file.
    """
    started = time.perf_counter()
    label_vectors = predictor.encode_labels(labels)
    predictor.embedder  # noqa: B018  (build it now: see docstring)
    threshold_value = predictor.threshold(config.threshold)
    segment_s = predictor.layout.segment_s
    window_s = predictor.layout.n_segments * segment_s
    predictions, events, segments = [], [], []
    failures: list[FileFailure] = []
    audio: dict[str, dict[str, Any]] = {}
    for path in tqdm(files, desc="predict", unit="file", disable=not progress):
        try:
            windows = predictor.windows(path, config.hop_s, config.batch_size)
        except audio_io.ClipFailure as err:
            failures.append(FileFailure(str(path), err.reason, err.detail))
            logger.warning("Skipping %s: %s: %s", path, err.reason, err.detail)
            continue
        except Exception as err:  # an unforeseen failure on one file must not stop the others
            failures.append(
                FileFailure(str(path), UNEXPECTED_ERROR, f"{type(err).__name__}: {err}")
            )
            logger.warning("Skipping %s: %s", path, err)
            continue
        scores, attention = predictor.score(windows, label_vectors)
        result = tag_and_localise(
            windows,
            scores,
            attention,
            threshold=config.threshold,
            threshold_value=threshold_value,
            localisation=config.localisation,
            segment_s=segment_s,
            file_score=config.file_score,
        )
        audio[str(path)] = {"duration_s": windows.duration_s, **windows.envelope}
        predictions.append(
            _prediction_table(result, labels, config, threshold_value, predictor.name)
        )
        segments.append(_segment_table(result, labels["label"].tolist(), segment_s))
        events.append(_event_table(result, labels, window_s))
    seconds = time.perf_counter() - started
    audio_seconds = sum(a["duration_s"] for a in audio.values())
    logger.info(
        "predict: %d files (%.1f s of audio) tagged with %d labels in %.1f s (%.1fx real time), "
        "%d failed",
        len(audio),
        audio_seconds,
        len(labels),
        seconds,
        audio_seconds / seconds if seconds > 0 else 0.0,
        len(failures),
    )
    return PredictResult(
        predictions=_concat(predictions, PREDICTION_COLUMNS),
        events=_concat(events, EVENT_COLUMNS),
        segments=_concat(segments, SEGMENT_COLUMNS),
        failures=failures,
        audio=audio,
        seconds=seconds,
        audio_seconds=audio_seconds,
    )


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def _prediction_table(
    result: FilePrediction,
    labels: pd.DataFrame,
    config: PredictConfig,
    threshold_value: float | None,
    model_name: str,
) -> pd.DataFrame:
    scores = result.file_scores
    rank = np.empty(len(scores), dtype=np.int64)
    rank[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    windows = result.windows
    return pd.DataFrame(
        {
            "file": windows.path,
            "label": labels["label"].to_numpy(),
            "mid": labels["mid"].to_numpy(),
            "text": labels["text"].to_numpy(),
            "score": scores.astype(np.float64),
            "predicted": result.file_tags.astype(bool),
            "rank": rank,
            "best_window_start_s": windows.window_start_s[result.window_scores.argmax(axis=0)],
            "n_windows": len(windows.window_start_s),
            "duration_s": windows.duration_s,
            "threshold_rule": config.threshold.rule,
            "threshold": np.nan if threshold_value is None else float(threshold_value),
            "model": model_name,
        }
    )


def _event_table(result: FilePrediction, labels: pd.DataFrame, window_s: float) -> pd.DataFrame:
    """One row per event; its score is the label's best score over the windows it overlaps."""
    windows = result.windows
    rows = []
    for c, spans in enumerate(result.events):
        for onset, offset in spans:
            overlapping = (windows.window_start_s < offset) & (
                windows.window_start_s + window_s > onset
            )
            rows.append(
                {
                    "file": windows.path,
                    "label": labels["label"].iloc[c],
                    "mid": labels["mid"].iloc[c],
                    "text": labels["text"].iloc[c],
                    "onset_s": onset,
                    "offset_s": offset,
                    "score": float(result.window_scores[overlapping, c].max()),
                }
            )
    return pd.DataFrame(rows, columns=EVENT_COLUMNS)


def _segment_table(result: FilePrediction, label_list: list[str], segment_s: float) -> pd.DataFrame:
    windows = result.windows
    w_index, t_index = np.nonzero(windows.valid_mask)
    n_rows, n_labels = len(w_index), len(label_list)
    start = windows.window_start_s[w_index] + t_index * segment_s
    return pd.DataFrame(
        {
            "file": windows.path,
            "label": np.tile(np.asarray(label_list, dtype=object), n_rows),
            "window": np.repeat(w_index, n_labels),
            "window_start_s": np.repeat(windows.window_start_s[w_index], n_labels),
            "segment_start_s": np.repeat(start, n_labels),
            "segment_end_s": np.repeat(np.minimum(start + segment_s, windows.duration_s), n_labels),
            "coverage": np.repeat(windows.coverage[w_index, t_index], n_labels).astype(np.float64),
            "window_score": result.window_scores[w_index].reshape(-1).astype(np.float64),
            "window_predicted": result.window_tags[w_index].reshape(-1),
            "attention": result.attention[w_index, t_index].reshape(-1).astype(np.float64),
            "active": result.active[w_index, t_index].reshape(-1),
        }
    )


def predict_report(
    predictor: Predictor,
    labels: pd.DataFrame,
    config: PredictConfig,
    result: PredictResult,
    failures: list[dict[str, str]],
    n_files: int,
    n_unmatched_sources: int,
) -> dict[str, Any]:
    """The ``predict_report`` dataset: model, provenance, threshold, labels, counts, failures."""
    checkpoint = predictor.checkpoint
    tagged = result.predictions.groupby("label")["predicted"].sum()
    reasons = Counter(f["reason"] for f in failures)
    layout = predictor.layout
    realtime = result.audio_seconds / result.seconds if result.seconds > 0 else None
    vggish_weights = str(predictor.vggish_weights)
    n_padded = int((result.segments["coverage"] < 1.0).groupby(result.segments["file"]).any().sum())
    return {
        "model": predictor.name,
        "method": checkpoint.method,
        "rotation": checkpoint.rotation.get("name"),
        "gamma": checkpoint.gamma,
        "n_training_classes": len(checkpoint.train_classes),
        "embedder": checkpoint.embedder.to_dict(),
        "label_encoder": checkpoint.label_encoder.to_dict(),
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
            "min_sound_s": layout.min_sound_s,
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
        "n_files_with_padded_segments": n_padded,
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
            "predict/files_tagged": len(result.audio),
            "predict/files_failed": len(failures),
            "predict/files_with_padded_segments": n_padded,
            "predict/n_events": len(result.events),
            "predict/audio_seconds": round(result.audio_seconds, 3),
            "predict/seconds": round(result.seconds, 3),
            **({"predict/realtime_factor": round(realtime, 2)} if realtime else {}),
        },
    }


def tag_audio(
    predictor: Predictor, labels: pd.DataFrame, config: PredictConfig
) -> tuple[PredictResult, dict[str, Any]]:
    """Find the files of ``config.audio``, tag them all, and report; a run where no file could be
    tagged is an error listing the reasons."""
    files, missing = list_audio_files(config.audio, config.extensions, config.max_files)
    result = predict_files(predictor, files, labels, config)
    failures = [f.to_dict() for f in [*missing, *result.failures]]
    if not result.audio:
        shown = "; ".join(f"{f['file']}: {f['reason']}: {f['detail']}" for f in failures[:5])
        raise RuntimeError(
            f"predict: none of the {len(files)} audio file(s) from {list(config.audio)} could be "
            f"tagged. {shown}"
        )
    report = predict_report(predictor, labels, config, result, failures, len(files), len(missing))
    return result, report
