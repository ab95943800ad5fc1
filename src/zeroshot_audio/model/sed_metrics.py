"""Localisation scored with the sound-event-detection field's own metrics and libraries.

The project's ``localisation.segment_f1`` (segment-level F1 on the model's own segment grid) stays;
this module adds what a DCASE reader expects, as the libraries the DCASE baselines use define
them (``sed_eval``, ``sed_scores_eval``), counted in numpy and tested equal to those libraries:

- **1-s segment-based F1 and error rate** (Mesaros, Heittola & Virtanen 2016, "Metrics for
  polyphonic sound event detection"), as ``sed_eval`` (the reference implementation of that paper)
  computes them, counted in numpy (tested equal to sed_eval; sed_eval loops in Python over every
  segment and class and took minutes per evaluate run at AudioSet scale). Per 1-s segment t:
  S_t = min(FN_t, FP_t), D_t = max(0, FN_t - FP_t), I_t = max(0, FP_t - FN_t) and
  ER = (sum S + D + I) / (sum N_t), N_t the active reference classes of segment t. F1 counts
  (segment, class) decisions.
- **Event-based F1** with a 200 ms onset collar and an offset collar of max(200 ms, 20 % of the
  reference event's length) (DCASE 2016-2020 task 4), ``sed_scores_eval.collar_based``'s counts
  (one-to-one matching of estimated and reference events of a class) counted in numpy (tested
  equal to it and to sed_eval).
- **Threshold-free**: segment-based AP and AUROC over 1-s segments (``sed_scores_eval
  .segment_based``) and PSDS (Bilen et al. 2020, computed exactly as Ebbers et al. 2022, as
  ``sed_scores_eval.intersection_based``) with the DCASE scenario-1 setting (DTC = GTC = 0.7,
  alpha_ST = 1, alpha_CT = 0, max eFPR 100 per hour). The per-clip statistics are counted in
  numpy and the library's curve and area functions give the numbers (tested equal to the
  library's own calls to the bit; those loop in Python over every clip and class).

Inputs are what ``evaluate`` already has: per clip a grid of T segments of ``segment_s`` seconds
(``valid`` says how many are real), binary decisions or real scores per (segment, class), and the
strong labels as the project stores them (``clip, mid, onset_s, offset_s``; seconds from the clip
start). Each clip's duration is its valid segments (n_valid * segment_s); reference events are cut
to it. Decisions on adjacent segments merge into one estimated event.

Averages follow :mod:`zeroshot_audio.model.metrics`: micro pools every class; macro (and mean AP,
AUROC, PSDS) use only the classes with at least one reference event among the clips, since a class
absent from the reference has no recall. Clips without any strong label should be left out by the
caller (here they would count as silent for every class).

Library: ``sed_scores_eval_np2`` 0.0.4 (the numpy-2 build of fgnt/sed_scores_eval; its curve,
area and PSDS-ROC functions are called here) and its dependency ``sed_eval`` 0.2.1 (its bipartite
matching). They import librosa and numba, so they are imported on first use, not with this module.
:func:`_libraries` and :func:`_score_frames` serve the tests and the benchmark that call the
libraries themselves on the same input; sed_scores_eval 0.0.4 passes a read-only pandas-3 view to
a Cython routine (fixed upstream in fgnt/sed_scores_eval#17, Feb 2026, not yet released), and
:func:`_libraries` applies the same fix (copy non-writeable scores) once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from zeroshot_audio.model.localisation import segments_to_events

ONSET_COLLAR_S = 0.2
OFFSET_COLLAR_S = 0.2
OFFSET_COLLAR_RATE = 0.2
SEGMENT_RESOLUTION_S = 1.0
PSDS_SCENARIO_1 = {
    "dtc_threshold": 0.7,
    "gtc_threshold": 0.7,
    "cttc_threshold": None,
    "alpha_ct": 0.0,
    "alpha_st": 1.0,
    "max_efpr": 100.0,
}
_DECIMALS = 6
_PAIR_BLOCK = 4096  # (clip, class) pairs with reference events per PSDS count batch


@dataclass(frozen=True)
class SedReference:
    """The truth of one clip set, in the libraries' format: events and durations per clip."""

    clips: tuple[str, ...]
    classes: tuple[str, ...]
    n_valid: tuple[int, ...]
    segment_s: float
    events: dict[str, list[tuple[float, float, str]]]  # clip -> [(onset, offset, mid)]

    @property
    def durations(self) -> dict[str, float]:
        return {c: round(n * self.segment_s, _DECIMALS) for c, n in zip(self.clips, self.n_valid)}

    @property
    def present_classes(self) -> tuple[str, ...]:
        """Classes with at least one reference event, in ``classes`` order."""
        seen = {mid for events in self.events.values() for _, _, mid in events}
        return tuple(c for c in self.classes if c in seen)

    def frame_edges(self, n_segments: int) -> np.ndarray:
        """The n_segments + 1 boundaries (seconds, rounded as the libraries round) of the grid."""
        return np.round(np.arange(n_segments + 1) * self.segment_s, _DECIMALS)

    def subset(self, rows: Sequence[int], classes: Sequence[str]) -> SedReference:
        """The clips at ``rows`` and only the events of ``classes``."""
        clips = tuple(self.clips[i] for i in rows)
        wanted = set(classes)
        return SedReference(
            clips,
            tuple(classes),
            tuple(self.n_valid[i] for i in rows),
            self.segment_s,
            {c: [e for e in self.events[c] if e[2] in wanted] for c in clips},
        )


def sed_reference(
    strong_labels: pd.DataFrame,
    clips: Sequence[str],
    classes: Sequence[str],
    n_valid_segments: Sequence[int] | np.ndarray,
    segment_s: float = 1.0,
) -> SedReference:
    """Reference events of ``classes`` on ``clips`` from the strong labels, cut to each clip's
    scored span [0, n_valid * segment_s). Events of other clips or classes are ignored; overlapping
    or touching events of one class on one clip become their union (one reference event)."""
    missing = {"clip", "mid", "onset_s", "offset_s"} - set(strong_labels.columns)
    if missing:
        raise ValueError(f"strong labels lack column(s) {sorted(missing)}")
    clips = tuple(str(c) for c in clips)
    if len(set(clips)) != len(clips):
        raise ValueError("clips must be unique (one row of scores per clip)")
    n_valid = tuple(int(n) for n in np.asarray(n_valid_segments).ravel())
    if len(n_valid) != len(clips) or min(n_valid, default=1) < 1:
        raise ValueError(f"need one n_valid_segments >= 1 per clip; got {n_valid_segments!r}")
    if segment_s <= 0:
        raise ValueError(f"segment_s must be positive, got {segment_s}")
    wanted = strong_labels[
        strong_labels["clip"].astype(str).isin(clips)
        & strong_labels["mid"].astype(str).isin({str(c) for c in classes})
    ]
    duration = dict(zip(clips, (n * segment_s for n in n_valid), strict=True))
    events: dict[str, list[tuple[float, float, str]]] = {c: [] for c in clips}
    for row in wanted.itertuples(index=False):
        onset, offset = float(row.onset_s), float(row.offset_s)
        if not (np.isfinite(onset) and np.isfinite(offset) and 0 <= onset <= offset):
            raise ValueError(
                f"strong label of clip {row.clip!r}, mid {row.mid!r}: onset_s={row.onset_s}, "
                f"offset_s={row.offset_s}; need finite 0 <= onset <= offset"
            )
        offset = min(offset, duration[str(row.clip)])
        if offset > onset:
            events[str(row.clip)].append(
                (round(onset, _DECIMALS), round(offset, _DECIMALS), str(row.mid))
            )
    events = {clip: _merge_overlaps(clip_events) for clip, clip_events in events.items()}
    return SedReference(clips, tuple(str(c) for c in classes), n_valid, float(segment_s), events)


def decision_events(
    decisions: np.ndarray, reference: SedReference
) -> dict[str, list[tuple[float, float, str]]]:
    """Estimated events per clip: runs of active valid segments of each class, merged."""
    grid = _check_grid(decisions, reference, "decisions").astype(bool)
    events: dict[str, list[tuple[float, float, str]]] = {}
    for i, (clip, n) in enumerate(zip(reference.clips, reference.n_valid, strict=True)):
        events[clip] = sorted(
            (onset, offset, mid)
            for j, mid in enumerate(reference.classes)
            for onset, offset in segments_to_events(grid[i, :n, j], reference.segment_s)
        )
    return events


def segment_based_metrics(
    decisions: np.ndarray, reference: SedReference, time_resolution: float = SEGMENT_RESOLUTION_S
) -> dict[str, float]:
    """1-s segment-based F1 (micro, macro) and error rate with S/D/I rates: sed_eval's
    ``SegmentBasedMetrics``, counted in numpy.

    Reference events and the decisions' events are rasterised onto the ``time_resolution`` grid
    as sed_eval does (segments floor(onset / r) to ceil(offset / r)); per grid segment the
    active reference classes (N), system classes and their overlap give S = min(N, Nsys) - TP,
    D = max(0, N - Nsys), I = max(0, Nsys - N). Equal to sed_eval (tested on random cases), which
    loops in Python over every segment and class of every clip: seconds per call on 2,000 clips,
    24 calls per evaluate run.
    """
    grid = _check_grid(decisions, reference, "decisions").astype(bool)
    grid &= _valid_mask(reference, grid.shape[1])[:, :, None]
    n_slots = int(np.ceil(round(grid.shape[1] * reference.segment_s, _DECIMALS) / time_resolution))
    shape = (len(reference.clips), n_slots, len(reference.classes))
    truth = _rasterise(shape, *_event_arrays(reference), time_resolution)
    # a decision segment t covers [t s, (t + 1) s); a run of them rasterises as its one event would
    edges = reference.frame_edges(grid.shape[1])
    clip_index, segment, class_index = np.nonzero(grid)
    system = _rasterise(
        shape, clip_index, class_index, edges[segment], edges[segment + 1], time_resolution
    )
    tp = (truth & system).sum(axis=2)  # [N, slots]
    n_ref, n_sys = truth.sum(axis=2), system.sum(axis=2)
    substitutions = int((np.minimum(n_ref, n_sys) - tp).sum())
    deletions = int(np.maximum(0, n_ref - n_sys).sum())
    insertions = int(np.maximum(0, n_sys - n_ref).sum())
    total_tp, total_ref, total_sys = int(tp.sum()), int(n_ref.sum()), int(n_sys.sum())
    class_tp = (truth & system).sum(axis=(0, 1))
    class_ref, class_sys = truth.sum(axis=(0, 1)), system.sum(axis=(0, 1))

    def rate(count: int) -> float:
        return count / total_ref if total_ref else float("nan")

    return {
        "segment_f1": _f1(total_tp, total_sys - total_tp, total_ref - total_tp),
        "segment_precision": total_tp / total_sys if total_sys else 0.0,
        "segment_recall": total_tp / total_ref if total_ref else 0.0,
        "segment_macro_f1": _macro(
            [_f1(t, s - t, r - t) for t, s, r in zip(class_tp, class_sys, class_ref, strict=True)],
            class_ref.tolist(),
        ),
        "segment_error_rate": rate(substitutions + deletions + insertions),
        "segment_substitution_rate": rate(substitutions),
        "segment_deletion_rate": rate(deletions),
        "segment_insertion_rate": rate(insertions),
        "segment_n_reference": total_ref,
    }


def event_based_metrics(
    decisions: np.ndarray,
    reference: SedReference,
    *,
    onset_collar: float = ONSET_COLLAR_S,
    offset_collar: float = OFFSET_COLLAR_S,
    offset_collar_rate: float = OFFSET_COLLAR_RATE,
) -> dict[str, float]:
    """Event-based (collar) F1, micro and macro: ``sed_scores_eval.collar_based``'s counts.

    An estimated event is a run of active segments. It hits a reference event of its clip and
    class when its onset lies within ``onset_collar`` of the reference onset and its offset
    within max(``offset_collar``, ``offset_collar_rate`` x reference length) of the reference
    offset (the library's rounding); events are matched one to one (maximum bipartite matching,
    the library's ``sed_eval.util.bipartite_match``, where one event hits several). Unmatched
    estimated events are false positives, those of a class without reference events included.
    Counted in numpy over (clip, class) pairs; equal to the library's counts (tested), which it
    gets clip by clip in Python (seconds per 2,000-clip call, 24 calls per evaluate run).
    """
    grid = _check_grid(decisions, reference, "decisions").astype(bool)
    grid &= _valid_mask(reference, grid.shape[1])[:, :, None]
    n_classes = len(reference.classes)
    edges = reference.frame_edges(grid.shape[1])
    run_starts = grid & ~np.pad(grid, ((0, 0), (1, 0), (0, 0)))[:, :-1]
    n_estimated = run_starts.sum(axis=(0, 1)).astype(float)
    tp = np.zeros(n_classes)
    for rows, columns, event_on, event_off, is_event in _pair_blocks(reference):
        det_on, det_off = _runs(grid[rows, :, columns], edges)  # [P, J]
        onset_hit = (
            np.round(np.abs(det_on[..., None] - event_on[:, None, :]) - onset_collar, _DECIMALS)
            <= 0.0
        )
        collar = np.maximum(offset_collar, offset_collar_rate * (event_off - event_on))
        offset_hit = (
            np.round(
                np.abs(det_off[..., None] - event_off[:, None, :]) - collar[:, None, :], _DECIMALS
            )
            <= 0.0
        )
        hit = (det_off > det_on)[..., None] & onset_hit & offset_hit & is_event[:, None, :]
        matched = hit.sum(axis=(1, 2))
        for p in np.flatnonzero((hit.sum(axis=1) > 1).any(-1) | (hit.sum(axis=2) > 1).any(-1)):
            matched[p] = _maximum_matching(hit[p])
        tp += np.bincount(columns, weights=matched, minlength=n_classes)
    n_ref = np.bincount(_event_arrays(reference)[1], minlength=n_classes).astype(float)
    fp = n_estimated - tp
    per_class = [_f1(t, f, r - t) for t, f, r in zip(tp, fp, n_ref, strict=True)]
    tps, fps, refs = float(tp.sum()), float(fp.sum()), float(n_ref.sum())
    return {
        "event_f1": _f1(tps, fps, refs - tps),
        "event_precision": tps / (tps + fps) if tps + fps else 0.0,
        "event_recall": tps / refs if refs else 0.0,
        "event_macro_f1": _macro(per_class, n_ref.tolist()),
        "event_n_reference": int(refs),
        "event_n_estimated": int(tps + fps),
    }


def threshold_free_metrics(segment_scores: np.ndarray, reference: SedReference) -> dict[str, float]:
    """Segment-based mean AP and AUROC, and PSDS (DCASE scenario 1), from real-valued scores.

    Over the classes with a reference event only (AP, AUROC and TPR are undefined without one);
    NaN when there is none. sed_scores_eval's exact threshold-free method (Ebbers et al. 2022):
    per clip and class, how each count changes as the threshold falls below each score, summed
    over clips, gives the counts at every threshold. Those changes are counted here in numpy
    (:func:`_segment_counts`, :func:`_psds_count_changes`) and the library's own curve and area
    functions give the numbers: equal to its ``segment_based.average_precision`` / ``auroc`` and
    ``intersection_based.psds`` (tested), which loop in Python over every clip and class (about
    25 s per 2,000-clip call at AudioSet scale, nine calls per evaluate run).
    """
    grid = _check_grid(segment_scores, reference, "segment_scores").astype(np.float64)
    present = reference.present_classes
    if not present:
        nan = float("nan")
        return {"segment_map": nan, "segment_auroc": nan, "psds": nan, "psds_n_classes": 0}
    sub = reference.subset(range(len(reference.clips)), present)
    grid = grid[:, :, [reference.classes.index(c) for c in present]]
    ap, auroc = _segment_ap_auroc(grid, sub)
    return {
        "segment_map": float(np.mean(ap)),
        "segment_auroc": float(np.mean(auroc)),
        "psds": _psds(grid, sub),
        "psds_n_classes": len(present),
    }


def attention_segment_scores(
    clip_scores: np.ndarray, attention: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """[N, T, C] segment scores from a clip score and its attention: p_c + log(alpha_t * n_valid).

    The clip score says whether, the attention says where: log(alpha * n) is 0 for a segment with
    exactly its uniform share, so a flat attention (the uniform model) gives every segment the clip
    score (a tagger without time stamps), and with tau = 1 the offset is the segment's
    compatibility minus its clip's log-mean-exp. Padding segments get -inf (never scored: only a
    clip's valid segments reach the libraries).
    """
    clip_scores = np.asarray(clip_scores, dtype=np.float64)
    attention = np.asarray(attention, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    if attention.ndim != 3 or clip_scores.shape != (attention.shape[0], attention.shape[2]):
        raise ValueError(
            f"need clip_scores [N, C] and attention [N, T, C]; got {clip_scores.shape}, "
            f"{attention.shape}"
        )
    if valid.shape != attention.shape[:2]:
        raise ValueError(f"valid {valid.shape} must be [N, T] = {attention.shape[:2]}")
    n_valid = valid.sum(axis=1)[:, None, None]
    # an attention weight that underflowed to 0 stays the lowest score of its clip, but finite
    relative = np.log(np.clip(attention * n_valid, np.finfo(np.float64).tiny, None))
    return np.where(valid[:, :, None], clip_scores[:, None, :] + relative, -np.inf)


def reference_grid(
    reference: SedReference, n_segments: int, min_coverage: float = 0.0
) -> np.ndarray:
    """[N, T, C] bool: the reference on the segment grid, as an oracle's decisions.

    A segment is active when an event covers more than ``min_coverage`` of it. With 0 (any
    overlap) this is the truth of the segment-based metrics: perfect segment F1, ER and AP. With
    0.5 event boundaries are rounded to the nearest segment boundary, the natural oracle for the
    event-based metrics: with 1-s segments most onsets lie more than 200 ms from a boundary, so
    even this oracle's event F1 is far below 1. Report it beside the methods as the resolution
    ceiling (an upper reference, not a proven optimum of event F1).
    """
    if not 0.0 <= min_coverage < 1.0:
        raise ValueError(f"min_coverage must lie in [0, 1), got {min_coverage}")
    grid = np.zeros((len(reference.clips), n_segments, len(reference.classes)), dtype=bool)
    column = {c: j for j, c in enumerate(reference.classes)}
    starts = np.arange(n_segments) * reference.segment_s
    for i, clip in enumerate(reference.clips):
        for onset, offset, mid in reference.events[clip]:
            covered = np.minimum(offset, starts + reference.segment_s) - np.maximum(onset, starts)
            grid[i, covered > min_coverage * reference.segment_s, column[mid]] = True
    return grid


def sed_metrics(
    decisions: np.ndarray,
    reference: SedReference,
    segment_scores: np.ndarray | None = None,
) -> dict[str, float]:
    """All of the above in one flat dict (MLflow-ready floats): segment-based, event-based and,
    when ``segment_scores`` are given, the threshold-free scores."""
    out = {
        **segment_based_metrics(decisions, reference),
        **event_based_metrics(decisions, reference),
    }
    if segment_scores is not None:
        out.update(threshold_free_metrics(segment_scores, reference))
    out["n_clips"] = len(reference.clips)
    out["n_classes_with_events"] = len(reference.present_classes)
    return out


# -- helpers ------------------------------------------------------------------------------------


def _merge_overlaps(events: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Union of a class's overlapping or touching events (the pack lists an ancestor mid once
    per child event); sed_scores_eval refuses connected events of one class."""
    merged: dict[str, list[list[float]]] = {}
    for onset, offset, mid in sorted(events, key=lambda e: (e[2], e[0], e[1])):
        runs = merged.setdefault(mid, [])
        if runs and onset <= runs[-1][1]:
            runs[-1][1] = max(runs[-1][1], offset)
        else:
            runs.append([onset, offset])
    return sorted((a, b, mid) for mid, runs in merged.items() for a, b in runs)


def _check_grid(values: np.ndarray, reference: SedReference, name: str) -> np.ndarray:
    values = np.asarray(values)
    n, c = len(reference.clips), len(reference.classes)
    if values.ndim != 3 or values.shape[0] != n or values.shape[2] != c:
        raise ValueError(f"{name} must be [N={n}, T, C={c}]; got {values.shape}")
    if values.shape[1] < max(reference.n_valid):
        raise ValueError(f"{name} has {values.shape[1]} segments, a clip has more valid ones")
    return values


def _valid_mask(reference: SedReference, n_segments: int) -> np.ndarray:
    """[N, T] bool: the segments each clip really has."""
    return np.arange(n_segments)[None, :] < np.asarray(reference.n_valid)[:, None]


def _event_arrays(
    reference: SedReference,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every reference event of ``reference.classes`` as arrays: clip row, class column, onset,
    offset."""
    column = {c: j for j, c in enumerate(reference.classes)}
    events = [
        (i, column[mid], onset, offset)
        for i, clip in enumerate(reference.clips)
        for onset, offset, mid in reference.events[clip]
        if mid in column
    ]
    rows, columns, onsets, offsets = zip(*events) if events else ((), (), (), ())
    return (
        np.asarray(rows, dtype=int),
        np.asarray(columns, dtype=int),
        np.asarray(onsets, dtype=float),
        np.asarray(offsets, dtype=float),
    )


def _reference_presence(reference: SedReference) -> np.ndarray:
    """[N, C] bool: clip i has a reference event of class j."""
    presence = np.zeros((len(reference.clips), len(reference.classes)), dtype=bool)
    rows, columns, _, _ = _event_arrays(reference)
    presence[rows, columns] = True
    return presence


def _rasterise(
    shape: tuple[int, int, int],
    rows: np.ndarray,
    columns: np.ndarray,
    onsets: np.ndarray,
    offsets: np.ndarray,
    resolution: float,
) -> np.ndarray:
    """[N, slots, C] bool event roll as sed_eval builds it: an interval [onset, offset) of clip
    row, class column is active in slots floor(onset / r) to ceil(offset / r)."""
    roll = np.zeros(shape, dtype=bool)
    first = np.floor(onsets / resolution).astype(int)
    stop = np.minimum(np.ceil(offsets / resolution).astype(int), shape[1])
    for extra in range(int((stop - first).max(initial=0))):
        slot = first + extra
        keep = slot < stop
        roll[rows[keep], slot[keep], columns[keep]] = True
    return roll


def _score_frames(grid: np.ndarray, reference: SedReference) -> dict[str, pd.DataFrame]:
    """sed_scores_eval's format: per clip a frame table (onset, offset, one column per class).

    Built as one float block under an object column index: pandas 3 infers Arrow strings for a
    list of names and inserts column by column, which cost ~20x more per clip."""
    columns = pd.Index(["onset", "offset", *reference.classes], dtype=object)
    edges = reference.frame_edges(grid.shape[1])
    frames = {}
    for i, (clip, n) in enumerate(zip(reference.clips, reference.n_valid, strict=True)):
        values = np.empty((n, len(columns)))
        values[:, 0], values[:, 1], values[:, 2:] = edges[:n], edges[1 : n + 1], grid[i, :n, :]
        frames[clip] = pd.DataFrame(values, columns=columns, copy=False)
    return frames


def _segment_ap_auroc(grid: np.ndarray, reference: SedReference) -> tuple[list[float], list[float]]:
    """Per class AP and AUROC over the 1-s segments, as ``sed_scores_eval.segment_based``: a
    segment scores the maximum of the frames it overlaps and is positive when a reference event
    of the class overlaps it; the counts at every distinct score, sorted as its ``xsort`` sorts
    them (a stable sort on recall then precision, FPR then TPR), go to its AP and AUC formulas."""
    from sed_scores_eval.base_modules.curves import linear_auc
    from sed_scores_eval.base_modules.precision_recall import (
        average_precision_from_precision_recall_curve,
    )

    scores, positive, counted = _segment_counts(grid, reference)
    ap, auroc = [], []
    for j in range(grid.shape[2]):
        values, target = scores[:, :, j][counted], positive[:, :, j][counted]
        unique, inverse = np.unique(values, return_inverse=True)
        tps = _counts_from_top(np.bincount(inverse, weights=target, minlength=len(unique)))
        fps = _counts_from_top(np.bincount(inverse, weights=~target, minlength=len(unique)))
        n_sys, n_ref = tps + fps, tps[0]
        tns = n_sys[0] - n_sys - (n_ref - tps)
        precision = tps / np.maximum(n_sys, 1)
        precision[n_sys == 0] = 1.0
        recall = tps / n_ref
        order = np.lexsort((precision, recall))
        ap.append(
            float(average_precision_from_precision_recall_curve(precision[order], recall[order]))
        )
        tpr, fpr = tps / n_ref, fps / (tns + fps)
        order = np.lexsort((tpr, fpr))
        auroc.append(float(linear_auc(tpr[order], fpr[order])))
    return ap, auroc


def _segment_counts(
    grid: np.ndarray, reference: SedReference
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[N, S, C] scores and truth of the 1-s evaluation segments, and [N, S] which exist.

    sed_scores_eval's rule: a clip of duration d has ceil(d) segments; segment k takes the
    maximum of the score frames from the last one starting at or before its onset to the one
    before the first starting at or after its offset (0 when there is none)."""
    n_valid = np.asarray(reference.n_valid)
    durations = np.asarray(list(reference.durations.values()))  # in clip order
    n_segments = np.ceil(durations / SEGMENT_RESOLUTION_S).astype(int)
    width = int(n_segments.max())
    bounds = np.round(np.arange(width + 1) * SEGMENT_RESOLUTION_S, _DECIMALS)
    edges = reference.frame_edges(grid.shape[1])
    scores = np.zeros((grid.shape[0], width, grid.shape[2]))
    for n in np.unique(n_valid):
        rows, stamps = np.flatnonzero(n_valid == n), edges[: n + 1]
        for k in range(width):
            first = max(int(np.searchsorted(stamps, bounds[k], side="right")) - 1, 0)
            stop = min(int(np.searchsorted(stamps, bounds[k + 1], side="left")), n)
            if stop > first:
                scores[rows, k] = grid[rows, first:stop].max(axis=1)
    positive = np.zeros(scores.shape, dtype=bool)
    rows, columns, onsets, offsets = _event_arrays(reference)
    for k in range(width):
        hit = (bounds[k] < offsets) & (bounds[k + 1] > onsets)
        positive[rows[hit], k, columns[hit]] = True
    return scores, positive, np.arange(width)[None, :] < n_segments[:, None]


def _psds(grid: np.ndarray, reference: SedReference) -> float:
    """PSDS of :data:`PSDS_SCENARIO_1` from the per-class counts at every threshold, through
    sed_scores_eval's ROC steps (its ``_sort_and_cut`` redone with a stable numpy sort)."""
    from sed_scores_eval.intersection_based.psds import (
        multi_class_psd_roc_from_single_class_psd_rocs,
        psds_from_psd_roc,
    )
    from sed_scores_eval.utils.array_ops import cummax

    params = PSDS_SCENARIO_1
    classes, thresholds, tp_changes, fp_changes = _psds_count_changes(grid, reference)
    order = np.lexsort((thresholds, classes))
    classes, thresholds = classes[order], thresholds[order]
    tp_changes, fp_changes = tp_changes[order], fp_changes[order]
    split = np.searchsorted(classes, np.arange(1, grid.shape[2]))
    n_ref = np.bincount(_event_arrays(reference)[1], minlength=grid.shape[2])
    seconds = sum(reference.durations.values())  # added in clip order, as the library adds them
    rocs = {}
    for j, (values, tp, fp) in enumerate(
        zip(*(np.split(a, split) for a in (thresholds, tp_changes, fp_changes)), strict=True)
    ):
        _, inverse = np.unique(values, return_inverse=True)
        tps = _counts_from_top(np.bincount(inverse, weights=tp))
        fps = _counts_from_top(np.bincount(inverse, weights=fp))
        tpr = (tps / max(n_ref[j], 1))[::-1]
        efpr = (fps / seconds * 3600.0)[::-1]
        order = np.lexsort((tpr, efpr))
        tpr, efpr = tpr[order], efpr[order]
        keep = cummax(tpr)[1]
        tpr, efpr = tpr[keep], efpr[keep]
        efpr, last = np.unique(efpr[::-1], return_index=True)
        tpr = tpr[-1 - last]
        cut = int(np.searchsorted(efpr, params["max_efpr"], side="right"))
        rocs[reference.classes[j]] = (tpr[:cut], efpr[:cut])
    tpr, efpr = multi_class_psd_roc_from_single_class_psd_rocs(
        rocs, alpha_st=params["alpha_st"], max_efpr=params["max_efpr"]
    )
    return float(psds_from_psd_roc(tpr, efpr, params["max_efpr"]))


def _psds_count_changes(
    grid: np.ndarray, reference: SedReference
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Class, score, and change of the intersection-based TP and FP counts when the threshold
    falls below that score, for every clip and class (sed_scores_eval's deltas, concatenated).

    A detection is a run of frames scoring at least the threshold. Without a reference event
    every detection is false: one is born at each local maximum of the scores and two merge at
    each local minimum (the library's shortcut). With reference events, the counts at each of
    the clip's distinct scores follow the intersection criteria (DTC, GTC), batched over
    (clip, class) pairs; a change is kept where either count changes."""
    n_frames = grid.shape[1]
    scores = np.where(_valid_mask(reference, n_frames)[:, :, None], grid, -np.inf)
    has_event = _reference_presence(reference)
    before = np.pad(scores, ((0, 0), (1, 0), (0, 0)), constant_values=-np.inf)[:, :-1]
    after = np.pad(scores, ((0, 0), (0, 1), (0, 0)), constant_values=-np.inf)[:, 1:]
    births = ((scores > before).astype(int) - (after > scores)) * (scores > -np.inf)
    clip, frame, column = np.nonzero((births != 0) & ~has_event[:, None, :])
    parts = [
        (column, scores[clip, frame, column], np.zeros(len(clip)), births[clip, frame, column])
    ]
    edges = reference.frame_edges(n_frames)
    for rows, columns, event_on, event_off, is_event in _pair_blocks(reference):
        pair_scores = scores[rows, :, columns]
        tp, fp = _intersection_counts(pair_scores, edges, event_on, event_off, is_event)
        parts.append(_changes(pair_scores, columns, tp, fp))
    return tuple(np.concatenate(p) for p in zip(*parts, strict=True))


def _pair_blocks(
    reference: SedReference,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The (clip, class) pairs with reference events, :data:`_PAIR_BLOCK` at a time: clip rows,
    class columns, and [P, R] event onsets and offsets padded with 0 (``is_event`` marks the
    real ones), a pair's events in the reference's order (the order the libraries read them)."""
    rows, columns, onsets, offsets = _event_arrays(reference)
    n_classes = len(reference.classes)
    order = np.argsort(rows * n_classes + columns, kind="stable")
    pairs, first, counts = np.unique(
        (rows * n_classes + columns)[order], return_index=True, return_counts=True
    )
    onsets, offsets = onsets[order], offsets[order]
    for start in range(0, len(pairs), _PAIR_BLOCK):
        block = slice(start, start + _PAIR_BLOCK)
        slot = np.arange(int(counts[block].max()))
        is_event = slot < counts[block, None]
        index = first[block, None] + np.minimum(slot, counts[block, None] - 1)
        yield (
            pairs[block] // n_classes,
            pairs[block] % n_classes,
            np.where(is_event, onsets[index], 0.0),
            np.where(is_event, offsets[index], 0.0),
            is_event,
        )


def _runs(active: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[..., J] onsets and offsets of the runs of True along the last axis (frame t spans
    edges[t] to edges[t + 1]), in time order, padded with empty (0, 0) detections."""
    lead = [(0, 0)] * (active.ndim - 1)
    starts = active & ~np.pad(active, [*lead, (1, 0)])[..., :-1]
    ends = active & ~np.pad(active, [*lead, (0, 1)])[..., 1:]
    run = np.cumsum(starts, axis=-1) - 1
    det_on = np.zeros((*active.shape[:-1], (active.shape[-1] + 1) // 2))
    det_off = np.zeros_like(det_on)
    *index, t = np.nonzero(starts)
    det_on[(*index, run[(*index, t)])] = edges[t]
    *index, t = np.nonzero(ends)
    det_off[(*index, run[(*index, t)])] = edges[t + 1]
    return det_on, det_off


def _maximum_matching(hit: np.ndarray) -> int:
    """Size of a maximum one-to-one matching of a [detections, references] hit matrix, by the
    routine sed_scores_eval's collar matching uses."""
    from sed_eval.util import bipartite_match

    graph: dict[int, list[int]] = defaultdict(list)
    for detection, event in np.argwhere(hit):
        graph[int(detection)].append(int(event))
    return len(bipartite_match(graph))


def _intersection_counts(
    pair_scores: np.ndarray,
    edges: np.ndarray,
    event_on: np.ndarray,
    event_off: np.ndarray,
    is_event: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """[P, K] TP and FP counts of each pair when the threshold is its k-th frame's score.

    sed_scores_eval's ``intersection_based.statistics_fn``, operation for operation (same
    rounding): a detection is relevant when its overlap with the reference covers >= DTC of
    its length, a reference event is found when the relevant detections cover >= GTC of it."""
    dtc, gtc = PSDS_SCENARIO_1["dtc_threshold"], PSDS_SCENARIO_1["gtc_threshold"]
    det_on, det_off = _runs(pair_scores[:, None, :] >= pair_scores[:, :, None], edges)  # [P, K, J]
    is_detection = det_off > det_on
    overlap = np.maximum(
        np.minimum(det_off[..., None], event_off[:, None, None, :])
        - np.maximum(det_on[..., None], event_on[:, None, None, :]),
        0.0,
    )  # [P, K, J, R]
    covered = np.round(overlap.sum(axis=-1), _DECIMALS)
    relevant = (covered >= np.round(dtc * (det_off - det_on), _DECIMALS)) & is_detection
    fp = is_detection.sum(-1) - relevant.sum(-1)
    found = np.round((relevant[..., None] * overlap).sum(axis=-2), _DECIMALS)
    needed = np.round(gtc * (event_off - event_on), _DECIMALS)[:, None, :]
    tp = ((found >= needed) & is_event[:, None, :]).sum(-1)
    return tp, fp


def _changes(
    pair_scores: np.ndarray, pair_class: np.ndarray, tp: np.ndarray, fp: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """From counts at each frame's score to their changes at each distinct score: the count there
    minus the count at the pair's next higher score (0 above its highest); ties kept once."""
    higher = pair_scores[:, None, :] > pair_scores[:, :, None]  # [P, K, K']: score k' above k
    nearest = np.argmin(np.where(higher, pair_scores[:, None, :], np.inf), axis=2)
    above = higher.any(axis=2)
    tp_change = tp - np.where(above, np.take_along_axis(tp, nearest, axis=1), 0)
    fp_change = fp - np.where(above, np.take_along_axis(fp, nearest, axis=1), 0)
    tied_earlier = np.tril(pair_scores[:, None, :] == pair_scores[:, :, None], k=-1).any(axis=2)
    keep = (pair_scores > -np.inf) & ~tied_earlier & ((tp_change != 0) | (fp_change != 0))
    p, k = np.nonzero(keep)
    return pair_class[p], pair_scores[p, k], tp_change[p, k], fp_change[p, k]


def _counts_from_top(changes: np.ndarray) -> np.ndarray:
    """Counts at each distinct score (ascending) from their changes, plus 0 at +inf: the sum of
    the changes at and above it, as sed_scores_eval accumulates them."""
    return np.concatenate((np.cumsum(changes[::-1])[::-1], [0.0]))


def _f1(tp: float, fp: float, fn: float) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def _zero_nan(value: float) -> float:
    value = float(value)
    return 0.0 if np.isnan(value) else value


def _macro(per_class: Sequence[float], n_reference: Sequence[float]) -> float:
    values = [_zero_nan(v) for v, n in zip(per_class, n_reference, strict=True) if n > 0]
    return float(np.mean(values)) if values else 0.0


@cache
def _libraries() -> tuple[Any, Any, Any]:
    """Import sed_eval, dcase_util, sed_scores_eval once, with the writeable-scores fix."""
    import dcase_util
    import sed_eval
    import sed_scores_eval
    from sed_scores_eval.base_modules import statistics

    original = statistics.onset_offset_curves

    def onset_offset_curves(scores, timestamps, change_point_candidates=None):
        if not scores.flags.writeable:  # as fgnt/sed_scores_eval#17
            scores = scores.copy()
        return original(scores, timestamps, change_point_candidates)

    if not getattr(original, "__wrapped_writeable__", False):
        onset_offset_curves.__wrapped_writeable__ = True
        statistics.onset_offset_curves = onset_offset_curves
    return sed_eval, dcase_util, sed_scores_eval
