"""``experiment.evaluate``: one scoring pass per model feeds tags, predictions and heat maps."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from tests.planted_catalog import PARAMS, planted_catalog, planted_training
from zeroshot_audio.contracts.label_table import with_encoder_spec
from zeroshot_audio.experiment import evaluate
from zeroshot_audio.experiment.evaluate import (
    EvaluateConfig,
    heatmap_clips,
    prediction_table,
    score_rotations,
)
from zeroshot_audio.experiment.protocol import METHODS


def _config(**threshold):
    values = dict(PARAMS["evaluate"])
    if threshold:
        values["threshold"] = {**values["threshold"], **threshold}
    return EvaluateConfig.from_dict(values)


def _score(config=None, labels=None, strong=True, models=None):
    trained, inputs = planted_training(), planted_catalog()
    return score_rotations(
        trained["table"],
        trained["run"].checkpoints if models is None else models,
        trained["splits"],
        inputs["label_embeddings"] if labels is None else labels,
        config or _config(),
        inputs["strong_labels"] if strong else None,
    )


def test_each_model_scores_each_test_clip_once_with_scores_and_attention(monkeypatch):
    calls = []
    real = evaluate.score_clips

    def counting(model, clips, **kwargs):
        calls.append(len(clips))
        return real(model, clips, **kwargs)

    monkeypatch.setattr(evaluate, "score_clips", counting)
    scores = _score()
    n_models = len(planted_training()["run"].checkpoints)
    assert len(calls) == n_models  # one pass per model: tags, localisation, heat maps
    for rotation in scores.rotations.values():
        assert list(rotation.methods) == [
            "zero_rule",
            "temporal_attention",
            "uniform",
            "supervised",
        ]
        n = len(rotation.clips)
        for name, result in rotation.methods.items():
            assert result.scores.shape == result.predictions.shape == (n, len(rotation.classes))
            if name != "zero_rule":
                shape = (len(rotation.attention_rows), 10, len(rotation.classes))
                assert result.attention.shape == shape
                np.testing.assert_allclose(result.attention.sum(axis=1), 1.0, rtol=1e-5)


def test_without_strong_labels_every_clip_keeps_its_attention_and_it_is_the_same():
    with_strong, every = _score(), _score(strong=False)
    for name, rotation in every.rotations.items():
        assert len(rotation.attention_rows) == len(rotation.clips)
        kept = with_strong.rotations[name]
        for method in ("temporal_attention", "uniform"):
            np.testing.assert_array_equal(
                kept.attention_of(method, kept.attention_rows),
                rotation.attention_of(method, kept.attention_rows),
            )
            np.testing.assert_array_equal(
                kept.methods[method].scores, rotation.methods[method].scores
            )


def test_top_k_tags_exactly_k_classes_and_fixed_uses_its_value():
    table = prediction_table(_score(_config(rule="top_k", top_k=2)))
    trained = table[table["method"] != "zero_rule"]
    assert (trained["predicted"].map(len) == 2).all()
    none = prediction_table(_score(_config(rule="fixed", fixed=1e9)))
    assert (none.loc[none["method"] != "zero_rule", "predicted"].map(len) == 0).all()
    # the zero-rule is its own rule: its k most frequent classes, whatever the threshold rule
    assert (none.loc[none["method"] == "zero_rule", "predicted"].map(len) >= 1).all()


def test_all_methods_are_scored_on_the_same_test_clips():
    table = prediction_table(_score())
    splits = planted_training()["splits"]
    for rotation, by_rotation in table.groupby("rotation"):
        test = splits[(splits["rotation"] == rotation) & (splits["role"] == "test")]
        per_method = {m: set(g["ytid"]) for m, g in by_rotation.groupby("method")}
        assert set(per_method) == set(METHODS)
        assert all(clips == set(test["ytid"]) for clips in per_method.values())


def test_every_test_fold_clip_is_scored_and_never_by_a_model_that_saw_it():
    """Cross-fitting through the real train -> evaluate path: each test clip's supervised score
    comes from the model of its part, whose training and validation clips exclude it."""
    trained = planted_training()
    run, table = trained["run"], trained["table"]
    scores = _score()
    for name, rotation in scores.rotations.items():
        test_fold = table.clips.loc[table.clips["fold"] == rotation.folds["test"], "ytid"]
        assert sorted(rotation.clips["ytid"]) == sorted(test_fold)  # all, each once
        supervised = rotation.methods["supervised"]
        ytids = rotation.clips["ytid"].astype(str).to_numpy()
        assert set(np.unique(supervised.parts)) == {0, 1, 2}
        for part in np.unique(supervised.parts):
            model = run.methods[f"{name}/supervised/k{part}"]
            seen = set(model.clip_ids["supervised_train"]) | set(
                model.clip_ids["supervised_validation"]
            )
            scored = set(ytids[supervised.parts == part])
            assert seen and scored and seen.isdisjoint(scored)
            assert seen | scored == set(ytids)  # it learnt from the other parts only
            # the zero-rule of this part counts the other parts' labels, not its own
            np.testing.assert_allclose(
                rotation.methods["zero_rule"].scores[supervised.parts == part][0],
                rotation.y_true[np.isin(ytids, sorted(seen))].mean(axis=0),
            )


def test_heatmap_clips_are_the_most_labelled_with_their_attention():
    scores = _score()
    clips = heatmap_clips(scores, {}, _config().heatmaps)
    assert len(clips) == PARAMS["evaluate"]["heatmaps"]["n_clips"]
    counts = [int(c["labels"].sum()) for c in clips]
    assert counts == sorted(counts, reverse=True)
    for clip in clips:
        np.testing.assert_allclose(clip["attention"].sum(axis=0), 1.0, rtol=1e-5)
        assert np.all(clip["attention"][clip["n_valid"] :] == 0)


def test_label_embeddings_of_another_encoder_are_refused():
    labels = planted_catalog()["label_embeddings"]
    other = dataclasses.replace(
        planted_training()["run"].checkpoints["rot0/uniform"].label_encoder, pooling="cls"
    )
    with pytest.raises(ValueError, match=r"another encoder.*pooling.*re-run `train`"):
        _score(labels=with_encoder_spec(labels, other))


def test_no_trained_models_says_what_to_run():
    with pytest.raises(ValueError, match="kedro run --pipeline=train"):
        _score(models={})


def test_evaluate_parameters_reject_unknown_keys_naming_them():
    with pytest.raises(ValueError, match=r"unknown evaluate parameter\(s\) \['batchsize'\]"):
        EvaluateConfig.from_dict({**PARAMS["evaluate"], "batchsize": 3})
    with pytest.raises(ValueError, match=r"unknown threshold parameter\(s\) \['rul'\]"):
        EvaluateConfig.from_dict({**PARAMS["evaluate"], "threshold": {"rul": "tuned"}})
    with pytest.raises(ValueError, match=r"evaluate.heatmaps parameter\(s\) \['clips'\]"):
        EvaluateConfig.from_dict({**PARAMS["evaluate"], "heatmaps": {"clips": 3}})
    with pytest.raises(ValueError, match=r"evaluate.localisation parameter\(s\) \['overlap'\]"):
        EvaluateConfig.from_dict({**PARAMS["evaluate"], "localisation": {"overlap": 0.1}})
    with pytest.raises(ValueError, match="must be one of"):
        EvaluateConfig.from_dict({**PARAMS["evaluate"], "threshold": {"rule": "median"}})


def test_localisation_keeps_the_attention_of_at_most_max_clips_the_same_ones_every_run():
    """What bounds evaluate's memory on AudioSet's 300k-clip test folds."""
    values = dict(PARAMS["evaluate"])
    values["localisation"] = {**values.get("localisation", {}), "max_clips": 5}
    capped, again, every = (
        _score(EvaluateConfig.from_dict(values), strong=False),
        _score(EvaluateConfig.from_dict(values), strong=False),
        _score(strong=False),
    )
    n_heatmap = _config().heatmaps.n_clips
    for name, rotation in capped.rotations.items():
        assert 5 <= len(rotation.attention_rows) <= 5 + n_heatmap
        np.testing.assert_array_equal(rotation.attention_rows, again.rotations[name].attention_rows)
        full = every.rotations[name]
        np.testing.assert_array_equal(  # the kept clips' attention is the uncapped one
            rotation.attention_of("temporal_attention", rotation.attention_rows),
            full.attention_of("temporal_attention", rotation.attention_rows),
        )
        np.testing.assert_array_equal(  # and every clip is still scored
            rotation.methods["uniform"].scores, full.methods["uniform"].scores
        )


def test_at_most_is_a_fixed_choice_among_the_candidates():
    ids = pd.Series([f"clip{i}" for i in range(100)])
    candidates = np.arange(100) % 3 == 0
    chosen = evaluate.at_most(candidates, ids, 10)
    assert chosen.sum() == 10 and not (chosen & ~candidates).any()
    np.testing.assert_array_equal(chosen, evaluate.at_most(candidates, ids, 10))
    np.testing.assert_array_equal(evaluate.at_most(candidates, ids, None), candidates)
    with pytest.raises(ValueError, match="max_clips must be >= 1"):
        evaluate.LocalisationScoring(max_clips=0)


def test_the_prediction_table_survives_its_parquet_dataset(tmp_path):
    """Written and read back by the catalog's dataset with every cell intact (a pd.ArrowDtype
    list column was written with pandas metadata that pandas could not read back)."""
    from zeroshot_audio.datasets.tables import ParquetDataset

    table = prediction_table(_score(_config(rule="top_k", top_k=2)))
    dataset = ParquetDataset(filepath=str(tmp_path / "test_predictions.parquet"))
    dataset.save(table)
    loaded = dataset.load()
    assert len(loaded) == len(table) and dataset.preview()["data"]
    for column in ("predicted", "labels"):
        assert [list(v) for v in loaded[column]] == [list(v) for v in table[column]]
    assert loaded["method"].tolist() == table["method"].tolist()


def test_strong_label_clip_lookup_equals_isin():
    # the hashed lookup that replaced pandas' isin (slow on Arrow strings with a large set) must
    # answer the same, whatever dtype the ids arrive in (Arrow strings, objects, ints)
    strong = pd.DataFrame({"clip": pd.Series(["a", "b", "b", "7", "c"], dtype="str")})
    labelled = evaluate.strong_label_clips(strong)
    assert sorted(labelled) == ["7", "a", "b", "c"]
    for ids in (
        pd.Series(["b", "x", "a", "a", "7"], dtype="str"),
        pd.Series(["b", "x", "a", "a", "7"], dtype=object),
        pd.Series([7, 8]),
    ):
        expected = ids.astype(str).isin(set(labelled)).to_numpy()
        assert evaluate.is_in(ids, labelled).tolist() == expected.tolist()
