"""Nodes of the ``evaluate`` stage: score the held-out test clips with every saved model and the
zero-rule, then turn the scores into the report, the paper-style table and figures.

Only saved artefacts and the stage inputs are read, so ``kedro run --pipeline=evaluate`` re-scores
the latest trained models without retraining.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from matplotlib.figure import Figure

from zeroshot_audio.contracts.segment_table import to_arrays
from zeroshot_audio.device import resolve_device
from zeroshot_audio.model.attention import TemporalAttentionModel
from zeroshot_audio.model.metrics import (
    THRESHOLD_RULES,
    ZERO_DIVISION,
    apply_threshold_rule,
    classification_metrics,
    zero_rule,
)
from zeroshot_audio.model.plots import attention_heatmaps, f1_bar_chart
from zeroshot_audio.model.protocol import (
    METHOD_TITLES,
    METHODS,
    attach_rows,
    label_matrix,
    label_texts,
    multi_hot,
    segment_index,
    split_clips,
)
from zeroshot_audio.model.training import (
    ClipSet,
    cpu_threads,
    make_clip_set,
    score_clips,
    segments_to_device,
)
from zeroshot_audio.pipelines.evaluate.localisation import localisation_table

logger = logging.getLogger(__name__)

SUMMARY_METRICS = ("micro_f1", "macro_f1", "map")


def _check_label_encoder(checkpoints: dict[str, dict[str, Any]], encoder: dict[str, Any]) -> None:
    """Refuse to score with label embeddings from another encoder than the model was trained on."""
    current = (encoder or {}).get("model_name_or_path")
    for key, checkpoint in checkpoints.items():
        trained = (checkpoint.get("label_encoder") or {}).get("model_name_or_path")
        if current and trained and current != trained:
            raise ValueError(
                f"model {key!r} was trained on label embeddings of {trained!r}, but "
                f"label_embeddings now come from {current!r}; re-run `train` (or embed_labels "
                "with the training encoder) before evaluating"
            )


def score_test_clips(
    trained_models: dict[str, dict[str, Any]],
    model_splits: pd.DataFrame,
    segment_embeddings: pa.Table,
    label_embeddings: pd.DataFrame,
    clip_folds: pd.DataFrame,
    evaluate_params: dict[str, Any],
    device: str,
    label_encoder: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Scores and thresholded predictions of every method on every rotation's test clips.

    Returns the in-memory scores (for metrics and figures) and a per-clip prediction table.
    """
    with cpu_threads(evaluate_params.get("cpu_threads")):
        if not trained_models:
            raise ValueError("trained_models is empty: run `kedro run --pipeline=train` first")
        _check_label_encoder(trained_models, label_encoder)
        threshold = evaluate_params["threshold"]
        rule = threshold["rule"]
        if rule not in THRESHOLD_RULES:
            raise ValueError(
                f"evaluate.threshold.rule must be one of {THRESHOLD_RULES}, got {rule!r}"
            )
        heatmap = evaluate_params.get("heatmaps", {})
        batch_size = int(evaluate_params.get("batch_size", 4096))

        arrays = to_arrays(segment_embeddings)
        clips, _ = attach_rows(clip_folds, segment_index(arrays.ytid, arrays.start_s))
        torch_device = resolve_device(device)
        segments, n_valid = segments_to_device(
            arrays.embeddings, arrays.n_valid_segments, torch_device
        )

        by_rotation: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        for key, checkpoint in trained_models.items():
            by_rotation[checkpoint["rotation"]["name"]][checkpoint["method"]] = checkpoint
        heatmap_rotation = heatmap.get("rotation") or next(iter(by_rotation))
        heatmap_method = heatmap.get("method", "temporal_attention")

        rotations: dict[str, Any] = {}
        prediction_tables = []
        heatmap_clips: list[dict[str, Any]] = []
        for rotation, checkpoints in by_rotation.items():
            classes = _one(checkpoints, "test_classes", rotation)
            test_clips = split_clips(clips, model_splits, rotation, "test")
            if test_clips.empty:
                raise ValueError(
                    f"rotation {rotation!r} has no test clips in model_splits (or none with segment "
                    "embeddings); re-run the train pipeline"
                )
            y_true = multi_hot(test_clips["labels"], classes)
            embeddings = label_matrix(label_embeddings, classes)
            test_set = make_clip_set(
                segments, n_valid, test_clips["row"].to_numpy(), y_true, embeddings
            )
            methods: dict[str, dict[str, Any]] = {}

            reference = pd.concat(
                [
                    split_clips(clips, model_splits, rotation, role)
                    for role in ("supervised_train", "supervised_validation")
                ]
            )
            zr_scores, zr_predictions, k = zero_rule(
                multi_hot(reference["labels"], classes), len(test_clips)
            )
            methods["zero_rule"] = {"scores": zr_scores, "predictions": zr_predictions, "k": k}

            for method, checkpoint in checkpoints.items():
                model = TemporalAttentionModel.from_checkpoint(checkpoint).to(torch_device)
                if model.config.semantic_dim != embeddings.shape[1]:
                    raise ValueError(
                        f"model {rotation}/{method} expects {model.config.semantic_dim}-d label "
                        f"embeddings, label_embeddings has {embeddings.shape[1]}-d; re-run train"
                    )
                scores = score_clips(model, test_set, batch_size=batch_size)["scores"]
                value = checkpoint["threshold"] if rule == "tuned" else float(threshold["fixed"])
                predictions = apply_threshold_rule(
                    scores, rule, threshold=value, k=int(threshold["top_k"])
                )
                methods[method] = {
                    "scores": scores,
                    "predictions": predictions,
                    "threshold": None if rule == "top_k" else float(value),
                    "k": int(threshold["top_k"]) if rule == "top_k" else None,
                    "gamma": float(checkpoint["gamma"]),
                }
                if rotation == heatmap_rotation and method == heatmap_method:
                    heatmap_clips = _heatmap_clips(
                        model,
                        test_set,
                        test_clips,
                        y_true,
                        scores,
                        classes,
                        label_embeddings,
                        int(heatmap.get("n_clips", 4)),
                        rotation,
                        method,
                    )

            rotations[rotation] = {
                "rotation": _one(checkpoints, "rotation", rotation),
                "classes": classes,
                "y_true": y_true,
                "n_test_clips": len(test_clips),
                "n_reference_clips": len(reference),
                "methods": methods,
            }
            for method, result in methods.items():
                predicted = [
                    [classes[j] for j in np.flatnonzero(row)] for row in result["predictions"]
                ]
                prediction_tables.append(
                    pd.DataFrame(
                        {
                            "rotation": rotation,
                            "method": method,
                            "ytid": test_clips["ytid"].to_numpy(),
                            "start_s": test_clips["start_s"].to_numpy(),
                            "labels": [list(v) for v in test_clips["labels"]],
                            "predicted": predicted,
                        }
                    )
                )
            logger.info(
                "%s: scored %d test clips x %d classes with %s",
                rotation,
                len(test_clips),
                len(classes),
                ", ".join(methods),
            )
        test_scores = {
            "threshold_rule": rule,
            "rotations": rotations,
            "heatmap_clips": heatmap_clips,
        }
        return test_scores, pd.concat(prediction_tables, ignore_index=True)


def _one(checkpoints: dict[str, dict[str, Any]], field: str, rotation: str) -> Any:
    values = [c[field] for c in checkpoints.values()]
    if any(v != values[0] for v in values):
        raise ValueError(f"rotation {rotation!r}: its checkpoints disagree on {field!r}")
    return values[0]


def _heatmap_clips(
    model: TemporalAttentionModel,
    test_set: ClipSet,
    test_clips: pd.DataFrame,
    y_true: np.ndarray,
    scores: np.ndarray,
    classes: list[str],
    label_embeddings: pd.DataFrame,
    n_clips: int,
    rotation: str,
    method: str,
) -> list[dict[str, Any]]:
    """Attention of a few test clips, the most-labelled first (their attention is the telling one)."""
    order = np.lexsort((test_clips["ytid"].to_numpy(), -y_true.sum(axis=1)))[:n_clips]
    subset = make_clip_set(
        test_set.segments,
        test_set.n_valid,
        test_set.rows.cpu().numpy()[order],
        y_true[order],
        test_set.label_embeddings.cpu().numpy(),
    )
    attention = score_clips(model, subset, with_attention=True)["attention"]
    texts = label_texts(label_embeddings)
    names = [texts.get(mid, mid) for mid in classes]
    return [
        {
            "title": f"{rotation} {method}: {test_clips['ytid'].iloc[i]} "
            f"@ {test_clips['start_s'].iloc[i]:g} s",
            "attention": attention[n],
            "scores": scores[i],
            "labels": y_true[i],
            "class_names": names,
            "n_valid": int(subset.n_valid[subset.rows[n]]),
        }
        for n, i in enumerate(order)
    ]


def summarise_evaluation(
    test_scores: dict[str, Any],
    label_embeddings: pd.DataFrame,
    evaluate_params: dict[str, Any],
    localisation_report: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], str]:
    """Metrics per rotation and method, mean ± std over rotations; the report and the table.

    The zero-shot localisation scores (``localisation_report``) are nested in the report and their
    table appended, so one document holds every result of the run.
    """
    ddof = int(evaluate_params.get("std_ddof", 1))
    texts = label_texts(label_embeddings)
    rule = test_scores["threshold_rule"]
    per_rotation: dict[str, dict[str, dict[str, Any]]] = {}
    for rotation, scored in test_scores["rotations"].items():
        per_rotation[rotation] = {}
        for method, result in scored["methods"].items():
            metrics = classification_metrics(
                scored["y_true"], result["predictions"], result["scores"]
            )
            per_class = {
                mid: {
                    "text": texts.get(mid, mid),
                    "f1": float(metrics["per_class_f1"][j]),
                    "ap": None
                    if np.isnan(metrics["per_class_ap"][j])
                    else float(metrics["per_class_ap"][j]),
                    "n_test_positives": int(scored["y_true"][:, j].sum()),
                }
                for j, mid in enumerate(scored["classes"])
            }
            per_rotation[rotation][method] = {
                **{m: metrics[m] for m in SUMMARY_METRICS},
                "n_clips": metrics["n_clips"],
                "n_classes": metrics["n_classes"],
                "n_classes_present": metrics["n_classes_present"],
                "mean_predicted_per_clip": metrics["mean_predicted_per_clip"],
                "threshold": result.get("threshold"),
                "k": result.get("k"),
                "gamma": result.get("gamma"),
                "per_class": per_class,
            }

    methods = [m for m in METHODS if any(m in r for r in per_rotation.values())]
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for method in methods:
        summary[method] = {}
        for metric in SUMMARY_METRICS:
            values = np.array([r[method][metric] for r in per_rotation.values() if method in r])
            std = float(np.std(values, ddof=ddof)) if len(values) > ddof else 0.0
            summary[method][metric] = {
                "mean": float(values.mean()),
                "std": std,
                "n_rotations": len(values),
            }

    mlflow_metrics: dict[str, float] = {}
    for method, metrics in summary.items():
        for metric, stats in metrics.items():
            mlflow_metrics[f"eval/{method}/{metric}_mean"] = stats["mean"]
            mlflow_metrics[f"eval/{method}/{metric}_std"] = stats["std"]
    for rotation, results in per_rotation.items():
        for method, result in results.items():
            for metric in SUMMARY_METRICS:
                mlflow_metrics[f"eval/{rotation}/{method}/{metric}"] = result[metric]

    report = {
        "threshold_rule": rule,
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
                "folds": scored["rotation"],
                "n_test_clips": scored["n_test_clips"],
                "n_zero_rule_reference_clips": scored["n_reference_clips"],
                "methods": per_rotation[rotation],
            }
            for rotation, scored in test_scores["rotations"].items()
        },
        "mlflow_metrics": mlflow_metrics,
        "mlflow_tags": {"eval.threshold_rule": rule},
    }
    table = evaluation_table(report)
    if localisation_report is not None:
        # its metrics and tags already reach MLflow from localisation_report itself
        report["localisation"] = {
            k: v for k, v in localisation_report.items() if not k.startswith("mlflow_")
        }
        table += "\n" + localisation_table(localisation_report)
    return report, table


def evaluation_table(report: dict[str, Any]) -> str:
    """Markdown in the paper's layout: methods x metrics, mean ± std over rotations (in %)."""
    summary = report["summary"]
    rotations = report["rotations"]
    gammas = {
        method: sorted(
            {r["methods"][method]["gamma"] for r in rotations.values() if method in r["methods"]}
        )
        for method in summary
    }
    lines = [
        f"## Multi-label zero-shot audio classification: test folds, mean ± std over "
        f"{len(rotations)} rotations (%)",
        "",
        "| Method | micro-F1 | macro-F1 | mAP |",
        "| --- | ---: | ---: | ---: |",
    ]
    for method, metrics in summary.items():
        title = METHOD_TITLES[method]
        if gammas[method] and gammas[method][0] is not None:
            title += " (γ = " + ", ".join(f"{g:g}" for g in gammas[method]) + ")"
        cells = [
            f"{100 * metrics[m]['mean']:.1f} ± {100 * metrics[m]['std']:.1f}"
            for m in SUMMARY_METRICS
        ]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Threshold rule: `{report['threshold_rule']}`; F1 with zero_division="
        f"{report['zero_division']:g}; macro-F1 and mAP over test classes present in the test "
        f"clips; {report['definitions']['std']}.",
        "",
        "### Per rotation (micro-F1 / macro-F1 / mAP, %)",
        "",
        "| Method | "
        + " | ".join(
            f"{name} (test fold {r['folds']['test']}, {r['n_test_clips']} clips)"
            for name, r in rotations.items()
        )
        + " |",
        "| --- |" + " ---: |" * len(rotations),
    ]
    for method in summary:
        cells = []
        for r in rotations.values():
            result = r["methods"].get(method)
            cells.append(
                "–"
                if result is None
                else " / ".join(f"{100 * result[m]:.1f}" for m in SUMMARY_METRICS)
            )
        lines.append(f"| {METHOD_TITLES[method]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_f1_chart(evaluation_report: dict[str, Any]) -> Figure:
    per_rotation = {
        name: rotation["methods"] for name, rotation in evaluation_report["rotations"].items()
    }
    return f1_bar_chart(evaluation_report["summary"], per_rotation, METHOD_TITLES)


def plot_attention_heatmaps(test_scores: dict[str, Any], evaluate_params: dict[str, Any]) -> Figure:
    max_classes = int(evaluate_params.get("heatmaps", {}).get("max_classes", 6))
    return attention_heatmaps(test_scores["heatmap_clips"], max_classes=max_classes)
