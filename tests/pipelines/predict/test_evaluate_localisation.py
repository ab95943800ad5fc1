"""Zero-shot localisation scoring (the evaluate-stage node) on planted data with known segments.

The planted generator (tests/model/planted.py) puts each class of a clip in one or two known
segments; those segments are the strong labels. Trained on the training folds only, the model's
attention on the test fold's (unseen) classes must find them far better than marking every
segment active.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from tests.model.planted import make_planted
from tests.pipelines.train.synthetic_catalog import PARAMS
from zeroshot_audio.contracts.segment_table import from_arrays
from zeroshot_audio.pipelines.evaluate.localisation import (
    BASELINE,
    localisation_table,
    score_localisation,
)
from zeroshot_audio.pipelines.train.nodes import assign_clip_roles, train_models

CLIPS_PER_FOLD, EPOCHS = 120, 6


def planted_training(clips_per_fold: int, epochs: int, methods: list[str]) -> dict:
    data = make_planted(seed=3, semantic_dim=8, classes_per_fold=6, clips_per_fold=clips_per_fold)
    mids = [f"/m/c{k:02d}" for k in range(len(data.class_fold))]
    ytids = [f"clip{i:04d}" for i in range(len(data.clip_fold))]
    clip_folds = pd.DataFrame(
        {
            "ytid": ytids,
            "start_s": 30.0,
            "end_s": 40.0,
            "fold": data.clip_fold,
            "labels": [[mids[k] for k in row.nonzero()[0]] for row in data.targets],
            "source_split": "eval",
        }
    )
    n, t, k = np.nonzero(data.active)
    # Events inside their segment (0.2-0.9 s in): any overlap makes the segment true.
    strong = pd.DataFrame(
        {
            "clip": np.asarray(ytids)[n],
            "mid": np.asarray(mids)[k],
            "onset_s": t + 0.2,
            "offset_s": t + 0.9,
        }
    )
    inputs = {
        "segment_embeddings": from_arrays(ytids, [30.0] * len(ytids), data.n_valid, data.segments),
        "clip_folds": clip_folds,
        "class_folds": pd.DataFrame({"mid": mids, "fold": data.class_fold}),
        "label_embeddings": pd.DataFrame(
            {"mid": mids, "text": mids, "embedding": [list(v) for v in data.label_embeddings]}
        ),
    }
    params = copy.deepcopy(PARAMS)
    params["train"]["fit"].update(epochs=epochs, patience=epochs)
    params["train"]["methods"] = methods
    splits = assign_clip_roles(
        inputs["segment_embeddings"], clip_folds, params["folds"], params["seed"], params["train"]
    )
    models, _, _ = train_models(
        inputs["segment_embeddings"],
        inputs["label_embeddings"],
        inputs["class_folds"],
        clip_folds,
        splits,
        params["folds"],
        params["train"],
        params["seed"],
        "cpu",
        params["embed_labels"]["encoder"],
    )
    return {**inputs, "models": models, "splits": splits, "strong": strong, "params": params}


@pytest.fixture(scope="module")
def planted_run():
    return planted_training(CLIPS_PER_FOLD, EPOCHS, ["temporal_attention", "uniform"])


def _score(run, rule=None, evaluate=None, strong=None):
    return score_localisation(
        run["models"],
        run["splits"],
        run["segment_embeddings"],
        run["label_embeddings"],
        run["clip_folds"],
        run["strong"] if strong is None else strong,
        evaluate or run["params"]["evaluate"],
        rule or {"rule": "uniform_ratio", "value": 1.0},
        1.0,
        "cpu",
    )


def test_attention_time_stamps_of_unseen_classes_beat_every_segment_active(planted_run):
    report = _score(planted_run)
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
        assert set(rotation["methods"]) == {BASELINE, "temporal_attention", "uniform"}
    metrics = report["mlflow_metrics"]
    assert metrics["loc/temporal_attention/true_tags/f1_mean"] == attention["f1"]["mean"]
    assert f"loc/{BASELINE}/true_tags/f1_mean" in metrics
    assert all(np.isfinite(v) for v in metrics.values())

    table = localisation_table(report)
    assert "Every segment active (baseline)" in table
    assert f"{100 * attention['f1']['mean']:.1f}" in table


def test_a_flat_rule_reproduces_the_baseline_and_clips_without_strong_labels_are_left_out(
    planted_run,
):
    # mass = 1.0 marks every segment that has any attention: the all-active baseline again.
    report = _score(planted_run, rule={"rule": "mass", "value": 1.0})
    for rotation in report["rotations"].values():
        ours = rotation["methods"]["temporal_attention"]["true_tags"]
        assert ours["f1"] == pytest.approx(rotation["methods"][BASELINE]["true_tags"]["f1"])

    strong = planted_run["strong"]
    splits = planted_run["splits"]
    test_clips = sorted(
        splits.loc[(splits["rotation"] == "rot0") & (splits["role"] == "test"), "ytid"]
    )
    dropped = set(test_clips[: len(test_clips) // 2])
    partial = _score(planted_run, strong=strong[~strong["clip"].isin(dropped)])
    rot0 = partial["rotations"]["rot0"]
    assert rot0["n_test_clips_without_strong_labels"] == len(dropped)
    assert rot0["n_test_clips"] == len(test_clips) - len(dropped)


def test_without_strong_labels_rotations_are_skipped_and_the_run_is_tagged(planted_run):
    report = _score(planted_run, strong=planted_run["strong"].iloc[:0])
    assert report["rotations"] == {} and report["mlflow_metrics"] == {}
    assert set(report["skipped_rotations"]) == {"rot0", "rot1", "rot2"}
    assert report["mlflow_tags"]["loc.degraded"] == "3 of 3 rotations without strong labels"
    assert "Not scored" in localisation_table(report)
