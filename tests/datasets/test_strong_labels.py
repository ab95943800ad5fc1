"""StrongLabelsDataset: the audioset env's strong_labels catalog entry."""

from __future__ import annotations

import logging

import pytest
from kedro.io import DatasetError

from tests.metadata.test_strong_labels import EVAL_TSV
from zeroshot_audio.datasets.strong_labels import StrongLabelsDataset


def test_missing_files_are_skipped_only_when_allowed(tmp_path, caplog) -> None:
    (tmp_path / "audioset_eval_strong.tsv").write_text(EVAL_TSV)
    paths = [
        str(tmp_path / "audioset_train_strong.tsv"),
        str(tmp_path / "audioset_eval_strong.tsv"),
    ]
    with caplog.at_level(logging.WARNING):
        events = StrongLabelsDataset(paths, missing_ok=True).load()
    assert events["clip"].tolist() == ["--4gqARaEJE"]
    assert "audioset_train_strong.tsv not found" in caplog.text
    with pytest.raises(DatasetError, match="strong-label file not found: .*train_strong.tsv"):
        StrongLabelsDataset(paths).load()
    none = StrongLabelsDataset([str(tmp_path / "nope.tsv")], missing_ok=True).load()
    assert list(none.columns) == ["clip", "mid", "onset_s", "offset_s", "start_s"] and none.empty
