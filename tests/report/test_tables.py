"""``report.tables``: the paper's table layout and the localisation table, from report dicts."""

from __future__ import annotations

import pytest

from tests.experiment.test_metrics import hand_made_scores
from zeroshot_audio.experiment.localisation import BASELINE
from zeroshot_audio.experiment.metrics import tag_report
from zeroshot_audio.report.tables import evaluation_table, localisation_table


def test_evaluation_table_is_in_percent_with_gamma_in_the_method_title():
    table = evaluation_table(tag_report(hand_made_scores(), {}, ddof=1))
    assert "| Zero-shot, temporal attention (γ = 0.5) | 70.0 ± 42.4 |" in table
    assert "mean ± std over 2 rotations" in table
    assert "test fold 2, 2 clips" in table  # per-rotation header
    assert "| Zero-shot, temporal attention | 100.0 / 100.0 / 100.0 | 40.0 /" in table


def _stats(f1):
    return {m: {"mean": f1, "std": 0.0, "n_rotations": 1} for m in ("f1", "precision", "recall")}


def test_localisation_table_rows_and_the_not_scored_note():
    report = {
        "summary": {
            BASELINE: {"true_tags": _stats(0.4)},
            "temporal_attention": {"true_tags": _stats(0.7), "predicted_tags": _stats(0.5)},
            f"temporal_attention+{BASELINE}": {"predicted_tags": _stats(0.3)},
        },
        "localisation_rule": {"rule": "uniform_ratio", "value": 1.0},
        "rotations": {"rot0": {}},
        "segment_s": 1.0,
        "min_overlap_s": 0.0,
        "threshold_rule": "tuned",
    }
    table = localisation_table(report)
    assert "| Every segment active (baseline) | 40.0 ± 0.0 (40 / 40) | – |" in table
    assert (
        "| Zero-shot, temporal attention | 70.0 ± 0.0 (70 / 70) | 50.0 ± 0.0 (50 / 50) |" in table
    )
    assert "every segment of its tags | – | 30.0 ± 0.0 (30 / 30) |" in table
    assert "uniform_ratio=1" in table
    empty = localisation_table({**report, "rotations": {}, "skipped_rotations": {"rot0": "x"}})
    assert "Not scored" in empty


@pytest.mark.parametrize("ddof", [0, 1])
def test_std_definition_is_stated_under_the_table(ddof):
    table = evaluation_table(tag_report(hand_made_scores(), {}, ddof=ddof))
    assert f"ddof={ddof}" in table
