"""``experiment.metrics``: per-rotation tag metrics and mean ± std over rotations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zeroshot_audio.experiment.evaluate import EvaluationScores, MethodScores, RotationScores
from zeroshot_audio.experiment.metrics import mean_std, tag_report


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
