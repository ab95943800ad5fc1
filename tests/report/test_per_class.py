"""Per-class AP table and figure for the test classes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from zeroshot_audio.model.metrics import classification_metrics
from zeroshot_audio.report.per_class import per_class_ap_figure, per_class_ap_table


def _case():
    # 4 clips, 3 classes. Class "/m/a": positives clips 0, 1; "/m/b": clip 2; "/m/c": none.
    y = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=bool)
    attention = np.array([[0.9, 0.1, 0.2], [0.8, 0.2, 0.1], [0.1, 0.3, 0.3], [0.2, 0.4, 0.4]])
    uniform = np.array([[0.9, 0.1, 0.2], [0.1, 0.2, 0.1], [0.5, 0.9, 0.3], [0.2, 0.4, 0.4]])
    return y, {"temporal_attention": attention, "uniform": uniform}


def test_table_by_hand():
    y, scores = _case()
    table = per_class_ap_table(
        y, scores, ["/m/a", "/m/b", "/m/c"], display_names={"/m/a": "Dog"}, rotation="rot0"
    )
    # /m/a attention: positives rank 1, 2 -> AP 1. uniform: ranking 0.9+ 0.5- 0.2- 0.1+ -> AP
    # (1/1 + 2/4) / 2 = 0.75. Difference +0.25.
    # /m/b attention: 0.4- 0.3+ ... -> AP 1/2; uniform: 0.9+ first -> AP 1. Difference -0.5.
    # /m/c: no positive -> NaN, last.
    assert table["mid"].tolist() == ["/m/a", "/m/b", "/m/c"]
    assert table["display_name"].tolist() == ["Dog", "/m/b", "/m/c"]
    assert table["n_positives"].tolist() == [2, 1, 0]
    assert table["rotation"].unique().tolist() == ["rot0"]
    np.testing.assert_allclose(table["ap_temporal_attention"][:2], [1.0, 0.5])
    np.testing.assert_allclose(table["ap_uniform"][:2], [0.75, 1.0])
    np.testing.assert_allclose(table["ap_difference"][:2], [0.25, -0.5])
    assert np.isnan(table["ap_difference"][2])


def test_table_agrees_with_the_evaluation_metrics_and_mean_ap():
    rng = np.random.default_rng(0)
    y = rng.random((40, 6)) < 0.3
    scores = {"temporal_attention": rng.random((40, 6)), "uniform": rng.random((40, 6))}
    table = per_class_ap_table(y, scores, [f"c{j}" for j in range(6)]).set_index("mid")
    for method, values in scores.items():
        reference = classification_metrics(y, values > 0.5, values)
        np.testing.assert_allclose(
            table.loc[[f"c{j}" for j in range(6)], f"ap_{method}"], reference["per_class_ap"]
        )
        assert table[f"ap_{method}"].mean() == pytest.approx(reference["map"])
    assert "rotation" not in table.columns


def test_bad_inputs_are_named():
    y, scores = _case()
    with pytest.raises(ValueError, match="lack method 'uniform'"):
        per_class_ap_table(y, {"temporal_attention": scores["temporal_attention"]}, ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"targets must be \[N, C=2\]"):
        per_class_ap_table(y, scores, ["a", "b"])


def test_figure_shows_best_and_worst_with_clip_counts():
    rng = np.random.default_rng(1)
    y = rng.random((60, 30)) < 0.2
    scores = {"temporal_attention": rng.random((60, 30)), "uniform": rng.random((60, 30))}
    table = per_class_ap_table(y, scores, [f"/m/{j}" for j in range(30)])
    figure = per_class_ap_figure(table, k=5)
    assert isinstance(figure, Figure)
    axes = figure.axes[0]
    labels = [t.get_text() for t in axes.get_yticklabels()]
    assert len(labels) == 10
    scored = table.dropna(subset=["ap_difference"])
    best = scored.iloc[0]
    assert labels[-1] == f"{best['display_name']} (n={best['n_positives']})"  # top bar
    widths = [p.get_width() for p in axes.patches]
    assert widths[-1] == pytest.approx(100 * best["ap_difference"])
    assert widths[0] == pytest.approx(100 * scored["ap_difference"].iloc[-1])
    assert "5 best and 5 worst of 30" in axes.get_title()


def test_figure_refuses_a_table_without_scored_classes():
    table = pd.DataFrame(
        {"mid": ["a"], "display_name": ["a"], "n_positives": [0], "ap_difference": [np.nan]}
    )
    with pytest.raises(ValueError, match="nothing to draw"):
        per_class_ap_figure(table)
