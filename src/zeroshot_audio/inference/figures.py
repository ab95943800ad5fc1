"""One figure per predicted file: waveform with the events of each tag, attention over time, and
every label's score. Built on ``matplotlib.figure.Figure`` (no pyplot state), for the catalog's
MatplotlibDataset."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from zeroshot_audio.inference.config import FigureConfig


def prediction_figures(
    predictions: pd.DataFrame,
    events: pd.DataFrame,
    segments: pd.DataFrame,
    audio: Mapping[str, Mapping[str, Any]],
    config: FigureConfig,
) -> dict[str, Any]:
    """``{"<n>_<file stem>.png": figure}`` for the first ``config.max_files`` files; none when
    figures are disabled."""
    if not config.enabled:
        return {}
    figures: dict[str, Any] = {}
    for n, file in enumerate(list(audio)[: config.max_files]):
        name = file.replace("\\", "/").rsplit("/", 1)[-1]
        stem = name.rsplit(".", 1)[0] if "." in name else name
        stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem)
        figures[f"{n:03d}_{stem}.png"] = prediction_figure(
            file,
            audio[file],
            predictions[predictions["file"] == file],
            events[events["file"] == file],
            segments[segments["file"] == file],
            max_labels=config.max_labels,
        )
    return figures


def prediction_figure(
    file: str,
    audio: Mapping[str, Any],
    predictions: pd.DataFrame,
    events: pd.DataFrame,
    segments: pd.DataFrame,
    max_labels: int = 8,
) -> Any:
    """Waveform with the events of each tag, attention over time, and every label's score.

    ``audio`` holds the envelope (``time_s``, ``low``, ``high``) and ``duration_s``; the tables are
    this file's rows of the predict outputs. Attention is drawn relative to a flat attention
    (1 = the window's uniform share), so windows with different numbers of valid segments compare.
    Built on ``matplotlib.figure.Figure`` (no pyplot state), for the catalog's MatplotlibDataset.
    """
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    ranked = predictions.sort_values(["predicted", "score"], ascending=[False, False])
    shown = ranked["label"].head(max_labels).tolist()
    names = {
        label: label if text == label else f"{text} ({label})"
        for label, text in zip(predictions["label"], predictions["text"], strict=True)
    }
    colours = matplotlib.colormaps["tab10"].colors
    colour = {label: colours[i % len(colours)] for i, label in enumerate(shown)}
    duration = float(audio["duration_s"])

    figure = Figure(
        figsize=(11, 2.2 + 0.35 * len(shown) + 0.25 * len(predictions)), layout="constrained"
    )
    grid = figure.add_gridspec(
        3, 1, height_ratios=[1.2, max(1.0, 0.35 * len(shown)), max(1.0, 0.25 * len(predictions))]
    )
    wave_ax = figure.add_subplot(grid[0])
    attention_ax = figure.add_subplot(grid[1], sharex=wave_ax)
    score_ax = figure.add_subplot(grid[2])

    wave_ax.fill_between(audio["time_s"], audio["low"], audio["high"], color="0.45", linewidth=0)
    handles = []
    for label in shown:
        spans = events[events["label"] == label]
        for onset, offset in zip(spans["onset_s"], spans["offset_s"], strict=True):
            wave_ax.axvspan(onset, offset, color=colour[label], alpha=0.25)
        if len(spans):
            handles.append(Patch(color=colour[label], alpha=0.5, label=names[label]))
    wave_ax.set_xlim(0, duration)
    wave_ax.set_ylabel("amplitude")
    wave_ax.set_title(f"{file}  ({duration:.1f} s)", fontsize="medium")
    if handles:
        wave_ax.legend(handles=handles, fontsize="small", loc="upper right", framealpha=0.8)

    rows = segments[segments["label"].isin(shown)].copy()
    if len(rows):
        n_valid = rows.groupby(["window", "label"])["attention"].transform("size")
        rows["relative"] = rows["attention"] * n_valid
        table = rows.pivot_table(
            index="label", columns="segment_start_s", values="relative", aggfunc="max"
        )
        active = rows.pivot_table(
            index="label", columns="segment_start_s", values="active", aggfunc="max"
        )
        table = table.reindex(shown)
        active = active.reindex(shown).fillna(False).astype(bool)
        starts = table.columns.to_numpy(dtype=float)
        ends = rows.groupby("segment_start_s")["segment_end_s"].max().reindex(starts).to_numpy()
        edges = np.r_[starts, ends[-1]]
        mesh = attention_ax.pcolormesh(
            edges,
            np.arange(len(shown) + 1),
            table.to_numpy(dtype=float),
            cmap="magma",
            vmin=0.0,
            shading="flat",
        )
        figure.colorbar(mesh, ax=attention_ax, label="attention / uniform", pad=0.01)
        ys, xs = np.nonzero(active.to_numpy())
        for y, x in zip(ys, xs, strict=True):
            attention_ax.add_patch(
                matplotlib.patches.Rectangle(
                    (edges[x], y),
                    edges[x + 1] - edges[x],
                    1,
                    fill=False,
                    edgecolor="cyan",
                    linewidth=1.2,
                )
            )
    attention_ax.set_yticks(
        np.arange(len(shown)) + 0.5, [names[s] for s in shown], fontsize="small"
    )
    attention_ax.invert_yaxis()
    attention_ax.set_xlabel("time (s); cyan: active segments of a tag")

    order = predictions.sort_values("score")
    bar_colours = ["tab:green" if p else "0.6" for p in order["predicted"]]
    score_ax.barh([names[label] for label in order["label"]], order["score"], color=bar_colours)
    threshold = order["threshold"].iloc[0] if len(order) else np.nan
    if np.isfinite(threshold):
        score_ax.axvline(
            threshold, color="tab:red", linestyle="--", label=f"threshold {threshold:.3g}"
        )
        score_ax.legend(fontsize="small", loc="lower right")
    score_ax.set_xlabel("file score (green: predicted tag)")
    score_ax.tick_params(axis="y", labelsize="small")
    return figure
