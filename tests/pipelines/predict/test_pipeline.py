"""The ``predict`` pipeline through Kedro, with the project's catalog entries in a temp folder."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from kedro.io import DataCatalog, Version
from kedro.runner import SequentialRunner

from tests.conftest import REPO_ROOT
from tests.pipelines.predict.conftest import (
    ENCODER,
    FEATURIZE_PARAMS,
    OTHER_LABELS,
    SEED,
    TARGET_LABEL,
    TONE_SPANS,
    typed_checkpoint,
)
from zeroshot_audio.datasets.torch_model import TorchModelDataset
from zeroshot_audio.pipelines.predict import create_pipeline
from zeroshot_audio.pipelines.predict.nodes import select_predict_model, tag_audio_files
from zeroshot_audio.predict import ModelNotTrainedError

OUTPUTS = (
    "predictions",
    "sound_events",
    "segment_attention",
    "predict_report",
    "prediction_figures",
)


def project_params(audio: list[str], labels: list[str]) -> dict:
    params = yaml.safe_load((REPO_ROOT / "conf/base/parameters_predict.yml").read_text())["predict"]
    return {**params, "audio": audio, "labels": labels, "max_files": None}


def make_catalog(tmp_path: Path, checkpoint: dict, predict_params: dict) -> DataCatalog:
    """The entries of conf/base/catalog_predict.yml with their files under ``tmp_path``."""
    config = yaml.safe_load((REPO_ROOT / "conf/base/catalog_predict.yml").read_text())
    for entry in config.values():
        if (
            "filepath" in entry
            and entry["filepath"].startswith("data/0")
            and not entry["filepath"].startswith("data/01_raw")
        ):
            entry["filepath"] = str(tmp_path / entry["filepath"])
    models = TorchModelDataset(
        filepath=str(tmp_path / "trained_models.pt"), version=Version(None, None)
    )
    # the train stage's format and dataset
    models.save({"rot0/temporal_attention": typed_checkpoint(checkpoint)})
    catalog = DataCatalog.from_config(config, save_version="2024-09-01T00.00.00.000Z")
    catalog["trained_models"] = TorchModelDataset(
        filepath=str(tmp_path / "trained_models.pt"), version=Version(None, None)
    )
    catalog["label_embeddings"] = pd.DataFrame(
        {
            "mid": ["/m/09x0r", "/m/07cx4"],
            "text": ["Speech", "Telephone"],
            "embedding": [np.zeros(3, np.float32)] * 2,  # only the texts are used
        }
    )
    catalog["params:predict"] = predict_params
    catalog["params:featurize"] = copy.deepcopy(FEATURIZE_PARAMS)
    catalog["params:embed_labels.encoder"] = dict(ENCODER)
    catalog["params:seed"] = SEED
    catalog["params:device"] = "cpu"
    return catalog


def saved(tmp_path: Path, relative: str) -> Path:
    folder = tmp_path / relative
    (version,) = [p for p in folder.iterdir() if p.is_dir()]
    return version / folder.name


def test_predict_pipeline_writes_versioned_tags_events_report_and_figures(
    planted, audio_dir, tmp_path
):
    bad = tmp_path / "broken.ogg"
    bad.write_bytes(b"OggS but not really")
    labels = [TARGET_LABEL, *OTHER_LABELS, "/m/09x0r"]
    params = project_params([str(planted["file"]), str(bad)], labels)
    catalog = make_catalog(tmp_path, planted["checkpoint"], params)

    SequentialRunner().run(create_pipeline(), catalog)

    predictions = pd.read_parquet(saved(tmp_path, "data/07_model_output/predictions.parquet"))
    assert predictions["label"].tolist() == labels
    assert predictions.set_index("label")["predicted"].to_dict() == {
        TARGET_LABEL: True,
        **{label: False for label in [*OTHER_LABELS, "/m/09x0r"]},
    }
    assert predictions.set_index("label").loc["/m/09x0r", "text"] == "Speech"

    events = pd.read_csv(saved(tmp_path, "data/07_model_output/sound_events.csv"))
    assert list(zip(events["onset_s"], events["offset_s"], strict=True)) == list(TONE_SPANS)
    assert set(events["label"]) == {TARGET_LABEL}

    segments = pd.read_parquet(saved(tmp_path, "data/07_model_output/segment_attention.parquet"))
    assert len(segments) == 35 * len(labels)

    report = json.loads(saved(tmp_path, "data/08_reporting/predict_report.json").read_text())
    assert report["model"] == "rot0/temporal_attention"
    assert report["n_files_tagged"] == 1 and report["n_files_failed"] == 1
    assert (
        report["failures"][0]["file"] == str(bad)
        and report["failures"][0]["reason"] == "decode_error"
    )
    seen = {entry["label"]: entry["seen_in_training"] for entry in report["labels"]}
    assert seen == {**{label: False for label in [TARGET_LABEL, *OTHER_LABELS]}, "/m/09x0r": True}
    assert report["mlflow_tags"]["vggish_weights"] == "random"  # degraded mode is visible
    assert report["mlflow_metrics"]["predict.files_failed"] == 1
    assert report["threshold"] == {"rule": "tuned", "value": 0.5, "top_k": None}

    (figure,) = saved(tmp_path, "data/08_reporting/prediction_figures").iterdir()
    assert figure.name == "000_street_35s.png" and figure.stat().st_size > 10_000


def test_no_readable_file_fails_the_node_with_every_reason(planted, tmp_path):
    (tmp_path / "a.wav").write_text("nope")
    params = project_params(
        [str(tmp_path / "a.wav"), str(tmp_path / "missing.flac")], [TARGET_LABEL]
    )
    model = {"name": "rot0/temporal_attention", "checkpoint": planted["checkpoint"]}
    labels = pd.DataFrame(
        {
            "label": [TARGET_LABEL],
            "mid": [None],
            "text": [TARGET_LABEL],
            "seen_in_training": [False],
        }
    )
    with pytest.raises(RuntimeError, match="none of the 1 audio file") as error:
        tag_audio_files(model, labels, params, FEATURIZE_PARAMS, ENCODER, SEED, "cpu")
    assert "a.wav: decode_error" in str(error.value)
    assert "missing.flac: missing_file: no such file or folder" in str(error.value)


def test_predicting_without_a_trained_model_says_what_to_run():
    with pytest.raises(
        ModelNotTrainedError,
        match="kedro run --pipelines=ingest,split,featurize,embed_labels,train",
    ):
        select_predict_model({}, project_params(["x.wav"], ["dog"]))


def test_the_project_parameters_are_valid():
    params = yaml.safe_load((REPO_ROOT / "conf/base/parameters_predict.yml").read_text())["predict"]
    from zeroshot_audio.predict import PredictConfig

    config = PredictConfig.from_params(params)
    assert config.threshold.rule == "tuned" and config.localisation.rule == "uniform_ratio"
    assert any(label.startswith("/m/") for label in config.labels)
