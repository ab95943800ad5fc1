"""Tag metrics of a scored evaluation: per rotation and method, and mean ± std over rotations.

Reads :class:`~zeroshot_audio.experiment.evaluate.EvaluationScores` only (no model, no scoring).
MLflow keys follow ``evaluate/<name>``: ``evaluate/<method>/<metric>_mean`` (and ``_std``),
``evaluate/<rotation>/<method>/<metric>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from zeroshot_audio.experiment.evaluate import EvaluationScores
from zeroshot_audio.experiment.protocol import METHODS
from zeroshot_audio.model.metrics import ZERO_DIVISION, classification_metrics

SUMMARY_METRICS = ("micro_f1", "macro_f1", "map")


def mean_std(values: Sequence[float], ddof: int) -> dict[str, float]:
    """``{mean, std, n_rotations}`` of per-rotation numbers; std is 0 when undefined."""
    numbers = np.asarray(values, dtype=float)
    std = float(np.std(numbers, ddof=ddof)) if len(numbers) > ddof else 0.0
    return {"mean": float(numbers.mean()), "std": std, "n_rotations": len(numbers)}


def _method_metrics(y_true, result, classes, texts) -> dict[str, Any]:
    metrics = classification_metrics(y_true, result.predictions, result.scores)
    per_class = {
        mid: {
            "text": texts.get(mid, mid),
            "f1": float(metrics["per_class_f1"][j]),
            "ap": None
            if np.isnan(metrics["per_class_ap"][j])
            else float(metrics["per_class_ap"][j]),
            "n_test_positives": int(y_true[:, j].sum()),
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
            "zero_rule": "every test clip gets the k most frequent test-fold classes, counted on "
            "the fold's non-test clips; k = their mean label count (rounded)",
            "test_clips": "each rotation's test fold is split per clip (seeded); the held-out "
            "part is scored by every method, the rest trains the supervised upper bound",
        },
        "summary": summary,
        "rotations": {
            rotation: {
                "folds": scored.folds,
                "n_test_clips": len(scored.clips),
                "n_zero_rule_reference_clips": scored.n_reference_clips,
                "methods": per_rotation[rotation],
            }
            for rotation, scored in scores.rotations.items()
        },
        "mlflow_metrics": mlflow_metrics,
        "mlflow_tags": {"evaluate.threshold_rule": scores.threshold_rule},
    }
