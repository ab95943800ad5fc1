"""The segment table on the device once, joined to the clips of ``clip_folds``.

Training and evaluation both start from the same preamble: decode the Arrow segment table into
an ``[N, T, D]`` array, find the table row of every clip of ``clip_folds``, and put the whole
table on the device as one tensor (uint8 stays uint8: 4x smaller). :class:`ClipTable` does it
once; a split (one rotation's training clips, its test clips, ...) is then a vector of row
indices into that tensor (:meth:`ClipTable.clip_set`).

It also reads the provenance of the table: the :class:`EmbedderSpec` in its schema metadata. A
table without one (a user's own features, an older table) is taken as ``external`` with the
table's own layout, and that is logged, since predict cannot reproduce such features.

No Kedro here: a notebook builds a ``ClipTable`` from the same two tables the nodes load.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from zeroshot_audio.contracts.label_table import LabelEncoderSpec, encoder_spec
from zeroshot_audio.contracts.segment_table import (
    EmbedderSpec,
    check_schema,
    embedder_spec,
    to_arrays,
)
from zeroshot_audio.device import resolve_device
from zeroshot_audio.experiment.protocol import (
    attach_rows,
    label_matrix,
    multi_hot,
    segment_index,
    split_clips,
)
from zeroshot_audio.model.training import ClipSet, make_clip_set, segments_to_device

logger = logging.getLogger(__name__)


def table_embedder_spec(segment_embeddings: pa.Table) -> EmbedderSpec:
    """The table's :class:`EmbedderSpec`, or an ``external`` one with its T and D (logged)."""
    spec = embedder_spec(segment_embeddings.schema)
    if spec is not None:
        return spec
    emb = segment_embeddings.schema.field("embedding").type
    dtype = str(emb.value_type.value_type)
    spec = EmbedderSpec(
        source="external",
        n_segments=int(emb.list_size),
        width=int(emb.value_type.list_size),
        postprocess="quantized" if dtype == "uint8" else "none",
        final_relu=False,
        weights="unknown",
    )
    logger.warning(
        "segment_embeddings carries no embedder spec (a user's own features or an older table): "
        "recorded as source=external, T=%d, D=%d; predict cannot embed new audio like it",
        spec.n_segments,
        spec.width,
    )
    return spec


def label_encoder_spec(label_embeddings: pd.DataFrame) -> LabelEncoderSpec:
    """The table's :class:`LabelEncoderSpec`, or an ``external`` one with its width (logged)."""
    spec = encoder_spec(label_embeddings)
    if spec is not None:
        return spec
    widths = {int(np.asarray(v).shape[-1]) for v in label_embeddings["embedding"]}
    spec = LabelEncoderSpec(source="external", dimension=max(widths) if widths else 0)
    logger.warning(
        "label_embeddings carries no label-encoder spec: recorded as source=external, E=%d; "
        "predict cannot embed new label texts like it",
        spec.dimension,
    )
    return spec


@dataclass
class ClipTable:
    """Every clip of ``clip_folds`` that has segment embeddings, with the table on ``device``."""

    segments: torch.Tensor  # [N_table, T, D] uint8 or float32, on device
    n_valid: torch.Tensor  # [N_table] int64, on device
    n_valid_segments: np.ndarray  # [N_table] int64, host copy (valid masks of report code)
    clips: pd.DataFrame  # ytid, start_s, fold, labels, row (into the table)
    missing: pd.DataFrame  # clips of clip_folds without embeddings: ytid, start_s, fold
    embedder: EmbedderSpec
    segment_dtype: str

    @classmethod
    def load(
        cls,
        segment_embeddings: pa.Table,
        clip_folds: pd.DataFrame,
        device: str | torch.device = "auto",
    ) -> ClipTable:
        """Check the table's schema, join the clips to their rows, move the table to ``device``."""
        check_schema(segment_embeddings.schema, "segment_embeddings")
        arrays = to_arrays(segment_embeddings)
        clips, missing = attach_rows(clip_folds, segment_index(arrays.ytid, arrays.start_s))
        torch_device = resolve_device(device) if isinstance(device, str) else device
        segments, n_valid = segments_to_device(
            arrays.embeddings, arrays.n_valid_segments, torch_device
        )
        return cls(
            segments=segments,
            n_valid=n_valid,
            n_valid_segments=np.asarray(arrays.n_valid_segments, dtype=np.int64),
            clips=clips,
            missing=missing,
            embedder=table_embedder_spec(segment_embeddings),
            segment_dtype=str(arrays.embeddings.dtype),
        )

    @property
    def device(self) -> torch.device:
        return self.segments.device

    @property
    def n_segments(self) -> int:
        return int(self.segments.shape[1])

    @property
    def width(self) -> int:
        return int(self.segments.shape[2])

    def role(
        self, model_splits: pd.DataFrame, rotation: str, role: str, part: int | None = None
    ) -> pd.DataFrame:
        """The clips (with row, labels, part) of one rotation and role (and cross-fit part)."""
        return split_clips(self.clips, model_splits, rotation, role, part)

    def clip_set(
        self, clips: pd.DataFrame, classes: Sequence[str], label_embeddings: pd.DataFrame
    ) -> ClipSet:
        """A split of ``clips`` scored against ``classes``: row indices, targets, label vectors."""
        return make_clip_set(
            self.segments,
            self.n_valid,
            clips["row"].to_numpy(),
            multi_hot(clips["labels"], classes),
            label_matrix(label_embeddings, classes),
        )

    def valid_mask(self, clips: pd.DataFrame) -> np.ndarray:
        """[n, T] bool: which segments of these clips hold audio."""
        n_valid = self.n_valid_segments[clips["row"].to_numpy()]
        return np.arange(self.n_segments)[None, :] < n_valid[:, None]
