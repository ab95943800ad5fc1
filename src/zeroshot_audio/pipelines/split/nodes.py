"""Node of ``split``; the algorithm is in :mod:`zeroshot_audio.metadata.folds`."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from zeroshot_audio.metadata.folds import split_into_folds, validate_rotations

log = logging.getLogger(__name__)


def split_folds(
    clips: pd.DataFrame,
    classes: pd.DataFrame,
    params: dict[str, Any],
    folds: dict[str, Any],
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Select classes, assign them to K folds greedily, and place every clip in at most one fold."""
    n_folds = int(folds["n_folds"])
    validate_rotations(folds["rotations"], n_folds)
    policy = params.get("cross_fold_policy", "drop")
    split = split_into_folds(
        clips, classes, params["class_selection"], n_folds,
        float(params.get("balance_tolerance", 0.1)), policy, seed,
    )  # fmt: skip
    report = _report(
        split.clip_folds, split.class_folds, split.selected, split.dropped_classes,
        split.reason, split.labels_removed, n_folds, policy, params,
    )  # fmt: skip
    log.info(
        "split: %d classes into %d folds; clips per fold %s; %d clips dropped %s",
        len(split.class_folds), n_folds, report["clips_per_fold"], report["n_dropped_clips"],
        report["dropped_clips_by_reason"],
    )  # fmt: skip
    return split.class_folds, split.clip_folds, report


def _report(
    clip_folds: pd.DataFrame,
    class_folds: pd.DataFrame,
    selected: pd.DataFrame,
    dropped_classes: dict[str, list[str]],
    reason: np.ndarray,
    labels_removed: np.ndarray,
    n_folds: int,
    policy: str,
    params: dict[str, Any],
) -> dict[str, Any]:
    names = dict(zip(selected["mid"], selected["display_name"], strict=True))
    cardinality = clip_folds["labels"].map(len)
    counts = clip_folds[["labels", "fold"]].explode("labels").groupby(["fold", "labels"]).size()
    clips_per_fold = clip_folds["fold"].value_counts().reindex(range(n_folds), fill_value=0)
    mean_clips = clips_per_fold.mean()
    folds = {}
    for k in range(n_folds):
        top = counts.loc[k].sort_values(ascending=False).head(5) if k in counts.index else []
        card = cardinality[clip_folds["fold"] == k]
        folds[str(k)] = {
            "n_classes": int((class_folds["fold"] == k).sum()),
            "n_clips": int(clips_per_fold[k]),
            "labels_per_clip_mean": round(float(card.mean()), 3) if len(card) else 0.0,
            "labels_per_clip_max": int(card.max()) if len(card) else 0,
            "largest_classes": [
                {"mid": mid, "display_name": names[mid], "n_clips": int(n)}
                for mid, n in (top.items() if len(top) else [])
            ],
        }
    dropped = pd.Series(reason[reason != ""]).value_counts()
    return {
        "params": params,
        "policy": policy,
        "n_selected_classes": len(class_folds),
        "dropped_classes": {rule: len(mids) for rule, mids in dropped_classes.items()},
        "dropped_class_mids": dropped_classes,
        "n_kept_clips": len(clip_folds),
        "n_dropped_clips": int(dropped.sum()),
        "dropped_clips_by_reason": {str(k): int(v) for k, v in dropped.items()},
        "n_clips_with_removed_labels": int((labels_removed > 0).sum()),
        "clips_per_fold": [int(n) for n in clips_per_fold],
        "max_relative_fold_deviation": (
            round(float((clips_per_fold - mean_clips).abs().max() / mean_clips), 4)
            if mean_clips
            else None
        ),
        "labels_per_clip_mean": round(float(cardinality.mean()), 3) if len(cardinality) else 0.0,
        "folds": folds,
        "mlflow_metrics": {
            "split/selected_classes": len(class_folds),
            "split/kept_clips": len(clip_folds),
            "split/dropped_clips": int(dropped.sum()),
            **{f"split/fold{k}/clips": int(n) for k, n in clips_per_fold.items()},
        },
    }
