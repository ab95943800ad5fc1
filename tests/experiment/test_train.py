"""``experiment.train``: the rotation x method x gamma loop, typed checkpoints, strict config."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from tests.planted_catalog import (
    DROPPED_CLIPS,
    LABEL_ENCODER,
    PARAMS,
    SEMANTIC_DIM,
    build_catalog,
    planted_catalog,
    planted_training,
)
from zeroshot_audio.contracts.checkpoint import Checkpoint
from zeroshot_audio.experiment.clips import ClipTable
from zeroshot_audio.experiment.protocol import (
    TRAINED_METHODS,
    assign_roles,
    fold_classes,
    parse_rotations,
)
from zeroshot_audio.experiment.train import (
    TrainConfig,
    gammas_of,
    history_metrics,
    train_method,
    train_rotations,
    training_report,
)
from zeroshot_audio.model.attention import TemporalAttentionModel
from zeroshot_audio.model.training import FitConfig


def _small(**overrides):
    """A quick config: 2 epochs, and ``overrides`` on top of the planted parameters."""
    values = {**PARAMS["train"], **overrides}
    values["fit"] = {**PARAMS["train"]["fit"], "epochs": 2, "patience": 2}
    return TrainConfig.from_dict(values)


@pytest.fixture(scope="module")
def rot0():
    inputs = planted_catalog()
    table = ClipTable.load(inputs["segment_embeddings"], inputs["clip_folds"], "cpu")
    rotations = parse_rotations(PARAMS["folds"])
    splits = assign_roles(table.clips, rotations, k=3, validation_fraction=0.2, seed=1)
    return inputs, table, rotations[0], splits


def test_every_rotation_and_method_is_a_typed_checkpoint_with_provenance():
    trained = planted_training()
    run, table = trained["run"], trained["table"]
    rotations = [r["name"] for r in PARAMS["folds"]["rotations"]]
    k = PARAMS["train"]["supervised_crossfit"]["k"]
    assert set(run.checkpoints) == {
        f"{r}/{m}" for r in rotations for m in TRAINED_METHODS if m != "supervised"
    } | {f"{r}/supervised/k{i}" for r in rotations for i in range(k)}
    ta = run.checkpoints["rot0/temporal_attention"]
    assert isinstance(ta, Checkpoint) and ta.name == "rot0/temporal_attention"
    assert ta.gamma == 0.5 and run.checkpoints["rot0/uniform"].gamma == 0.0
    assert set(ta.train_classes).isdisjoint(ta.test_classes)
    supervised = run.checkpoints["rot0/supervised/k1"]
    assert supervised.train_classes == ta.test_classes and supervised.crossfit_part == 1
    assert supervised.name == "rot0/supervised/k1"
    assert (
        ta.model_config["semantic_dim"] == SEMANTIC_DIM and ta.model_config["acoustic_dim"] == 128
    )
    # provenance: the label table's spec; the segment table has none -> external, its layout
    assert ta.label_encoder == LABEL_ENCODER
    assert ta.embedder.source == "external"
    assert (ta.embedder.n_segments, ta.embedder.width) == (10, 128)
    assert ta.segment_dtype == "uint8" and ta.threshold_rule == "tuned"
    assert ta.n_train_clips == len(table.role(trained["splits"], "rot0", "train"))
    # the stored form is strict plain data that rebuilds the same checkpoint and the same network
    again = Checkpoint.from_dict(ta.to_dict())
    assert again.model_config == ta.model_config and again.embedder == ta.embedder
    model = TemporalAttentionModel.from_checkpoint(again)
    assert all(
        np.array_equal(v.numpy(), ta.state_dict[k].numpy()) for k, v in model.state_dict().items()
    )


def test_history_and_report_use_stage_slash_name_keys():
    trained = planted_training()
    run = trained["run"]
    history = history_metrics(run)
    epochs = history["train/rot0/temporal_attention/val_map"]
    assert [e["step"] for e in epochs] == list(range(1, len(epochs) + 1))
    inputs = planted_catalog()
    report = training_report(
        run, inputs["clip_folds"], trained["splits"], TrainConfig.from_dict(PARAMS["train"])
    )
    assert report["clips"]["missing_embeddings"] == DROPPED_CLIPS
    metrics = report["mlflow_metrics"]
    assert metrics["train/clips_missing_embeddings"] == DROPPED_CLIPS
    assert metrics["train/rot1/uniform/best_epoch"] == run.checkpoints["rot1/uniform"].best_epoch
    assert all(k.startswith("train/") for k in [*metrics, *history])
    assert report["mlflow_tags"]["train.embedder"] == "external"


def test_gamma_grid_keeps_the_gamma_with_the_best_validation_monitor(rot0):
    inputs, table, rotation, splits = rot0
    config = _small(gamma_grid=[0.0, 1.0], methods=["supervised", "temporal_attention"])
    assert config.methods == ("temporal_attention", "supervised")  # protocol order
    run = train_rotations(
        table,
        [rotation],
        class_folds=inputs["class_folds"],
        model_splits=splits,
        label_embeddings=inputs["label_embeddings"],
        config=config,
        seed=1,
    )
    ta = run.methods["rot0/temporal_attention"]
    assert [p.gamma for p in ta.grid] == [0.0, 1.0]
    best = max(ta.grid, key=lambda p: p.best_value)
    assert ta.checkpoint.gamma == best.gamma and ta.checkpoint.best_value == best.best_value
    assert ta.checkpoint.gamma_grid == [0.0, 1.0]
    for k in range(3):  # one cross-fitted model per part, each reusing temporal's choice
        supervised = run.methods[f"rot0/supervised/k{k}"]
        assert [p.gamma for p in supervised.grid] == [best.gamma]
        assert supervised.checkpoint.gamma_grid == []
    assert set(run.checkpoints) == {"rot0/temporal_attention"} | {
        f"rot0/supervised/k{k}" for k in range(3)
    }


def test_gammas_of_each_method():
    config = _small(gamma_grid=[0.25, 0.75])
    assert gammas_of("uniform", config, 0.5) == [0.0]
    assert gammas_of("temporal_attention", config, 0.5) == [0.25, 0.75]
    assert gammas_of("supervised", config, 0.75) == [0.75]
    assert gammas_of("temporal_attention", _small(), 0.5) == [0.5]


def test_a_method_trains_the_same_network_for_the_same_seed(rot0):
    inputs, table, rotation, splits = rot0
    kwargs = dict(
        class_folds=inputs["class_folds"],
        model_splits=splits,
        label_embeddings=inputs["label_embeddings"],
        config=_small(),
        seed=5,
    )
    first = train_method(table, rotation, "uniform", **kwargs).checkpoint
    second = train_method(table, rotation, "uniform", **kwargs).checkpoint
    assert first.threshold == second.threshold
    assert all(np.array_equal(first.state_dict[k], second.state_dict[k]) for k in first.state_dict)


def test_unknown_keys_and_methods_are_refused_naming_them():
    with pytest.raises(ValueError, match=r"unknown train parameter\(s\) \['epoch'\]"):
        TrainConfig.from_dict({**PARAMS["train"], "epoch": 3})
    with pytest.raises(ValueError, match=r"unknown train.fit parameter\(s\) \['lr'\]"):
        TrainConfig.from_dict({**PARAMS["train"], "fit": {"lr": 0.1}})
    with pytest.raises(ValueError, match=r"unknown model parameter\(s\) \['tua'\]"):
        TrainConfig.from_dict({**PARAMS["train"], "model": {"tua": 0.5}})
    with pytest.raises(ValueError, match=r"train.supervised_crossfit parameter\(s\) \['kk'\]"):
        TrainConfig.from_dict({**PARAMS["train"], "supervised_crossfit": {"kk": 3}})
    with pytest.raises(ValueError, match="replaced by train.supervised_crossfit"):
        TrainConfig.from_dict({**PARAMS["train"], "supervised_split": {"test": 0.3}})
    with pytest.raises(ValueError, match="k must be >= 2"):
        TrainConfig.from_dict({**PARAMS["train"], "supervised_crossfit": {"k": 1}})
    with pytest.raises(ValueError, match="unknown.*transformer"):
        TrainConfig.from_dict({**PARAMS["train"], "methods": ["temporal_attention", "transformer"]})
    with pytest.raises(ValueError, match="come from the data"):
        TrainConfig.from_dict({**PARAMS["train"], "model": {"acoustic_dim": 64}})


def test_missing_label_embedding_names_the_classes(rot0):
    inputs, table, rotation, splits = rot0
    labels = inputs["label_embeddings"].iloc[1:]  # drop /m/c00, a fold-0 (training) class
    with pytest.raises(ValueError, match="/m/c00"):
        train_method(
            table,
            rotation,
            "temporal_attention",
            class_folds=inputs["class_folds"],
            model_splits=splits,
            label_embeddings=labels,
            config=_small(),
            seed=1,
        )


def test_features_64_wide_and_external_label_vectors_of_any_width_train():
    inputs = build_catalog(clips_per_fold=40, segment_dim=64, semantic_dim=12, with_specs=False)
    table = ClipTable.load(inputs["segment_embeddings"], inputs["clip_folds"], "cpu")
    assert table.width == 64
    rotation = parse_rotations(PARAMS["folds"])[0]
    splits = assign_roles(table.clips, [rotation], k=3, validation_fraction=0.2, seed=1)
    trained = train_method(
        table,
        rotation,
        "temporal_attention",
        class_folds=inputs["class_folds"],
        model_splits=splits,
        label_embeddings=pd.DataFrame(inputs["label_embeddings"]),
        config=_small(),
        seed=1,
    ).checkpoint
    assert trained.model_config["acoustic_dim"] == 64
    assert trained.model_config["semantic_dim"] == 12
    assert trained.embedder.width == 64 and trained.embedder.source == "external"
    assert trained.label_encoder.source == "external" and trained.label_encoder.dimension == 12
    assert trained.test_classes == fold_classes(inputs["class_folds"], [rotation.test])


def test_train_config_is_a_frozen_record_of_the_parameters():
    config = TrainConfig.from_dict(PARAMS["train"])
    assert config.fit.epochs == PARAMS["train"]["fit"]["epochs"] and config.gamma == 0.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.gamma_grid = (0.1,)  # type: ignore[misc]


def _validation_spy(monkeypatch):
    """Record the table rows every per-epoch validation and every final scoring sees."""
    from zeroshot_audio.experiment import train as train_module
    from zeroshot_audio.model import training

    seen = {"epochs": [], "final": []}
    per_epoch, final = training.validation_metrics, train_module.score_clips

    def spy_epoch(model, clips, config):
        seen["epochs"].append(clips.rows.tolist())
        return per_epoch(model, clips, config)

    def spy_final(model, clips, **kwargs):
        seen["final"].append(clips.rows.tolist())
        return final(model, clips, **kwargs)

    monkeypatch.setattr(training, "validation_metrics", spy_epoch)
    monkeypatch.setattr(train_module, "score_clips", spy_final)
    return seen


def _full_split_threshold(checkpoint, table, rotation, splits, inputs, method):
    from zeroshot_audio.experiment.protocol import Rotation
    from zeroshot_audio.model.attention import ModelConfig
    from zeroshot_audio.model.metrics import tune_global_threshold
    from zeroshot_audio.model.training import score_clips

    _, role = Rotation.roles_of(method)
    clips = table.role(splits, rotation.name, role)
    validation = table.clip_set(clips, checkpoint.validation_classes, inputs["label_embeddings"])
    model = TemporalAttentionModel(ModelConfig.from_dict(checkpoint.model_config))
    model.load_state_dict(checkpoint.state_dict)
    scores = score_clips(model, validation)["scores"]
    threshold, _ = tune_global_threshold(validation.targets.numpy(), scores)
    return float(threshold), clips["row"].tolist()


def test_per_epoch_validation_is_a_fixed_seeded_subset_and_the_threshold_uses_every_clip(
    rot0, monkeypatch
):
    inputs, table, rotation, splits = rot0
    fit = {**PARAMS["train"]["fit"], "epochs": 3, "patience": 3, "validation_clips": 7}
    config = TrainConfig.from_dict({**PARAMS["train"], "fit": fit})
    kwargs = dict(
        class_folds=inputs["class_folds"],
        model_splits=splits,
        label_embeddings=inputs["label_embeddings"],
        config=config,
    )
    seen = _validation_spy(monkeypatch)
    first = train_method(table, rotation, "uniform", seed=5, **kwargs).checkpoint
    threshold, all_rows = _full_split_threshold(first, table, rotation, splits, inputs, "uniform")
    assert len(all_rows) > 7 and first.n_validation_clips == len(all_rows)
    subset = seen["epochs"][0]
    assert len(seen["epochs"]) == 3 and all(rows == subset for rows in seen["epochs"])
    assert len(subset) == 7 and set(subset) < set(all_rows)
    # the full validation split is scored exactly once, after training, for the threshold
    assert seen["final"] == [all_rows]
    assert first.threshold == pytest.approx(threshold, abs=1e-12)

    seen["epochs"].clear()
    train_method(table, rotation, "uniform", seed=5, **kwargs)  # same seed: same clips
    assert seen["epochs"] == [subset] * 3
    seen["epochs"].clear()
    train_method(table, rotation, "uniform", seed=6, **kwargs)
    assert seen["epochs"][0] != subset  # the subset is drawn from the run seed


def test_a_split_within_validation_clips_is_scored_once_per_epoch_and_never_again(
    rot0, monkeypatch
):
    """Default data: every validation split is below validation_clips, so the best epoch's
    scoring of the whole split gives the threshold and nothing is scored a second time."""
    inputs, table, rotation, splits = rot0
    assert FitConfig().validation_clips == 20000
    seen = _validation_spy(monkeypatch)
    checkpoint = train_method(
        table,
        rotation,
        "temporal_attention",
        class_folds=inputs["class_folds"],
        model_splits=splits,
        label_embeddings=inputs["label_embeddings"],
        config=_small(),
        seed=5,
    ).checkpoint
    threshold, all_rows = _full_split_threshold(
        checkpoint, table, rotation, splits, inputs, "temporal_attention"
    )
    assert seen["final"] == []
    assert seen["epochs"] == [all_rows] * checkpoint.epochs_run
    assert checkpoint.threshold == threshold
