"""The ``label_embeddings`` contract: one row per class, its text and its vector.

Columns: ``mid`` (AudioSet machine id or a free-text label's id), ``text`` (what was encoded) and
``embedding`` (float32 vector, one width for all rows). The :class:`LabelEncoderSpec` that made the
vectors travels in ``DataFrame.attrs["label_encoder"]``, which pandas keeps in the Parquet file's
metadata, so a checkpoint can copy where its label vectors came from instead of trusting today's
parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from zeroshot_audio.config import build_strict

LABEL_ENCODER_ATTR = "label_encoder"
COLUMNS = ("mid", "text", "embedding")


@dataclass(frozen=True)
class LabelEncoderSpec:
    """What determines a label vector: two equal specs give equal vectors for equal texts.

    ``source`` is ``text_encoder`` (this project's transformers encoder) or ``external`` (vectors
    a user brought; predict cannot embed new label texts with them).
    """

    source: str = "text_encoder"
    model_name_or_path: str = ""
    revision: str | None = None
    pooling: str = "mean"
    normalize: bool = True
    max_length: int = 128
    text_source: str = "name"
    dimension: int = 0

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> LabelEncoderSpec:
        return build_strict(cls, values, "label encoder spec")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def with_encoder_spec(label_embeddings: pd.DataFrame, spec: LabelEncoderSpec) -> pd.DataFrame:
    """``label_embeddings`` carrying ``spec`` in its attrs (a shallow copy; data not copied)."""
    out = label_embeddings.copy(deep=False)
    out.attrs = {**label_embeddings.attrs, LABEL_ENCODER_ATTR: spec.to_dict()}
    return out


def encoder_spec(label_embeddings: pd.DataFrame) -> LabelEncoderSpec | None:
    """The spec stored with the table, or None when it has none (e.g. an older file)."""
    raw = label_embeddings.attrs.get(LABEL_ENCODER_ATTR)
    return LabelEncoderSpec.from_dict(raw) if raw else None


def check_label_table(label_embeddings: pd.DataFrame, where: str = "label_embeddings") -> int:
    """Raise ``ValueError`` naming the expected columns when the table breaks the contract;
    return the vector width."""
    missing = [c for c in COLUMNS if c not in label_embeddings.columns]
    if missing:
        raise ValueError(
            f"{where}: missing column(s) {missing}.\n  expected: mid: string, text: string, "
            f"embedding: list<float32> (one width)\n  found:    "
            + ", ".join(f"{c}: {t}" for c, t in label_embeddings.dtypes.astype(str).items())
        )
    widths = {int(np.asarray(v).shape[-1]) for v in label_embeddings["embedding"]}
    if len(widths) > 1:
        raise ValueError(f"{where}: embeddings have several widths {sorted(widths)}; need one")
    if label_embeddings["mid"].duplicated().any():
        dup = label_embeddings.loc[label_embeddings["mid"].duplicated(), "mid"].head(5).tolist()
        raise ValueError(f"{where}: duplicate mid(s) {dup}")
    return widths.pop() if widths else 0
