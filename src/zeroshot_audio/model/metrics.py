"""Multi-label metrics, threshold rules and the zero-rule baseline.

Conventions (stated once, used everywhere):
- F1 from scikit-learn with ``zero_division=0``: a class never predicted has precision 0, a clip
  set with no positive of a class contributes recall 0 for it.
- macro-F1 and mAP average over the classes that have at least one positive among the evaluated
  clips (a class absent from the test clips has no defined recall or AP, so it would only add a
  constant 0 that depends on the random clip split, not on the model).
- micro-F1 counts every (clip, class) decision of every candidate class, absent or not.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

from zeroshot_audio.config import build_strict

ZERO_DIVISION = 0.0
ThresholdRule = Literal["tuned", "fixed", "top_k"]
THRESHOLD_RULES: tuple[str, ...] = ("tuned", "fixed", "top_k")
_AP_BLOCK = 16  # class columns per task of average_precision's threads
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class ThresholdConfig:
    """How scores become tags, in ``evaluate`` and ``predict`` alike: ``tuned`` (the checkpoint's
    validation threshold), ``fixed`` (score >= ``fixed``) or ``top_k`` (the ``top_k`` best)."""

    rule: str = "tuned"
    fixed: float = 0.0
    top_k: int = 1

    def __post_init__(self) -> None:
        if self.rule not in THRESHOLD_RULES:
            raise ValueError(f"threshold rule must be one of {THRESHOLD_RULES}, got {self.rule!r}")
        if int(self.top_k) < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> ThresholdConfig:
        return build_strict(cls, values, "threshold")


def tune_global_threshold(y_true: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """One threshold for all classes that maximises micro-F1 on (validation) clips.

    Exact: with the (clip, class) scores sorted, cutting after the k highest gives TP(k) =
    cumulative positives and micro-F1 = 2 TP / (k + P). Cuts inside a run of tied scores are not
    allowed, since a threshold cannot split ties. Returns (threshold, micro-F1 at it); predict
    with ``scores >= threshold``.

    Only the top of the ranking is sorted: a cut after k scores has F1 <= 2P / (k + P), so once
    the best cut among the m highest beats that bound for every k > m, no later cut can win.
    Starting from m = 4P and doubling, this sorts a few P scores instead of all N x C (a full
    argsort took ~8 s per model on a 300k-clip AudioSet validation fold).
    """
    y = np.asarray(y_true, dtype=bool).ravel()
    s = np.asarray(scores).ravel()
    if y.shape != s.shape or s.size == 0:
        raise ValueError(
            f"y_true and scores must have the same non-empty shape; got {y.shape}, {s.shape}"
        )
    if np.isnan(s).any():
        raise ValueError(
            f"scores hold {int(np.isnan(s).sum())} NaN value(s): no threshold is defined"
        )
    n_positive = int(y.sum())
    if n_positive == 0:
        return float(s.max()) + 1.0, 0.0  # nothing to find: predict nothing
    m = min(s.size, 4 * n_positive)
    while True:
        if m < s.size:  # the m highest, widened to every score tied with the lowest of them
            cut = np.partition(s, s.size - m)[s.size - m]
            top = np.flatnonzero(s >= cut)
        else:
            top = np.arange(s.size)
        order = top[np.argsort(-s[top], kind="stable")]
        s_sorted = s[order].astype(np.float64)
        true_positives = np.cumsum(y[order])
        f1 = 2.0 * true_positives / (np.arange(1, order.size + 1) + n_positive)
        last_of_ties = np.r_[s_sorted[1:] < s_sorted[:-1], True]
        f1 = np.where(last_of_ties, f1, -1.0)
        best = int(np.argmax(f1))
        if order.size == s.size or f1[best] >= 2.0 * n_positive / (order.size + 1 + n_positive):
            break
        m *= 2
    if best + 1 < order.size:
        above, below = s_sorted[best], s_sorted[best + 1]
    elif order.size < s.size:  # the best cut is the last candidate: the next score lies below
        above, below = s_sorted[best], float(s[s < s_sorted[best]].max())
    else:
        return float(s_sorted[best]), float(f1[best])
    threshold = below + (above - below) / 2.0
    if not below < threshold <= above:  # adjacent floats: the midpoint rounds onto `below`
        threshold = above
    return float(threshold), float(f1[best])


def top_k_predictions(scores: np.ndarray, k: int) -> np.ndarray:
    """Boolean [N, C]: the k highest-scoring classes of every clip."""
    scores = np.asarray(scores)
    n, c = scores.shape
    k = int(min(max(k, 0), c))
    predictions = np.zeros((n, c), dtype=bool)
    if k == 0:
        return predictions
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    np.put_along_axis(predictions, top, True, axis=1)
    return predictions


def apply_threshold_rule(
    scores: np.ndarray,
    rule: ThresholdRule,
    *,
    threshold: float | None = None,
    k: int | None = None,
) -> np.ndarray:
    """Boolean predictions [N, C] from scores by ``tuned``/``fixed`` (score >= threshold) or ``top_k``."""
    if rule in ("tuned", "fixed"):
        if threshold is None:
            raise ValueError(f"threshold rule {rule!r} needs a threshold")
        return np.asarray(scores) >= threshold
    if rule == "top_k":
        if k is None:
            raise ValueError("threshold rule 'top_k' needs k")
        return top_k_predictions(scores, k)
    raise ValueError(f"unknown threshold rule {rule!r}; expected one of {THRESHOLD_RULES}")


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-class average precision [C] (NaN for a class without a positive): scikit-learn's
    ``average_precision_score(average=None)`` (equal to 1e-12: only the summation order
    differs), 50x faster on one core for a 290k-clip test fold (``benchmarks/bench_tag_metrics.py``).

    Why not scikit-learn itself: at AudioSet scale (300k test clips x ~130 classes x 4 methods x
    3 rotations, plus every validation epoch) its argsort and input checks per
    class dominated evaluate. The definition is the same: over the distinct scores ``t`` of the
    positives, AP = sum_t (positives scored t / positives) x precision(score >= t); ties are never
    split. Here each class column is sorted once (numpy's SIMD sort) and the clips scored >= t
    counted by binary search, instead of an argsort and a cumulative sum over every clip. Blocks
    of columns run on every core (:func:`parallel_map`).
    """
    y = np.asarray(y_true, dtype=bool)
    values = np.asarray(scores)
    if values.dtype not in (np.float32, np.float64):
        values = values.astype(np.float64)
    if y.shape != values.shape or y.ndim != 2:
        raise ValueError(
            f"y_true and scores must share one [N, C] shape; got {y.shape}, {values.shape}"
        )

    def block_ap(start: int) -> np.ndarray:
        # a transposed block of columns: contiguous rows to sort, bounded memory per thread
        columns = np.ascontiguousarray(values[:, start : start + _AP_BLOCK].T)
        positives = np.ascontiguousarray(y[:, start : start + _AP_BLOCK].T)
        result = np.full(columns.shape[0], np.nan)
        for offset, (column, positive) in enumerate(zip(columns, positives, strict=True)):
            if not np.isfinite(column).all():
                raise ValueError(f"scores of class column {start + offset} contain NaN or inf")
            thresholds, n_at = np.unique(column[positive], return_counts=True)
            if thresholds.size == 0:
                continue
            n_scored_at_least = column.size - np.searchsorted(np.sort(column), thresholds, "left")
            positives_at_least = np.cumsum(n_at[::-1])[::-1]
            precision = positives_at_least / n_scored_at_least
            result[offset] = float(np.sum(n_at * precision)) / float(n_at.sum())
        return result

    blocks = parallel_map(block_ap, range(0, y.shape[1], _AP_BLOCK))
    return np.concatenate(blocks) if blocks else np.full(0, np.nan)


def parallel_map(function: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[function(item) for item in items]``, on a thread per available core.

    Why threads: per-class metric work (sorting a column, cumulative sums, row gathers) runs in
    numpy kernels that release the GIL, so classes are processed on every core without copying
    the inputs into worker processes. Each item is computed alone, so the results do not depend
    on the number of threads.
    """
    items = list(items)
    workers = min(len(items), available_cores())
    if workers <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(function, items))


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _f1(true_positive, false_positive, false_negative):
    """F1 = 2 TP / (2 TP + FP + FN), ``ZERO_DIVISION`` where the denominator is 0 (sklearn's)."""
    denominator = 2.0 * true_positive + false_positive + false_negative
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, 2.0 * true_positive / safe, ZERO_DIVISION)


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray
) -> dict[str, Any]:
    """micro-F1, macro-F1, mAP and per-class F1/AP (arrays over all C classes, NaN AP if absent).

    F1 from per-class TP, FP, FN counted in numpy (equal to scikit-learn's ``f1_score`` with
    ``average`` micro / None / macro over the present classes, tested; its
    ``multilabel_confusion_matrix`` took 1.8 s per call on a 300k-clip AudioSet test fold, 12
    calls per evaluate run), AP from :func:`average_precision`.
    """
    y_true = np.asarray(y_true, dtype=bool)
    y_pred = np.asarray(y_pred, dtype=bool)
    scores = np.asarray(scores)
    if not (y_true.shape == y_pred.shape == scores.shape) or y_true.ndim != 2:
        raise ValueError(
            f"y_true, y_pred, scores must share one [N, C] shape; got {y_true.shape}, "
            f"{y_pred.shape}, {scores.shape}"
        )
    present = np.flatnonzero(y_true.any(axis=0))
    tp = (y_true & y_pred).sum(axis=0)
    fp, fn = y_pred.sum(axis=0) - tp, y_true.sum(axis=0) - tp
    per_class_f1 = _f1(tp, fp, fn)
    per_class_ap = average_precision(y_true, scores)
    return {
        "micro_f1": float(_f1(tp.sum(), fp.sum(), fn.sum())),
        "macro_f1": float(per_class_f1[present].mean()) if present.size else 0.0,
        "map": float(np.nanmean(per_class_ap)) if present.size else 0.0,
        "per_class_f1": per_class_f1.astype(float),
        "per_class_ap": per_class_ap,
        "n_clips": int(y_true.shape[0]),
        "n_classes": int(y_true.shape[1]),
        "n_classes_present": int(present.size),
        "mean_predicted_per_clip": float(y_pred.sum(axis=1).mean()) if y_pred.size else 0.0,
    }


def mean_average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """mAP over classes with at least one positive (the early-stopping metric: threshold-free)."""
    per_class = average_precision(y_true, scores)
    return float(np.nanmean(per_class)) if not np.isnan(per_class).all() else 0.0


def zero_rule(reference_targets: np.ndarray, n_clips: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The zero-rule baseline: every clip gets the k most frequent classes of a reference clip set.

    k = the reference clips' mean label count, rounded (at least 1). Returns (scores, predictions,
    k) for ``n_clips`` clips; the score of a class is its reference frequency, so mAP of the
    baseline is defined too (it equals each class's prevalence).
    """
    reference = np.asarray(reference_targets, dtype=bool)
    if reference.ndim != 2 or reference.shape[0] == 0:
        raise ValueError(f"zero-rule needs a non-empty [M, C] reference; got {reference.shape}")
    frequency = reference.mean(axis=0)
    k = max(1, round(float(reference.sum(axis=1).mean())))
    scores = np.broadcast_to(frequency, (n_clips, frequency.size)).copy()
    top = np.argsort(-frequency, kind="stable")[:k]
    predictions = np.zeros((n_clips, frequency.size), dtype=bool)
    predictions[:, top] = True
    return scores, predictions, k
