"""``experiment.clips``: the segment table on the device once, its provenance, schema errors."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tests.planted_catalog import DROPPED_CLIPS, LABEL_ENCODER, planted_catalog
from zeroshot_audio.contracts.segment_table import EmbedderSpec, from_arrays, with_embedder_spec
from zeroshot_audio.experiment.clips import ClipTable, label_encoder_spec, table_embedder_spec


def test_clips_are_joined_to_their_rows_and_clips_without_embeddings_are_counted():
    inputs = planted_catalog()
    table = ClipTable.load(inputs["segment_embeddings"], inputs["clip_folds"], "cpu")
    assert len(table.missing) == DROPPED_CLIPS
    assert len(table.clips) == len(inputs["clip_folds"]) - DROPPED_CLIPS
    ytids = inputs["segment_embeddings"].column("ytid").to_pylist()
    assert [ytids[r] for r in table.clips["row"]] == table.clips["ytid"].tolist()
    assert table.segments.dtype.is_floating_point is False  # uint8 stays uint8 on the device
    assert (table.n_segments, table.width, table.segment_dtype) == (10, 128, "uint8")
    valid = table.valid_mask(table.clips.iloc[:5])
    np.testing.assert_array_equal(valid.sum(axis=1), table.n_valid_segments[table.clips["row"][:5]])


def test_the_embedder_spec_comes_from_the_schema_else_external_with_the_tables_layout(caplog):
    x = np.zeros((2, 4, 64), np.float32)
    bare = from_arrays(["a", "b"], [0.0, 0.0], [4, 2], x)
    with caplog.at_level("WARNING"):
        external = table_embedder_spec(bare)
    assert (external.source, external.n_segments, external.width) == ("external", 4, 64)
    assert "no embedder spec" in caplog.text
    spec = EmbedderSpec(n_segments=4, width=64, weights_fingerprint="abc")
    assert table_embedder_spec(with_embedder_spec(bare, spec)) == spec


def test_the_label_encoder_spec_comes_from_the_table_else_external_with_its_width():
    labels = planted_catalog()["label_embeddings"]
    assert label_encoder_spec(labels) == LABEL_ENCODER
    bare = labels.copy()
    bare.attrs = {}
    assert label_encoder_spec(bare).source == "external"
    assert label_encoder_spec(bare).dimension == LABEL_ENCODER.dimension


def test_a_table_of_another_schema_names_the_expected_one_beside_the_one_found():
    inputs = planted_catalog()
    wrong = pa.table({"ytid": ["a"], "start_s": [0.0], "n_valid_segments": [1],
                      "embedding": [[[0.0] * 3]]})  # fmt: skip
    with pytest.raises(ValueError) as error:
        ClipTable.load(wrong, inputs["clip_folds"], "cpu")
    message = str(error.value)
    assert "segment_embeddings" in message and "expected:" in message and "found:" in message
    assert "int16" in message and "int64" in message
