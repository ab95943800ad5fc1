"""Label texts for AudioSet classes, and lookups into a table of label embeddings.

The text a class is embedded from is a modelling choice (the paper embeds the label with BERT
and leaves the exact text open), so it is a parameter: the display name, the ontology
description, or both. Display names such as "Violin, fiddle" are kept whole: the synonyms
after the comma are part of what the class means, and splitting them would give one class
several vectors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from zeroshot_audio.config import build_strict
from zeroshot_audio.text.encoder import EncoderConfig

TextSource = Literal["display_name", "description", "name_and_description"]
TEXT_SOURCES: tuple[str, ...] = get_args(TextSource)


@dataclass(frozen=True)
class LabelEmbeddingConfig:
    """The `embed_labels` parameters: which text per class, and how it is encoded.

    `predict` reuses `encoder` so that free-text labels land in the same space.
    """

    text_source: TextSource = "display_name"
    encoder: EncoderConfig = field(default_factory=EncoderConfig)

    def __post_init__(self) -> None:
        if self.text_source not in TEXT_SOURCES:
            raise ValueError(f"text_source must be one of {TEXT_SOURCES}, got {self.text_source!r}")
        if isinstance(self.encoder, Mapping):  # as it comes from YAML
            object.__setattr__(self, "encoder", EncoderConfig.from_dict(self.encoder))
        elif not isinstance(self.encoder, EncoderConfig):
            raise TypeError(f"encoder must be a mapping, got {type(self.encoder).__name__}")

    @classmethod
    def from_dict(cls, params: Mapping[str, Any]) -> LabelEmbeddingConfig:
        """Build from parameters, rejecting unknown keys (a typo must not be ignored)."""
        return build_strict(cls, params, "embed_labels")


def _clean(value: object) -> str:
    """Missing values (None/NaN) become "" so that one emptiness check covers them all."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}: {value!r}")
    return " ".join(value.split())


def build_label_texts(
    classes: pd.DataFrame,
    text_source: TextSource = "display_name",
    mids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One text per class, in the order of `mids` (default: the order of `classes`).

    Raises before any model is loaded, so a bad class list costs nothing: unknown mids,
    duplicate mids and classes whose chosen text is empty are all named in the error.

    Returns:
        DataFrame with columns `mid` and `text`.
    """
    if text_source not in TEXT_SOURCES:
        raise ValueError(f"text_source must be one of {TEXT_SOURCES}, got {text_source!r}")
    needed = {"mid", "display_name"} | ({"description"} if text_source != "display_name" else set())
    missing_columns = needed - set(classes.columns)
    if missing_columns:
        raise KeyError(
            f"audioset_classes lacks column(s) {sorted(missing_columns)} needed for "
            f"text_source={text_source!r}; it has {list(classes.columns)}"
        )
    duplicated = classes["mid"][classes["mid"].duplicated()].unique().tolist()
    if duplicated:
        raise ValueError(f"audioset_classes has duplicate mids: {duplicated[:10]}")

    by_mid = classes.set_index("mid", drop=False)
    if mids is None:
        selected = by_mid
    else:
        mids = list(mids)
        unknown = [m for m in mids if m not in by_mid.index]
        if unknown:
            raise KeyError(
                f"{len(unknown)} mid(s) are not in audioset_classes "
                f"({len(by_mid)} classes): {unknown[:10]}"
            )
        selected = by_mid.loc[mids]

    names = [_clean(v) for v in selected["display_name"]]
    if text_source == "display_name":
        texts = names
    else:
        descriptions = [_clean(v) for v in selected["description"]]
        if text_source == "description":
            texts = descriptions
        else:
            texts = [f"{n}. {d}" if n and d else "" for n, d in zip(names, descriptions)]

    empty = [m for m, t in zip(selected["mid"], texts) if not t]
    if empty:
        raise ValueError(
            f"{len(empty)} class(es) have an empty text for text_source={text_source!r} "
            f"(missing display_name or description): {empty[:10]}"
        )
    return pd.DataFrame({"mid": selected["mid"].astype(str).to_numpy(), "text": texts})


def label_embedding_matrix(label_embeddings: pd.DataFrame, mids: Sequence[str]) -> np.ndarray:
    """The embeddings of `mids`, stacked in that order, as a float32 [len(mids), D] array.

    Downstream stages index classes by mid (class folds, clip labels); an unknown mid here
    means the label embeddings were computed for another class list, which must not pass
    silently.
    """
    by_mid = pd.Series(label_embeddings["embedding"].to_numpy(), index=label_embeddings["mid"])
    if by_mid.index.has_duplicates:
        dup = by_mid.index[by_mid.index.duplicated()].unique().tolist()
        raise ValueError(f"label_embeddings has duplicate mids: {dup[:10]}")
    unknown = [m for m in mids if m not in by_mid.index]
    if unknown:
        raise KeyError(
            f"{len(unknown)} mid(s) have no label embedding "
            f"({len(by_mid)} embedded classes): {unknown[:10]}"
        )
    if len(mids) == 0:
        dim = len(by_mid.iloc[0]) if len(by_mid) else 0
        return np.zeros((0, dim), dtype=np.float32)
    vectors = [np.asarray(v, dtype=np.float32) for v in by_mid.loc[list(mids)]]
    dims = {v.shape for v in vectors}
    if len(dims) != 1 or len(next(iter(dims))) != 1:
        raise ValueError(f"label embeddings have inconsistent shapes: {sorted(dims)}")
    return np.stack(vectors)
