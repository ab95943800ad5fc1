"""``evaluate`` nodes: threshold rules, summary statistics, table layout, refusals."""

import numpy as np
import pandas as pd
import pytest
import torch

from tests.pipelines.train.synthetic_catalog import PARAMS, stage_inputs
from zeroshot_audio.model.attention import ModelConfig, TemporalAttentionModel
from zeroshot_audio.model.protocol import fold_classes, parse_rotations
from zeroshot_audio.pipelines.evaluate.nodes import score_test_clips, summarise_evaluation
from zeroshot_audio.pipelines.train.nodes import assign_clip_roles

ENCODER = PARAMS["embed_labels"]["encoder"]


@pytest.fixture(scope="module")
def untrained():
    """Stage inputs, clip roles and untrained checkpoints (weights do not matter for these tests)."""
    inputs = stage_inputs(clips_per_fold=30)
    splits = assign_clip_roles(
        inputs["segment_embeddings"], inputs["clip_folds"], PARAMS["folds"], 1, PARAMS["train"]
    )
    torch.manual_seed(0)
    checkpoints = {}
    for rotation in parse_rotations(PARAMS["folds"]):
        for method, gamma in (("temporal_attention", 0.5), ("uniform", 0.0)):
            model = TemporalAttentionModel(ModelConfig(semantic_dim=5, joint_dim=8, gamma=gamma))
            checkpoints[f"{rotation.name}/{method}"] = {
                **model.checkpoint(),
                "rotation": rotation.to_dict(),
                "method": method,
                "gamma": gamma,
                "threshold": 0.0,
                "test_classes": fold_classes(inputs["class_folds"], [rotation.test]),
                "label_encoder": ENCODER,
            }
    return inputs, splits, checkpoints


def _score(untrained, threshold, encoder=ENCODER):
    inputs, splits, checkpoints = untrained
    params = {**PARAMS["evaluate"], "threshold": threshold}
    return score_test_clips(
        checkpoints,
        splits,
        inputs["segment_embeddings"],
        inputs["label_embeddings"],
        inputs["clip_folds"],
        params,
        "cpu",
        encoder,
    )


def test_top_k_rule_tags_exactly_k_classes_and_fixed_rule_uses_its_value(untrained):
    scores, predictions = _score(untrained, {"rule": "top_k", "fixed": 0.0, "top_k": 2})
    trained = predictions[predictions["method"] != "zero_rule"]
    assert (trained["predicted"].map(len) == 2).all()
    assert scores["threshold_rule"] == "top_k"
    fixed_scores, none = _score(untrained, {"rule": "fixed", "fixed": 1e9, "top_k": 1})
    assert (none.loc[none["method"] != "zero_rule", "predicted"].map(len) == 0).all()
    # the zero-rule is its own rule: k most frequent classes, whatever the threshold rule
    zr = none[none["method"] == "zero_rule"]
    assert (zr["predicted"].map(len) >= 1).all()
    assert fixed_scores["threshold_rule"] == "fixed"


def test_scores_come_with_attention_for_heatmap_clips(untrained):
    scores, _ = _score(untrained, {"rule": "tuned", "fixed": 0.0, "top_k": 1})
    clips = scores["heatmap_clips"]
    assert len(clips) == PARAMS["evaluate"]["heatmaps"]["n_clips"]
    for clip in clips:
        attention = np.asarray(clip["attention"])
        np.testing.assert_allclose(attention.sum(axis=0), 1.0, rtol=1e-5)
        assert np.all(attention[clip["n_valid"] :] == 0)


def test_label_embeddings_from_another_encoder_are_refused(untrained):
    with pytest.raises(ValueError, match="re-run `train`"):
        _score(untrained, {"rule": "tuned", "fixed": 0.0, "top_k": 1}, {"model_name_or_path": "x"})


def test_no_trained_models_says_what_to_run(untrained):
    inputs, splits, _ = untrained
    with pytest.raises(ValueError, match="kedro run --pipeline=train"):
        score_test_clips(
            {},
            splits,
            inputs["segment_embeddings"],
            inputs["label_embeddings"],
            inputs["clip_folds"],
            PARAMS["evaluate"],
            "cpu",
            ENCODER,
        )


def _hand_made_scores():
    """Two rotations, one class pair, predictions whose micro-F1 is known: 1.0 and 0.5."""
    y_true = np.array([[1, 0], [0, 1]], dtype=bool)
    perfect = {
        "scores": np.array([[0.9, 0.1], [0.2, 0.8]]),
        "predictions": y_true.copy(),
        "threshold": 0.5,
        "k": None,
        "gamma": 0.5,
    }
    half = {
        "scores": np.array([[0.9, 0.8], [0.7, 0.1]]),
        "predictions": np.array([[1, 1], [1, 0]], dtype=bool),
        "threshold": 0.5,
        "k": None,
        "gamma": 0.5,
    }  # TP 1, FP 2, FN 1 -> F1 = 2/(2+3) = 0.4
    rotations = {}
    for name, result in (("rot0", perfect), ("rot1", half)):
        rotations[name] = {
            "rotation": {"name": name, "train": [0], "validation": 1, "test": 2},
            "classes": ["/m/a", "/m/b"],
            "y_true": y_true,
            "n_test_clips": 2,
            "n_reference_clips": 5,
            "methods": {"temporal_attention": result},
        }
    return {"threshold_rule": "tuned", "rotations": rotations, "heatmap_clips": []}


def test_summary_is_mean_and_sample_std_over_rotations_and_table_in_percent():
    labels = pd.DataFrame(
        {"mid": ["/m/a", "/m/b"], "text": ["Dog", "Siren"], "embedding": [[0.0]] * 2}
    )
    report, table = summarise_evaluation(_hand_made_scores(), labels, PARAMS["evaluate"])
    micro = report["summary"]["temporal_attention"]["micro_f1"]
    assert micro["mean"] == pytest.approx(0.7)
    assert micro["std"] == pytest.approx(np.std([1.0, 0.4], ddof=1))
    assert report["rotations"]["rot1"]["methods"]["temporal_attention"]["per_class"]["/m/b"] == {
        "text": "Siren",
        "f1": 0.0,
        "ap": 0.5,
        "n_test_positives": 1,  # ranked 2nd of 2
    }
    assert report["mlflow_metrics"]["eval/rot0/temporal_attention/micro_f1"] == 1.0
    assert "| Zero-shot, temporal attention (γ = 0.5) | 70.0 ± 42.4 |" in table
