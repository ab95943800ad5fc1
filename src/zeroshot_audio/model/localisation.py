"""Time stamps from temporal attention, and how well they match strong labels.

The model's attention ``alpha[t, c]`` is a softmax over a window's valid segments: it says *where*
in the window class ``c`` is most compatible, not *whether* ``c`` is there (the clip score does
that). So a sound event is read off in two steps:

1. the tag decides whether class ``c`` is present in a window (threshold rule, as in evaluate);
2. in the windows where it is, the segments whose attention is "high" (a :class:`LocalisationRule`)
   are active; adjacent active segments are merged into ``onset_s``/``offset_s`` events.

Scoring follows the segment-based metrics of DCASE (sed_eval): the truth of a 1-s segment for a
class is "some strong-label event of that class overlaps it"; F1 counts (segment, class) decisions.
The reference point is the baseline that marks every valid segment active, which is what a clip
tagger without time stamps says.

No Kedro here: plain numpy/pandas/scikit-learn, usable from a notebook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from zeroshot_audio.config import build_strict

LOCALISATION_RULES = ("uniform_ratio", "max_ratio", "mass")
_DEFAULT_VALUES = {"uniform_ratio": 1.0, "max_ratio": 0.5, "mass": 0.8}
# Softmax over n equal logits is 1/n only up to rounding; a flat attention must count as "at
# least its uniform share" everywhere.
_RELATIVE_TOLERANCE = 1e-5


@dataclass(frozen=True)
class LocalisationRule:
    """Which segments of a tagged window count as active, and how segments become events.

    ``rule``:
      - ``uniform_ratio``: ``alpha[t] >= value / n_valid`` (more than ``value`` times the share a
        flat attention would give; ``value = 1`` marks the segments above average; a flat
        attention, as the uniform model would have, marks every segment);
      - ``max_ratio``: ``alpha[t] >= value * max_t alpha`` (within a factor of the peak);
      - ``mass``: the fewest segments holding ``value`` of the attention mass (largest first).

    ``min_gap_s``: events separated by a gap of at most this many seconds are merged into one.
    ``min_duration_s``: events shorter than this are dropped.
    """

    rule: str = "uniform_ratio"
    value: float | None = None  # None: the rule's default (1.0, 0.5, 0.8)
    min_gap_s: float = 0.0
    min_duration_s: float = 0.0

    def __post_init__(self) -> None:
        if self.rule not in LOCALISATION_RULES:
            raise ValueError(
                f"localisation rule must be one of {LOCALISATION_RULES}, got {self.rule!r}"
            )
        if self.value is None:
            object.__setattr__(self, "value", _DEFAULT_VALUES[self.rule])
        value = float(self.value)
        object.__setattr__(self, "value", value)
        if self.rule in ("max_ratio", "mass") and not 0.0 < value <= 1.0:
            raise ValueError(
                f"localisation value for {self.rule!r} must lie in (0, 1], got {value}"
            )
        if self.rule == "uniform_ratio" and value <= 0.0:
            raise ValueError(f"localisation value for 'uniform_ratio' must be > 0, got {value}")
        if self.min_gap_s < 0 or self.min_duration_s < 0:
            raise ValueError("min_gap_s and min_duration_s must be >= 0")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> LocalisationRule:
        """Build from a parameters block, rejecting unknown keys (a typo must not be ignored)."""
        return build_strict(cls, values, "localisation")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return f"{self.rule}={self.value:g}"


def active_segments(attention: np.ndarray, valid: np.ndarray, rule: LocalisationRule) -> np.ndarray:
    """Boolean ``[..., T, C]``: the segments where each class's attention is high.

    ``attention`` is ``[..., T, C]`` (zero on padding), ``valid`` is ``[..., T]``. This looks at the
    attention only; gate it with the tag decisions to get time stamps.
    """
    attention = np.asarray(attention, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    if attention.shape[:-1] != valid.shape:
        raise ValueError(
            f"attention {attention.shape} and valid mask {valid.shape} disagree on [..., T]"
        )
    mask = valid[..., None]
    alpha = np.where(mask, attention, 0.0)
    if rule.rule == "uniform_ratio":
        n_valid = valid.sum(axis=-1)[..., None, None].clip(min=1)
        high = alpha * n_valid >= rule.value * (1.0 - _RELATIVE_TOLERANCE)
    elif rule.rule == "max_ratio":
        peak = alpha.max(axis=-2, keepdims=True)
        high = (alpha >= rule.value * peak * (1.0 - _RELATIVE_TOLERANCE)) & (peak > 0)
    else:  # mass: the largest weights until `value` of the total is covered
        order = np.argsort(-alpha, axis=-2, kind="stable")
        ranked = np.take_along_axis(alpha, order, axis=-2)
        total = ranked.sum(axis=-2, keepdims=True)
        before = np.cumsum(ranked, axis=-2) - ranked  # mass of the strictly larger weights
        keep_ranked = (before < rule.value * total * (1.0 - _RELATIVE_TOLERANCE)) & (total > 0)
        high = np.zeros_like(keep_ranked)
        np.put_along_axis(high, order, keep_ranked, axis=-2)
    return high & mask


def segments_to_events(
    active: np.ndarray,
    segment_s: float,
    *,
    offset_s: float = 0.0,
    end_s: float | None = None,
    min_gap_s: float = 0.0,
    min_duration_s: float = 0.0,
) -> list[tuple[float, float]]:
    """Merge a 1-d boolean run of segments into ``(onset_s, offset_s)`` events.

    Segment ``g`` spans ``[offset_s + g * segment_s, offset_s + (g + 1) * segment_s)``; the last
    event is cut at ``end_s`` (the end of the audio) when given. Gaps of at most ``min_gap_s`` are
    bridged before events shorter than ``min_duration_s`` are dropped.
    """
    active = np.asarray(active, dtype=bool).ravel()
    if not active.any():
        return []
    padded = np.r_[False, active, False].astype(np.int8)
    edges = np.diff(padded)
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)  # exclusive
    max_gap_segments = int(np.floor(min_gap_s / segment_s + 1e-9))
    runs: list[list[int]] = []
    for start, stop in zip(starts, stops, strict=True):
        if runs and start - runs[-1][1] <= max_gap_segments:
            runs[-1][1] = int(stop)
        else:
            runs.append([int(start), int(stop)])
    events = []
    for start, stop in runs:
        onset = offset_s + start * segment_s
        offset = offset_s + stop * segment_s
        if end_s is not None:
            offset = min(offset, end_s)
        if offset - onset + 1e-9 >= min_duration_s and offset > onset:
            events.append((round(onset, 6), round(offset, 6)))
    return events


def strong_label_grid(
    strong_labels: pd.DataFrame,
    clips: Sequence[str],
    classes: Sequence[str],
    n_segments: int,
    segment_s: float,
    min_overlap_s: float = 0.0,
) -> np.ndarray:
    """Boolean ``[N, T, C]``: segment ``t`` of clip ``n`` holds class ``c`` per the strong labels.

    ``strong_labels`` has ``clip`` (the clip's ytid), ``mid``, ``onset_s``, ``offset_s`` (seconds
    from the clip start). A segment is active when an event overlaps it by more than
    ``min_overlap_s`` (0: any overlap, as sed_eval's segment-based metrics). Events of other clips
    or classes are ignored.
    """
    missing = {"clip", "mid", "onset_s", "offset_s"} - set(strong_labels.columns)
    if missing:
        raise ValueError(
            f"strong labels lack column(s) {sorted(missing)}; expected clip, mid, onset_s, offset_s"
        )
    grid = np.zeros((len(clips), n_segments, len(classes)), dtype=bool)
    clip_rows = pd.Series(np.arange(len(clips)), index=pd.Index([str(c) for c in clips]))
    clip_rows = clip_rows[~clip_rows.index.duplicated(keep="first")]
    class_cols = {str(m): j for j, m in enumerate(classes)}
    events = strong_labels[
        strong_labels["clip"].astype(str).isin(clip_rows.index)
        & strong_labels["mid"].astype(str).isin(class_cols)
    ]
    if events.empty:
        return _fill_duplicate_clips(grid, clips)
    rows = clip_rows.loc[events["clip"].astype(str)].to_numpy()
    cols = events["mid"].astype(str).map(class_cols).to_numpy()
    onset = events["onset_s"].to_numpy(dtype=np.float64)[:, None]
    offset = events["offset_s"].to_numpy(dtype=np.float64)[:, None]
    bad = ~(np.isfinite(onset) & np.isfinite(offset) & (offset >= onset)).ravel()
    if bad.any():
        first = events.iloc[int(np.flatnonzero(bad)[0])]
        raise ValueError(
            f"strong label row for clip {first['clip']!r}, mid {first['mid']!r} has onset_s="
            f"{first['onset_s']} and offset_s={first['offset_s']}: need finite onset <= offset"
        )
    seg_start = np.arange(n_segments, dtype=np.float64)[None, :] * segment_s
    overlap = np.minimum(offset, seg_start + segment_s) - np.maximum(onset, seg_start)
    event_index, segment = np.nonzero(overlap > min_overlap_s)
    grid[rows[event_index], segment, cols[event_index]] = True
    return _fill_duplicate_clips(grid, clips)


def _fill_duplicate_clips(grid: np.ndarray, clips: Sequence[str]) -> np.ndarray:
    """Clips listed twice (same ytid) share the first one's truth."""
    first: dict[str, int] = {}
    for i, clip in enumerate(clips):
        j = first.setdefault(str(clip), i)
        if j != i:
            grid[i] = grid[j]
    return grid


def segment_f1(
    truth: np.ndarray,
    predicted: np.ndarray,
    valid: np.ndarray,
    pairs: np.ndarray | None = None,
) -> dict[str, Any]:
    """Segment-based precision/recall/F1 of ``predicted`` against ``truth`` (both ``[N, T, C]``).

    Only valid segments (``valid`` ``[N, T]``) count. ``pairs`` ``[N, C]`` restricts scoring to
    some (clip, class) pairs, e.g. the clips' true tags when only the time stamps are judged.
    micro: every (segment, class) decision pooled; macro: mean per-class F1 over the classes with
    at least one true segment; nothing predicted or nothing true gives 0 (scikit-learn's
    ``zero_division=0``). Counted per class in numpy: equal to scikit-learn's
    ``precision_recall_fscore_support`` on the valid segments (tested), which took seconds per
    call at AudioSet scale (10 calls per rotation).
    """
    truth = np.asarray(truth, dtype=bool)
    predicted = np.asarray(predicted, dtype=bool)
    valid = np.asarray(valid, dtype=bool)
    if truth.shape != predicted.shape or truth.ndim != 3 or valid.shape != truth.shape[:2]:
        raise ValueError(
            f"truth {truth.shape} and predicted {predicted.shape} must be [N, T, C] and valid "
            f"{valid.shape} [N, T]"
        )
    counted = valid[:, :, None]
    if pairs is not None:
        pairs = np.asarray(pairs, dtype=bool)
        if pairs.shape != (truth.shape[0], truth.shape[2]):
            raise ValueError(f"pairs must be [N, C] = {(truth.shape[0], truth.shape[2])}")
        counted = counted & pairs[:, None, :]
    truth, predicted = truth & counted, predicted & counted
    class_tp = (truth & predicted).sum(axis=(0, 1))
    class_true, class_predicted = truth.sum(axis=(0, 1)), predicted.sum(axis=(0, 1))
    tp = int(class_tp.sum())
    fp, fn = int(class_predicted.sum()) - tp, int(class_true.sum()) - tp
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    present = class_true > 0
    per_class = 2 * class_tp[present] / (class_true[present] + class_predicted[present])
    macro = float(np.mean(per_class)) if present.any() else 0.0
    return {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "macro_f1": macro,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
        "n_true_segments": tp + fn,
        "n_predicted_segments": tp + fp,
        "n_valid_segments": int(valid.sum()),
        "n_classes_present": int(present.sum()),
    }


def all_active(valid: np.ndarray, tags: np.ndarray) -> np.ndarray:
    """The baseline ``[N, T, C]``: every valid segment of every tagged (clip, class) is active."""
    return np.asarray(valid, dtype=bool)[:, :, None] & np.asarray(tags, dtype=bool)[:, None, :]
