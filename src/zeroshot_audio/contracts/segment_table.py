"""The ``segment_embeddings`` contract: one row per clip, T segments x D values per row.

``featurize`` (or a user bringing their own features) writes it; ``train``, ``evaluate`` and
``predict`` read it. It is an Arrow table rather than a pandas frame so that 2M clips x 10 x 128
bytes stay one contiguous buffer: ``to_arrays`` is zero-copy for uint8 and float32 alike.

Schema (``segment_schema``)::

    ytid              string
    start_s           float64
    n_valid_segments  int16                     leading segments that hold audio
    embedding         fixed_size_list<fixed_size_list<float32 | uint8, D>, T>

D is 128 for VGGish (``EMBEDDING_SIZE``) but any width is accepted. uint8 means the AudioSet
release's quantisation: ``x = u8 * 4/255 - 2`` (``dequantize``). The schema metadata key
``zeroshot_audio.embedder`` holds the :class:`EmbedderSpec` as JSON: how the vectors were made,
so a trained model can refuse audio embedded differently.

Shards are written atomically (:mod:`zeroshot_audio.storage`: temp file + fsync + rename, or one
put to an object store) so a killed run leaves either no file or a complete one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from zeroshot_audio import storage
from zeroshot_audio.config import build_strict
from zeroshot_audio.storage import Location

#: VGGish's embedding width, the default D of the table.
EMBEDDING_SIZE = 128
#: The AudioSet release clips PCA-whitened embeddings to this range and quantises to 8 bits.
QUANTIZE_MIN = -2.0
QUANTIZE_MAX = 2.0
QUANTIZE_STEP = (QUANTIZE_MAX - QUANTIZE_MIN) / 255.0
EMBEDDER_METADATA_KEY = b"zeroshot_audio.embedder"
DTYPES = {"float32": pa.float32(), "uint8": pa.uint8()}


def quantize(x: Any) -> Any:
    """[-2, 2] -> uint8 as the TF reference made the AudioSet release: scale to [0, 255] and
    truncate (numpy ``astype(np.uint8)``). The PyTorch port rounds instead, which shifts half of
    the values up by one step. Accepts a numpy array or a torch tensor."""
    if isinstance(x, np.ndarray):
        return ((np.clip(x, QUANTIZE_MIN, QUANTIZE_MAX) - QUANTIZE_MIN) / QUANTIZE_STEP).astype(
            np.uint8
        )
    import torch  # deferred: the Kedro dataset imports this module and needs no torch

    scaled = (x.clamp(QUANTIZE_MIN, QUANTIZE_MAX) - QUANTIZE_MIN) * (1.0 / QUANTIZE_STEP)
    return scaled.to(torch.uint8)  # float -> uint8 truncates, like numpy's astype


def dequantize(u8: Any) -> Any:
    """Stored segments (AudioSet uint8, or float) -> float32; uint8 maps ``x = u8 * 4/255 - 2``.

    A torch tensor stays on its device: training keeps the table there as uint8 (4x smaller)
    and dequantises batch by batch."""
    if isinstance(u8, np.ndarray):
        if u8.dtype != np.uint8:
            return u8.astype(np.float32, copy=False)
        return u8.astype(np.float32) * np.float32(QUANTIZE_STEP) + np.float32(QUANTIZE_MIN)
    import torch

    if u8.dtype == torch.uint8:
        return u8.to(torch.float32) * QUANTIZE_STEP + QUANTIZE_MIN
    return u8.to(torch.float32)


@dataclass(frozen=True)
class EmbedderSpec:
    """How the segment vectors were made; stored in the table's schema metadata and copied into
    every checkpoint trained on it.

    Attributes:
        source: ``vggish`` (this project's featurize), ``released`` (AudioSet's TFRecords) or
            ``external`` (a user's own features: predict cannot reproduce them).
        n_segments, segment_s: the clip layout (T segments of ``segment_s`` seconds).
        width: D, values per segment.
        postprocess: ``none``, ``pca`` or ``quantized`` (VGGish post-processing).
        final_relu: whether VGGish's last ReLU was applied.
        weights: ``official`` or ``random``; ``weights_fingerprint`` the sha256 (or seed) behind it.
        precision: the arithmetic featurize ran in (``fp32`` is exact).
        min_coverage: the share of a segment's example window that must hold real audio.
    """

    source: str = "vggish"
    n_segments: int = 10
    segment_s: float = 1.0
    width: int = EMBEDDING_SIZE
    postprocess: str = "quantized"
    final_relu: bool = True
    weights: str = "official"
    weights_fingerprint: str = ""
    precision: str = "fp32"
    min_coverage: float = 1.0

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> EmbedderSpec:
        return build_strict(cls, values, "embedder spec")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def differences(self, other: EmbedderSpec, ignore: Sequence[str] = ("precision",)) -> dict:
        """``{field: (self's, other's)}`` for every field that differs, except ``ignore``."""
        mine, theirs = self.to_dict(), other.to_dict()
        return {k: (mine[k], theirs[k]) for k in mine if k not in ignore and mine[k] != theirs[k]}


def segment_schema(
    n_segments: int,
    dtype: str = "float32",
    width: int = EMBEDDING_SIZE,
    embedder: EmbedderSpec | None = None,
) -> pa.Schema:
    """Arrow schema of the table; ``dtype`` is ``float32`` or ``uint8`` (quantised)."""
    if dtype not in DTYPES:
        raise ValueError(f"segment dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    schema = pa.schema(
        [
            ("ytid", pa.string()),
            ("start_s", pa.float64()),
            ("n_valid_segments", pa.int16()),
            ("embedding", pa.list_(pa.list_(DTYPES[dtype], int(width)), int(n_segments))),
        ]
    )
    return with_embedder_spec(schema, embedder) if embedder is not None else schema


def with_embedder_spec(schema_or_table: Any, spec: EmbedderSpec) -> Any:
    """The schema (or table) with ``spec`` in its metadata; other metadata kept."""
    schema = schema_or_table.schema if isinstance(schema_or_table, pa.Table) else schema_or_table
    metadata = dict(schema.metadata or {})
    metadata[EMBEDDER_METADATA_KEY] = json.dumps(spec.to_dict(), sort_keys=True).encode()
    if isinstance(schema_or_table, pa.Table):
        return schema_or_table.replace_schema_metadata(metadata)
    return schema.with_metadata(metadata)


def embedder_spec(schema: pa.Schema) -> EmbedderSpec | None:
    """The :class:`EmbedderSpec` stored in ``schema``'s metadata, or None when absent."""
    raw = (schema.metadata or {}).get(EMBEDDER_METADATA_KEY)
    return EmbedderSpec.from_dict(json.loads(raw)) if raw else None


def describe_schema(schema: pa.Schema) -> str:
    """One line per field, for error messages that show expected beside found."""
    return ", ".join(f"{f.name}: {f.type}" for f in schema)


def check_schema(schema: pa.Schema, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` when ``schema`` is not a segment table's."""
    try:
        emb = schema.field("embedding").type
        inner = emb.value_type
        dtype = {v: k for k, v in DTYPES.items()}[inner.value_type]
        expected = segment_schema(emb.list_size, dtype, inner.list_size)
    except (KeyError, AttributeError) as err:
        expected = segment_schema(10)
        raise ValueError(
            f"{where}: not a segment_embeddings table ({err!r}).\n  expected: "
            f"{describe_schema(expected)} (T=10, D=128 shown; any T and D work)\n"
            f"  found:    {describe_schema(schema)}"
        ) from err
    if not schema.remove_metadata().equals(expected):
        raise ValueError(
            f"{where}: schema differs from the segment_embeddings contract.\n"
            f"  expected: {describe_schema(expected)}\n  found:    {describe_schema(schema)}"
        )


@dataclass(frozen=True)
class SegmentArrays:
    """Column arrays of the table; ``embeddings`` is [N, T, D] and shares the Arrow buffer."""

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
    ytid: np.ndarray | list[str] | pa.Array,
    start_s: np.ndarray | list[float] | pa.Array,
    n_valid_segments: np.ndarray | list[int] | pa.Array,
    embeddings: np.ndarray,
    embedder: EmbedderSpec | None = None,
) -> pa.Table:
    """Build the table from [N, T, D] embeddings (float32 or uint8). A C-contiguous
    ``embeddings`` is wrapped, not copied: the table's embedding column is one chunk over that
    very buffer, so :func:`to_arrays` gives it back without a copy (the memory of a 2M-clip
    table is paid once)."""
    embeddings = np.ascontiguousarray(embeddings)
    if embeddings.ndim != 3:
        raise ValueError(f"embeddings must be [N, T, D], got shape {embeddings.shape}")
    n, t, width = embeddings.shape
    schema = segment_schema(t, str(embeddings.dtype), width, embedder)
    inner = pa.FixedSizeListArray.from_arrays(pa.array(embeddings.reshape(-1)), width)
    outer = pa.FixedSizeListArray.from_arrays(inner, t)
    ytid = ytid if isinstance(ytid, pa.Array) else pa.array(list(ytid), pa.string())
    if not isinstance(start_s, pa.Array):
        start_s = pa.array(np.asarray(start_s, dtype=np.float64))
    if not isinstance(n_valid_segments, pa.Array):
        n_valid_segments = pa.array(np.asarray(n_valid_segments, dtype=np.int16))
    return pa.Table.from_arrays(
        [ytid, start_s.cast(pa.float64()), n_valid_segments.cast(pa.int16()), outer],
        schema=schema,
    )


def to_arrays(table: pa.Table) -> SegmentArrays:
    """Views of the table's columns as numpy arrays: zero-copy for the embeddings when the
    column is one chunk (a table from :func:`from_arrays` or from the dataset's load); a table
    of several chunks is combined once (a copy)."""
    emb_type = table.schema.field("embedding").type
    n_segments, width = emb_type.list_size, emb_type.value_type.list_size
    chunked = table.column("embedding")
    # combine_chunks copies even a single chunk: avoid it there.
    column = chunked.chunk(0) if chunked.num_chunks == 1 else chunked.combine_chunks()
    values = column.flatten().flatten().to_numpy(zero_copy_only=False)
    return SegmentArrays(
        ytid=table.column("ytid").to_numpy(zero_copy_only=False).astype(str),
        start_s=table.column("start_s").to_numpy(),
        n_valid_segments=table.column("n_valid_segments").to_numpy().astype(np.int64),
        embeddings=values.reshape(len(table), n_segments, width),
    )


# --------------------------------------------------------------------------------------------
# Sharded, atomic storage
# --------------------------------------------------------------------------------------------


def atomic_write_parquet(table: pa.Table, location: Location, compression: str = "zstd") -> None:
    """Readers (and a rerun after a kill) see either no file or the complete one; ``location``
    is a local path or any fsspec URL (see :mod:`zeroshot_audio.storage`)."""
    with storage.open_output(location) as f:
        pq.write_table(table, f, compression=compression)


@dataclass(frozen=True)
class ShardedTable:
    """Finished Parquet shards (local paths or fsspec URLs) that together form one table, in
    row order.

    What the featurize node hands to the catalog: the dataset links (or copies) the files into
    its version folder instead of materialising millions of rows in memory.
    """

    paths: Sequence[Location]
    schema: pa.Schema

    def read(self) -> pa.Table:
        tables = []
        for location in self.paths:
            with storage.open_input(location) as f:
                tables.append(pq.read_table(f, schema=self.schema))
        if not tables:
            return self.schema.empty_table()
        return pa.concat_tables(tables)

    @property
    def num_rows(self) -> int:
        total = 0
        for location in self.paths:
            with storage.open_input(location) as f:
                total += pq.ParquetFile(f).metadata.num_rows
        return total
