"""Cross-fitting: every test clip scored once, never by a model that trained or validated on it."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from zeroshot_audio.model.crossfit import cross_fit_folds


def _clips(n: int, n_classes: int = 12, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    rng = np.random.default_rng(seed)
    ids = [f"clip{i:04d}" for i in range(n)]
    # Zipf-like class frequencies: a few common test classes, several rare ones
    p = 1.0 / np.arange(1, n_classes + 1)
    labels = [
        [f"/m/c{j}" for j in np.flatnonzero(rng.random(n_classes) < 0.5 * p)] for _ in range(n)
    ]
    return ids, labels


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("stratify", [False, True])
def test_no_clip_is_scored_by_a_model_that_saw_it_and_all_are_scored_once(k, stratify):
    ids, labels = _clips(101)
    folds = cross_fit_folds(ids, labels=labels if stratify else None, k=k, seed=1)
    assert len(folds) == k
    scored = Counter(c for f in folds for c in f.scored)
    assert set(scored) == set(ids) and set(scored.values()) == {1}
    for fold in folds:
        seen = set(fold.inner_train) | set(fold.inner_validation)
        assert not seen & set(fold.scored), f"fold {fold.index} scores clips it trained on"
        assert not set(fold.inner_train) & set(fold.inner_validation)
        # the model uses every clip of the test fold: it either saw it or scores it
        assert seen | set(fold.scored) == set(ids)
        assert fold.inner_train and fold.inner_validation
    sizes = [len(f.scored) for f in folds]
    assert max(sizes) - min(sizes) <= (1 if not stratify else 3)


def test_validation_fraction_of_the_training_parts():
    ids, _ = _clips(90)
    for fold in cross_fit_folds(ids, k=3, validation_fraction=0.2, seed=0):
        assert len(fold.scored) == 30
        assert len(fold.inner_validation) == 12  # round(0.2 * 60)
        assert len(fold.inner_train) == 48


def test_seeded_reproducible_and_seed_dependent():
    ids, labels = _clips(60)
    first = cross_fit_folds(ids, labels=labels, seed=7)
    assert cross_fit_folds(ids, labels=labels, seed=7) == first
    assert cross_fit_folds(ids, labels=labels, seed=8) != first


def test_stratification_spreads_every_class_over_the_parts():
    ids, labels = _clips(150, n_classes=12, seed=3)
    k = 3
    folds = cross_fit_folds(ids, labels=labels, k=k, seed=0)
    label_of = dict(zip(ids, labels, strict=True))
    totals = Counter(label for row in labels for label in row)
    for label, total in totals.items():
        per_part = [sum(label in label_of[c] for c in f.scored) for f in folds]
        # as even as integers allow: no part more than one clip away from total / k
        assert max(per_part) - min(per_part) <= 1, (label, per_part)
        if total >= k:
            assert min(per_part) >= 1  # every supervised model trains on every class
    random_folds = cross_fit_folds(ids, k=k, seed=0)
    assert random_folds != folds


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="repeated"):
        cross_fit_folds(["a", "b", "a", "c"])
    with pytest.raises(ValueError, match="k >= 2"):
        cross_fit_folds(["a", "b", "c"], k=1)
    with pytest.raises(ValueError, match="too few"):
        cross_fit_folds(["a", "b"], k=3)
    with pytest.raises(ValueError, match="labels has 2 rows"):
        cross_fit_folds(["a", "b", "c", "d"], labels=[["x"], ["y"]])
