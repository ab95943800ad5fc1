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


def test_paired_difference_lines_and_the_dcase_table_are_under_their_tables():
    report = tag_report(hand_made_scores(), {}, ddof=1)
    interval = {"estimate": 0.016, "low": -0.012, "high": 0.043, "confidence_level": 0.95,
                "interval_method": "percentile", "n_resamples": 1000, "n_clips": 4}  # fmt: skip
    report["paired_differences"] = {
        "intervals": {"pooled": {"micro_f1": interval}},
        "lines": {
            "pooled": ["attention - uniform: +1.6 [-1.2, +4.3] micro-F1 points"],
            "rot0": ["attention - uniform: +2.0 [-1.0, +5.0] micro-F1 points"],
        },
    }
    table = evaluation_table(report)
    assert "- attention - uniform: +1.6 [-1.2, +4.3] micro-F1 points" in table
    assert "- rot0: attention - uniform: +2.0 [-1.0, +5.0] micro-F1 points" in table
    assert "95 % percentile bootstrap interval, 1000 resamples" in table
    stats = {"mean": 0.5, "std": 0.1, "n_rotations": 2}
    sed = {
        "temporal_attention": {"segment_f1": stats, "segment_error_rate": stats, "psds": stats},
        "ceiling_1s": {"event_f1": {"mean": 0.083, "std": 0.0, "n_rotations": 2}},
    }
    localisation = {
        "summary": {},
        "localisation_rule": {"rule": "uniform_ratio", "value": 1.0},
        "rotations": {"rot0": {}},
        "segment_s": 1.0,
        "min_overlap_s": 0.0,
        "threshold_rule": "tuned",
        "sed": {"summary": sed},
    }
    lines = localisation_table(localisation)
    assert "| Zero-shot, temporal attention | 50.0 ± 10.0 | 0.50 ± 0.10 | – |" in lines
    assert "| Ceiling: the reference on the 1-s grid | – | – | 8.3 ± 0.0 |" in lines
    assert "`tuned` threshold rule" in lines and "threshold-free" in lines
