"""Tag metrics of a scored evaluation: per rotation and method, and mean ± std over rotations.

Reads :class:`~zeroshot_audio.experiment.evaluate.EvaluationScores` only (no model, no scoring).
MLflow keys follow ``evaluate/<name>``: ``evaluate/<method>/<metric>_mean`` (and ``_std``),
``evaluate/<rotation>/<method>/<metric>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from zeroshot_audio.experiment.evaluate import BootstrapConfig, EvaluationScores
from zeroshot_audio.experiment.protocol import METHODS
from zeroshot_audio.model.metrics import ZERO_DIVISION, classification_metrics
from zeroshot_audio.model.uncertainty import (
    PairedScores,
    format_difference,
    stratified_paired_bootstrap,
)
from zeroshot_audio.report.per_class import METHOD_A, METHOD_B, tabulate_per_class_ap

SUMMARY_METRICS = ("micro_f1", "macro_f1", "map")
SHORT_NAMES = {"temporal_attention": "attention", "uniform": "uniform"}
# Stage-specific stream of the shared seed for the bootstrap resamples.
BOOTSTRAP_STREAM = 7


def mean_std(values: Sequence[float], ddof: int) -> dict[str, float]:
    """``{mean, std, n_rotations}`` of per-rotation numbers; std is 0 when undefined."""
    numbers = np.asarray(values, dtype=float)
    std = float(np.std(numbers, ddof=ddof)) if len(numbers) > ddof else 0.0
    return {"mean": float(numbers.mean()), "std": std, "n_rotations": len(numbers)}


def _method_metrics(y_true, result, classes, texts) -> dict[str, Any]:
    metrics = classification_metrics(y_true, result.predictions, result.scores)
    n_positives = y_true.sum(axis=0)
    per_class = {
        mid: {
            "text": texts.get(mid, mid),
            "f1": float(metrics["per_class_f1"][j]),
            "ap": None
            if np.isnan(metrics["per_class_ap"][j])
            else float(metrics["per_class_ap"][j]),
            "n_test_positives": int(n_positives[j]),
        }
        for j, mid in enumerate(classes)
    }
    return {
        **{m: metrics[m] for m in SUMMARY_METRICS},
        "n_clips": metrics["n_clips"],
        "n_classes": metrics["n_classes"],
        "n_classes_present": metrics["n_classes_present"],
        "mean_predicted_per_clip": metrics["mean_predicted_per_clip"],
        "threshold": result.threshold,
        "k": result.k,
        **(
            {
                "crossfit_parts": {
                    str(int(part)): {
                        "n_clips": int((result.parts == part).sum()),
                        **(
                            {"threshold": result.part_thresholds[int(part)]}
                            if result.part_thresholds
                            else {}
                        ),
                        **({"k": result.part_k[int(part)]} if result.part_k else {}),
                    }
                    for part in np.unique(result.parts)
                }
            }
            if result.parts is not None
            else {}
        ),
        "gamma": result.gamma,
        "per_class": per_class,
    }


def tag_report(scores: EvaluationScores, texts: Mapping[str, str], ddof: int) -> dict[str, Any]:
    """Metrics per rotation and method, mean ± std over rotations, definitions, MLflow keys."""
    per_rotation = {
        rotation: {
            method: _method_metrics(scored.y_true, result, scored.classes, texts)
            for method, result in scored.methods.items()
        }
        for rotation, scored in scores.rotations.items()
    }
    methods = [m for m in METHODS if any(m in r for r in per_rotation.values())]
    summary = {
        method: {
            metric: mean_std(
                [r[method][metric] for r in per_rotation.values() if method in r], ddof
            )
            for metric in SUMMARY_METRICS
        }
        for method in methods
    }
    mlflow_metrics: dict[str, float] = {}
    for method, metrics in summary.items():
        for metric, stats in metrics.items():
            mlflow_metrics[f"evaluate/{method}/{metric}_mean"] = stats["mean"]
            mlflow_metrics[f"evaluate/{method}/{metric}_std"] = stats["std"]
    for rotation, results in per_rotation.items():
        for method, result in results.items():
            for metric in SUMMARY_METRICS:
                mlflow_metrics[f"evaluate/{rotation}/{method}/{metric}"] = result[metric]
    return {
        "threshold_rule": scores.threshold_rule,
        "zero_division": ZERO_DIVISION,
        "definitions": {
            "micro_f1": "scikit-learn f1_score(average='micro') over every (test clip, test class)",
            "macro_f1": "mean per-class F1 over test classes with >= 1 positive test clip",
            "map": "mean average precision over test classes with >= 1 positive test clip",
            "std": f"numpy std over rotations, ddof={ddof}",
            "zero_rule": "cross-fitted: a test clip of part k gets the k_p most frequent test "
            "classes of the other parts' clips; k_p = their mean label count (rounded)",
            "test_clips": "every clip of each rotation's test fold, scored by every method; the "
            "supervised upper bound is cross-fitted (K parts: each clip is scored by the model "
            "trained and validated on the other parts)",
        },
        "summary": summary,
        "rotations": {
            rotation: {
                "folds": scored.folds,
                "n_test_clips": len(scored.clips),
                "methods": per_rotation[rotation],
            }
            for rotation, scored in scores.rotations.items()
        },
        "mlflow_metrics": mlflow_metrics,
        "mlflow_tags": {"evaluate.threshold_rule": scores.threshold_rule},
    }


def paired_differences(
    scores: EvaluationScores,
    config: BootstrapConfig,
    seed: int,
    method_a: str = "temporal_attention",
    method_b: str = "uniform",
) -> dict[str, Any]:
    """``method_a - method_b`` in micro-F1, macro-F1 and mAP per rotation and pooled (mean over
    rotations, clips resampled within each), paired bootstrap intervals (``model.uncertainty``).

    MLflow keys ``evaluate/difference/<a>_minus_<b>/[<rotation>/]<metric>{,_low,_high}``.
    Empty when a rotation lacks either method.
    """
    paired = {}
    subsample = np.random.default_rng([seed, BOOTSTRAP_STREAM, 1])
    for name, scored in scores.rotations.items():
        if method_a not in scored.methods or method_b not in scored.methods:
            return {}
        a, b = scored.methods[method_a], scored.methods[method_b]
        rows = np.arange(len(scored.y_true))
        if config.max_clips is not None and len(rows) > config.max_clips:
            rows = np.sort(subsample.choice(rows, config.max_clips, replace=False))
        paired[name] = PairedScores(
            scored.y_true[rows], a.scores[rows], b.scores[rows],
            a.predictions[rows], b.predictions[rows],
        )  # fmt: skip
    if not paired:
        return {}
    options = {
        "n_resamples": config.n_resamples,
        "confidence_level": config.confidence_level,
        "interval_method": config.interval_method,
        "seed": int(np.random.SeedSequence([seed, BOOTSTRAP_STREAM]).generate_state(1)[0]),
    }
    per_rotation, pooled = stratified_paired_bootstrap(list(paired.values()), **options)
    intervals = {**dict(zip(paired, per_rotation, strict=True)), "pooled": pooled}
    short_a, short_b = SHORT_NAMES.get(method_a, method_a), SHORT_NAMES.get(method_b, method_b)
    key = f"evaluate/difference/{method_a}_minus_{method_b}"
    metrics: dict[str, float] = {}
    for scope, by_metric in intervals.items():
        prefix = key if scope == "pooled" else f"{key}/{scope}"
        for metric, interval in by_metric.items():
            metrics[f"{prefix}/{metric}"] = interval.estimate
            metrics[f"{prefix}/{metric}_low"] = interval.low
            metrics[f"{prefix}/{metric}_high"] = interval.high
    return {
        "methods": [method_a, method_b],
        "definition": "paired bootstrap over test clips (the same resampled clips for both "
        "methods); pooled: mean over rotations of the per-rotation difference, clips resampled "
        f"within each rotation; {config.interval_method} {100 * config.confidence_level:g} % "
        f"interval, {config.n_resamples} resamples, seeded from params seed"
        + (
            f"; on a seeded subsample of at most {config.max_clips} test clips per rotation"
            if config.max_clips is not None
            else ""
        ),
        "intervals": {
            scope: {m: v.to_dict() for m, v in by_metric.items()}
            for scope, by_metric in intervals.items()
        },
        "lines": {
            scope: [format_difference(v, short_a, short_b) for v in by_metric.values()]
            for scope, by_metric in intervals.items()
        },
        "mlflow_metrics": metrics,
    }


def per_class_ap(report: Mapping[str, Any]) -> pd.DataFrame:
    """Per test class and rotation: AP of every method on all test clips (``report.per_class``),
    attention - uniform first; rotations have disjoint test classes, so the tables concatenate.

    Read from a :func:`tag_report` (it computed every class's AP on all test clips already): at
    AudioSet scale, computing them again cost ~10 s of evaluate.
    """
    tables = []
    for name, rotation in report["rotations"].items():
        methods = rotation["methods"]
        if not {METHOD_A, METHOD_B} <= set(methods):
            continue
        per_class = {m: methods[m]["per_class"] for m in METHODS if m in methods}
        first = per_class[METHOD_A]
        classes = list(first)
        tables.append(
            tabulate_per_class_ap(
                {
                    method: [np.nan if rows[c]["ap"] is None else rows[c]["ap"] for c in classes]
                    for method, rows in per_class.items()
                },
                classes,
                [first[c]["n_test_positives"] for c in classes],
                rotation["n_test_clips"],
                display_names={c: first[c]["text"] for c in classes},
                rotation=name,
            )
        )
    if not tables:
        raise ValueError("per-class AP needs temporal_attention and uniform scores")
    return pd.concat(tables, ignore_index=True)
