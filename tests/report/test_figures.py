"""``report.figures``: the F1 bar chart and the attention heat maps draw headless."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from zeroshot_audio.experiment.protocol import METHOD_TITLES
from zeroshot_audio.report.figures import attention_heatmaps, f1_bar_chart


def test_f1_bar_chart_has_one_bar_per_method_and_metric_and_a_dot_per_rotation():
    summary = {
        m: {k: {"mean": 0.5, "std": 0.1} for k in ("micro_f1", "macro_f1", "map")}
        for m in ("zero_rule", "temporal_attention")
    }
    per_rotation = {r: {m: {"micro_f1": 0.4, "macro_f1": 0.5, "map": 0.6} for m in summary}
                    for r in ("rot0", "rot1")}  # fmt: skip
    figure = f1_bar_chart(summary, per_rotation, METHOD_TITLES)
    assert isinstance(figure, Figure)
    (axes,) = figure.axes
    assert len(axes.patches) == 2 * 3  # bars
    labels = [t.get_text() for t in axes.get_legend().get_texts()]
    assert METHOD_TITLES["temporal_attention"] in labels and "one rotation" in labels


def test_attention_heatmaps_show_true_labels_first_and_handle_no_clips():
    attention = np.full((5, 3), 0.2)
    clip = {
        "title": "rot0 temporal_attention: x @ 0 s",
        "attention": attention,
        "scores": np.array([0.1, 0.9, 0.5]),
        "labels": np.array([True, False, False]),
        "class_names": ["Dog", "Siren", "Speech"],
        "n_valid": 4,
    }
    figure = attention_heatmaps([clip], max_classes=2)
    ticks = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert ticks == ["* Dog (0.10)", "Siren (0.90)"]
    empty = attention_heatmaps([])
    assert empty.axes[0].texts[0].get_text() == "no test clips"
