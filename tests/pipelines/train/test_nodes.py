"""``train`` nodes: clip roles per rotation; the node hands typed checkpoints to the catalog."""

import pytest

from tests.planted_catalog import DROPPED_CLIPS, PARAMS, build_catalog, planted_catalog
from zeroshot_audio.contracts.checkpoint import Checkpoint
from zeroshot_audio.pipelines.train import nodes


def _roles(inputs, seed=PARAMS["seed"], train=PARAMS["train"]):
    return nodes.assign_clip_roles(
        inputs["segment_embeddings"], inputs["clip_folds"], PARAMS["folds"], seed, train
    )


def test_roles_follow_the_rotation_folds_and_split_the_test_fold():
    inputs = planted_catalog()
    roles = _roles(inputs)
    folds = inputs["clip_folds"].set_index("ytid")["fold"]
    n_kept = len(inputs["clip_folds"]) - DROPPED_CLIPS
    for rotation in PARAMS["folds"]["rotations"]:
        mine = roles[roles["rotation"] == rotation["name"]]
        assert len(mine) == n_kept and mine["ytid"].is_unique  # every clip once per rotation
        fold_of = mine.groupby("role")["ytid"].agg(lambda y: set(folds[list(y)]))
        assert fold_of["train"] == set(rotation["train"])
        assert fold_of["validation"] == {rotation["validation"]}
        for role in ("test", "supervised_train", "supervised_validation"):
            assert fold_of[role] == {rotation["test"]}
        n_test_fold = int(
            (mine["role"].isin(["test", "supervised_train", "supervised_validation"])).sum()
        )
        assert (mine["role"] == "test").sum() == round(0.3 * n_test_fold)
        assert (mine["role"] == "supervised_validation").sum() == round(0.2 * n_test_fold)


def test_test_split_is_seeded():
    inputs = planted_catalog()

    def test_clips(seed):
        roles = _roles(inputs, seed)
        return set(roles.loc[roles["role"] == "test", "ytid"] + roles["rotation"])

    assert test_clips(1) == test_clips(1)
    assert test_clips(1) != test_clips(2)


def test_train_parameters_with_a_typo_are_refused_before_anything_runs():
    with pytest.raises(ValueError, match=r"unknown train parameter\(s\) \['gama_grid'\]"):
        _roles(planted_catalog(), train={**PARAMS["train"], "gama_grid": [0.5]})


def test_train_models_returns_typed_checkpoints_history_and_report():
    inputs = build_catalog(clips_per_fold=20)
    train = {**PARAMS["train"], "methods": ["uniform"]}
    train["fit"] = {**train["fit"], "epochs": 1}
    folds = {**PARAMS["folds"], "rotations": PARAMS["folds"]["rotations"][:1]}
    roles = nodes.assign_clip_roles(
        inputs["segment_embeddings"], inputs["clip_folds"], folds, 1, train
    )
    models, history, report = nodes.train_models(
        inputs["segment_embeddings"],
        inputs["label_embeddings"],
        inputs["class_folds"],
        inputs["clip_folds"],
        roles,
        folds,
        train,
        1,
        "cpu",
    )
    assert list(models) == ["rot0/uniform"] and isinstance(models["rot0/uniform"], Checkpoint)
    assert set(history) == {f"train/rot0/uniform/{m}" for m in ("train_loss", "val_map",
                                                                  "val_micro_f1")}  # fmt: skip
    assert report["models"]["rot0/uniform"]["epochs_run"] == 1
    assert report["mlflow_metrics"]["train/clips_missing_embeddings"] == DROPPED_CLIPS
