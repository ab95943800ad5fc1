"""``dataset_path``: where a catalog dataset's version lives."""

from __future__ import annotations

from kedro.io import MemoryDataset, Version
from kedro_datasets.json import JSONDataset

from zeroshot_audio.datasets.paths import dataset_path


def test_versioned_plain_and_memory_datasets(tmp_path):
    versioned = JSONDataset(
        filepath=str(tmp_path / "r.json"), version=Version(None, "2026-01-01T00.00.00.000Z")
    )
    assert dataset_path(versioned) == tmp_path / "r.json" / "2026-01-01T00.00.00.000Z" / "r.json"
    assert dataset_path(versioned, "v2") == tmp_path / "r.json" / "v2" / "r.json"
    assert dataset_path(JSONDataset(filepath=str(tmp_path / "p.json"))) == tmp_path / "p.json"
    assert dataset_path(MemoryDataset()) is None
