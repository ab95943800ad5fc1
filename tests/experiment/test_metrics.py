"""``experiment.metrics``: per-rotation tag metrics and mean ± std over rotations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zeroshot_audio.datasets.atomic import JSONDataset
from zeroshot_audio.experiment.evaluate import (
    BootstrapConfig,
    EvaluationScores,
    MethodScores,
    RotationScores,
)
from zeroshot_audio.experiment.metrics import (
    mean_std,
    paired_differences,
    per_class_ap,
    tag_report,
)
from zeroshot_audio.report.per_class import per_class_ap_table


def hand_made_scores() -> EvaluationScores:
    """Two rotations, one class pair, predictions whose micro-F1 is known: 1.0 and 0.4."""
    y_true = np.array([[1, 0], [0, 1]], dtype=bool)
    perfect = MethodScores(np.array([[0.9, 0.1], [0.2, 0.8]]), y_true.copy(), 0.5, None, 0.5)
    # TP 1, FP 2, FN 1 -> F1 = 2/(2+3) = 0.4
    half = MethodScores(
        np.array([[0.9, 0.8], [0.7, 0.1]]), np.array([[1, 1], [1, 0]], dtype=bool), 0.5, None, 0.5
    )
    rotations = {}
    for name, result in (("rot0", perfect), ("rot1", half)):
        rotations[name] = RotationScores(
            name=name,
            folds={"name": name, "train": [0], "validation": 1, "test": 2},
            classes=["/m/a", "/m/b"],
            clips=pd.DataFrame({"ytid": ["x", "y"], "start_s": [0.0, 0.0]}),
            y_true=y_true,
            valid=np.ones((2, 3), bool),
            n_reference_clips=5,
            methods={"temporal_attention": result},
            attention_rows=np.zeros(0, np.int64),
        )
    return EvaluationScores("tuned", 1.0, rotations)


def test_summary_is_mean_and_sample_std_over_rotations():
    report = tag_report(hand_made_scores(), {"/m/a": "Dog", "/m/b": "Siren"}, ddof=1)
    micro = report["summary"]["temporal_attention"]["micro_f1"]
    assert micro["mean"] == pytest.approx(0.7)
    assert micro["std"] == pytest.approx(np.std([1.0, 0.4], ddof=1))
    assert report["rotations"]["rot1"]["methods"]["temporal_attention"]["per_class"]["/m/b"] == {
        "text": "Siren",
        "f1": 0.0,
        "ap": 0.5,  # ranked 2nd of 2
        "n_test_positives": 1,
    }
    assert report["mlflow_metrics"]["evaluate/rot0/temporal_attention/micro_f1"] == 1.0
    assert report["mlflow_metrics"]["evaluate/temporal_attention/micro_f1_mean"] == micro["mean"]
    assert all(k.startswith("evaluate/") for k in report["mlflow_metrics"])
    assert report["mlflow_tags"] == {"evaluate.threshold_rule": "tuned"}


def test_std_of_a_single_rotation_is_zero_not_nan():
    assert mean_std([0.3], ddof=1) == {"mean": 0.3, "std": 0.0, "n_rotations": 1}
    assert mean_std([0.2, 0.4], ddof=0)["std"] == pytest.approx(0.1)


def _with_uniform(uniform_of) -> EvaluationScores:
    scores = hand_made_scores()
    for rotation in scores.rotations.values():
        attention = rotation.methods["temporal_attention"]
        rotation.methods["uniform"] = uniform_of(attention)
    return scores


def test_paired_difference_of_identical_methods_is_exactly_zero():
    scores = _with_uniform(lambda a: MethodScores(a.scores.copy(), a.predictions.copy()))
    result = paired_differences(scores, BootstrapConfig(), seed=3)
    for scope in ("rot0", "rot1", "pooled"):
        for interval in result["intervals"][scope].values():
            assert (interval["estimate"], interval["low"], interval["high"]) == (0.0, 0.0, 0.0)
    assert result["lines"]["pooled"][0] == "attention - uniform: +0.0 [+0.0, +0.0] micro-F1 points"
    assert (
        result["mlflow_metrics"][
            "evaluate/difference/temporal_attention_minus_uniform/rot1/map_high"
        ]
        == 0.0
    )


def test_paired_difference_is_attention_minus_uniform_and_seeded():
    # uniform predicts nothing: its micro-F1 is 0, so the estimate is attention's (1.0, 0.4)
    scores = _with_uniform(
        lambda a: MethodScores(a.scores[:, ::-1].copy(), np.zeros_like(a.predictions))
    )
    result = paired_differences(scores, BootstrapConfig(n_resamples=1000), seed=3)
    assert result["intervals"]["rot0"]["micro_f1"]["estimate"] == pytest.approx(1.0)
    assert result["intervals"]["pooled"]["micro_f1"]["estimate"] == pytest.approx(0.7)
    assert result == paired_differences(scores, BootstrapConfig(n_resamples=1000), seed=3)
    assert paired_differences(hand_made_scores(), BootstrapConfig(), seed=3) == {}  # no uniform


def test_per_class_ap_has_one_row_per_rotation_and_class():
    scores = _with_uniform(lambda a: MethodScores(a.scores[:, ::-1].copy(), a.predictions))
    table = per_class_ap(tag_report(scores, {"/m/a": "Dog"}, ddof=1))
    assert len(table) == 4 and set(table["rotation"]) == {"rot0", "rot1"}
    rot0 = table[table["rotation"] == "rot0"].set_index("mid")
    assert rot0.loc["/m/a", "ap_temporal_attention"] == 1.0  # perfect ranking
    assert rot0.loc["/m/a", "ap_uniform"] == 0.5  # reversed: positive ranked 2nd of 2
    assert rot0.loc["/m/a", "display_name"] == "Dog"


def test_per_class_ap_read_from_the_saved_report_equals_the_table_of_the_scores(tmp_path):
    """The per-class node reads the tag report as the catalog saved it (JSON) instead of
    computing AP again; its table must be the one computed from the scores."""
    rng = np.random.default_rng(5)
    classes = ["/m/a", "/m/b", "/m/c", "/m/d"]
    y_true = rng.random((80, 4)) < 0.3
    y_true[:, 3] = False  # a class without a positive: NaN AP, kept last
    scores = hand_made_scores()
    for rotation in scores.rotations.values():
        rotation.classes = classes
        rotation.y_true = y_true
        rotation.clips = pd.DataFrame({"ytid": [f"c{i}" for i in range(80)], "start_s": 0.0})
        rotation.methods = {
            name: MethodScores(values, values > 0.5)
            for name, values in (
                ("zero_rule", np.tile(rng.random(4), (80, 1))),
                ("uniform", y_true * 0.3 + rng.random((80, 4))),
                ("temporal_attention", np.round(y_true * 0.5 + rng.random((80, 4)), 1)),
            )
        }
    texts = {"/m/a": "Dog", "/m/c": "Siren"}
    dataset = JSONDataset(filepath=str(tmp_path / "report.json"))
    dataset.save(tag_report(scores, texts, ddof=1))
    expected = pd.concat(
        [
            per_class_ap_table(
                r.y_true,
                {m: r.methods[m].scores for m in ("zero_rule", "uniform", "temporal_attention")},
                r.classes,
                display_names=texts,
                rotation=name,
            )
            for name, r in scores.rotations.items()
        ],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(per_class_ap(dataset.load()), expected)


def test_a_large_test_fold_is_bootstrapped_on_a_seeded_subsample_of_max_clips():
    rng = np.random.default_rng(0)
    y_true = rng.random((60, 4)) < 0.3
    methods = {
        name: MethodScores(scores, scores > 0.5)
        for name, scores in (
            ("temporal_attention", y_true * 0.5 + rng.random((60, 4)) * 0.6),
            ("uniform", rng.random((60, 4))),
        )
    }
    rotation = RotationScores(
        name="rot0",
        folds={"name": "rot0", "train": [0], "validation": 1, "test": 2},
        classes=["/m/a", "/m/b", "/m/c", "/m/d"],
        clips=pd.DataFrame({"ytid": [f"c{i}" for i in range(60)], "start_s": 0.0}),
        y_true=y_true,
        valid=np.ones((60, 3), bool),
        n_reference_clips=60,
        methods=methods,
        attention_rows=np.zeros(0, np.int64),
    )
    scores = EvaluationScores("tuned", 1.0, {"rot0": rotation})
    config = BootstrapConfig(n_resamples=1000, max_clips=25)
    capped = paired_differences(scores, config, seed=3)
    assert "subsample of at most 25 test clips" in capped["definition"]
    assert capped == paired_differences(scores, config, seed=3)  # the same subsample
    assert capped["intervals"]["rot0"]["micro_f1"]["n_clips"] == 25
    whole = paired_differences(scores, BootstrapConfig(n_resamples=1000, max_clips=None), seed=3)
    assert whole["intervals"]["rot0"]["micro_f1"]["n_clips"] == 60
    with pytest.raises(ValueError, match="max_clips must be >= 2"):
        BootstrapConfig(max_clips=1)
