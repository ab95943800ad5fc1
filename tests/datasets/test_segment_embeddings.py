"""``SegmentEmbeddingsDataset``: the embedder spec in the schema metadata survives save/load."""

import numpy as np
import pytest
from kedro.io import DatasetError

from zeroshot_audio.contracts.segment_table import (
    EmbedderSpec,
    embedder_spec,
    from_arrays,
    with_embedder_spec,
)
from zeroshot_audio.datasets.segment_embeddings import SegmentEmbeddingsDataset


def _table(n=5, spec=None):
    x = np.arange(n * 2 * 3, dtype=np.float32).reshape(n, 2, 3)
    return from_arrays([f"c{i}" for i in range(n)], [0.0] * n, [2] * n, x, embedder=spec)


def test_the_embedder_spec_travels_through_sharded_save_and_load(tmp_path):
    spec = EmbedderSpec(n_segments=2, width=3, weights_fingerprint="abc", postprocess="none")
    dataset = SegmentEmbeddingsDataset(
        filepath=str(tmp_path / "segments"), save_args={"rows_per_shard": 2}
    )
    dataset.save(_table(spec=spec))
    loaded = dataset.load()
    assert len(loaded) == 5 and embedder_spec(loaded.schema) == spec
    plain = SegmentEmbeddingsDataset(filepath=str(tmp_path / "plain"))
    plain.save(_table())
    assert embedder_spec(plain.load().schema) is None


def test_shards_with_different_specs_are_refused(tmp_path):
    dataset = SegmentEmbeddingsDataset(filepath=str(tmp_path / "segments"))
    dataset.save(_table(spec=EmbedderSpec(n_segments=2, width=3)))
    other = SegmentEmbeddingsDataset(filepath=str(tmp_path / "other"))
    other.save(with_embedder_spec(_table(), EmbedderSpec(n_segments=2, width=3, weights="random")))
    (tmp_path / "other" / "part-000000.parquet").rename(
        tmp_path / "segments" / "part-000001.parquet"
    )
    with pytest.raises(DatasetError, match="different embedder specs"):
        dataset.load()
