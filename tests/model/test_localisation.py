"""Time stamps from attention and their segment-level scoring, on hand-made cases."""

import numpy as np
import pandas as pd
import pytest

from zeroshot_audio.model.localisation import (
    LocalisationRule,
    active_segments,
    all_active,
    segment_f1,
    segments_to_events,
    strong_label_grid,
)


def _attention(weights, n_segments=10):
    """[1, T, 1] attention from the weights of the valid segments (padding = 0)."""
    out = np.zeros((1, n_segments, 1))
    out[0, : len(weights), 0] = np.asarray(weights, dtype=float) / np.sum(weights)
    valid = np.zeros((1, n_segments), dtype=bool)
    valid[0, : len(weights)] = True
    return out, valid


# -- which segments are "high" ----------------------------------------------------------------


def test_uniform_ratio_marks_segments_above_a_flat_attention():
    attention, valid = _attention([1, 1, 6, 6, 1, 1, 1, 1])  # 8 valid, flat share = 1/8
    high = active_segments(attention, valid, LocalisationRule("uniform_ratio", 1.0))
    assert np.flatnonzero(high[0, :, 0]).tolist() == [2, 3]


def test_flat_attention_marks_every_valid_segment_and_never_padding():
    attention, valid = _attention([1.0] * 7)  # softmax of equal logits, 3 padding segments
    for rule in (
        LocalisationRule("uniform_ratio"),
        LocalisationRule("max_ratio"),
        LocalisationRule("mass", 1.0),
    ):
        high = active_segments(attention, valid, rule)
        assert high[0, :, 0].tolist() == [True] * 7 + [False] * 3, rule


def test_max_ratio_and_mass_rules():
    attention, valid = _attention([0.05, 0.4, 0.3, 0.15, 0.1])
    max_half = active_segments(attention, valid, LocalisationRule("max_ratio", 0.5))
    assert np.flatnonzero(max_half[0, :, 0]).tolist() == [1, 2]  # >= 0.2
    mass = active_segments(attention, valid, LocalisationRule("mass", 0.8))
    # 0.4 + 0.3 = 0.7 < 0.8, so the third largest (0.15) is needed too.
    assert np.flatnonzero(mass[0, :, 0]).tolist() == [1, 2, 3]


def test_rules_apply_per_class_and_per_clip():
    attention = np.zeros((2, 4, 2))
    attention[0, :, 0] = [0.7, 0.1, 0.1, 0.1]
    attention[0, :, 1] = [0.1, 0.1, 0.1, 0.7]
    attention[1, :2, 0] = [0.2, 0.8]
    attention[1, :2, 1] = [0.5, 0.5]
    valid = np.array([[True] * 4, [True, True, False, False]])
    high = active_segments(attention, valid, LocalisationRule())
    assert high[0, :, 0].tolist() == [True, False, False, False]
    assert high[0, :, 1].tolist() == [False, False, False, True]
    assert high[1, :, 0].tolist() == [False, True, False, False]
    assert high[1, :, 1].tolist() == [True, True, False, False]


def test_rule_parameters_are_checked():
    with pytest.raises(ValueError, match="one of"):
        LocalisationRule("peaks")
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        LocalisationRule("mass", 1.5)
    with pytest.raises(ValueError, match=r"unknown localisation parameter\(s\) \['threshold'\]"):
        LocalisationRule.from_dict({"rule": "mass", "threshold": 0.3})
    assert LocalisationRule.from_dict({"rule": "max_ratio"}).value == 0.5


# -- segments -> events -------------------------------------------------------------------------


def test_adjacent_segments_merge_into_one_event_with_onset_and_offset():
    active = np.array([0, 1, 1, 1, 0, 0, 1, 0, 1, 1], dtype=bool)
    assert segments_to_events(active, 1.0) == [(1.0, 4.0), (6.0, 7.0), (8.0, 10.0)]


def test_events_carry_the_window_offset_and_stop_at_the_end_of_the_audio():
    active = np.array([0, 0, 1, 1, 1], dtype=bool)  # a 4.5-s tail window starting at 30 s
    assert segments_to_events(active, 1.0, offset_s=30.0, end_s=34.5) == [(32.0, 34.5)]


def test_gap_bridging_and_minimum_duration():
    active = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 1], dtype=bool)
    assert segments_to_events(active, 1.0, min_gap_s=1.0) == [(0.0, 3.0), (5.0, 6.0), (9.0, 10.0)]
    assert segments_to_events(active, 1.0, min_gap_s=2.0) == [(0.0, 6.0), (9.0, 10.0)]
    long_only = segments_to_events(active, 1.0, min_gap_s=1.0, min_duration_s=2.0)
    assert long_only == [(0.0, 3.0)]
    assert segments_to_events(np.zeros(10, dtype=bool), 1.0) == []


def test_half_second_segments():
    active = np.array([0, 1, 1, 0], dtype=bool)
    assert segments_to_events(active, 0.5, offset_s=10.0) == [(10.5, 11.5)]


# -- strong labels -> segment truth ----------------------------------------------------------


def test_strong_labels_mark_every_segment_an_event_overlaps():
    strong = pd.DataFrame(
        {
            "clip": ["a", "a", "a", "b", "zzz"],
            "mid": ["/m/dog", "/m/dog", "/m/cat", "/m/cat", "/m/dog"],
            "onset_s": [1.5, 7.0, 0.0, 9.99, 0.0],
            "offset_s": [3.2, 8.0, 0.25, 10.0, 10.0],
        }
    )
    grid = strong_label_grid(strong, ["a", "b"], ["/m/dog", "/m/cat", "/m/cow"], 10, 1.0)
    assert grid.shape == (2, 10, 3)
    assert np.flatnonzero(grid[0, :, 0]).tolist() == [1, 2, 3, 7]  # 7.0-8.0 touches only seg 7
    assert np.flatnonzero(grid[0, :, 1]).tolist() == [0]
    assert np.flatnonzero(grid[1, :, 1]).tolist() == [9]
    assert not grid[:, :, 2].any()  # no events of /m/cow; clip zzz is not evaluated
    stricter = strong_label_grid(
        strong, ["a", "b"], ["/m/dog", "/m/cat"], 10, 1.0, min_overlap_s=0.3
    )
    assert np.flatnonzero(stricter[0, :, 0]).tolist() == [1, 2, 7]  # 3.0-3.2 is too little
    assert not stricter[0, :, 1].any() and not stricter[1, :, 1].any()


def test_strong_labels_with_inverted_times_are_rejected_by_row():
    strong = pd.DataFrame({"clip": ["a"], "mid": ["/m/dog"], "onset_s": [4.0], "offset_s": [3.0]})
    with pytest.raises(ValueError, match="'a'.*'/m/dog'"):
        strong_label_grid(strong, ["a"], ["/m/dog"], 10, 1.0)


# -- the metric -------------------------------------------------------------------------------


def _case():
    """2 clips x 10 segments x 2 classes; clip 1 has 8 valid segments."""
    truth = np.zeros((2, 10, 2), dtype=bool)
    truth[0, 2:5, 0] = True  # 3 true segments
    truth[1, 0:2, 1] = True  # 2 true segments
    valid = np.ones((2, 10), dtype=bool)
    valid[1, 8:] = False
    tags = truth.any(axis=1)
    return truth, valid, tags


def test_perfect_time_stamps_score_one():
    truth, valid, tags = _case()
    result = segment_f1(truth, truth.copy(), valid, tags)
    assert result["f1"] == result["precision"] == result["recall"] == result["macro_f1"] == 1.0
    assert result["true_positives"] == 5 and result["false_positives"] == 0


def test_empty_time_stamps_score_zero():
    truth, valid, tags = _case()
    result = segment_f1(truth, np.zeros_like(truth), valid, tags)
    assert result["f1"] == result["precision"] == result["recall"] == 0.0
    assert result["false_negatives"] == 5


def test_every_segment_active_baseline_has_full_recall_and_chance_precision():
    truth, valid, tags = _case()
    baseline = all_active(valid, tags)
    assert baseline[1, 8:].sum() == 0  # never a padding segment
    result = segment_f1(truth, baseline, valid, tags)
    # clip 0 / class 0: 10 predicted, 3 true; clip 1 / class 1: 8 predicted, 2 true.
    assert result["recall"] == 1.0
    assert result["precision"] == pytest.approx(5 / 18)
    assert result["f1"] == pytest.approx(2 * (5 / 18) / (1 + 5 / 18))
    assert result["macro_f1"] == pytest.approx(np.mean([2 * 0.3 / 1.3, 2 * 0.25 / 1.25]))


def test_pairs_restrict_scoring_to_the_true_tags():
    truth, valid, tags = _case()
    predicted = truth.copy()
    predicted[0, :, 1] = True  # class 1 everywhere in clip 0, which does not have it
    assert segment_f1(truth, predicted, valid, tags)["f1"] == 1.0  # judged on true tags only
    unrestricted = segment_f1(truth, predicted, valid)
    assert unrestricted["false_positives"] == 10 and unrestricted["f1"] < 1.0


def test_partial_overlap_counts_segments():
    truth, valid, tags = _case()
    predicted = np.zeros_like(truth)
    predicted[0, 3:7, 0] = True  # 2 hits (3, 4), 2 false alarms (5, 6), miss 2
    predicted[1, 0:2, 1] = True  # 2 hits
    result = segment_f1(truth, predicted, valid, tags)
    assert (result["true_positives"], result["false_positives"], result["false_negatives"]) == (
        4,
        2,
        1,
    )
    assert result["precision"] == pytest.approx(4 / 6)
    assert result["recall"] == pytest.approx(4 / 5)


@pytest.mark.parametrize("restricted", [False, True])
def test_segment_f1_equals_scikit_learn_on_the_valid_segments(restricted):
    # segment_f1 counts per class in numpy; scikit-learn on the flattened valid segments (the
    # definition it replaced) must give the same micro and macro scores, empty classes included.
    from sklearn.metrics import precision_recall_fscore_support

    rng = np.random.default_rng(3)
    truth = rng.random((60, 10, 7)) < 0.08
    truth[:, :, 5] = False  # a class never true: out of the macro average, its FPs still count
    predicted = truth ^ (rng.random(truth.shape) < 0.06)
    valid = np.arange(10)[None, :] < rng.integers(4, 11, 60)[:, None]
    pairs = rng.random((60, 7)) < 0.5 if restricted else None
    ours = segment_f1(truth, predicted, valid, pairs)
    mask = valid[:, :, None] & (pairs[:, None, :] if restricted else True)
    y_true, y_pred = (truth & mask)[valid], (predicted & mask)[valid]
    micro = precision_recall_fscore_support(y_true, y_pred, average="micro", zero_division=0)
    present = np.flatnonzero(y_true.any(axis=0))
    _, _, per_class, _ = precision_recall_fscore_support(
        y_true, y_pred, average=None, labels=present, zero_division=0
    )
    assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx(micro[:3], rel=1e-12)
    assert ours["macro_f1"] == pytest.approx(np.mean(per_class), rel=1e-12)
    assert ours["n_classes_present"] == len(present) == 6
