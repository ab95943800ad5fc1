"""The ``label_embeddings`` contract: its encoder spec travels in attrs, and a malformed table is
refused with the expected columns beside the ones found."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zeroshot_audio.contracts.label_table import (
    LabelEncoderSpec,
    check_label_table,
    encoder_spec,
    with_encoder_spec,
)


def _table(widths=(4, 4)) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "mid": [f"/m/{i}" for i in range(len(widths))],
            "text": ["dog", "cat"][: len(widths)],
            "embedding": [np.zeros(w, np.float32) for w in widths],
        }
    )


def test_the_spec_rides_in_attrs_without_touching_the_data() -> None:
    spec = LabelEncoderSpec(model_name_or_path="package:x", dimension=4)
    table = _table()
    tagged = with_encoder_spec(table, spec)
    assert encoder_spec(tagged) == spec and encoder_spec(table) is None
    assert tagged["embedding"].iloc[0] is table["embedding"].iloc[0]  # shallow: no copy


def test_the_spec_rejects_an_unknown_key() -> None:
    with pytest.raises(ValueError, match=r"\['modle'\]"):
        LabelEncoderSpec.from_dict({"modle": "x"})


def test_check_names_what_is_wrong() -> None:
    assert check_label_table(_table()) == 4
    with pytest.raises(ValueError, match=r"(?s)missing column\(s\) \['text'\].*expected: mid"):
        check_label_table(_table().drop(columns="text"), "mine.parquet")
    with pytest.raises(ValueError, match=r"several widths \[3, 4\]"):
        check_label_table(_table(widths=(4, 3)))
    with pytest.raises(ValueError, match="duplicate mid"):
        check_label_table(_table().assign(mid="/m/0"))
