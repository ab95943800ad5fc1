"""kedro-datasets tables whose kedro-viz preview the viz front end can draw.

Load and versioning are exactly kedro-datasets'; saves are crash-safe (temp file + fsync + rename,
see :mod:`zeroshot_audio.datasets.atomic`) and ``preview`` differs. kedro-datasets
builds a Parquet preview with ``DataFrame.to_dict(orient="split")``, which leaves list columns
(``labels``, ``child_ids``, ``embedding``) as numpy arrays that kedro-viz cannot serialise: the static
build (``kedro viz build --include-previews``) aborts and the live side panel answers HTTP 500.
``text.TextDataset`` has no preview at all, so the evaluation table would never show.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from kedro_datasets._typing import TablePreview
from kedro_datasets.pandas import ParquetDataset as _PandasParquetDataset
from kedro_datasets.text import TextDataset

from zeroshot_audio.datasets.atomic import AtomicSaveMixin

# A list cell longer than this (an embedding) is summarised rather than listed in full.
MAX_LIST_ITEMS = 8


class ParquetDataset(AtomicSaveMixin, _PandasParquetDataset):
    """``pandas.ParquetDataset`` with a JSON-safe preview (list cells as lists, NaN as null)."""

    def preview(self, nrows: int = 5) -> TablePreview:
        table = super().preview(nrows)
        table["data"] = [[_json_cell(value) for value in row] for row in table["data"]]
        return TablePreview(table)


class MarkdownDataset(AtomicSaveMixin, TextDataset):
    """``text.TextDataset`` for a Markdown table, previewed as that table."""

    def preview(self) -> TablePreview:
        lines = [line.strip() for line in self.load().splitlines()]
        rows = [
            [cell.strip() for cell in line.strip("|").split("|")]
            for line in lines
            if line.startswith("|") and not set(line) <= set("|-: ")
        ]
        if not rows:
            rows = [["text"], *([line] for line in lines if line)]
        header, body = rows[0], rows[1:]
        return TablePreview({"columns": header, "index": list(range(len(body))), "data": body})


def _json_cell(value: Any) -> Any:
    if isinstance(value, np.ndarray | list | tuple):
        items = [_json_cell(item) for item in list(value)[:MAX_LIST_ITEMS]]
        if len(value) <= MAX_LIST_ITEMS:
            return items
        return f"{len(value)} values: {items[:3]}..."
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
