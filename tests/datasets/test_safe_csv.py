"""``SafeCSVDataset``: spreadsheet formulas neutralised on disk, the original text on load."""

from __future__ import annotations

import pandas as pd
from kedro.io import Version

from zeroshot_audio.datasets.safe_csv import SafeCSVDataset, neutralise, restore


def test_formula_cells_get_a_quote_on_disk_and_lose_it_on_load(tmp_path):
    data = pd.DataFrame(
        {
            "file": ["-rf.wav", "a.wav", "@SUM(A1).wav", "'quoted"],
            "label": ['=HYPERLINK("http://x")', "+1 dog", "dog", "\tcmd"],
            "onset_s": [-1.0, 0.0, 1.0, 2.0],
        }
    )
    ds = SafeCSVDataset(
        filepath=str(tmp_path / "events.csv"),
        version=Version(None, None),
        save_args={"index": False},
        load_args={"keep_default_na": False},
    )
    ds.save(data)
    (path,) = (tmp_path / "events.csv").glob("*/events.csv")
    raw = pd.read_csv(path, keep_default_na=False)
    assert raw["file"].tolist() == ["'-rf.wav", "a.wav", "'@SUM(A1).wav", "''quoted"]
    assert raw["label"].tolist() == ['\'=HYPERLINK("http://x")', "'+1 dog", "dog", "'\tcmd"]
    assert raw["onset_s"].tolist() == [-1.0, 0.0, 1.0, 2.0]  # numbers untouched
    pd.testing.assert_frame_equal(ds.load(), data, check_dtype=False)
    for value in ("=1", "'", "plain", "", None, 3.5):
        assert restore(neutralise(value)) == value
