"""Paired bootstrap of A - B: the numbers it resamples are the project's metrics, and its intervals
behave as intervals of a difference must (0 for identical methods, away from 0 for a clear win)."""

from __future__ import annotations

import numpy as np
import pytest

from zeroshot_audio.model import metrics
from zeroshot_audio.model.metrics import classification_metrics
from zeroshot_audio.model.uncertainty import (
    DifferenceInterval,
    PairedScores,
    _Counts,
    _multiplicities,
    clip_set_metrics,
    format_difference,
    paired_bootstrap,
    stratified_paired_bootstrap,
)


def _rotation(seed: int, n: int = 60, c: int = 8, signal: float = 1.5) -> PairedScores:
    """Method A sees the labels through noise; method B is pure noise."""
    rng = np.random.default_rng(seed)
    y = rng.random((n, c)) < 0.15
    y[0] = True  # every class has a positive
    a = signal * y + rng.normal(size=(n, c))
    b = rng.normal(size=(n, c))
    return PairedScores(y, a, b, a > 0.75, b > 0.75)


@pytest.mark.parametrize("discrete", [False, True])
def test_clip_set_metrics_equal_the_project_metrics(discrete):
    rng = np.random.default_rng(3)
    y = rng.random((50, 9)) < 0.2
    y[:, 4] = False  # a class absent from the clips: left out of macro-F1 and mAP
    scores = rng.normal(size=y.shape) + y
    if discrete:  # many ties: a threshold cannot split them, AP must group them
        scores = np.round(scores)
    predictions = scores > 0.5
    ours = clip_set_metrics(y, scores, predictions)
    reference = classification_metrics(y, predictions, scores)
    for metric in ("micro_f1", "macro_f1", "map"):
        assert ours[metric] == pytest.approx(reference[metric], abs=1e-12)


@pytest.mark.parametrize("cores", [1, 3])
@pytest.mark.parametrize("discrete", [False, True])
def test_a_resample_is_scored_like_the_materialised_clip_set(discrete, cores, monkeypatch):
    """Multiplicities w are the same as repeating clips: check against y[idx], s[idx]; with the
    classes' AP on one thread or several."""
    monkeypatch.setattr(metrics, "available_cores", lambda: cores)
    paired = _rotation(1)
    if discrete:  # tied scores, including ties between a positive and negatives
        rounded = np.round(paired.scores_a)
        paired = PairedScores(
            paired.targets, rounded, paired.scores_b, paired.predictions_a, paired.predictions_b
        )
    rng = np.random.default_rng(7)
    idx = rng.integers(0, paired.n_clips, size=(5, paired.n_clips))
    weights = _multiplicities(idx, paired.n_clips)
    assert weights.sum(axis=1).tolist() == [paired.n_clips] * 5
    got = _Counts(paired).metrics(weights, 0)  # [3, 5]
    for b in range(5):
        ref = classification_metrics(
            paired.targets[idx[b]], paired.predictions_a[idx[b]], paired.scores_a[idx[b]]
        )
        np.testing.assert_allclose(got[:, b], [ref["micro_f1"], ref["macro_f1"], ref["map"]])


def test_a_clip_drawn_more_often_than_a_byte_counts_is_scored_exactly():
    """Multiplicities travel as bytes while every count fits in one; a clip repeated 300 times
    must still count 300 times (as in the materialised clip set)."""
    paired = _rotation(5, n=400, c=6)
    rng = np.random.default_rng(2)
    idx = np.stack(
        [np.r_[np.zeros(300, int), rng.integers(0, 400, 100)], rng.integers(0, 400, 400)]
    )
    got = _Counts(paired).metrics(_multiplicities(idx, paired.n_clips), 0)
    for b in range(2):
        ref = classification_metrics(
            paired.targets[idx[b]], paired.predictions_a[idx[b]], paired.scores_a[idx[b]]
        )
        np.testing.assert_allclose(got[:, b], [ref["micro_f1"], ref["macro_f1"], ref["map"]])


def test_a_class_whose_positives_fall_out_of_a_resample_is_left_out_of_macro_and_map():
    # 4 clips, 2 classes. Class 1's only positive is clip 3. Drop clip 3 (weight 0): class 1 has
    # no positive, so macro-F1 and mAP are those of class 0 alone, for both methods alike.
    y = np.array([[1, 0], [0, 0], [1, 0], [0, 1]], dtype=bool)
    s = np.array([[0.9, 0.1], [0.2, 0.3], [0.8, 0.2], [0.1, 0.9]])
    p = s > 0.5
    counts = _Counts(PairedScores(y, s, s, p, p))
    without_clip_3 = counts.metrics(np.array([[1.0, 1.0, 1.0, 0.0]]), 0)[:, 0]
    # class 0: TP 2, FP 0, FN 0 -> F1 1, AP 1; class 1 skipped. micro: TP 2, FP 0, FN 0 -> 1.
    np.testing.assert_allclose(without_clip_3, [1.0, 1.0, 1.0])
    # A resample of clip 1 only has no positive at all: every metric is 0 (as metrics.py).
    only_clip_1 = counts.metrics(np.array([[0.0, 4.0, 0.0, 0.0]]), 0)[:, 0]
    np.testing.assert_allclose(only_clip_1, [0.0, 0.0, 0.0])


def test_identical_score_sets_give_exactly_zero():
    paired = _rotation(2)
    same = PairedScores(
        paired.targets, paired.scores_a, paired.scores_a, paired.predictions_a, paired.predictions_a
    )
    for method in ("percentile", "BCa"):
        for interval in paired_bootstrap(same, interval_method=method).values():
            assert (interval.estimate, interval.low, interval.high) == (0.0, 0.0, 0.0)
            assert not interval.excludes_zero


def test_a_clearly_better_method_gets_an_interval_above_zero_and_the_reverse_below():
    paired = _rotation(4)
    better = paired_bootstrap(paired)
    swapped = PairedScores(
        paired.targets, paired.scores_b, paired.scores_a, paired.predictions_b, paired.predictions_a
    )
    worse = paired_bootstrap(swapped)
    for metric, interval in better.items():
        assert 0.0 < interval.low <= interval.estimate <= interval.high, metric
        assert interval.excludes_zero
        assert worse[metric].estimate == pytest.approx(-interval.estimate)
        assert worse[metric].high < 0.0


def test_pure_noise_difference_is_not_declared_real():
    rng = np.random.default_rng(5)
    y = rng.random((80, 6)) < 0.2
    a, b = rng.normal(size=y.shape), rng.normal(size=y.shape)
    intervals = paired_bootstrap(PairedScores(y, a, b, a > 0.5, b > 0.5))
    assert all(i.low < 0.0 < i.high for i in intervals.values())


def test_seeded_runs_reproduce_and_other_seeds_differ():
    paired = _rotation(6)
    first = paired_bootstrap(paired, seed=11)
    assert paired_bootstrap(paired, seed=11) == first
    other = paired_bootstrap(paired, seed=12)
    assert other["micro_f1"].low != first["micro_f1"].low
    assert other["micro_f1"].estimate == first["micro_f1"].estimate  # the all-clips estimate


def test_interval_width_shrinks_with_more_clips():
    small = paired_bootstrap(_rotation(8, n=40))["micro_f1"]
    large = paired_bootstrap(_rotation(8, n=640))["micro_f1"]
    assert large.high - large.low < 0.6 * (small.high - small.low)


def test_pooled_estimate_is_the_mean_of_rotations_with_their_own_classes():
    rotations = [_rotation(9, n=50, c=5), _rotation(10, n=70, c=8), _rotation(11, n=40, c=3)]
    single, pooled = stratified_paired_bootstrap(rotations, seed=0)
    for metric, interval in pooled.items():
        assert interval.estimate == pytest.approx(np.mean([s[metric].estimate for s in single]))
        assert interval.n_clips == 160
        assert interval.excludes_zero
        # pooling three rotations narrows the interval compared with a single rotation's
        widths = [s[metric].high - s[metric].low for s in single]
        assert interval.high - interval.low < max(widths)
    assert stratified_paired_bootstrap(rotations[:1], seed=3) == (
        [paired_bootstrap(rotations[0], seed=3)],
        paired_bootstrap(rotations[0], seed=3),
    )
    # each rotation's own interval is the one-rotation bootstrap of it (its own stream)
    assert single[0]["map"].estimate == paired_bootstrap(rotations[0])["map"].estimate


def test_pooled_distribution_is_the_mean_of_the_rotations_resample_by_resample(monkeypatch):
    """The pooled interval is taken from the per-rotation resamples, not from new ones: the
    percentile interval of the resample-wise mean of the rotations' distributions."""
    from zeroshot_audio.model import uncertainty

    rotations = [_rotation(9, n=50, c=5), _rotation(10, n=70, c=8)]
    calls = []
    real = uncertainty._bootstrap

    def recording(data, statistic, **kwargs):
        result, caught = real(data, statistic, **kwargs)
        calls.append((kwargs["n_resamples"], np.asarray(result.bootstrap_distribution)))
        return result, caught

    monkeypatch.setattr(uncertainty, "_bootstrap", recording)
    _, pooled = stratified_paired_bootstrap(rotations, seed=4)
    assert [n for n, _ in calls] == [1000, 1000, 0]  # two rotations resampled, pooled reuses them
    mean = (calls[0][1] + calls[1][1]) / 2
    np.testing.assert_array_equal(calls[2][1], mean)
    for m, metric in enumerate(("micro_f1", "macro_f1", "map")):
        low, high = np.quantile(mean[m], [0.025, 0.975])
        assert (pooled[metric].low, pooled[metric].high) == pytest.approx((low, high))


def test_format_difference_in_points():
    interval = DifferenceInterval("micro_f1", 0.016, -0.012, 0.043, 0.95, 1000, 210, "percentile")
    assert format_difference(interval) == "attention - uniform: +1.6 [-1.2, +4.3] micro-F1 points"
    line = format_difference(DifferenceInterval("map", -0.02, -0.05, -0.001, 0.95, 1000, 9, "BCa"))
    assert line == "attention - uniform: -2.0 [-5.0, -0.1] mAP points"
    assert interval.to_dict()["excludes_zero"] is False


def test_bad_inputs_are_named():
    paired = _rotation(12)
    with pytest.raises(ValueError, match="scores_b has shape"):
        PairedScores(
            paired.targets, paired.scores_a, paired.scores_b[:, :3], paired.targets, paired.targets
        )
    with pytest.raises(ValueError, match="NaN"):
        PairedScores(
            paired.targets,
            paired.scores_a * np.nan,
            paired.scores_b,
            paired.targets,
            paired.targets,
        )
    with pytest.raises(ValueError, match=">= 1000"):
        paired_bootstrap(paired, n_resamples=200)
    with pytest.raises(ValueError, match="no rotation"):
        stratified_paired_bootstrap([])
