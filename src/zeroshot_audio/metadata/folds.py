"""Greedy class-disjoint folds: every selected class in exactly one fold, every clip in at most one.

Zero-shot evaluation needs test classes that training never saw, and no audio shared between
folds. Classes co-occur in clips, so assigning classes to folds decides which clips survive: a clip
whose labels land in two folds is lost (policy ``drop``) or loses the labels of the minority fold
(policy ``keep_fold_labels``).

The greedy algorithm (written down again in docs/reproduction.md):

1. Order the selected classes by clip count, largest first; ties in a seeded random order.
2. For each class ``c`` and each fold ``k`` compute, over the clips that carry ``c``:
   ``lost[k]`` = clips that are still intact (all their assigned labels in one fold) but would span
   two folds if ``c`` went to ``k``, and the fold loads (intact clips per fold) that would result.
3. A fold is eligible when its resulting load stays within ``(1 + balance_tolerance)`` x the
   resulting mean load, or when the class brings no clip that is not already in a fold (then no
   load grows); if no fold is eligible, the one with the smallest resulting load is taken.
4. Among eligible folds pick the fewest ``lost``, then the smallest resulting load, then the
   lowest fold index (the seeded class order already breaks the remaining symmetry).

It is vectorised over clips: per class only the clips carrying it are touched (a CSC column), so
the whole unbalanced set (2M clips, ~5M labels) is split in seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse

CROSS_FOLD_POLICIES = ("drop", "keep_fold_labels")


@dataclass(frozen=True)
class LabelMatrix:
    """Clips x classes incidence of the selected classes, built once from the label lists.

    ``flat_mids``/``flat_clip``/``flat_class`` keep every label occurrence in its original order
    (``flat_class`` is -1 for a label that is not selected), so labels can be filtered per clip
    without a Python loop over clips.
    """

    matrix: sparse.csr_matrix  # bool, n_clips x n_classes
    mids: np.ndarray  # class mid of each column
    flat_mids: pa.Array
    flat_clip: np.ndarray
    flat_class: np.ndarray

    @property
    def class_counts(self) -> np.ndarray:
        return np.asarray(self.matrix.sum(axis=0)).ravel().astype(np.int64)


def _as_list_array(labels: pd.Series) -> pa.ListArray:
    arrow = labels.array._pa_array if isinstance(labels.dtype, pd.ArrowDtype) else None
    if arrow is None:
        arrow = pa.array([list(x) for x in labels], pa.list_(pa.string()))
    if isinstance(arrow, pa.ChunkedArray):
        arrow = arrow.combine_chunks()
    return arrow


def label_matrix(labels: pd.Series, mids: Sequence[str]) -> LabelMatrix:
    """Sparse incidence of ``mids`` in ``labels`` (a series of mid lists); other mids are ignored."""
    arrow = _as_list_array(labels)
    flat = pc.list_flatten(arrow)
    flat_clip = pc.list_parent_indices(arrow).to_numpy()
    mids = np.asarray(mids, dtype=object)
    index = pc.index_in(flat, value_set=pa.array(mids, pa.string()))
    flat_class = index.fill_null(-1).to_numpy().astype(np.int64)
    selected = flat_class >= 0
    matrix = sparse.csr_matrix(
        (np.ones(selected.sum(), dtype=bool), (flat_clip[selected], flat_class[selected])),
        shape=(len(labels), len(mids)),
    )
    matrix.sum_duplicates()
    return LabelMatrix(matrix, mids, flat, flat_clip, flat_class)


def labels_in_fold(
    labels: LabelMatrix, clips: np.ndarray, clip_fold: np.ndarray, class_fold: np.ndarray
) -> pa.ListArray:
    """For each clip of ``clips`` (in that order), its labels whose class sits in the clip's fold."""
    fold_of_clip = np.full(labels.matrix.shape[0], -1, dtype=np.int64)
    fold_of_clip[clips] = clip_fold
    position = np.full(labels.matrix.shape[0], -1, dtype=np.int64)
    position[clips] = np.arange(len(clips))
    label_fold = np.where(labels.flat_class >= 0, class_fold[labels.flat_class], -2)
    keep = label_fold == fold_of_clip[labels.flat_clip]
    owner = position[labels.flat_clip[keep]]
    order = np.argsort(owner, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=len(clips)))])
    values = labels.flat_mids.filter(pa.array(keep)).take(pa.array(order))
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)


def assign_class_folds(
    labels: LabelMatrix, n_folds: int, balance_tolerance: float, seed: int
) -> np.ndarray:
    """Fold index of every class column of ``labels`` (see the module docstring)."""
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    rng = np.random.default_rng(seed)
    counts = labels.class_counts
    tie_break = rng.permutation(len(counts))
    order = np.lexsort((tie_break, -counts))

    csc = labels.matrix.tocsc()
    n_clips = labels.matrix.shape[0]
    per_fold = np.zeros((n_clips, n_folds), dtype=np.int32)  # assigned labels of clip in fold
    load = np.zeros(n_folds, dtype=np.int64)  # intact clips whose labels all sit in the fold
    class_fold = np.full(len(counts), -1, dtype=np.int64)
    folds = np.arange(n_folds)

    for c in order:
        clips = csc.indices[csc.indptr[c] : csc.indptr[c + 1]]
        present = per_fold[clips] > 0  # [m, K]
        n_present = present.sum(axis=1)
        unassigned = n_present == 0
        intact = n_present == 1
        home = np.where(intact, present.argmax(axis=1), -1)
        # For a choice k: intact clips homed elsewhere break; unassigned clips join k.
        homed = np.bincount(home[intact], minlength=n_folds)
        lost = intact.sum() - homed
        # new_load[k, j]: load of fold j if class c goes to fold k. Intact clips homed in another
        # fold than k break; clips with no assigned label yet join k.
        new_load = np.tile(load - homed, (n_folds, 1))
        new_load[folds, folds] = load + unassigned.sum()
        resulting = new_load[folds, folds]
        # Balance binds only when the class brings new clips: joining clips that already sit in a
        # fold changes no load, so it is always allowed.
        cap = (1.0 + balance_tolerance) * new_load.mean(axis=1)
        eligible = (resulting <= cap) | (unassigned.sum() == 0)
        if not eligible.any():
            eligible = resulting == resulting.min()
        candidates = np.flatnonzero(eligible)
        best = candidates[np.lexsort((candidates, resulting[candidates], lost[candidates]))[0]]
        class_fold[c] = best
        per_fold[clips, best] += 1
        load = new_load[best]
    return class_fold


@dataclass(frozen=True)
class ClipAssignment:
    fold: np.ndarray  # per clip, -1 when dropped
    reason: np.ndarray  # per clip: "" kept, else why it was dropped
    labels_removed: np.ndarray  # per clip: selected labels removed by keep_fold_labels


def assign_clips(
    labels: LabelMatrix, class_fold: np.ndarray, n_folds: int, policy: str, seed: int
) -> ClipAssignment:
    """Put each clip in the fold of its selected labels, following ``policy`` for mixed clips."""
    if policy not in CROSS_FOLD_POLICIES:
        raise ValueError(f"cross_fold_policy must be one of {CROSS_FOLD_POLICIES}, got {policy!r}")
    onehot = sparse.csr_matrix(
        (np.ones(len(class_fold)), (np.arange(len(class_fold)), class_fold)),
        shape=(len(class_fold), n_folds),
    )
    per_fold = np.asarray((labels.matrix.astype(np.int32) @ onehot).todense())  # [n_clips, K]
    n_labels = per_fold.sum(axis=1)
    n_present = (per_fold > 0).sum(axis=1)
    best = per_fold.max(axis=1, keepdims=True)
    tied = per_fold == best
    jitter = np.random.default_rng(seed).random(per_fold.shape)
    majority = np.argmax(np.where(tied, 1.0 + jitter, 0.0), axis=1)

    fold = np.where(n_present == 1, majority, -1)
    reason = np.full(len(fold), "", dtype=object)
    reason[n_labels == 0] = "no selected class"
    spans = n_present > 1
    removed = np.zeros(len(fold), dtype=np.int64)
    if policy == "drop":
        reason[spans] = "labels span folds"
    else:
        fold[spans] = majority[spans]
        removed[spans] = n_labels[spans] - best[spans, 0]
    return ClipAssignment(fold=fold, reason=reason, labels_removed=removed)


def keep_audio_in_one_fold(ytid: pd.Series, fold: np.ndarray) -> np.ndarray:
    """Drop (-1) clips whose YTID also sits in another fold, keeping the YTID's majority fold.

    AudioSet lists one segment per video in each file, but two files (or a hand-made list) can cut
    two segments from the same video; those must not end up on both sides of a fold boundary.
    """
    frame = pd.DataFrame({"ytid": ytid.to_numpy(), "fold": fold})
    kept = frame[frame["fold"] >= 0]
    n_folds_per_video = kept.groupby("ytid")["fold"].nunique()
    shared = n_folds_per_video.index[n_folds_per_video > 1]
    if len(shared) == 0:
        return fold
    sub = kept[kept["ytid"].isin(shared)]
    majority = (
        sub.groupby(["ytid", "fold"])
        .size()
        .reset_index(name="n")
        .sort_values(["ytid", "n", "fold"], ascending=[True, False, True])
        .drop_duplicates("ytid")
        .set_index("ytid")["fold"]
    )
    out = fold.copy()
    conflict = sub.index[sub["fold"].to_numpy() != majority.loc[sub["ytid"]].to_numpy()]
    out[conflict] = -1
    return out


def select_classes(
    classes: pd.DataFrame,
    drop_restrictions: Sequence[str],
    leaf_only: bool,
    min_clips: int,
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Classes eligible for the folds, and the mids left out under each rule (first rule wins)."""
    count_cols = [c for c in classes.columns if c.startswith("n_clips_")]
    n_clips = classes[count_cols].sum(axis=1) if count_cols else pd.Series(0, index=classes.index)
    restricted = classes["restrictions"].map(lambda r: bool(set(r) & set(drop_restrictions)))
    not_leaf = ~classes["is_leaf"].astype(bool) if leaf_only else pd.Series(False, classes.index)
    too_rare = n_clips < min_clips
    dropped: dict[str, list[str]] = {}
    remaining = pd.Series(True, index=classes.index)
    for rule, mask in (
        ("restricted", restricted),
        ("not_leaf", not_leaf),
        ("too_few_clips", too_rare),
    ):
        hit = remaining & mask
        dropped[rule] = classes.loc[hit, "mid"].tolist()
        remaining &= ~mask
    selected = classes.loc[remaining].assign(n_clips=n_clips[remaining])
    return selected.reset_index(drop=True), dropped


def validate_rotations(rotations: Sequence[dict], n_folds: int) -> None:
    """Fail early if fold roles overlap or name folds that do not exist."""
    for rotation in rotations:
        name = rotation.get("name", rotation)
        train = list(rotation["train"])
        roles = [*train, rotation["validation"], rotation["test"]]
        if any(not 0 <= int(f) < n_folds for f in roles):
            raise ValueError(f"rotation {name}: folds must lie in 0..{n_folds - 1}, got {roles}")
        if len(set(roles)) != len(roles):
            raise ValueError(f"rotation {name}: train/validation/test folds overlap: {roles}")


@dataclass(frozen=True)
class FoldSplit:
    """What :func:`split_into_folds` decided: the folds, and why each dropped clip was dropped."""

    class_folds: pd.DataFrame  # mid, fold
    clip_folds: pd.DataFrame  # ytid, start_s, end_s, fold, labels (in its fold), source_split
    selected: pd.DataFrame  # the selected rows of the class table
    dropped_classes: dict[str, list[str]]  # selection rule -> mids it dropped
    reason: np.ndarray  # per input clip: "" when kept, else why it was dropped
    labels_removed: np.ndarray  # per kept clip: labels removed (keep_fold_labels policy)


def split_into_folds(
    clips: pd.DataFrame,
    classes: pd.DataFrame,
    selection: Mapping[str, Any],
    n_folds: int,
    balance_tolerance: float,
    policy: str,
    seed: int,
) -> FoldSplit:
    """The whole split: select classes, assign them greedily to ``n_folds`` class-disjoint folds,
    place each clip in at most one fold (``policy``), and keep all segments of one audio file in
    one fold."""
    selected, dropped_classes = select_classes(
        classes,
        drop_restrictions=selection.get("drop_restrictions", []),
        leaf_only=bool(selection.get("leaf_only", False)),
        min_clips=int(selection.get("min_clips", 0)),
    )
    if len(selected) < n_folds:
        raise ValueError(
            f"only {len(selected)} classes pass the selection {dict(selection)}; need >= {n_folds}"
        )
    labels = label_matrix(clips["labels"], selected["mid"].to_numpy())
    class_fold = assign_class_folds(labels, n_folds, balance_tolerance, seed)
    assignment = assign_clips(labels, class_fold, n_folds, policy, seed)
    fold = keep_audio_in_one_fold(clips["ytid"], assignment.fold)
    reason = assignment.reason.copy()
    reason[(fold < 0) & (assignment.fold >= 0)] = "audio in another fold"
    kept = np.flatnonzero(fold >= 0)
    clip_fold = fold[kept]
    clip_folds = pd.DataFrame(
        {
            "ytid": clips["ytid"].to_numpy()[kept],
            "start_s": clips["start_s"].to_numpy()[kept],
            "end_s": clips["end_s"].to_numpy()[kept],
            "fold": clip_fold.astype(np.int64),
            # object column of string arrays: what pandas gives back when it reads the Parquet
            "labels": labels_in_fold(labels, kept, clip_fold, class_fold).to_numpy(
                zero_copy_only=False
            ),
            "source_split": clips["source_split"].to_numpy()[kept],
        }
    )
    class_folds = pd.DataFrame({"mid": selected["mid"], "fold": class_fold.astype(np.int64)})
    return FoldSplit(
        class_folds, clip_folds, selected, dropped_classes, reason, assignment.labels_removed[kept]
    )
