"""``inference.inputs``: which files, which labels."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from zeroshot_audio.inference import list_audio_files, resolve_labels


def test_folders_files_and_globs_are_listed_and_missing_ones_reported(audio_dir, tmp_path):
    (tmp_path / "notes.txt").write_text("not audio")
    files, failures = list_audio_files(
        [str(audio_dir), str(tmp_path / "missing.wav"), str(audio_dir / "*.wav"), str(tmp_path)]
    )
    names = [f.rsplit("/", 1)[-1] for f in files]
    assert names == ["background_only.flac", "street_35s.wav", "tone_only.flac"]  # no duplicates
    assert [(f.file.rsplit("/", 1)[-1], f.reason) for f in failures] == [
        ("missing.wav", "missing_file"),
        (tmp_path.name, "missing_file"),  # a folder without audio
    ]
    assert len(list_audio_files([str(audio_dir)], max_files=1)[0]) == 1


def test_a_file_name_with_brackets_or_a_dash_is_taken_literally(tmp_path):
    for name in ("[abc].wav", "-dash.wav"):
        (tmp_path / name).write_bytes(b"RIFF")
        files, failures = list_audio_files([str(tmp_path / name)])
        assert files == [str(tmp_path / name)] and not failures


def test_labels_free_text_and_mids_and_what_was_seen_in_training():
    table = pd.DataFrame({"mid": ["/m/07cx4", "/m/0342h"], "text": ["Telephone", "Guitar"]})
    labels = resolve_labels(
        ["a siren far away", "/m/07cx4", "a siren far away", "guitar"], table, ["/m/0342h"]
    )
    assert labels.to_dict("records") == [
        {
            "label": "a siren far away",
            "mid": None,
            "text": "a siren far away",
            "seen_in_training": False,
        },
        {"label": "/m/07cx4", "mid": "/m/07cx4", "text": "Telephone", "seen_in_training": False},
        {"label": "guitar", "mid": None, "text": "guitar", "seen_in_training": True},
    ]
    with pytest.raises(ValueError, match=r"unknown AudioSet mid.*/m/0zzzz"):
        resolve_labels(["/m/0zzzz"], table)


def test_a_named_pipe_is_reported_and_never_opened(tmp_path):
    """Opening a FIFO blocks until someone writes to it: listing must not read it."""
    (tmp_path / "ok.wav").write_bytes(b"RIFF")
    os.mkfifo(tmp_path / "pipe.wav")
    files, failures = list_audio_files([str(tmp_path), str(tmp_path / "pipe.wav")])
    assert files == [str(tmp_path / "ok.wav")]
    assert [(f.file, f.reason) for f in failures] == [
        (str(tmp_path / "pipe.wav"), "unsupported_format")
    ] * 2
    assert "named pipe" in failures[0].detail
