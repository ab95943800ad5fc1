"""DCASE localisation metrics on hand-made cases whose answers are worked out in the comments, and
agreement between the two libraries (sed_eval, sed_scores_eval) and the project's segment F1."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zeroshot_audio.model.localisation import segment_f1, strong_label_grid
from zeroshot_audio.model.sed_metrics import (
    PSDS_SCENARIO_1,
    _libraries,
    _score_frames,
    attention_segment_scores,
    decision_events,
    event_based_metrics,
    reference_grid,
    sed_metrics,
    sed_reference,
    segment_based_metrics,
    threshold_free_metrics,
)

CLASSES = ["dog", "cat"]

# Two 10-s clips, 1-s segments. Reference events:
#   c1: dog [1.0, 3.4] (segments 1, 2, 3)    cat [6.0, 7.0] (segment 6)
#   c2: dog [0.0, 2.0] (segments 0, 1)       cat [5.0, 6.0] (segment 5)
# plus rows the metrics must ignore (another clip, another class).
STRONG = pd.DataFrame(
    [
        ("c1", "dog", 1.0, 3.4),
        ("c1", "cat", 6.0, 7.0),
        ("c2", "dog", 0.0, 2.0),
        ("c2", "cat", 5.0, 6.0),
        ("c3", "dog", 0.0, 1.0),
        ("c1", "bird", 0.0, 5.0),
    ],
    columns=["clip", "mid", "onset_s", "offset_s"],
)


def _reference():
    return sed_reference(STRONG, ["c1", "c2"], CLASSES, [10, 10], segment_s=1.0)


def _decisions() -> np.ndarray:
    # Active segments:  c1 dog 1,2   c1 cat 3,6   c2 dog 1,2   c2 cat 5,6,8
    d = np.zeros((2, 10, 2), dtype=bool)
    d[0, [1, 2], 0] = True
    d[0, [3, 6], 1] = True
    d[1, [1, 2], 0] = True
    d[1, [5, 6, 8], 1] = True
    return d


def test_reference_events_are_cut_merged_and_filtered():
    strong = pd.DataFrame(
        [
            ("a", "x", 0.5, 2.0),
            ("a", "x", 1.5, 3.0),  # overlaps the first: one event [0.5, 3.0]
            ("a", "x", 3.0, 4.0),  # touches it: still one event
            ("a", "y", 4.0, 12.0),  # beyond the 6 scored segments: cut at 6.0
            ("a", "y", 7.0, 8.0),  # starts after the clip's scored span: dropped
            ("b", "z", 0.0, 1.0),  # class not evaluated
        ],
        columns=["clip", "mid", "onset_s", "offset_s"],
    )
    ref = sed_reference(strong, ["a", "b"], ["x", "y"], [6, 10])
    assert ref.events == {"a": [(0.5, 4.0, "x"), (4.0, 6.0, "y")], "b": []}
    assert ref.durations == {"a": 6.0, "b": 10.0}
    assert ref.present_classes == ("x", "y")


def test_reference_rejects_bad_rows_by_name():
    bad = STRONG.assign(offset_s=[3.4, 5.0, 2.0, 6.0, 1.0, 5.0])
    with pytest.raises(ValueError, match="clip 'c1', mid 'cat'"):
        sed_reference(bad, ["c1", "c2"], CLASSES, [10, 10])
    with pytest.raises(ValueError, match="lack column"):
        sed_reference(STRONG.drop(columns="mid"), ["c1"], CLASSES, [10])
    with pytest.raises(ValueError, match="unique"):
        sed_reference(STRONG, ["c1", "c1"], CLASSES, [10, 10])
    with pytest.raises(ValueError, match="n_valid_segments"):
        sed_reference(STRONG, ["c1", "c2"], CLASSES, [10, 0])


def test_decisions_become_merged_events():
    assert decision_events(_decisions(), _reference()) == {
        "c1": [(1.0, 3.0, "dog"), (3.0, 4.0, "cat"), (6.0, 7.0, "cat")],
        "c2": [(1.0, 3.0, "dog"), (5.0, 7.0, "cat"), (8.0, 9.0, "cat")],
    }


def test_segment_based_f1_and_error_rate_by_hand():
    # Per (segment, class):
    #   c1 s1 dog TP, s2 dog TP, s3 dog FN + cat FP, s6 cat TP
    #   c2 s0 dog FN, s1 dog TP, s2 dog FP, s5 cat TP, s6 cat FP, s8 cat FP
    # TP 5, FP 4, FN 2: P = 5/9, R = 5/7, F1 = 10 / (10 + 4 + 2) = 0.625.
    # Per segment: c1 s3 has FN 1 and FP 1 -> one substitution; c2 s0 a deletion; c2 s2, s6, s8
    # insertions. N = 7 active reference (segment, class) pairs.
    # ER = (S + D + I) / N = (1 + 1 + 3) / 7; S = 1/7, D = 1/7, I = 3/7.
    # dog: TP 3, FP 1, FN 2 -> F1 6/9; cat: TP 2, FP 3, FN 0 -> 4/7; macro = 13/21.
    m = segment_based_metrics(_decisions(), _reference())
    assert m["segment_f1"] == pytest.approx(0.625)
    assert m["segment_precision"] == pytest.approx(5 / 9)
    assert m["segment_recall"] == pytest.approx(5 / 7)
    assert m["segment_macro_f1"] == pytest.approx(13 / 21)
    assert m["segment_error_rate"] == pytest.approx(5 / 7)
    assert m["segment_substitution_rate"] == pytest.approx(1 / 7)
    assert m["segment_deletion_rate"] == pytest.approx(1 / 7)
    assert m["segment_insertion_rate"] == pytest.approx(3 / 7)
    assert m["segment_n_reference"] == 7


def test_event_based_f1_with_collars_by_hand():
    # Estimated events (see test_decisions_become_merged_events) vs reference, 200 ms onset
    # collar, offset collar max(200 ms, 20 % of the reference length):
    #   c1 dog [1, 3] vs [1.0, 3.4]: onset exact; offset off by 0.4 <= 0.2 * 2.4 = 0.48 -> match
    #   c1 cat [6, 7] vs [6, 7]: match; c1 cat [3, 4]: false positive
    #   c2 dog [1, 3] vs [0, 2]: onset off by 1 s -> FP and FN
    #   c2 cat [5, 7] vs [5, 6]: offset off by 1 s > 0.2 -> FP and FN; c2 cat [8, 9]: FP
    # TP 2, FP 4, FN 2: P = 1/3, R = 1/2, F1 = 4 / (4 + 4 + 2) = 0.4.
    # dog: TP 1, FP 1, FN 1 -> 1/2; cat: TP 1, FP 3, FN 1 -> 1/3; macro = 5/12.
    m = event_based_metrics(_decisions(), _reference())
    assert m["event_f1"] == pytest.approx(0.4)
    assert m["event_precision"] == pytest.approx(1 / 3)
    assert m["event_recall"] == pytest.approx(1 / 2)
    assert m["event_macro_f1"] == pytest.approx(5 / 12)
    assert (m["event_n_reference"], m["event_n_estimated"]) == (4, 6)
    # Without the 20 % offset tolerance c1 dog no longer matches: TP 1, FP 5, FN 3 -> F1 0.2.
    strict = event_based_metrics(_decisions(), _reference(), offset_collar_rate=0.0)
    assert strict["event_f1"] == pytest.approx(0.2)


def test_a_class_without_reference_events_only_adds_false_positives():
    # "owl" has no reference event; one estimated owl event on c2 segments 3-4 (2 segments).
    # Event-based: TP 2, FP 4 + 1, FN 2 -> F1 = 4 / (4 + 5 + 2); macro still over dog and cat.
    # Segment-based: TP 5, FP 4 + 2, FN 2 -> F1 = 10 / (10 + 6 + 2); I gains 2: ER = 7 / 7.
    ref = sed_reference(STRONG, ["c1", "c2"], ["dog", "cat", "owl"], [10, 10])
    decisions = np.concatenate([_decisions(), np.zeros((2, 10, 1), dtype=bool)], axis=2)
    decisions[1, [3, 4], 2] = True
    events = event_based_metrics(decisions, ref)
    assert events["event_f1"] == pytest.approx(4 / 11)
    assert events["event_macro_f1"] == pytest.approx(5 / 12)
    segments = segment_based_metrics(decisions, ref)
    assert segments["segment_f1"] == pytest.approx(10 / 18)
    assert segments["segment_error_rate"] == pytest.approx(1.0)
    assert segments["segment_macro_f1"] == pytest.approx(13 / 21)


def _scores() -> np.ndarray:
    s = np.zeros((2, 10, 2))
    s[0, :, 0] = [0.05, 0.9, 0.8, 0.6, 0.04, 0.03, 0.02, 0.01, 0.0, 0.0]
    s[1, :, 0] = [0.4, 0.5, 0.7, 0.06, 0.07, 0.08, 0.09, 0.1, 0.11, 0.12]
    s[0, 6, 1] = 0.9
    s[1, 5, 1] = 0.3
    s[1, 8, 1] = 0.5
    return s


def test_threshold_free_scores_by_hand():
    # Segment AP, dog (positives c1 s1-s3, c2 s0-s1): ranking 0.9+ 0.8+ 0.7- 0.6+ 0.5+ 0.4+ ...
    #   AP = (1/1 + 2/2 + 3/4 + 4/5 + 5/6) / 5 = 0.876667
    # cat (positives c1 s6 0.9, c2 s5 0.3; negative c2 s8 0.5 between): (1 + 2/3) / 2 = 0.833333
    # AUROC: dog 1 - 3/75 = 0.96 (one negative above three positives); cat 1 - 1/36.
    # PSDS (DTC = GTC = 0.7, alpha_ST = 1, max eFPR 100/h; 20 s of audio = 1/180 h, so one false
    # detection is already 180/h, beyond the curve): before the first false detection, dog finds
    # c1's event only (c2's best segment, s2 = 0.7, lies outside its reference [0, 2]) and cat
    # finds c1's only (c2 s8 = 0.5 fires before c2 s5 = 0.3): TPR 1/2 for both, std 0 -> 0.5.
    m = threshold_free_metrics(_scores(), _reference())
    assert m["segment_map"] == pytest.approx((0.876667 + 0.833333) / 2, abs=1e-6)
    assert m["segment_auroc"] == pytest.approx((0.96 + 35 / 36) / 2)
    assert m["psds"] == pytest.approx(0.5)
    perfect = threshold_free_metrics(
        strong_label_grid(STRONG, ["c1", "c2"], CLASSES, 10, 1.0).astype(float), _reference()
    )
    assert (perfect["segment_map"], perfect["segment_auroc"], perfect["psds"]) == pytest.approx(
        (1.0, 1.0, 1.0)
    )


def test_classes_without_reference_events_are_left_out_of_threshold_free_scores():
    ref = sed_reference(STRONG, ["c1", "c2"], ["dog", "cat", "owl"], [10, 10])
    scores = np.concatenate([_scores(), np.random.default_rng(0).random((2, 10, 1))], axis=2)
    m = threshold_free_metrics(scores, ref)
    assert m["psds_n_classes"] == 2
    assert m["segment_map"] == pytest.approx(
        threshold_free_metrics(_scores(), _reference())["segment_map"]
    )


def _random_case(seed: int, n: int = 25, c: int = 4):
    rng = np.random.default_rng(seed)
    clips = [f"k{i}" for i in range(n)]
    classes = [f"/m/{j}" for j in range(c)]
    rows = []
    for clip in clips:
        for _ in range(rng.integers(0, 4)):
            onset = round(float(rng.uniform(0, 8.5)), 3)
            rows.append(
                (
                    clip,
                    classes[rng.integers(c)],
                    onset,
                    onset + round(float(rng.uniform(0.2, 4)), 3),
                )
            )
    strong = pd.DataFrame(rows, columns=["clip", "mid", "onset_s", "offset_s"])
    n_valid = rng.integers(6, 11, size=n)
    ref = sed_reference(strong, clips, classes, n_valid)
    decisions = (rng.random((n, 10, c)) < 0.25) & (
        np.arange(10)[None, :, None] < n_valid[:, None, None]
    )
    return strong, ref, decisions, n_valid


@pytest.mark.parametrize("seed", [0, 1])
def test_segment_f1_agrees_across_sed_eval_sed_scores_eval_and_the_project(seed):
    strong, ref, decisions, n_valid = _random_case(seed)
    ours = segment_based_metrics(decisions, ref)
    _, _, sse = _libraries()
    f, _, _, _ = sse.segment_based.fscore(
        _score_frames(decisions.astype(float), ref),
        ref.events,
        ref.durations,
        0.5,
        segment_length=1.0,
    )
    assert ours["segment_f1"] == pytest.approx(f["micro_average"])
    # the project's own segment F1 on the strong-label grid (any overlap) counts the same pairs
    valid = np.arange(10)[None, :] < n_valid[:, None]
    truth = strong_label_grid(strong, list(ref.clips), list(ref.classes), 10, 1.0)
    truth &= valid[:, :, None]  # events cut to the scored span, as sed_reference does
    project = segment_f1(truth, decisions, valid)
    assert ours["segment_f1"] == pytest.approx(project["f1"])
    assert ours["segment_macro_f1"] == pytest.approx(project["macro_f1"])


def _sed_eval_segment_metrics(decisions, ref):
    # sed_eval's SegmentBasedMetrics fed clip by clip, as the project did before counting in numpy
    sed_eval, dcase_util, _ = _libraries()
    metric = sed_eval.sound_event.SegmentBasedMetrics(
        event_label_list=list(ref.classes), time_resolution=1.0
    )
    estimated = decision_events(decisions, ref)

    def as_list(clip, events):
        return dcase_util.containers.MetaDataContainer(
            [{"filename": clip, "event_label": m, "onset": a, "offset": b} for a, b, m in events]
        )

    for clip in ref.clips:
        if ref.events[clip] or estimated[clip]:
            metric.evaluate(as_list(clip, ref.events[clip]), as_list(clip, estimated[clip]))
    overall, class_wise = metric.results_overall_metrics(), metric.results_class_wise_metrics()
    macro = [
        class_wise[c]["f_measure"]["f_measure"]
        for c in ref.classes
        if class_wise[c]["count"]["Nref"] > 0
    ]
    return {
        "segment_f1": overall["f_measure"]["f_measure"],
        "segment_precision": overall["f_measure"]["precision"],
        "segment_recall": overall["f_measure"]["recall"],
        "segment_macro_f1": float(np.mean(np.nan_to_num(macro))),
        "segment_error_rate": overall["error_rate"]["error_rate"],
        "segment_substitution_rate": overall["error_rate"]["substitution_rate"],
        "segment_deletion_rate": overall["error_rate"]["deletion_rate"],
        "segment_insertion_rate": overall["error_rate"]["insertion_rate"],
    }


@pytest.mark.parametrize(("seed", "segment_s"), [(6, 1.0), (7, 1.0), (8, 0.96), (9, 0.5)])
def test_segment_metrics_counted_in_numpy_equal_sed_eval(seed, segment_s):
    strong, _, decisions, n_valid = _random_case(seed, n=40, c=5)
    ref = sed_reference(strong, [f"k{i}" for i in range(40)], [f"/m/{j}" for j in range(5)],
                        n_valid, segment_s=segment_s)  # fmt: skip
    ours = segment_based_metrics(decisions, ref)
    expected = _sed_eval_segment_metrics(decisions, ref)
    assert ours["segment_error_rate"] > 0 and ours["segment_f1"] > 0  # a case with errors
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, rel=1e-12), key


@pytest.mark.parametrize("seed", [2, 3])
def test_event_f1_agrees_with_sed_eval(seed):
    _, ref, decisions, _ = _random_case(seed)
    sed_eval, dcase_util, _ = _libraries()
    metric = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=list(ref.classes), t_collar=0.2, percentage_of_length=0.2
    )
    estimated = decision_events(decisions, ref)
    for clip in ref.clips:

        def as_list(events, clip=clip):
            return dcase_util.containers.MetaDataContainer(
                [
                    {"filename": clip, "event_label": m, "onset": a, "offset": b}
                    for a, b, m in events
                ]
            )

        metric.evaluate(as_list(ref.events[clip]), as_list(estimated[clip]))
    expected = metric.results_overall_metrics()["f_measure"]["f_measure"]
    assert event_based_metrics(decisions, ref)["event_f1"] == pytest.approx(expected)


@pytest.mark.parametrize("seed", [4, 5])
def test_event_counts_class_by_class_equal_one_library_call_on_everything(seed):
    # event_based_metrics calls the library per class on the clips where the class occurs (fast
    # at scale); one call on every clip and class must count the same TP, FP and references.
    _, ref, decisions, _ = _random_case(seed, n=40, c=6)
    _, _, sse = _libraries()
    present = ref.present_classes
    columns = [ref.classes.index(c) for c in present]
    everything = ref.subset(range(len(ref.clips)), present)
    _, _, _, stats = sse.collar_based.fscore(
        _score_frames(decisions[:, :, columns].astype(float), everything),
        everything.events,
        0.5,
        onset_collar=0.2,
        offset_collar=0.2,
        offset_collar_rate=0.2,
    )
    tp = sum(stats[c]["tps"] for c in present)
    fp = sum(stats[c]["fps"] for c in present)
    n_ref = sum(stats[c]["n_ref"] for c in present)
    per_class = [2 * stats[c]["tps"] / (stats[c]["tps"] + stats[c]["fps"] + stats[c]["n_ref"])
                 for c in present]  # fmt: skip
    ours = event_based_metrics(decisions, ref)
    assert len(present) == len(ref.classes)  # every class has events: no extra FPs to add
    assert (ours["event_n_reference"], ours["event_n_estimated"]) == (n_ref, tp + fp)
    assert ours["event_f1"] == pytest.approx(2 * tp / (tp + fp + n_ref))
    assert ours["event_macro_f1"] == pytest.approx(np.mean(per_class))


def test_event_counts_match_one_to_one_where_an_event_hits_several():
    # 0.1-s segments, class x on clip a: reference [1.05, 1.25]; detections [1.0, 1.1] and
    # [1.2, 1.3] both lie within the collars (onsets 0.05 / 0.15 away, offsets 0.15 / 0.05), but
    # one reference matches one detection: TP 1, FP 1 (the library's bipartite matching).
    # Clip b: reference [0.5, 0.8] missed by [0.0, 0.2] (FN) and class y, absent from the
    # reference, fires once (FP).
    strong = pd.DataFrame(
        [("a", "x", 1.05, 1.25), ("b", "x", 0.5, 0.8)],
        columns=["clip", "mid", "onset_s", "offset_s"],
    )
    ref = sed_reference(strong, ["a", "b"], ["x", "y"], [30, 30], segment_s=0.1)
    decisions = np.zeros((2, 30, 2), dtype=bool)
    decisions[0, [10, 12], 0] = True
    decisions[1, [0, 1], 0] = True
    decisions[1, 20:25, 1] = True
    ours = event_based_metrics(decisions, ref)
    assert (ours["event_n_reference"], ours["event_n_estimated"]) == (2, 4)
    assert ours["event_f1"] == pytest.approx(2 * 1 / (2 * 1 + 3 + 1))
    _, _, sse = _libraries()
    sub = ref.subset([0, 1], ["x"])
    _, _, _, stats = sse.collar_based.fscore(
        _score_frames(decisions[:, :, [0]].astype(float), sub), sub.events, 0.5,
        onset_collar=0.2, offset_collar=0.2, offset_collar_rate=0.2,
    )  # fmt: skip
    assert (stats["x"]["tps"], stats["x"]["fps"]) == (1, 2)


@pytest.mark.parametrize(
    ("seed", "segment_s", "decimals"), [(10, 1.0, None), (11, 1.0, 1), (12, 0.96, 1), (13, 0.5, 2)]
)
def test_threshold_free_counts_in_numpy_equal_sed_scores_eval(seed, segment_s, decimals):
    # threshold_free_metrics counts the statistics itself; sed_scores_eval's own calls on every
    # clip and class (as its README shows) must give the same AP, AUROC and PSDS, to the bit:
    # scores with ties (rounded), padding, a grid finer or coarser than the 1-s segments, and
    # a class with no reference event in most clips (the library's shortcut path).
    strong, _, _, n_valid = _random_case(seed, n=40, c=5)
    clips, classes = [f"k{i}" for i in range(40)], [f"/m/{j}" for j in range(5)]
    ref = sed_reference(strong, clips, classes, n_valid, segment_s=segment_s)
    rng = np.random.default_rng(seed)
    scores = reference_grid(ref, 10, 0.5) + rng.normal(0, 0.25, (40, 10, 5))
    if decimals is not None:
        scores = np.round(scores, decimals)
    ours = threshold_free_metrics(scores, ref)
    _, _, sse = _libraries()
    present = ref.present_classes
    sub = ref.subset(range(40), present)
    frames = _score_frames(scores[:, :, [classes.index(c) for c in present]], sub)
    segment = {"segment_length": 1.0, "time_decimals": 6}
    ap = sse.segment_based.average_precision(frames, sub.events, sub.durations, **segment)[0]
    auroc = sse.segment_based.auroc(frames, sub.events, sub.durations, **segment)[0]
    psds = sse.intersection_based.psds(
        frames, sub.events, sub.durations, **PSDS_SCENARIO_1, time_decimals=6
    )[0]
    assert 0.05 < ours["psds"] < 0.95 and 0.3 < ours["segment_map"] < 0.99  # not degenerate
    assert ours["segment_map"] == np.mean([ap[c] for c in present])
    assert ours["segment_auroc"] == np.mean([auroc[c] for c in present])
    assert ours["psds"] == psds


def test_attention_segment_scores():
    clip_scores = np.array([[2.0, -1.0]])
    flat = np.zeros((1, 4, 2))
    flat[0, :3] = 1 / 3  # uniform over 3 valid segments, 1 padding segment
    valid = np.array([[True, True, True, False]])
    got = attention_segment_scores(clip_scores, flat, valid)
    np.testing.assert_allclose(got[0, :3], [[2.0, -1.0]] * 3)
    assert np.isneginf(got[0, 3]).all()
    peaked = np.zeros((1, 4, 2))
    peaked[0, :3, 0] = [0.6, 0.3, 0.1]
    peaked[0, :3, 1] = 1 / 3
    got = attention_segment_scores(clip_scores, peaked, valid)
    np.testing.assert_allclose(got[0, :3, 0], 2.0 + np.log(np.array([0.6, 0.3, 0.1]) * 3))
    assert got[0, 0, 0] > got[0, 1, 0] > got[0, 2, 0]


def test_sed_metrics_collects_everything_and_checks_shapes():
    m = sed_metrics(_decisions(), _reference(), _scores())
    assert m["segment_f1"] == pytest.approx(0.625) and m["event_f1"] == pytest.approx(0.4)
    assert m["psds"] == pytest.approx(0.5) and (m["n_clips"], m["n_classes_with_events"]) == (2, 2)
    with pytest.raises(ValueError, match=r"decisions must be \[N=2, T, C=2\]"):
        segment_based_metrics(_decisions()[:, :, :1], _reference())


def test_reference_grid_is_the_resolution_ceiling():
    # On 1-s segments the reference becomes c1 dog [1, 4] (was [1.0, 3.4]): its offset is now
    # 0.6 s late, beyond max(0.2, 0.2 * 2.4) = 0.48 s, so that event is missed and [1, 4] is a
    # false positive; the other three events sit on segment boundaries and match.
    # Event: TP 3, FP 1, FN 1 -> F1 = 6 / 8 = 0.75. Segment-based: perfect (F1 1, ER 0).
    ref = _reference()
    oracle = reference_grid(ref, 10)
    np.testing.assert_array_equal(oracle, strong_label_grid(STRONG, ["c1", "c2"], CLASSES, 10, 1.0))
    assert event_based_metrics(oracle, ref)["event_f1"] == pytest.approx(0.75)
    segments = segment_based_metrics(oracle, ref)
    assert (segments["segment_f1"], segments["segment_error_rate"]) == (1.0, 0.0)
    # Rounded to the nearest boundary (more than half a segment covered), c1 dog becomes [1, 3]:
    # offset 0.4 s early <= 0.48 s, so all four events match: event F1 1.
    rounded = reference_grid(ref, 10, min_coverage=0.5)
    assert rounded[0, :, 0].tolist() == [False, True, True] + [False] * 7
    assert event_based_metrics(rounded, ref)["event_f1"] == pytest.approx(1.0)


def test_underflowed_attention_stays_finite_and_lowest():
    attention = np.array([[[1.0], [0.0]]])
    got = attention_segment_scores(np.array([[0.5]]), attention, np.array([[True, True]]))
    assert np.isfinite(got).all() and got[0, 1, 0] < got[0, 0, 0]
