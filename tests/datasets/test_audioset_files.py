"""AudioSetSegmentFiles: optional split files (ingest balanced + eval without the 2M-row file)."""

from __future__ import annotations

import logging
import re

import pytest
from kedro.io import DatasetError

from zeroshot_audio.datasets.audioset_files import AudioSetSegmentFiles
from zeroshot_audio.pipelines.ingest.nodes import parse_segment_files


def _write_slice(audioset_dir, name, tmp_path, n_rows=20):
    lines = (audioset_dir / name).read_text().splitlines()[: 3 + n_rows]
    lines[1] = re.sub(r"num_segs=\d+", f"num_segs={n_rows}", lines[1])  # the slice's own count
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_missing_optional_file_is_skipped_and_reported(
    tmp_path, audioset_dir, class_index, caplog
):
    balanced = _write_slice(audioset_dir, "balanced_train_segments.csv", tmp_path)
    evaluation = _write_slice(audioset_dir, "eval_segments.csv", tmp_path)
    missing = tmp_path / "unbalanced_train_segments.csv.gz"
    dataset = AudioSetSegmentFiles(
        {"balanced": str(balanced), "eval": str(evaluation), "unbalanced": str(missing)},
        optional=["unbalanced"],
    )
    assert dataset.exists()  # the required files are there
    with caplog.at_level(logging.WARNING):
        loaded = dataset.load()
    assert loaded["unbalanced"] == (str(missing), None)
    assert "optional AudioSet segments file for split 'unbalanced' not found" in caplog.text
    assert len(dataset.preview(4)["data"]) == 4  # previews the files that exist

    clips, report = parse_segment_files(loaded, class_index, {"mode": "strict"})
    assert len(clips) == 40 and set(clips["source_split"]) == {"balanced", "eval"}
    assert report["files"]["unbalanced"] == {
        "file": str(missing), "missing_optional": True, "rows_kept": 0
    }  # fmt: skip
    assert report["files"]["eval"]["rows_kept"] == 20


def test_a_missing_required_file_is_still_an_error(tmp_path, audioset_dir):
    balanced = _write_slice(audioset_dir, "balanced_train_segments.csv", tmp_path)
    dataset = AudioSetSegmentFiles(
        {"balanced": str(balanced), "eval": str(tmp_path / "eval.csv")}, optional=["balanced"]
    )
    assert not dataset.exists()
    with pytest.raises(DatasetError, match="split 'eval' not found: .*eval.csv"):
        dataset.load()


def test_optional_names_must_be_known_and_not_all(tmp_path):
    with pytest.raises(DatasetError, match=r"optional splits \['unbal'\]"):
        AudioSetSegmentFiles({"eval": "e.csv"}, optional=["unbal"])
    with pytest.raises(DatasetError, match="at least one split must be required"):
        AudioSetSegmentFiles({"eval": "e.csv"}, optional=["eval"])
