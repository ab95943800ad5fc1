"""Cross-fitting the supervised upper bound inside a test fold, so every test clip is scored.

Why: the supervised upper bound must be trained on the test classes, i.e. on test-fold clips. The
old protocol spent 70 % of each test fold on that and scored the zero-shot methods on the
remaining 30 % only (68-75 clips per rotation on the default data; 175k thrown away on AudioSet).
Cross-fitting (as in double/debiased ML, Chernozhukov et al. 2018) splits the test fold into K
parts; the supervised model for part k is trained and validated on the other K - 1 parts and
scores part k. Every test clip is then scored exactly once by a supervised model that never saw
it, and the zero-shot methods (which never train on test classes) score all of them too.

Splits are on clip ids (strings), seeded. With labels, the K parts are stratified by the iterative
stratification of Sechidis et al. (2011): the rarest label is placed first, each of its clips going
to the part that still wants most of that label, so a rare test class is not all in one part (a
supervised model whose training parts lack a class cannot learn it). Inside the K - 1 training
parts, ``validation_fraction`` of the clips (seeded, at least one) form the inner validation set
used for early stopping and the threshold.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CrossFitFold:
    """One supervised model's clips: it trains on ``inner_train``, early-stops and tunes its
    threshold on ``inner_validation`` and scores ``scored`` (disjoint from both)."""

    index: int
    inner_train: tuple[str, ...]
    inner_validation: tuple[str, ...]
    scored: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "inner_train": list(self.inner_train),
            "inner_validation": list(self.inner_validation),
            "scored": list(self.scored),
        }


def cross_fit_folds(
    clip_ids: Sequence[str],
    *,
    labels: Sequence[Sequence[str]] | None = None,
    k: int = 3,
    validation_fraction: float = 0.2,
    seed: int = 0,
) -> list[CrossFitFold]:
    """K (inner_train, inner_validation, scored) assignments covering every clip once as scored.

    ``labels[i]`` are the (test-class) labels of ``clip_ids[i]`` for stratification; without them
    the parts are a seeded random partition of near-equal size.
    """
    ids = [str(c) for c in clip_ids]
    duplicated = [c for c, n in Counter(ids).items() if n > 1]
    if duplicated:
        raise ValueError(f"clip ids must be unique; repeated: {sorted(duplicated)[:5]}")
    if k < 2:
        raise ValueError(f"cross-fitting needs k >= 2 parts, got {k}")
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must lie in (0, 1), got {validation_fraction}")
    # each model needs >= 1 scored clip and >= 2 clips to train and validate on
    if len(ids) < max(k, 3) or len(ids) - int(np.ceil(len(ids) / k)) < 2:
        raise ValueError(f"{len(ids)} clips are too few for {k}-fold cross-fitting")
    if labels is not None and len(labels) != len(ids):
        raise ValueError(f"labels has {len(labels)} rows for {len(ids)} clip ids")
    rng = np.random.default_rng(seed)
    part = (
        _stratified_parts(labels, len(ids), k, rng) if labels else _random_parts(len(ids), k, rng)
    )
    folds = []
    for index in range(k):
        scored = [ids[i] for i in np.flatnonzero(part == index)]
        rest = np.flatnonzero(part != index)
        rest = rest[rng.permutation(rest.size)]
        n_validation = min(max(1, round(validation_fraction * rest.size)), rest.size - 1)
        validation = sorted(ids[i] for i in rest[:n_validation])
        train = sorted(ids[i] for i in rest[n_validation:])
        folds.append(CrossFitFold(index, tuple(train), tuple(validation), tuple(scored)))
    return folds


def _random_parts(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    part = np.arange(n) % k
    return part[rng.permutation(n)]


def _stratified_parts(
    labels: Sequence[Sequence[str]], n: int, k: int, rng: np.random.Generator
) -> np.ndarray:
    """Iterative stratification (Sechidis et al. 2011) of n multi-label clips into k parts."""
    clip_labels = [sorted({str(label) for label in row}) for row in labels]
    wanted_total = np.full(k, n / k)
    label_counts = Counter(label for row in clip_labels for label in row)
    wanted = {label: np.full(k, count / k) for label, count in label_counts.items()}
    part = np.full(n, -1)
    unassigned = set(range(n))
    remaining = dict(label_counts)
    order = rng.permutation(n)  # random tie-breaking among clips
    # Each label's clips in that random order: picking a label then visits only its own clips
    # (scanning every clip per label was quadratic: minutes at AudioSet's 300k-clip folds).
    clips_of: dict[str, list[int]] = {label: [] for label in label_counts}
    for i in order:
        for label in clip_labels[i]:
            clips_of[label].append(int(i))
    while unassigned:
        pending = {label: count for label, count in remaining.items() if count > 0}
        if pending:  # the rarest label still to place, ties broken by name for determinism
            label = min(pending, key=lambda name: (pending[name], name))
            clips = [i for i in clips_of[label] if i in unassigned]
        else:
            label, clips = None, [i for i in order if i in unassigned]
        for i in clips:
            desire = wanted[label] if label is not None else wanted_total
            best = np.flatnonzero(desire == desire.max())
            if best.size > 1:  # then the part that wants most clips, then chance
                totals = wanted_total[best]
                best = best[totals == totals.max()]
            chosen = int(rng.choice(best)) if best.size > 1 else int(best[0])
            part[i] = chosen
            unassigned.discard(i)
            wanted_total[chosen] -= 1
            for name in clip_labels[i]:
                wanted[name][chosen] -= 1
                remaining[name] -= 1
    return part
