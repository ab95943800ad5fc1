"""Figures of the evaluation: F1 bars per method and attention heat-maps of test clips.

Built on ``matplotlib.figure.Figure`` directly (no pyplot state, no backend switch), so they
work headless and never leak open figures; each returns a ``Figure`` for the catalog's
``MatplotlibDataset`` or a notebook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

METRIC_TITLES = {"micro_f1": "micro-F1", "macro_f1": "macro-F1", "map": "mAP"}


def f1_bar_chart(
    summary: Mapping[str, Mapping[str, Mapping[str, float]]],
    per_rotation: Mapping[str, Mapping[str, Mapping[str, float]]],
    method_titles: Mapping[str, str],
    metrics: Sequence[str] = ("micro_f1", "macro_f1", "map"),
    title: str = "Test folds: mean ± std over rotations",
) -> Figure:
    """Grouped bars (metric x method) of the mean with std error bars, one open dot per rotation.

    ``summary[method][metric]`` has ``mean`` and ``std``; ``per_rotation[rotation][method][metric]``
    is a number.
    """
    methods = [m for m in method_titles if m in summary]
    figure = Figure(figsize=(4.8 + 2.0 * len(metrics), 4.2), layout="constrained")
    axes = figure.subplots()
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(metrics))
    colours = matplotlib.colormaps["tab10"].colors
    for i, method in enumerate(methods):
        means = [summary[method][m]["mean"] for m in metrics]
        stds = [summary[method][m]["std"] for m in metrics]
        offset = x - 0.4 + width * (i + 0.5)
        axes.bar(
            offset,
            means,
            width,
            yerr=stds,
            capsize=3,
            label=method_titles[method],
            color=colours[i % len(colours)],
            alpha=0.85,
        )
        for j, metric in enumerate(metrics):
            values = [rot[method][metric] for rot in per_rotation.values() if method in rot]
            axes.scatter(
                np.full(len(values), offset[j] + width * 0.25),
                values,
                s=14,
                zorder=3,
                facecolor="white",
                edgecolor="black",
                linewidth=0.8,
                label="one rotation" if i == 0 and j == 0 else None,
            )
    axes.set_xticks(x, [METRIC_TITLES.get(m, m) for m in metrics])
    axes.set_ylim(0, 1)
    axes.set_ylabel("score")
    axes.set_title(title)
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes.grid(axis="y", alpha=0.3)
    return figure


def attention_heatmaps(clips: Sequence[Mapping[str, Any]], max_classes: int = 6) -> Figure:
    """One panel per clip: attention over segments (x) for its labels and top-scoring classes (y).

    Each clip mapping has ``title``, ``attention`` [T, C], ``scores`` [C], ``class_names`` [C],
    ``labels`` (bool [C]), ``n_valid``. Rows: true labels first, then the highest-scoring others, up
    to ``max_classes``; true labels are marked with ``*``, padding segments are hatched; each
    panel's colour scale runs from 0 to its largest weight.
    """
    n = max(len(clips), 1)
    figure = Figure(figsize=(9, 1.2 + 1.9 * n), layout="constrained")
    axes = np.atleast_1d(figure.subplots(n, 1, squeeze=False)[:, 0])
    for ax, clip in zip(axes, clips, strict=False):
        attention = np.asarray(clip["attention"], dtype=float)
        scores = np.asarray(clip["scores"], dtype=float)
        labels = np.asarray(clip["labels"], dtype=bool)
        positives = np.flatnonzero(labels)
        positives = positives[np.argsort(-scores[positives], kind="stable")]
        others = [j for j in np.argsort(-scores, kind="stable") if not labels[j]]
        rows = [*positives, *others][:max_classes]
        shown = attention[:, rows].T
        # Colour scale per clip (0 to its largest weight): flat attention (1/T) stays readable.
        image = ax.imshow(
            shown,
            aspect="auto",
            cmap="viridis",
            vmin=0.0,
            vmax=max(float(shown.max()), 1e-6),
            interpolation="nearest",
        )
        n_valid = int(clip["n_valid"])
        if n_valid < attention.shape[0]:
            ax.axvspan(
                n_valid - 0.5, attention.shape[0] - 0.5, color="white", alpha=0.6, hatch="//"
            )
        names = [
            f"{'* ' if labels[j] else ''}{_short(clip['class_names'][j])} ({scores[j]:.2f})"
            for j in rows
        ]
        ax.set_yticks(range(len(rows)), names, fontsize="small")
        ax.set_xticks(range(attention.shape[0]))
        ax.set_xlabel("segment (1 s)")
        ax.set_title(clip["title"], fontsize="medium")
        figure.colorbar(image, ax=ax, label="attention", fraction=0.03)
    if not clips:
        axes[0].text(0.5, 0.5, "no test clips", ha="center", va="center")
        axes[0].set_axis_off()
    return figure


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
