"""Previews kedro-viz can serialise and draw, for tables with list cells and Markdown tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from zeroshot_audio.datasets.tables import MarkdownDataset, ParquetDataset


def test_parquet_preview_turns_list_cells_into_json(tmp_path):
    frame = pd.DataFrame(
        {
            "ytid": ["a", "b"],
            "labels": [["/m/1", "/m/2"], ["/m/3"]],
            "embedding": [np.arange(384, dtype=np.float32), np.zeros(384, np.float32)],
            "score": [np.nan, 0.5],
        }
    )
    dataset = ParquetDataset(filepath=str(tmp_path / "t.parquet"))
    dataset.save(frame)
    preview = dataset.preview(nrows=1)
    json.dumps(preview, allow_nan=False)  # what kedro-viz does with it; raises on arrays and NaN
    assert preview["columns"] == ["ytid", "labels", "embedding", "score"]
    ytid, labels, embedding, score = preview["data"][0]
    assert (ytid, labels, score) == ("a", ["/m/1", "/m/2"], None)
    assert embedding.startswith("384 values: [0.0, 1.0, 2.0]")
    pd.testing.assert_frame_equal(dataset.load(), frame)  # loading is untouched


def test_markdown_preview_is_the_table(tmp_path):
    dataset = MarkdownDataset(filepath=str(tmp_path / "t.md"))
    dataset.save("| method | micro-F1 |\n| --- | ---: |\n| uniform | 0.31 ± 0.02 |\n")
    assert dataset.preview() == {
        "columns": ["method", "micro-F1"],
        "index": [0],
        "data": [["uniform", "0.31 ± 0.02"]],
    }
