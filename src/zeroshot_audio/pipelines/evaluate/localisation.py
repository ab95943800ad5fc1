"""Zero-shot localisation, scored: attention time stamps of unseen classes vs strong labels.

For every rotation, the held-out test clips are scored against the test fold's classes (never seen
in training), as in ``score_test_clips``; the attention of each model then gives time stamps with
the rule ``predict`` uses (``predict.localisation``), and these are compared segment by segment
with the strong labels of the bundled dataset. Two views:

- ``true_tags``: the time stamps of the classes a clip really has (its weak labels). This isolates
  *when* from *whether*. Baseline: every valid segment of those (clip, class) pairs is active.
- ``predicted_tags``: end to end, as ``predict`` outputs them: a segment is active when the clip
  is tagged with the class (the evaluate threshold rule) and the attention there is high.
  Baseline: the same tags with every valid segment active (a tagger without time stamps).

The lead wires :func:`score_localisation` into the ``evaluate`` pipeline.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from zeroshot_audio.contracts.segment_table import to_arrays
from zeroshot_audio.device import resolve_device
from zeroshot_audio.model.attention import TemporalAttentionModel
from zeroshot_audio.model.localisation import (
    LocalisationRule,
    active_segments,
    all_active,
    segment_f1,
    strong_label_grid,
)
from zeroshot_audio.model.metrics import THRESHOLD_RULES, apply_threshold_rule
from zeroshot_audio.model.protocol import (
    METHOD_TITLES,
    METHODS,
    attach_rows,
    label_matrix,
    multi_hot,
    segment_index,
    split_clips,
)
from zeroshot_audio.model.training import (
    make_clip_set,
    score_clips,
    segments_to_device,
)

logger = logging.getLogger(__name__)

VIEWS = ("true_tags", "predicted_tags")
BASELINE = "all_active"
REPORTED = ("f1", "precision", "recall", "macro_f1")


def score_localisation(
    trained_models: dict[str, dict[str, Any]],
    model_splits: pd.DataFrame,
    segment_embeddings: pa.Table,
    label_embeddings: pd.DataFrame,
    clip_folds: pd.DataFrame,
    strong_labels: pd.DataFrame,
    evaluate_params: dict[str, Any],
    localisation_params: dict[str, Any],
    segment_s: float,
    device: str,
) -> dict[str, Any]:
    """Segment-level F1 of every model's attention time stamps on each rotation's test clips.

    ``localisation_params`` is ``predict.localisation`` (what is scored is what predict
    outputs); ``evaluate_params['threshold']`` gives the tags of the ``predicted_tags`` view and
    ``evaluate_params['localisation']['min_overlap_s']`` (default 0: any overlap) when a strong
    event makes a segment true. Test clips without any strong label are left out and counted; a
    rotation with none is skipped (listed in ``skipped_rotations``, MLflow tag ``loc.degraded``),
    so an environment without strong labels still evaluates.
    """
    if not trained_models:
        raise ValueError("trained_models is empty: run `kedro run --pipelines=train` first")
    rule = LocalisationRule.from_dict(localisation_params)
    threshold = evaluate_params["threshold"]
    if threshold["rule"] not in THRESHOLD_RULES:
        raise ValueError(
            f"evaluate.threshold.rule must be one of {THRESHOLD_RULES}, got {threshold['rule']!r}"
        )
    min_overlap_s = float((evaluate_params.get("localisation") or {}).get("min_overlap_s", 0.0))
    batch_size = int(evaluate_params.get("batch_size", 4096))
    ddof = int(evaluate_params.get("std_ddof", 1))

    arrays = to_arrays(segment_embeddings)
    n_segments = int(arrays.embeddings.shape[1])
    clips, _ = attach_rows(clip_folds, segment_index(arrays.ytid, arrays.start_s))
    torch_device = resolve_device(device)
    segments, n_valid = segments_to_device(arrays.embeddings, arrays.n_valid_segments, torch_device)
    labelled_clips = set(strong_labels["clip"].astype(str))

    by_rotation: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for checkpoint in trained_models.values():
        by_rotation[checkpoint["rotation"]["name"]][checkpoint["method"]] = checkpoint

    rotations: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for rotation, checkpoints in by_rotation.items():
        classes = next(iter(checkpoints.values()))["test_classes"]
        test_clips = split_clips(clips, model_splits, rotation, "test")
        has_strong = test_clips["ytid"].astype(str).isin(labelled_clips).to_numpy()
        test_clips = test_clips[has_strong].reset_index(drop=True)
        if test_clips.empty:
            logger.warning(
                "localisation: rotation %s skipped, none of its %d test clips has a strong label",
                rotation,
                len(has_strong),
            )
            skipped[rotation] = f"none of its {len(has_strong)} test clips has a strong label"
            continue
        y_true = multi_hot(test_clips["labels"], classes)
        test_set = make_clip_set(
            segments,
            n_valid,
            test_clips["row"].to_numpy(),
            y_true,
            label_matrix(label_embeddings, classes),
        )
        valid = np.arange(n_segments)[None, :] < arrays.n_valid_segments[test_clips["row"]][:, None]
        truth = strong_label_grid(
            strong_labels,
            test_clips["ytid"].tolist(),
            classes,
            n_segments,
            segment_s,
            min_overlap_s,
        )
        results: dict[str, dict[str, Any]] = {
            BASELINE: {"true_tags": segment_f1(truth, all_active(valid, y_true), valid, y_true)}
        }
        for method in [m for m in METHODS if m in checkpoints]:
            checkpoint = checkpoints[method]
            model = TemporalAttentionModel.from_checkpoint(checkpoint).to(torch_device)
            scored = score_clips(model, test_set, batch_size=batch_size, with_attention=True)
            value = checkpoint["threshold"] if threshold["rule"] == "tuned" else threshold["fixed"]
            tags = apply_threshold_rule(
                scored["scores"],
                threshold["rule"],
                threshold=float(value),
                k=int(threshold["top_k"]),
            )
            high = active_segments(scored["attention"], valid, rule)
            results[method] = {
                "true_tags": segment_f1(truth, high, valid, y_true),
                "predicted_tags": segment_f1(truth, high & tags[:, None, :], valid),
                "predicted_tags_baseline": segment_f1(truth, all_active(valid, tags), valid),
                "gamma": float(checkpoint["gamma"]),
            }
        rotations[rotation] = {
            "n_test_clips": len(test_clips),
            "n_test_clips_without_strong_labels": int((~has_strong).sum()),
            "n_classes": len(classes),
            "n_true_pairs": int(y_true.sum()),
            "n_true_pairs_without_strong_segments": int((y_true & ~truth.any(axis=1)).sum()),
            "methods": results,
        }
        logger.info(
            "%s localisation on %d test clips x %d unseen classes: %s",
            rotation,
            len(test_clips),
            len(classes),
            ", ".join(f"{m} F1 {r['true_tags']['f1']:.3f}" for m, r in results.items()),
        )
    report = _report(rotations, rule, segment_s, min_overlap_s, threshold["rule"], ddof)
    report["skipped_rotations"] = skipped
    if skipped:
        report["mlflow_tags"]["loc.degraded"] = (
            f"{len(skipped)} of {len(by_rotation)} rotations without strong labels"
        )
    return report


def _entries(rotations: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(row name, view) -> per-rotation metric dicts; baselines of predicted tags get their own row."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for rotation in rotations.values():
        for method, result in rotation["methods"].items():
            out[(method, "true_tags")].append(result["true_tags"])
            if "predicted_tags" in result:
                out[(method, "predicted_tags")].append(result["predicted_tags"])
                out[(f"{method}+{BASELINE}", "predicted_tags")].append(
                    result["predicted_tags_baseline"]
                )
    return out


def _report(
    rotations: dict[str, Any],
    rule: LocalisationRule,
    segment_s: float,
    min_overlap_s: float,
    threshold_rule: str,
    ddof: int,
) -> dict[str, Any]:
    summary: dict[str, dict[str, dict[str, dict[str, float]]]] = defaultdict(dict)
    for (row, view), values in _entries(rotations).items():
        summary[row][view] = {}
        for metric in REPORTED:
            numbers = np.array([v[metric] for v in values], dtype=float)
            std = float(np.std(numbers, ddof=ddof)) if len(numbers) > ddof else 0.0
            summary[row][view][metric] = {
                "mean": float(numbers.mean()),
                "std": std,
                "n_rotations": len(numbers),
            }
    metrics: dict[str, float] = {}
    for row, views in summary.items():
        for view, stats in views.items():
            for metric in ("f1", "precision", "recall"):
                metrics[f"loc/{row}/{view}/{metric}_mean"] = stats[metric]["mean"]
            metrics[f"loc/{row}/{view}/f1_std"] = stats["f1"]["std"]
    for name, rotation in rotations.items():
        for method, result in rotation["methods"].items():
            for view in VIEWS:
                if view in result:
                    metrics[f"loc/{name}/{method}/{view}/f1"] = result[view]["f1"]
    return {
        "localisation_rule": rule.to_dict(),
        "segment_s": segment_s,
        "min_overlap_s": min_overlap_s,
        "threshold_rule": threshold_rule,
        "definitions": {
            "truth": "segment t of a clip is true for class c when a strong-label event of c "
            f"overlaps [t, t+1) x {segment_s:g} s by more than min_overlap_s (sed_eval's "
            "segment-based convention for 0)",
            "true_tags": "time stamps of the clip's true test-fold classes: attention-high "
            "segments vs strong-label segments, (clip, class) pairs of the weak labels only",
            "predicted_tags": "end to end as predict outputs: attention-high segments of the "
            "classes tagged under the evaluate threshold rule, over every test-fold class",
            BASELINE: "every valid segment active (for predicted_tags: of the tagged classes)",
            "f1": "micro F1 over (segment, class) decisions, scikit-learn, zero_division=0",
            "macro_f1": "mean per-class F1 over classes with at least one true segment",
            "std": f"numpy std over rotations, ddof={ddof}",
        },
        "summary": dict(summary),
        "rotations": rotations,
        "mlflow_metrics": metrics,
        "mlflow_tags": {"loc.rule": rule.describe()},
    }


def localisation_table(localisation_report: dict[str, Any]) -> str:
    """Markdown: segment-level F1 (precision, recall) of time stamps, mean ± std over rotations."""
    summary = localisation_report["summary"]
    rule = LocalisationRule.from_dict(localisation_report["localisation_rule"])
    titles = {**METHOD_TITLES, BASELINE: "Every segment active (baseline)"}

    def cell(stats: dict[str, Any] | None) -> str:
        if not stats:
            return "–"
        return (
            f"{100 * stats['f1']['mean']:.1f} ± {100 * stats['f1']['std']:.1f} "
            f"({100 * stats['precision']['mean']:.0f} / {100 * stats['recall']['mean']:.0f})"
        )

    if not localisation_report["rotations"]:
        return (
            "## Zero-shot localisation\n\nNot scored: no test clip has a strong label "
            f"({localisation_report.get('skipped_rotations')}).\n"
        )
    lines = [
        f"## Zero-shot localisation: test-fold classes, segment-level F1 (%), mean ± std over "
        f"{len(localisation_report['rotations'])} rotations",
        "",
        "| Time stamps | of the true tags | of the predicted tags |",
        "| --- | ---: | ---: |",
    ]
    rows = [BASELINE] + [m for m in METHODS if m in summary]
    for row in rows:
        views = summary.get(row, {})
        lines.append(
            f"| {titles.get(row, row)} | {cell(views.get('true_tags'))} | "
            f"{cell(views.get('predicted_tags'))} |"
        )
        baseline = summary.get(f"{row}+{BASELINE}")
        if baseline:
            lines.append(
                f"| {titles.get(row, row)}, every segment of its tags | – | "
                f"{cell(baseline.get('predicted_tags'))} |"
            )
    lines += [
        "",
        f"Cells: F1 (precision / recall). {_segment_s_text(localisation_report)} Time stamps: "
        f"segments with {rule.describe()} attention in tagged windows (`predict.localisation`); "
        f"tags by the `{localisation_report['threshold_rule']}` threshold rule.",
    ]
    return "\n".join(lines) + "\n"


def _segment_s_text(report: dict[str, Any]) -> str:
    return (
        f"Segments of {report['segment_s']:g} s; a segment is true when a strong-label event "
        f"overlaps it by more than {report['min_overlap_s']:g} s."
    )
