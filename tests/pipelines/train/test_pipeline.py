"""``train`` then ``evaluate`` through a Kedro runner, on the planted catalog and on features a
user brought (64 wide, label vectors without an encoder spec) read from files.

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
from kedro_datasets.text import TextDataset

from tests.planted_catalog import (
    DROPPED_CLIPS,
    LABEL_ENCODER,
    PARAMS,
    build_catalog,
    parameter_datasets,
    planted_catalog,
)
from zeroshot_audio.contracts.segment_table import EmbedderSpec
from zeroshot_audio.datasets.segment_embeddings import SegmentEmbeddingsDataset
from zeroshot_audio.datasets.tables import ParquetDataset
from zeroshot_audio.datasets.torch_model import TorchModelDataset
from zeroshot_audio.experiment.protocol import METHODS, TRAINED_METHODS
from zeroshot_audio.pipelines.evaluate import create_pipeline as evaluate_pipeline
from zeroshot_audio.pipelines.train import create_pipeline as train_pipeline


def _catalog(tmp_path, inputs, params=PARAMS):
    versioned = Version(None, None)
    datasets = {name: MemoryDataset(value) for name, value in inputs.items()}
    datasets |= {name: MemoryDataset(value) for name, value in parameter_datasets(params).items()}
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


def _train_then_evaluate(tmp_path, inputs, params=PARAMS):
    train_catalog = _catalog(tmp_path, inputs, params)
    SequentialRunner().run(train_pipeline(), train_catalog)
    evaluate_catalog = _catalog(tmp_path, inputs, params)  # fresh: nothing in memory from training
    SequentialRunner().run(evaluate_pipeline(), evaluate_catalog)
    return train_catalog, evaluate_catalog


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("train_evaluate")
    params = json.loads(json.dumps(PARAMS))
    params["train"]["fit"]["epochs"] = 3
    train_catalog, evaluate_catalog = _train_then_evaluate(tmp_path, planted_catalog(), params)
    return tmp_path, train_catalog, evaluate_catalog


def test_training_saves_every_rotation_and_method_with_what_predict_needs(runs):
    tmp_path, train_catalog, _ = runs
    models = TorchModelDataset(
        filepath=str(tmp_path / "trained_models.pt"), version=Version(None, None)
    ).load()
    rotations = [r["name"] for r in PARAMS["folds"]["rotations"]]
    k = PARAMS["train"]["supervised_crossfit"]["k"]
    assert set(models) == {
        f"{r}/{m}" for r in rotations for m in TRAINED_METHODS if m != "supervised"
    } | {f"{r}/supervised/k{i}" for r in rotations for i in range(k)}
    assert all(models[f"rot1/supervised/k{i}"].crossfit_part == i for i in range(k))
    ta = models["rot0/temporal_attention"]
    assert ta.gamma == 0.5 and models["rot0/uniform"].gamma == 0.0
    assert ta.label_encoder == LABEL_ENCODER  # read from label_embeddings, not parameters
    assert ta.embedder.source == "external"
    assert isinstance(ta.threshold, float) and ta.model_config["semantic_dim"] == 8

    report = json.loads((tmp_path / "training_report.json").read_text())
    assert report["clips"]["missing_embeddings"] == DROPPED_CLIPS
    assert report["mlflow_metrics"]["train/clips_missing_embeddings"] == DROPPED_CLIPS
    history = train_catalog.load("training_history")
    epochs = history["train/rot0/temporal_attention/val_map"]
    assert [e["step"] for e in epochs] == list(range(1, len(epochs) + 1))


def test_report_table_and_figures(runs):
    tmp_path, _, evaluate_catalog = runs
    report = json.loads((tmp_path / "evaluation_report.json").read_text())
    assert report["threshold_rule"] == "tuned" and report["zero_division"] == 0
    assert list(report["summary"]) == list(METHODS)
    for rotation in report["rotations"].values():
        for method, result in rotation["methods"].items():
            assert 0.0 <= result["micro_f1"] <= 1.0, method
            assert len(result["per_class"]) == result["n_classes"]
    assert "evaluate/temporal_attention/micro_f1_mean" in report["mlflow_metrics"]
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
    predictions = evaluate_catalog.load("test_predictions")
    assert set(predictions["method"]) == set(METHODS)


def test_bring_your_own_features_64_wide_train_and_evaluate_from_files(tmp_path):
    """A user's own 64-wide segment embeddings and 12-wide label vectors (no specs), written to
    Parquet in the documented schemas and read back by the project's datasets."""
    inputs = build_catalog(clips_per_fold=40, segment_dim=64, semantic_dim=12, with_specs=False)
    segments = SegmentEmbeddingsDataset(filepath=str(tmp_path / "segments"), version=None)
    segments.save(inputs["segment_embeddings"])
    labels = ParquetDataset(filepath=str(tmp_path / "labels.parquet"))
    labels.save(inputs["label_embeddings"])
    from_files = {
        **inputs,
        "segment_embeddings": segments.load(),
        "label_embeddings": labels.load(),
    }
    params = json.loads(json.dumps(PARAMS))
    params["train"]["fit"].update(epochs=2, patience=2)

    _train_then_evaluate(tmp_path, from_files, params)

    models = TorchModelDataset(
        filepath=str(tmp_path / "trained_models.pt"), version=Version(None, None)
    ).load()
    ta = models["rot1/temporal_attention"]
    assert ta.model_config["acoustic_dim"] == 64 and ta.model_config["semantic_dim"] == 12
    assert ta.embedder == EmbedderSpec(
        source="external", n_segments=10, width=64, postprocess="quantized", final_relu=False,
        weights="unknown",
    )  # fmt: skip
    assert ta.label_encoder.source == "external" and ta.label_encoder.dimension == 12
    report = json.loads((tmp_path / "evaluation_report.json").read_text())
    assert list(report["summary"]) == list(METHODS)
    assert report["localisation"]["rotations"]  # the strong labels were scored too
