"""Threshold rules, metric conventions and the zero-rule baseline."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score

from zeroshot_audio.model import metrics
from zeroshot_audio.model.metrics import (
    ThresholdConfig,
    apply_threshold_rule,
    average_precision,
    classification_metrics,
    top_k_predictions,
    tune_global_threshold,
    zero_rule,
)


def test_tuned_threshold_is_the_best_global_cut_by_brute_force():
    rng = np.random.default_rng(0)
    y = rng.random((40, 6)) < 0.25
    scores = y * 0.8 + rng.normal(scale=0.6, size=y.shape)
    threshold, best = tune_global_threshold(y, scores)
    brute = max(
        f1_score(y.ravel(), scores.ravel() >= t, zero_division=0) for t in np.unique(scores)
    )
    assert best == pytest.approx(brute)
    assert f1_score(y.ravel(), scores.ravel() >= threshold, zero_division=0) == pytest.approx(best)


def test_tuned_threshold_never_splits_ties():
    y = np.array([[1, 0, 0, 0]], dtype=bool)
    scores = np.array([[0.5, 0.5, 0.5, 0.1]])
    threshold, f1 = tune_global_threshold(y, scores)
    # cutting after the first 0.5 would give F1 1.0 but is impossible; all three 0.5s go together
    assert f1 == pytest.approx(0.5)
    assert (scores >= threshold).sum() == 3


def _full_sort_threshold(y, scores):
    # the definition: every (clip, class) score sorted, the best cut between distinct scores
    y, s = np.asarray(y, bool).ravel(), np.asarray(scores, np.float64).ravel()
    order = np.argsort(-s, kind="stable")
    f1 = 2.0 * np.cumsum(y[order]) / (np.arange(1, s.size + 1) + y.sum())
    f1 = np.where(np.r_[s[order][1:] < s[order][:-1], True], f1, -1.0)
    best = int(np.argmax(f1))
    above = s[order][best]
    below = s[order][best + 1] if best + 1 < s.size else above
    return (below + (above - below) / 2.0 if below < above else above), f1[best]


@pytest.mark.parametrize(
    ("signal", "rate", "dtype"),
    [
        (1.0, 0.01, np.float32),  # informative scores: the best cut lies near the top
        (0.0, 0.01, np.float32),  # noise: the best cut is predicting (almost) everything
        (0.3, 0.3, np.float64),  # dense positives: 4P covers every score
        (2.0, 0.002, np.float32),
    ],
)
def test_tuned_threshold_sorting_only_the_top_equals_the_full_sort(signal, rate, dtype):
    rng = np.random.default_rng(7)
    y = rng.random((3000, 50)) < rate
    scores = (y * signal + rng.normal(size=y.shape)).round(2).astype(dtype)  # many ties
    threshold, f1 = tune_global_threshold(y, scores)
    expected_threshold, expected_f1 = _full_sort_threshold(y, scores)
    assert f1 == expected_f1
    assert threshold == expected_threshold
    assert ((scores >= threshold) == (scores >= expected_threshold)).all()


def test_tuned_threshold_refuses_nan_scores():
    with pytest.raises(ValueError, match="1 NaN"):
        tune_global_threshold(np.array([[1, 0]]), np.array([[0.5, np.nan]]))


def test_top_k_and_rules():
    scores = np.array([[0.1, 0.9, 0.5], [0.7, 0.2, 0.3]])
    assert top_k_predictions(scores, 2).tolist() == [[False, True, True], [True, False, True]]
    assert apply_threshold_rule(scores, "fixed", threshold=0.5).tolist() == [
        [False, True, True],
        [True, False, False],
    ]
    with pytest.raises(ValueError, match="unknown threshold rule"):
        apply_threshold_rule(scores, "median")


def test_macro_f1_and_map_skip_classes_absent_from_the_clips():
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=bool)  # class 2 never occurs
    pred = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=bool)
    scores = np.array([[0.9, 0.1, 0.6], [0.2, 0.8, 0.1], [0.7, 0.4, 0.3]])
    m = classification_metrics(y, pred, scores)
    # class 0: F1 1; class 1: P 1, R 1/2 -> 2/3; class 2: absent (F1 0 by zero_division, skipped)
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["per_class_f1"][2] == 0.0 and np.isnan(m["per_class_ap"][2])
    # micro: TP 3, FP 1 (class 2 on clip 0), FN 1 -> 6 / 8
    assert m["micro_f1"] == pytest.approx(0.75)
    assert m["map"] == pytest.approx(1.0)  # both present classes perfectly ranked
    assert m["n_classes_present"] == 2


def test_zero_rule_predicts_the_k_most_frequent_reference_classes():
    reference = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 0, 0], [0, 1, 0, 1]], dtype=bool)
    scores, predictions, k = zero_rule(reference, n_clips=3)
    assert k == 2  # mean label count 2
    assert predictions.tolist() == [[True, True, False, False]] * 3
    assert scores[0].tolist() == pytest.approx([0.75, 0.75, 0.25, 0.25])


def test_threshold_config_rejects_unknown_keys_and_bad_values_naming_them():
    assert ThresholdConfig.from_dict({"rule": "top_k", "top_k": 3}).top_k == 3
    with pytest.raises(ValueError, match=r"unknown threshold parameter\(s\) \['topk'\]"):
        ThresholdConfig.from_dict({"rule": "top_k", "topk": 3})
    with pytest.raises(ValueError, match="must be one of"):
        ThresholdConfig(rule="median")
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        ThresholdConfig(rule="top_k", top_k=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_average_precision_and_f1_equal_scikit_learn_with_ties_and_absent_classes(dtype):
    """The fast AP and the counted F1 must be scikit-learn's numbers, ties included."""

    rng = np.random.default_rng(3)
    n, c = 2_000, 70  # more than one block of 64 columns
    y = rng.random((n, c)) < rng.uniform(0.002, 0.2, c)
    y[:, 5] = False  # a class without a positive
    y[:, 6] = True  # a class that every clip has
    scores = (rng.standard_normal((n, c)) + 1.2 * y).astype(dtype)
    scores[:, :10] = np.round(scores[:, :10], 1)  # many ties
    scores[:, 11] = 0.25  # one score for every clip
    predictions = scores > 0.6
    m = classification_metrics(y, predictions, scores)
    present = np.flatnonzero(y.any(axis=0))
    expected_ap = np.full(c, np.nan)
    expected_ap[present] = average_precision_score(
        y[:, present], scores[:, present].astype(np.float64), average=None
    )
    np.testing.assert_allclose(m["per_class_ap"], expected_ap, rtol=0, atol=1e-12)
    assert np.isnan(m["per_class_ap"][5])
    assert m["map"] == pytest.approx(np.nanmean(expected_ap), abs=1e-12)
    np.testing.assert_allclose(
        m["per_class_f1"], f1_score(y, predictions, average=None, zero_division=0), atol=1e-12
    )
    assert m["micro_f1"] == pytest.approx(f1_score(y, predictions, average="micro"), abs=1e-12)
    assert m["macro_f1"] == pytest.approx(
        f1_score(y, predictions, average="macro", labels=present, zero_division=0), abs=1e-12
    )


def test_average_precision_refuses_nan_scores_naming_the_column():
    y = np.array([[1, 0], [0, 1], [1, 1]], dtype=bool)
    scores = np.array([[0.9, 0.1], [0.2, np.nan], [0.7, 0.4]])
    with pytest.raises(ValueError, match="class column 1"):
        average_precision(y, scores)


def test_average_precision_on_several_threads_equals_one_thread(monkeypatch):
    """Blocks of classes run on a thread per core: the result (and the column a bad score is
    reported in) must not depend on how many there are or which finishes first."""
    rng = np.random.default_rng(11)
    y = rng.random((500, 70)) < 0.1  # five blocks of columns
    scores = rng.standard_normal((500, 70)) + y
    monkeypatch.setattr(metrics, "available_cores", lambda: 1)
    one_thread = average_precision(y, scores)
    monkeypatch.setattr(metrics, "available_cores", lambda: 4)
    np.testing.assert_array_equal(average_precision(y, scores), one_thread)
    scores[3, 50] = np.inf
    with pytest.raises(ValueError, match="class column 50 "):
        average_precision(y, scores)
