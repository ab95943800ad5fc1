"""Per-class average precision of the test classes: the table users ask for, and its figure.

A mean over classes hides which unseen classes attention helps and which it hurts; users choosing
a tagger for *their* classes want the row of each class. AP is scikit-learn's definition
(``model.metrics.average_precision``); a class without a positive among the scored clips has no AP
(NaN) and is kept in the table, marked by ``n_positives = 0``, but never drawn. Rotations have
disjoint test classes, so the tables of several rotations simply concatenate (``rotation`` column).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from zeroshot_audio.model.metrics import average_precision

METHOD_A = "temporal_attention"
METHOD_B = "uniform"


def per_class_ap_table(
    targets: np.ndarray,
    scores: Mapping[str, np.ndarray],
    classes: Sequence[str],
    *,
    display_names: Mapping[str, str] | None = None,
    method_a: str = METHOD_A,
    method_b: str = METHOD_B,
    rotation: str | None = None,
) -> pd.DataFrame:
    """One row per class: ``rotation, mid, display_name, n_clips, n_positives, ap_<method>...,
    ap_difference`` (= AP of ``method_a`` - AP of ``method_b``), best difference first; classes
    without a positive last."""
    targets = np.asarray(targets, dtype=bool)
    if targets.ndim != 2 or targets.shape[1] != len(classes):
        raise ValueError(f"targets must be [N, C={len(classes)}]; got {targets.shape}")
    for needed in (method_a, method_b):
        if needed not in scores:
            raise ValueError(f"scores lack method {needed!r}; have {sorted(scores)}")
    for method, values in scores.items():
        if np.shape(values) != targets.shape:
            raise ValueError(f"scores[{method!r}] {np.shape(values)} != targets {targets.shape}")
    return tabulate_per_class_ap(
        {method: average_precision(targets, values) for method, values in scores.items()},
        classes,
        targets.sum(axis=0),
        targets.shape[0],
        display_names=display_names,
        method_a=method_a,
        method_b=method_b,
        rotation=rotation,
    )


def tabulate_per_class_ap(
    ap: Mapping[str, Sequence[float]],
    classes: Sequence[str],
    n_positives: Sequence[int],
    n_clips: int,
    *,
    display_names: Mapping[str, str] | None = None,
    method_a: str = METHOD_A,
    method_b: str = METHOD_B,
    rotation: str | None = None,
) -> pd.DataFrame:
    """:func:`per_class_ap_table` from APs already computed (``ap[method]`` per class, NaN for a
    class without a positive), e.g. the ones in evaluate's tag report."""
    names = display_names or {}
    table = pd.DataFrame(
        {
            "rotation": rotation,
            "mid": [str(c) for c in classes],
            "display_name": [names.get(str(c), str(c)) for c in classes],
            "n_clips": int(n_clips),
            "n_positives": np.asarray(n_positives, dtype=int),
        }
    )
    for method, values in ap.items():
        table[f"ap_{method}"] = np.asarray(values, dtype=np.float64)
    table["ap_difference"] = table[f"ap_{method_a}"] - table[f"ap_{method_b}"]
    if rotation is None:
        table = table.drop(columns="rotation")
    return table.sort_values(
        ["ap_difference", "mid"], ascending=[False, True], na_position="last", kind="stable"
    ).reset_index(drop=True)


def per_class_ap_figure(
    table: pd.DataFrame,
    k: int = 10,
    *,
    name_a: str = "attention",
    name_b: str = "uniform",
    title: str | None = None,
) -> Figure:
    """Horizontal bars of AP(A) - AP(B) in points for the k best and k worst classes.

    Each bar is labelled with the class name and its number of positive test clips, so a large
    difference on 2 clips is read as what it is.
    """
    scored = table.dropna(subset=["ap_difference"]).sort_values(
        "ap_difference", ascending=False, kind="stable"
    )
    if scored.empty:
        raise ValueError("no class has a positive test clip: nothing to draw")
    shown = f"all {len(scored)} test classes with a positive clip"
    if len(scored) > 2 * k:
        scored = pd.concat([scored.head(k), scored.tail(k)])
        shown = f"the {k} best and {k} worst of {len(table)} test classes"
    rows = scored.iloc[::-1]  # best at the top
    difference = 100.0 * rows["ap_difference"].to_numpy()
    labels = [
        f"{name} (n={n})" for name, n in zip(rows["display_name"], rows["n_positives"], strict=True)
    ]
    figure = Figure(figsize=(7.5, 0.9 + 0.28 * len(rows)), layout="constrained")
    axes = figure.subplots()
    colours = np.where(difference >= 0, "tab:green", "tab:red")
    axes.barh(np.arange(len(rows)), difference, color=colours, alpha=0.85)
    axes.set_yticks(np.arange(len(rows)), labels, fontsize=8)
    axes.axvline(0.0, color="black", linewidth=0.8)
    axes.set_xlabel(f"AP({name_a}) - AP({name_b}), points")
    axes.set_title(title or f"{name_a} vs {name_b}: {shown}", fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    return figure
