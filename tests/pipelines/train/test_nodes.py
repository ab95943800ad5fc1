"""``train`` nodes: clip roles per rotation; the node hands typed checkpoints to the catalog."""

import pytest

from tests.planted_catalog import DROPPED_CLIPS, PARAMS, build_catalog, planted_catalog
from zeroshot_audio.contracts.checkpoint import Checkpoint
from zeroshot_audio.pipelines.train import nodes


def _roles(inputs, seed=PARAMS["seed"], train=PARAMS["train"]):
    return nodes.assign_clip_roles(
        inputs["segment_embeddings"], inputs["clip_folds"], PARAMS["folds"], seed, train
    )


def test_roles_follow_the_rotation_folds_and_cross_fit_the_test_fold():
    inputs = planted_catalog()
    roles = _roles(inputs)
    folds = inputs["clip_folds"].set_index("ytid")["fold"]
    n_kept = len(inputs["clip_folds"]) - DROPPED_CLIPS
    k = PARAMS["train"]["supervised_crossfit"]["k"]
    for rotation in PARAMS["folds"]["rotations"]:
        mine = roles[roles["rotation"] == rotation["name"]]
        primary = mine[mine["role"].isin(["train", "validation", "test"])]
        assert len(primary) == n_kept and primary["ytid"].is_unique  # every clip once
        fold_of = mine.groupby("role")["ytid"].agg(lambda y: set(folds[list(y)]))
        assert fold_of["train"] == set(rotation["train"])
        assert fold_of["validation"] == {rotation["validation"]}
        for role in ("test", "supervised_train", "supervised_validation"):
            assert fold_of[role] == {rotation["test"]}
        test = mine[mine["role"] == "test"]
        assert sorted(test["part"].unique()) == list(range(k))
        for part, scored in test.groupby("part"):
            used = mine[mine["role"].str.startswith("supervised") & (mine["part"] == part)]
            # model `part` learns from every other test-fold clip and never from its own
            assert set(used["ytid"]).isdisjoint(scored["ytid"])
            assert set(used["ytid"]) | set(scored["ytid"]) == set(test["ytid"])
            n_validation = (used["role"] == "supervised_validation").sum()
            assert n_validation == round(0.2 * len(used))


def test_cross_fit_parts_are_seeded():
    inputs = planted_catalog()

    def parts(seed):
        roles = _roles(inputs, seed)
        test = roles[roles["role"] == "test"]
        return set(test["ytid"] + test["rotation"] + test["part"].astype(str))

    assert parts(1) == parts(1)
    assert parts(1) != parts(2)


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
