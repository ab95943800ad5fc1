"""Bad-input battery, featurize side: every awkward file is embedded with finite numbers or
rejected naming the file and a reason; never a crash, a hang, a NaN or a silent omission.

One featurize run (the Kedro-free driver, seeded random VGGish) over all cases of
``tests/audio/bad_inputs.py``; each case is then checked as its own test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.audio.bad_inputs import ACCEPTED, CASES, Case, within, write_cases
from zeroshot_audio.audio import featurize as fz
from zeroshot_audio.audio import io as audio_io
from zeroshot_audio.contracts import segment_table

N_SEGMENTS = 10


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("bad_input")
    paths = write_cases(root / "audio")
    # the file name is the ytid, so a pattern of "{ytid}" finds each file as named
    clips = pd.DataFrame(
        {
            "ytid": [p.name for p in paths.values()],
            "start_s": 0.0,
            "end_s": [35.0 if case.id == "long_35s" else 10.0 for case in CASES],
        }
    )
    config = fz.FeaturizeConfig.from_params(
        {
            "audio_root": str(root / "audio"),
            "filename_pattern": "{ytid}",
            "n_segments": N_SEGMENTS,
            "weights": {"allow_random": True, "download": False, "cache_dir": str(root / "w")},
            "work_dir": str(root / "work"),
            "shard_size": 8,
            "batch_size": 64,
        },
        seed=1,
        device="cpu",
    )
    result = within(180, lambda: fz.featurize(clips, config, progress=False))
    arrays = segment_table.to_arrays(result.table.read())
    return {"paths": paths, "report": result.report, "arrays": arrays}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_file_is_embedded_with_finite_numbers_or_rejected_with_its_reason(
    run, case: Case
) -> None:
    path = run["paths"][case.id]
    arrays = run["arrays"]
    rows = np.flatnonzero(arrays.ytid == path.name)
    failures = [f for f in run["report"]["failures"] if f["ytid"] == path.name]
    assert len(rows) + len(failures) == 1, (
        f"{path.name}: in the table {len(rows)}x, failed {failures}"
    )
    if case.expect == ACCEPTED:
        assert not failures, failures
        row = rows[0]
        n_valid = int(arrays.n_valid_segments[row])
        assert n_valid >= 1
        embeddings = arrays.embeddings[row]
        assert np.isfinite(embeddings).all(), f"{path.name}: non-finite embeddings"
        assert np.all(embeddings[n_valid:] == 0)  # masked segments are zeros
        if case.id == "long_35s":
            assert n_valid == N_SEGMENTS  # cut to the layout, not rejected
        if case.id.startswith("event_0"):
            assert n_valid == 1  # a short sound is one zero-padded segment
    else:
        assert not len(rows)
        (failure,) = failures
        assert failure["reason"] == case.expect, failure
        assert Path(failure["path"]) == path  # names the file
        assert failure["detail"], failure  # and says why


def test_every_input_is_accounted_for_and_the_report_is_plain_json(run) -> None:
    report = run["report"]
    n_rejected = sum(c.expect != ACCEPTED for c in CASES)
    assert report["n_clips"] == len(CASES)
    assert report["n_featurized"] == len(CASES) - n_rejected == len(run["arrays"].ytid)
    assert report["n_failed"] == n_rejected
    assert set(report["failures_by_reason"]) <= set(audio_io.FAILURE_REASONS)  # no crash codes
    assert np.isfinite(run["arrays"].embeddings).all()
    json.dumps(report)
