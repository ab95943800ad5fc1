"""The in-memory contract of ``segment_embeddings``: one row per clip, T x 128 per row.

``featurize`` writes it, ``train``/``evaluate``/``predict`` read it. It is an Arrow table
rather than a pandas frame so that 2M clips x 10 x 128 bytes stay one contiguous buffer:
``to_arrays`` is zero-copy for uint8 and float32 alike, with no per-row Python objects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

EMBEDDING_DIM = 128


def segment_schema(n_segments: int, dtype: str = "float32") -> pa.Schema:
    """Arrow schema of the table; ``dtype`` is ``float32`` or ``uint8`` (quantised)."""
    value_type = {"float32": pa.float32(), "uint8": pa.uint8()}[dtype]
    return pa.schema(
        [
            ("ytid", pa.string()),
            ("start_s", pa.float64()),
            ("n_valid_segments", pa.int16()),
            (
                "embedding",
                pa.list_(pa.list_(value_type, EMBEDDING_DIM), n_segments),
            ),
        ]
    )


@dataclass(frozen=True)
class SegmentArrays:
    """Column arrays of the table; ``embeddings`` is [N, T, 128] and shares the Arrow buffer."""

    ytid: np.ndarray
    start_s: np.ndarray
    n_valid_segments: np.ndarray
    embeddings: np.ndarray

    @property
    def valid_mask(self) -> np.ndarray:
        """[N, T] boolean: segment t of clip i holds audio."""
        t = np.arange(self.embeddings.shape[1])
        return t[None, :] < self.n_valid_segments[:, None]


def from_arrays(
    ytid: np.ndarray | list[str],
    start_s: np.ndarray | list[float],
    n_valid_segments: np.ndarray | list[int],
    embeddings: np.ndarray,
) -> pa.Table:
    """Build the table from [N, T, 128] embeddings (float32 or uint8)."""
    embeddings = np.ascontiguousarray(embeddings)
    if embeddings.ndim != 3 or embeddings.shape[2] != EMBEDDING_DIM:
        raise ValueError(f"embeddings must be [N, T, {EMBEDDING_DIM}], got {embeddings.shape}")
    n, t, _ = embeddings.shape
    dtype = str(embeddings.dtype)
    schema = segment_schema(t, dtype)
    inner = pa.FixedSizeListArray.from_arrays(pa.array(embeddings.reshape(-1)), EMBEDDING_DIM)
    outer = pa.FixedSizeListArray.from_arrays(inner, t)
    return pa.Table.from_arrays(
        [
            pa.array(list(ytid), pa.string()),
            pa.array(np.asarray(start_s, dtype=np.float64)),
            pa.array(np.asarray(n_valid_segments, dtype=np.int16)),
            outer,
        ],
        schema=schema,
    )


def to_arrays(table: pa.Table) -> SegmentArrays:
    """Zero-copy view of the table's columns as numpy arrays."""
    emb_type = table.schema.field("embedding").type
    n_segments = emb_type.list_size
    column = table.column("embedding").combine_chunks()
    values = column.flatten().flatten().to_numpy(zero_copy_only=False)
    return SegmentArrays(
        ytid=table.column("ytid").to_numpy(zero_copy_only=False).astype(str),
        start_s=table.column("start_s").to_numpy(),
        n_valid_segments=table.column("n_valid_segments").to_numpy().astype(np.int64),
        embeddings=values.reshape(len(table), n_segments, EMBEDDING_DIM),
    )
