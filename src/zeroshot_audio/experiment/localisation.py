"""Zero-shot localisation, scored: attention time stamps of unseen classes vs strong labels.

Reads the attention that :func:`~zeroshot_audio.experiment.evaluate.score_rotation` kept (no
model is run again). For every rotation, the held-out test clips that have strong labels are
compared segment by segment with the time stamps the rule ``predict`` uses
(``predict.localisation``). Two views:

- ``true_tags``: the time stamps of the classes a clip really has (its weak labels). This isolates
  *when* from *whether*. Baseline: every valid segment of those (clip, class) pairs is active.
- ``predicted_tags``: end to end, as ``predict`` outputs them: a segment is active when the clip
  is tagged with the class (the evaluate threshold rule) and the attention there is high.
  Baseline: the same tags with every valid segment active (a tagger without time stamps).

The DCASE metrics (1-s segment F1/ER, event F1, segment AP/AUROC, PSDS) of the same clips come
from :mod:`zeroshot_audio.experiment.sed` (``sed`` in the report).

MLflow keys: ``evaluate/localisation/<row>/<view>/<metric>_mean``,
``evaluate/localisation/<rotation>/<method>/<view>/f1`` and
``evaluate/localisation/sed/<row>/<metric>_mean``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd

from zeroshot_audio.experiment.evaluate import (
    EvaluationScores,
    RotationScores,
    at_most,
    is_in,
    strong_label_clips,
)
from zeroshot_audio.experiment.metrics import mean_std
from zeroshot_audio.experiment.protocol import METHODS
from zeroshot_audio.experiment.sed import SED_DEFINITIONS, sed_rotation, sed_summary
from zeroshot_audio.model.localisation import (
    LocalisationRule,
    active_segments,
    all_active,
    segment_f1,
    strong_label_grid,
)

logger = logging.getLogger(__name__)

VIEWS = ("true_tags", "predicted_tags")
BASELINE = "all_active"
REPORTED = ("f1", "precision", "recall", "macro_f1")


def localise_rotation(
    scored: RotationScores,
    strong_labels: pd.DataFrame,
    with_strong: pd.Index,
    rule: LocalisationRule,
    segment_s: float,
    min_overlap_s: float,
    event_max_clips: int | None = None,
) -> dict[str, Any] | None:
    """Segment F1 of every model of one rotation on its test clips with strong labels whose
    attention was kept (all of them unless ``evaluate.localisation.max_clips`` sampled them);
    None when no test clip has a strong label. ``with_strong``: every clip with a strong label;
    ``strong_labels`` need only hold the rows of the clips whose attention was kept."""
    has_strong = is_in(scored.clips["ytid"], with_strong)
    kept = np.zeros(len(has_strong), bool)
    kept[scored.attention_rows] = True
    positions = np.flatnonzero(has_strong & kept)
    if not len(positions):
        return None
    clips = scored.clips.iloc[positions]
    event_positions = positions[
        at_most(np.ones(len(positions), bool), clips["ytid"].astype(str), event_max_clips)
    ]
    y_true, valid = scored.y_true[positions], scored.valid[positions]
    n_segments = valid.shape[1]
    truth = strong_label_grid(
        strong_labels, clips["ytid"].tolist(), scored.classes, n_segments, segment_s, min_overlap_s
    )
    results: dict[str, dict[str, Any]] = {
        BASELINE: {"true_tags": segment_f1(truth, all_active(valid, y_true), valid, y_true)}
    }
    for method in [m for m in METHODS if m in scored.methods and m != "zero_rule"]:
        result = scored.methods[method]
        tags = result.predictions[positions]
        high = active_segments(scored.attention_of(method, positions), valid, rule)
        results[method] = {
            "true_tags": segment_f1(truth, high, valid, y_true),
            "predicted_tags": segment_f1(truth, high & tags[:, None, :], valid),
            "predicted_tags_baseline": segment_f1(truth, all_active(valid, tags), valid),
            "gamma": result.gamma,
        }
    logger.info(
        "%s localisation on %d test clips x %d unseen classes: %s",
        scored.name,
        len(clips),
        len(scored.classes),
        ", ".join(f"{m} F1 {r['true_tags']['f1']:.3f}" for m, r in results.items()),
    )
    return {
        "n_test_clips": len(clips),
        "n_test_clips_without_strong_labels": int((~has_strong).sum()),
        "n_test_clips_with_strong_labels_not_sampled": int((has_strong & ~kept).sum()),
        "n_classes": len(scored.classes),
        "n_true_pairs": int(y_true.sum()),
        "n_true_pairs_without_strong_segments": int((y_true & ~truth.any(axis=1)).sum()),
        "methods": results,
        "sed": sed_rotation(scored, event_positions, strong_labels, rule, segment_s),
        "n_test_clips_event_metrics": len(event_positions),
    }


def localisation_report(
    scores: EvaluationScores,
    strong_labels: pd.DataFrame,
    rule: LocalisationRule,
    min_overlap_s: float = 0.0,
    ddof: int = 1,
    event_max_clips: int | None = None,
) -> dict[str, Any]:
    """Segment-level F1 of every model's attention time stamps on each rotation's test clips.

    Test clips without any strong label are left out and counted; a rotation with none is
    skipped (``skipped_rotations``, MLflow tag ``evaluate.degraded``), so an environment without
    strong labels still evaluates.
    """
    rotations: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    # AudioSet's strong labels are 4M rows: which clips have any, and the rows of the clips whose
    # attention was kept, are found once for every rotation
    with_strong = strong_label_clips(strong_labels)
    kept = set().union(
        *(s.clips["ytid"].iloc[s.attention_rows].astype(str) for s in scores.rotations.values())
    )
    strong_labels = strong_labels[strong_labels["clip"].astype(str).isin(kept)]
    for name, scored in scores.rotations.items():
        result = localise_rotation(
            scored,
            strong_labels,
            with_strong,
            rule,
            scores.segment_s,
            min_overlap_s,
            event_max_clips,
        )
        if result is None:
            n = len(scored.clips)
            logger.warning(
                "localisation: rotation %s skipped, none of its %d test clips has a strong label",
                name,
                n,
            )
            skipped[name] = f"none of its {n} test clips has a strong label"
        else:
            rotations[name] = result
    report = _report(rotations, rule, scores, min_overlap_s, ddof)
    report["skipped_rotations"] = skipped
    if skipped:
        report["mlflow_tags"]["evaluate.degraded"] = (
            f"{len(skipped)} of {len(scores.rotations)} rotations without strong labels"
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
    scores: EvaluationScores,
    min_overlap_s: float,
    ddof: int,
) -> dict[str, Any]:
    summary: dict[str, dict[str, dict[str, dict[str, float]]]] = defaultdict(dict)
    for (row, view), values in _entries(rotations).items():
        summary[row][view] = {m: mean_std([v[m] for v in values], ddof) for m in REPORTED}
    metrics: dict[str, float] = {}
    for row, views in summary.items():
        for view, stats in views.items():
            for metric in ("f1", "precision", "recall"):
                metrics[f"evaluate/localisation/{row}/{view}/{metric}_mean"] = stats[metric]["mean"]
            metrics[f"evaluate/localisation/{row}/{view}/f1_std"] = stats["f1"]["std"]
    for name, rotation in rotations.items():
        for method, result in rotation["methods"].items():
            for view in VIEWS:
                if view in result:
                    metrics[f"evaluate/localisation/{name}/{method}/{view}/f1"] = result[view]["f1"]
    segment_s = scores.segment_s
    sed, sed_metrics = sed_summary({n: r["sed"] for n, r in rotations.items()}, ddof)
    metrics.update(sed_metrics)
    return {
        "localisation_rule": rule.to_dict(),
        "segment_s": segment_s,
        "min_overlap_s": min_overlap_s,
        "threshold_rule": scores.threshold_rule,
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
        "sed": {"summary": sed, "definitions": SED_DEFINITIONS},
        "rotations": rotations,
        "mlflow_metrics": metrics,
        "mlflow_tags": {"evaluate.localisation_rule": rule.describe()},
    }
