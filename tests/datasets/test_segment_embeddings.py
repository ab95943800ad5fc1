"""``SegmentEmbeddingsDataset`` keeps the table's EmbedderSpec (schema metadata) through save and
load, for a table and for featurize's finished shards alike."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from kedro.io import Version
from kedro.io.core import DatasetError

from zeroshot_audio.contracts import segment_table
from zeroshot_audio.contracts.segment_table import (
    EmbedderSpec,
    ShardedTable,
    atomic_write_parquet,
    embedder_spec,
    from_arrays,
)
from zeroshot_audio.datasets.segment_embeddings import SegmentEmbeddingsDataset

SPEC = EmbedderSpec(
    postprocess="none", final_relu=False, weights="random", weights_fingerprint="random:he-normal:5"
)


def table(n: int, seed: int = 0, spec: EmbedderSpec | None = SPEC):
    rng = np.random.default_rng(seed)
    return from_arrays(
        [f"y{seed}_{i}" for i in range(n)],
        np.zeros(n),
        np.full(n, 10),
        rng.normal(size=(n, 10, 128)).astype(np.float32),
        embedder=spec,
    )


def dataset(tmp_path, **kwargs) -> SegmentEmbeddingsDataset:
    return SegmentEmbeddingsDataset(
        filepath=str(tmp_path / "emb"), version=Version(None, None), **kwargs
    )


def test_a_table_keeps_its_spec_through_save_and_load(tmp_path):
    ds = dataset(tmp_path, save_args={"rows_per_shard": 2})
    ds.save(table(5))
    loaded = ds.load()
    assert embedder_spec(loaded.schema) == SPEC
    assert loaded.equals(table(5))


def test_shards_keep_the_spec_and_a_shard_written_without_it_gets_the_tables(tmp_path):
    paths = [tmp_path / "work" / f"shard-{i}.parquet" for i in range(2)]
    atomic_write_parquet(table(2, seed=1), paths[0])
    atomic_write_parquet(table(3, seed=2, spec=None), paths[1])  # an older shard
    schema = segment_table.segment_schema(10, embedder=SPEC)
    ds = dataset(tmp_path)
    ds.save(ShardedTable(paths=paths, schema=schema))
    assert embedder_spec(ds.load().schema) == SPEC
    version = ds.resolve_load_version()
    for part in sorted((tmp_path / "emb" / version / "emb").glob("part-*.parquet")):
        assert embedder_spec(pq.read_schema(part)) == SPEC


def test_shards_that_disagree_on_the_spec_are_refused(tmp_path):
    ds = dataset(tmp_path, save_args={"rows_per_shard": 2})
    ds.save(table(4))
    version = ds.resolve_load_version()
    other = table(1, seed=9, spec=EmbedderSpec(final_relu=True))
    pq.write_table(other, tmp_path / "emb" / version / "emb" / "part-000009.parquet")
    with pytest.raises(DatasetError, match="different embedder specs"):
        dataset(tmp_path).load()


def test_load_gives_one_buffer_that_training_reads_without_a_copy(tmp_path):
    """Several shards load into ONE embedding buffer (the table is held once): ``to_arrays``
    returns a view of it; an empty table loads as an empty table."""
    import pyarrow as pa

    st = segment_table

    data = table(10)
    ds = dataset(tmp_path, save_args={"rows_per_shard": 4})
    ds.save(data)
    loaded = ds.load()
    assert loaded.column("embedding").num_chunks == 1
    before = pa.total_allocated_bytes()
    first, again = st.to_arrays(loaded), st.to_arrays(loaded)
    assert pa.total_allocated_bytes() == before  # no copy of the embeddings
    assert np.shares_memory(first.embeddings, again.embeddings)
    np.testing.assert_array_equal(first.embeddings, st.to_arrays(data).embeddings)
    assert list(first.ytid) == list(st.to_arrays(data).ytid)
    assert st.embedder_spec(loaded.schema) == st.embedder_spec(data.schema)
    empty = dataset(tmp_path / "empty")
    empty.save(table(0))
    assert len(empty.load()) == 0 and st.to_arrays(empty.load()).embeddings.shape == (0, 10, 128)
