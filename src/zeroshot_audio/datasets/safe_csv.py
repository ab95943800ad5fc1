"""``SafeCSVDataset``: a CSV that a spreadsheet opens without running anything in it.

``sound_events.csv`` holds user-chosen text (file names, label texts). A cell starting with ``=``,
``+``, ``-`` or ``@`` (or a tab or carriage return) is a formula to Excel, LibreOffice and Google
Sheets ("CSV injection"): ``=HYPERLINK(...)`` as a label would become a live link. On save, such a
text cell is prefixed with a single quote (``'=cmd``), which spreadsheets show as text; a cell
already starting with a quote gets one more, so that ``load`` can strip exactly one quote and give
back the original text (the round trip is exact). Numbers are never touched.
"""

from __future__ import annotations

import pandas as pd
from kedro_datasets.pandas import CSVDataset

from zeroshot_audio.datasets.atomic import AtomicSaveMixin
from zeroshot_audio.datasets.atomic import CSVDataset as AtomicCSVDataset

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def neutralise(value: object) -> object:
    """``'`` + a text that a spreadsheet would read as a formula (or that starts with ``'``)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def restore(value: object) -> object:
    """The inverse of :func:`neutralise`."""
    if isinstance(value, str) and value.startswith("'"):
        return value[1:]
    return value


def _text_columns(data: pd.DataFrame) -> list[str]:
    return [
        c
        for c in data.columns
        if pd.api.types.is_object_dtype(data[c]) or pd.api.types.is_string_dtype(data[c])
    ]


class SafeCSVDataset(AtomicCSVDataset):
    """``pandas.CSVDataset`` whose text cells are neutralised on save and restored on load;
    saves are crash-safe (temp file + rename)."""

    def save(self, data: pd.DataFrame) -> None:
        safe = data.copy()
        for column in _text_columns(safe):
            safe[column] = safe[column].map(neutralise)
        AtomicSaveMixin.save(self, safe)  # Kedro's versioning wrapper already runs around this

    def load(self) -> pd.DataFrame:
        data = CSVDataset.load.__wrapped__(self)
        for column in _text_columns(data):
            data[column] = data[column].map(restore)
        return data
