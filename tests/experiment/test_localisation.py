"""Zero-shot localisation scored from the attention kept by the one scoring pass.

The planted generator (tests/model/planted.py) puts each class of a clip in one or two known
segments; those segments are the strong labels. Trained on the training folds only, the model's
attention on the test fold's (unseen) classes must find them far better than marking every
segment active.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.planted_catalog import PARAMS, planted_catalog, planted_training
from zeroshot_audio.experiment.evaluate import EvaluateConfig, score_rotations
from zeroshot_audio.experiment.localisation import BASELINE, localisation_report
from zeroshot_audio.model.localisation import LocalisationRule

UNIFORM_RATIO = LocalisationRule("uniform_ratio", 1.0)


@pytest.fixture(scope="module")
def scores():
    trained = planted_training()
    inputs = planted_catalog()
    return score_rotations(
        trained["table"],
        trained["run"].checkpoints,
        trained["splits"],
        inputs["label_embeddings"],
        EvaluateConfig.from_dict(PARAMS["evaluate"]),
        inputs["strong_labels"],
    )


def _report(scores, rule=UNIFORM_RATIO, strong=None):
    strong = planted_catalog()["strong_labels"] if strong is None else strong
    return localisation_report(scores, strong, rule, 0.0, ddof=1)


def test_attention_time_stamps_of_unseen_classes_beat_every_segment_active(scores):
    report = _report(scores)
    summary = report["summary"]
    attention = summary["temporal_attention"]["true_tags"]
    baseline = summary[BASELINE]["true_tags"]
    assert baseline["recall"]["mean"] == 1.0  # every true segment is among "all segments"
    assert baseline["f1"]["mean"] < 0.5  # classes sound in 1-2 of 7-10 segments
    assert attention["f1"]["mean"] > baseline["f1"]["mean"] + 0.2
    assert attention["precision"]["mean"] > 2 * baseline["precision"]["mean"]

    end_to_end = summary["temporal_attention"]["predicted_tags"]
    tags_only = summary[f"temporal_attention+{BASELINE}"]["predicted_tags"]
    assert end_to_end["f1"]["mean"] > tags_only["f1"]["mean"]

    for rotation in report["rotations"].values():
        assert rotation["n_classes"] == 6  # the test fold's classes only
        assert rotation["n_true_pairs_without_strong_segments"] == 0
        assert set(rotation["methods"]) == {BASELINE, "temporal_attention", "uniform", "supervised"}
    metrics = report["mlflow_metrics"]
    key = "evaluate/localisation/temporal_attention/true_tags/f1_mean"
    assert metrics[key] == attention["f1"]["mean"]
    assert f"evaluate/localisation/{BASELINE}/true_tags/f1_mean" in metrics
    assert all(np.isfinite(v) for v in metrics.values())
    assert report["segment_s"] == 1.0 and report["localisation_rule"]["rule"] == "uniform_ratio"


def test_a_flat_rule_reproduces_the_baseline_and_clips_without_strong_labels_are_left_out(scores):
    # mass = 1.0 marks every segment that has any attention: the all-active baseline again.
    report = _report(scores, rule=LocalisationRule("mass", 1.0))
    for rotation in report["rotations"].values():
        ours = rotation["methods"]["temporal_attention"]["true_tags"]
        assert ours["f1"] == pytest.approx(rotation["methods"][BASELINE]["true_tags"]["f1"])

    strong = planted_catalog()["strong_labels"]
    test_clips = sorted(scores.rotations["rot0"].clips["ytid"])
    dropped = set(test_clips[: len(test_clips) // 2])
    partial = _report(scores, strong=strong[~strong["clip"].isin(dropped)])
    rot0 = partial["rotations"]["rot0"]
    assert rot0["n_test_clips_without_strong_labels"] == len(dropped)
    assert rot0["n_test_clips"] == len(test_clips) - len(dropped)


def test_without_strong_labels_rotations_are_skipped_and_the_run_is_tagged(scores):
    report = _report(scores, strong=planted_catalog()["strong_labels"].iloc[:0])
    assert report["rotations"] == {} and report["mlflow_metrics"] == {}
    assert set(report["skipped_rotations"]) == {"rot0", "rot1", "rot2"}
    assert report["mlflow_tags"]["evaluate.degraded"] == "3 of 3 rotations without strong labels"


def test_with_max_clips_localisation_is_scored_on_the_sampled_clips_and_counts_the_rest():
    """At AudioSet scale only a sample of the strong-labelled test clips keeps its attention."""
    trained, inputs = planted_training(), planted_catalog()
    values = dict(PARAMS["evaluate"])
    values["localisation"] = {**values.get("localisation", {}), "max_clips": 10}
    sampled = score_rotations(
        trained["table"],
        trained["run"].checkpoints,
        trained["splits"],
        inputs["label_embeddings"],
        EvaluateConfig.from_dict(values),
        inputs["strong_labels"],
    )
    report = _report(sampled)
    for name, rotation in report["rotations"].items():
        n_kept = len(sampled.rotations[name].attention_rows)  # 10 sampled + the heat-map clips
        assert 10 <= rotation["n_test_clips"] <= n_kept
        n_labelled = (
            rotation["n_test_clips"] + rotation["n_test_clips_with_strong_labels_not_sampled"]
        )
        assert (
            n_labelled
            == len(sampled.rotations[name].clips) - rotation["n_test_clips_without_strong_labels"]
        )
        assert rotation["n_test_clips_with_strong_labels_not_sampled"] > 0
    events = localisation_report(
        sampled, inputs["strong_labels"], UNIFORM_RATIO, 0.0, ddof=1, event_max_clips=3
    )
    for name, rotation in events["rotations"].items():
        assert rotation["n_test_clips_event_metrics"] == 3  # the slow DCASE event metrics
        assert rotation["n_test_clips"] == report["rotations"][name]["n_test_clips"]
        assert rotation["methods"] == report["rotations"][name]["methods"]  # segment F1 as before
