"""``train`` nodes: clip roles per rotation, gamma selection, refusals."""

import copy

import pytest

from tests.pipelines.train.synthetic_catalog import DROPPED_CLIPS, PARAMS, stage_inputs
from zeroshot_audio.model import training
from zeroshot_audio.pipelines.train import nodes


@pytest.fixture(scope="module")
def inputs():
    return stage_inputs(clips_per_fold=40)


def _roles(inputs, seed=PARAMS["seed"]):
    return nodes.assign_clip_roles(
        inputs["segment_embeddings"], inputs["clip_folds"], PARAMS["folds"], seed, PARAMS["train"]
    )


def test_roles_follow_the_rotation_folds_and_split_the_test_fold(inputs):
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


def test_test_split_is_seeded(inputs):
    def test_clips(seed):
        roles = _roles(inputs, seed)
        return set(roles.loc[roles["role"] == "test", "ytid"] + roles["rotation"])

    assert test_clips(1) == test_clips(1)
    assert test_clips(1) != test_clips(2)


def test_gamma_grid_keeps_the_gamma_with_the_best_validation_monitor(inputs, monkeypatch):
    seen = []

    def recording_fit(model, *args, **kwargs):
        result = training.fit(model, *args, **kwargs)
        seen.append((model.config.gamma, result.best_value))
        return result

    monkeypatch.setattr(nodes, "fit", recording_fit)
    params = copy.deepcopy(PARAMS)
    params["folds"]["rotations"] = params["folds"]["rotations"][:1]
    params["train"]["methods"] = ["temporal_attention", "supervised"]
    params["train"]["gamma_grid"] = [0.0, 1.0]
    params["train"]["fit"]["epochs"] = 2
    roles = nodes.assign_clip_roles(
        inputs["segment_embeddings"], inputs["clip_folds"], params["folds"], 1, params["train"]
    )
    models, _, report = nodes.train_models(
        inputs["segment_embeddings"],
        inputs["label_embeddings"],
        inputs["class_folds"],
        inputs["clip_folds"],
        roles,
        params["folds"],
        params["train"],
        1,
        "cpu",
        params["embed_labels"]["encoder"],
    )
    grid_results = seen[:2]
    best_gamma = max(grid_results, key=lambda g: g[1])[0]
    assert [g for g, _ in grid_results] == [0.0, 1.0]
    assert models["rot0/temporal_attention"]["gamma"] == best_gamma
    assert models["rot0/supervised"]["gamma"] == best_gamma  # supervised reuses it
    assert len(seen) == 3 and set(models) == {"rot0/temporal_attention", "rot0/supervised"}


def test_unknown_method_is_refused(inputs):
    params = copy.deepcopy(PARAMS["train"])
    params["methods"] = ["temporal_attention", "transformer"]
    with pytest.raises(ValueError, match="unknown"):
        nodes.train_models(
            inputs["segment_embeddings"],
            inputs["label_embeddings"],
            inputs["class_folds"],
            inputs["clip_folds"],
            _roles(inputs),
            PARAMS["folds"],
            params,
            1,
            "cpu",
            {},
        )


def test_missing_label_embedding_names_the_classes(inputs):
    labels = inputs["label_embeddings"].iloc[1:]  # drop /m/c00 (a fold-0 class)
    with pytest.raises(ValueError, match="/m/c00"):
        nodes.train_models(
            inputs["segment_embeddings"],
            labels,
            inputs["class_folds"],
            inputs["clip_folds"],
            _roles(inputs),
            PARAMS["folds"],
            PARAMS["train"],
            1,
            "cpu",
            {},
        )
