"""Bad-input battery, predict side: the files of ``tests/audio/bad_inputs.py`` through the
Kedro-free predict API (one run over a folder of all of them) and, for a handful with the awkward
names, through the real ``zeroshot-audio predict --model DIR`` command. Each is tagged with
finite scores or listed as a failure naming the file and a reason; never a traceback, a hang, a
NaN or a silent omission.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.audio.bad_inputs import ACCEPTED, CASES, Case, within, write_cases
from tests.inference.checkpoints import LABELS
from zeroshot_audio.audio import io as audio_io
from zeroshot_audio.inference import PredictConfig, Predictor, resolve_labels, tag_audio

REPO_ROOT = Path(__file__).resolve().parents[2]
BY_ID = {case.id: case for case in CASES}


@pytest.fixture(scope="module")
def run(checkpoint, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("bad_input")
    paths = write_cases(folder)
    predictor = Predictor(checkpoint, device="cpu")
    labels = resolve_labels(LABELS, None, checkpoint.train_classes)
    # the folder, as a user would pass it: every file is found by listing, none named by hand
    config = PredictConfig(audio=(str(folder),), labels=tuple(LABELS))
    result, report = within(180, lambda: tag_audio(predictor, labels, config))
    return {"paths": paths, "result": result, "report": report}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_file_is_tagged_with_finite_scores_or_rejected_with_its_reason(
    run, case: Case
) -> None:
    path = str(run["paths"][case.id])
    result, report = run["result"], run["report"]
    rows = result.predictions[result.predictions["file"] == path]
    failures = [f for f in report["failures"] if f["file"] == path]
    assert bool(len(rows)) + len(failures) == 1, f"{path}: rows {len(rows)}, failures {failures}"
    if case.expect == ACCEPTED:
        assert sorted(rows["label"]) == sorted(LABELS)
        assert np.isfinite(rows["score"].to_numpy(float)).all(), rows
        segments = result.segments[result.segments["file"] == path]
        assert len(segments)
        for column in ("window_score", "attention", "coverage", "segment_start_s", "segment_end_s"):
            assert np.isfinite(segments[column].to_numpy(float)).all(), column
        assert segments["coverage"].between(0.0, 1.0).all() and segments["coverage"].max() > 0
        events = result.events[result.events["file"] == path]
        assert np.isfinite(events[["onset_s", "offset_s", "score"]].to_numpy(float)).all()
        if case.id == "long_35s":
            assert int(rows["n_windows"].iloc[0]) == 4  # 0, 10, 20, 30 s
            assert float(rows["duration_s"].iloc[0]) == pytest.approx(35.0)
    else:
        (failure,) = failures
        assert failure["reason"] == case.expect, failure
        assert failure["detail"], failure


def test_every_file_of_the_folder_is_accounted_for(run) -> None:
    result, report = run["result"], run["report"]
    paths = {str(p) for p in run["paths"].values()}
    tagged = set(result.predictions["file"])
    failed = {f["file"] for f in report["failures"]}
    assert report["n_files_found"] == len(CASES)
    assert tagged | failed == paths and not tagged & failed
    assert report["n_files_tagged"] + report["n_files_failed"] == len(CASES)
    assert set(report["failures_by_reason"]) <= set(audio_io.FAILURE_REASONS)  # no crash codes
    assert np.isfinite(result.predictions["score"].to_numpy(float)).all()


# The command: awkward names (a leading dash after `--`, spaces, unicode, brackets), files that
# fail and files that work, given one by one as relative paths.
CLI_CASES = (
    "name_spaces_unicode_brackets",
    "name_leading_dash",
    "zero_byte",
    "text_named_wav",
    "nan_samples",
    "mp3",
    "event_0.1s",
    "digital_silence",
)


@pytest.mark.slow
def test_the_command_prints_every_file_as_tagged_or_failed_without_a_traceback(
    exported, tmp_path
) -> None:
    paths = write_cases(tmp_path, tuple(BY_ID[i] for i in CLI_CASES))
    names = [paths[i].name for i in CLI_CASES]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), "COLUMNS": "400",
           "KEDRO_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "zeroshot_audio.cli", "predict", "--model", str(exported),
         "--labels", *LABELS, "--", *names],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    shown = done.stdout + done.stderr
    assert "Traceback" not in shown, shown[-4000:]
    assert done.returncode == 1, shown[-4000:]  # some files failed, the others were tagged
    out = " ".join(done.stdout.split())
    rejected = [i for i in CLI_CASES if BY_ID[i].expect != ACCEPTED]
    for case_id, name in zip(CLI_CASES, names, strict=True):
        if BY_ID[case_id].expect == ACCEPTED:
            assert f"{name} (" in out, f"{name} has no table:\n{done.stdout}"  # "NAME (2.5 s, ..."
        else:
            assert re.search(rf"{re.escape(name)} \S* {BY_ID[case_id].expect}", out), (
                f"{name} not listed as {BY_ID[case_id].expect}:\n{done.stdout}"
            )
    # results alone on stdout (`> results.txt` stays clean), log lines on stderr, also outside a
    # project: each rejected file is named there too
    assert " INFO " not in done.stdout and "Skipping" not in done.stdout, done.stdout
    assert "logging configuration" not in done.stdout  # Kedro's start-up note
    err = " ".join(done.stderr.split())
    for case_id in rejected:
        assert f"Skipping {paths[case_id]}: {BY_ID[case_id].expect}" in err, done.stderr
    n_ok = len(CLI_CASES) - len(rejected)
    assert f"{n_ok} file(s) tagged, {len(rejected)} failed" in out
    assert not re.search(r"│\s*[-+]?(nan|inf)\s*│", done.stdout), done.stdout  # no NaN score


def test_every_event_of_the_shared_sound_pack_is_tagged_with_finite_scores(
    checkpoint, full_sounds_dir
) -> None:
    """The whole pack of real everyday events (gunshots, beeps, single notes ... 0.5-4 s): none
    rejected, none omitted (a short one is one zero-padded segment, not ``too_short``)."""
    files = sorted(str(p) for p in full_sounds_dir.rglob("*.flac"))
    assert len(files) >= 100
    predictor = Predictor(checkpoint, device="cpu")
    labels = resolve_labels(LABELS, None, checkpoint.train_classes)
    config = PredictConfig(audio=(str(full_sounds_dir),), labels=tuple(LABELS))
    result, report = within(300, lambda: tag_audio(predictor, labels, config))
    assert report["failures"] == []
    assert set(result.predictions["file"]) == set(files)
    assert np.isfinite(result.predictions["score"].to_numpy(float)).all()
    assert np.isfinite(result.segments["attention"].to_numpy(float)).all()
