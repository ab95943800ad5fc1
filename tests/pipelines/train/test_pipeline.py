"""``train`` then ``evaluate`` through a Kedro runner on a small synthetic catalog.

Evaluation runs as a second, separate pipeline run whose catalog only holds what was saved to
disk (models, clip roles) plus the stage inputs: the situation of `kedro run --pipeline=evaluate`.
"""

import json

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.io.core import Version
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from kedro_datasets.matplotlib import MatplotlibDataset
from kedro_datasets.pandas import ParquetDataset
from kedro_datasets.text import TextDataset

from tests.pipelines.train.synthetic_catalog import (
    DROPPED_CLIPS,
    PARAMS,
    parameter_datasets,
    stage_inputs,
)
from zeroshot_audio.datasets.torch_model import TorchModelDataset
from zeroshot_audio.model.protocol import METHODS, TRAINED_METHODS
from zeroshot_audio.pipelines.evaluate import create_pipeline as evaluate_pipeline
from zeroshot_audio.pipelines.train import create_pipeline as train_pipeline


def _catalog(tmp_path, inputs):
    versioned = Version(None, None)
    datasets = {name: MemoryDataset(value) for name, value in inputs.items()}
    datasets |= {name: MemoryDataset(value) for name, value in parameter_datasets().items()}
    datasets |= {
        "model_splits": ParquetDataset(
            filepath=str(tmp_path / "model_splits.parquet"), version=versioned
        ),
        "trained_models": TorchModelDataset(
            filepath=str(tmp_path / "trained_models.pt"), version=versioned
        ),
        "training_report": JSONDataset(filepath=str(tmp_path / "training_report.json")),
        "evaluation_report": JSONDataset(filepath=str(tmp_path / "evaluation_report.json")),
        "evaluation_table": TextDataset(filepath=str(tmp_path / "evaluation_table.md")),
        "evaluation_f1_chart": MatplotlibDataset(filepath=str(tmp_path / "f1.png")),
        "attention_heatmaps": MatplotlibDataset(filepath=str(tmp_path / "attention.png")),
        "training_history": MemoryDataset(),
        "test_predictions": MemoryDataset(),
        "localisation_report": JSONDataset(filepath=str(tmp_path / "localisation_report.json")),
    }
    return DataCatalog(datasets)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("train_evaluate")
    inputs = stage_inputs()
    train_catalog = _catalog(tmp_path, inputs)
    SequentialRunner().run(train_pipeline(), train_catalog)
    evaluate_catalog = _catalog(tmp_path, inputs)  # fresh: nothing in memory from training
    SequentialRunner().run(evaluate_pipeline(), evaluate_catalog)
    return tmp_path, train_catalog, evaluate_catalog


def test_training_saves_every_rotation_and_method_with_what_predict_needs(runs):
    tmp_path, train_catalog, _ = runs
    models = TorchModelDataset(
        filepath=str(tmp_path / "trained_models.pt"), version=Version(None, None)
    ).load()
    rotations = [r["name"] for r in PARAMS["folds"]["rotations"]]
    assert set(models) == {f"{r}/{m}" for r in rotations for m in TRAINED_METHODS}
    ta = models["rot0/temporal_attention"]
    assert ta["gamma"] == 0.5 and models["rot0/uniform"]["gamma"] == 0.0
    assert ta["label_encoder"]["model_name_or_path"] == "synthetic:planted"
    assert set(ta["train_classes"]).isdisjoint(ta["test_classes"])
    assert models["rot0/supervised"]["train_classes"] == ta["test_classes"]
    assert isinstance(ta["threshold"], float) and ta["config"]["semantic_dim"] == 5

    report = json.loads((tmp_path / "training_report.json").read_text())
    assert report["clips"]["missing_embeddings"] == DROPPED_CLIPS
    assert report["mlflow_metrics"]["train.clips_missing_embeddings"] == DROPPED_CLIPS
    history = train_catalog.load("training_history")
    epochs = history["rot0/temporal_attention/val_map"]
    assert [e["step"] for e in epochs] == list(range(1, len(epochs) + 1))


def test_all_methods_are_scored_on_the_same_held_out_test_clips(runs):
    _, _, evaluate_catalog = runs
    predictions = evaluate_catalog.load("test_predictions")
    splits = evaluate_catalog.load("model_splits")
    for rotation, by_rotation in predictions.groupby("rotation"):
        test = splits[(splits["rotation"] == rotation) & (splits["role"] == "test")]
        expected = set(test["ytid"])
        clips_per_method = {m: set(g["ytid"]) for m, g in by_rotation.groupby("method")}
        assert set(clips_per_method) == set(METHODS)
        assert all(clips == expected for clips in clips_per_method.values())
        trained_on = splits[
            (splits["rotation"] == rotation) & (splits["role"] == "supervised_train")
        ]
        assert expected.isdisjoint(trained_on["ytid"])


def test_report_table_and_figures(runs):
    tmp_path, _, _ = runs
    report = json.loads((tmp_path / "evaluation_report.json").read_text())
    assert report["threshold_rule"] == "tuned" and report["zero_division"] == 0
    assert list(report["summary"]) == list(METHODS)
    for rotation in report["rotations"].values():
        for method, result in rotation["methods"].items():
            assert 0.0 <= result["micro_f1"] <= 1.0, method
            assert len(result["per_class"]) == result["n_classes"]
    assert "eval/temporal_attention/micro_f1_mean" in report["mlflow_metrics"]
    table = (tmp_path / "evaluation_table.md").read_text()
    assert "| Zero-shot, temporal attention (γ = 0.5) |" in table
    assert table.count(" ± ") >= 3 * len(METHODS)
    # zero-shot localisation is part of the same report and table
    localisation = json.loads((tmp_path / "localisation_report.json").read_text())
    assert report["localisation"]["summary"] == localisation["summary"]
    assert "mlflow_metrics" not in report["localisation"]
    assert "Every segment active (baseline)" in table
    assert (tmp_path / "f1.png").stat().st_size > 5_000
    assert (tmp_path / "attention.png").stat().st_size > 5_000
