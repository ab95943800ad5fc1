"""The featurize pipeline through Kedro's runner, its catalog dataset and its configuration."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.io.core import DatasetError, Version
from kedro.runner import SequentialRunner

from tests.audio.sounds import write_clips
from zeroshot_audio.audio.featurize import FeaturizeConfig
from zeroshot_audio.contracts import segment_table
from zeroshot_audio.contracts.segment_table import ShardedTable, atomic_write_parquet
from zeroshot_audio.datasets.segment_embeddings import SegmentEmbeddingsDataset
from zeroshot_audio.pipelines.featurize import create_pipeline

REPO_ROOT = Path(__file__).resolve().parents[3]


def _params(tmp_path: Path, audio_root: Path) -> dict:
    base = yaml.safe_load((REPO_ROOT / "conf/base/parameters_featurize.yml").read_text())[
        "featurize"
    ]
    return {
        **base,
        "audio_root": str(audio_root),
        "filename_pattern": "{ytid}.flac",
        "n_segments": 3,
        "batch_size": 8,
        "shard_size": 2,
        "weights": {**base["weights"], "download": False, "cache_dir": str(tmp_path / "weights")},
        "work_dir": str(tmp_path / "work"),
    }


def test_pipeline_runs_on_a_tiny_clip_folds(tmp_path) -> None:
    audio = tmp_path / "audio"
    ytids = write_clips(audio, [3.0, 2.2, 3.0])
    clip_folds = pd.DataFrame(
        {
            "ytid": ytids + ["absent"],
            "start_s": [0.0, 0.0, 0.0, 0.0],
            "end_s": [3.0, 3.0, 3.0, 3.0],
            "fold": [0, 1, 2, 0],
            "labels": [["/m/09x0r"], ["/m/04rlf"], ["/m/0ytgt"], ["/m/09x0r"]],
            "source_split": "balanced_train",
        }
    )
    embeddings = SegmentEmbeddingsDataset(
        filepath=str(tmp_path / "segment_embeddings"), version=Version(None, None)
    )
    catalog = DataCatalog(
        {
            "clip_folds": MemoryDataset(clip_folds),
            "params:featurize": MemoryDataset(_params(tmp_path, audio)),
            "params:seed": MemoryDataset(20240901),
            "params:device": MemoryDataset("auto"),
            "audioset_classes": MemoryDataset(pd.DataFrame({"index": [0], "mid": ["/m/09x0r"]})),
            "segment_embeddings": embeddings,
            "featurize_report": MemoryDataset(),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)

    table = catalog.load("segment_embeddings")
    assert table.schema.equals(segment_table.segment_schema(3, "float32"))
    arrays = segment_table.to_arrays(table)
    assert list(arrays.ytid) == ytids
    assert list(arrays.n_valid_segments) == [3, 2, 3]
    # the shards sit under the version folder
    version_dirs = list((tmp_path / "segment_embeddings").iterdir())
    assert len(version_dirs) == 1
    assert sorted(p.name for p in (version_dirs[0] / "segment_embeddings").iterdir()) == [
        "part-000000.parquet",
        "part-000001.parquet",
    ]

    report = catalog.load("featurize_report")
    assert report["mlflow_tags"]["vggish_weights"] == "random"
    assert report["mlflow_metrics"]["featurize/clips_ok"] == 3
    assert report["mlflow_metrics"]["featurize/failed_missing_file"] == 1
    assert [f["ytid"] for f in report["failures"]] == ["absent"]


def _table(n: int, t: int = 4, dtype: str = "float32", seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    emb = (
        rng.normal(size=(n, t, 128)).astype(dtype)
        if dtype == "float32"
        else rng.integers(0, 256, (n, t, 128)).astype(dtype)
    )
    return segment_table.from_arrays(
        [f"y{i}" for i in range(n)], np.arange(n) * 10.0, np.full(n, t), emb
    )


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_dataset_round_trips_a_table_in_shards(tmp_path, dtype) -> None:
    ds = SegmentEmbeddingsDataset(
        filepath=str(tmp_path / "emb"), version=Version(None, None), save_args={"rows_per_shard": 3}
    )
    table = _table(7, dtype=dtype)
    ds.save(table)
    loaded = ds.load()
    assert loaded.equals(table)
    version = ds.resolve_load_version()
    assert len(list((tmp_path / "emb" / version / "emb").glob("part-*.parquet"))) == 3
    assert ds.exists()
    preview = ds.preview(nrows=2)
    assert preview["columns"][:3] == ["ytid", "start_s", "n_valid_segments"]
    assert len(preview["data"]) == 2 and preview["data"][0][0] == "y0"
    # kedro-viz picks the renderer from the annotation's name
    assert str(inspect.signature(ds.preview).return_annotation) == "TablePreview"
    assert "filepath" in ds._describe()


def test_dataset_links_finished_shards_and_keeps_versions_apart(tmp_path) -> None:
    shards = [tmp_path / "work" / f"shard-{i}.parquet" for i in range(2)]
    parts = [_table(2, seed=1), _table(3, seed=2)]
    for path, part in zip(shards, parts, strict=True):
        atomic_write_parquet(part, path)
    ds = SegmentEmbeddingsDataset(filepath=str(tmp_path / "emb"), version=Version(None, None))
    ds.save(ShardedTable(paths=shards, schema=parts[0].schema))
    assert ds.load().equals(pa.concat_tables(parts))
    first = ds.resolve_load_version()
    linked = tmp_path / "emb" / first / "emb" / "part-000000.parquet"
    assert linked.stat().st_ino == shards[0].stat().st_ino  # hard link, no copy

    ds2 = SegmentEmbeddingsDataset(filepath=str(tmp_path / "emb"), version=Version(None, None))
    ds2.save(_table(1, seed=3))
    assert ds2.load().num_rows == 1
    old = SegmentEmbeddingsDataset(filepath=str(tmp_path / "emb"), version=Version(first, None))
    assert old.load().num_rows == 5
    assert not list((tmp_path / "emb").rglob("*.staging"))


def test_dataset_rejects_tables_that_break_the_contract(tmp_path) -> None:
    ds = SegmentEmbeddingsDataset(filepath=str(tmp_path / "emb"), version=Version(None, None))
    with pytest.raises(DatasetError, match="contract|segment_embeddings"):
        ds.save(pa.table({"ytid": ["a"], "start_s": [0.0]}))
    wrong = _table(2).cast(
        pa.schema(
            [
                f if f.name != "n_valid_segments" else pa.field(f.name, pa.int32())
                for f in _table(2).schema
            ]
        )
    )
    with pytest.raises(DatasetError, match="contract"):
        ds.save(wrong)


@pytest.mark.parametrize("env", ["base", "audioset"])
def test_configured_parameters_are_valid(env) -> None:
    path = REPO_ROOT / "conf" / env / "parameters_featurize.yml"
    params = dict(yaml.safe_load(path.read_text())["featurize"])
    assert params.pop("source") in {"audio", "released_embeddings"}
    params.pop("released_embeddings_glob")
    config = FeaturizeConfig.from_params(params, seed=1)
    if env == "base":
        assert config.weights.allow_random and config.audio_root == "data/01_raw/default/audio"
    else:
        assert not config.weights.allow_random and config.postprocess == "quantized"


def test_catalog_entries_build(tmp_path) -> None:
    for env in ("base", "audioset"):
        entries = yaml.safe_load((REPO_ROOT / "conf" / env / "catalog_featurize.yml").read_text())
        assert entries["segment_embeddings"]["metadata"]["kedro-viz"]["layer"] == "feature"
        dataset = DataCatalog.from_config({"s": entries["segment_embeddings"]}).get("s")
        assert isinstance(dataset, SegmentEmbeddingsDataset) and dataset._version is not None
        report = DataCatalog.from_config({"r": entries["featurize_report"]}).get("r")
        assert report._version is not None and report.metadata["mlflow_artifact"]
