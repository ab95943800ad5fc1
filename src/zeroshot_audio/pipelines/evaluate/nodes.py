"""Nodes of the ``evaluate`` stage: doorways to ``zeroshot_audio.experiment`` and ``report``.

``score_test_clips`` scores every held-out test clip once per saved model (scores and attention);
the other nodes turn those scores into the report, the paper-style table and the figures without
running a model again. Only saved artefacts and the stage inputs are read, so
``kedro run --pipeline=evaluate`` re-scores the latest trained models without retraining.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
from matplotlib.figure import Figure

from zeroshot_audio.contracts.checkpoint import Checkpoint
from zeroshot_audio.experiment.clips import ClipTable
from zeroshot_audio.experiment.evaluate import (
    EvaluateConfig,
    EvaluationScores,
    heatmap_clips,
    prediction_table,
    score_rotations,
)
from zeroshot_audio.experiment.metrics import paired_differences, per_class_ap, tag_report
from zeroshot_audio.experiment.protocol import METHOD_TITLES, label_texts
from zeroshot_audio.model.training import cpu_threads
from zeroshot_audio.report.figures import attention_heatmaps, f1_bar_chart
from zeroshot_audio.report.per_class import per_class_ap_figure
from zeroshot_audio.report.tables import evaluation_table, localisation_table


def score_test_clips(
    trained_models: dict[str, Checkpoint],
    model_splits: pd.DataFrame,
    segment_embeddings: pa.Table,
    label_embeddings: pd.DataFrame,
    clip_folds: pd.DataFrame,
    strong_labels: pd.DataFrame,
    evaluate_params: dict[str, Any],
    device: str,
) -> EvaluationScores:
    """Scores and attention of every method on every rotation's test clips (one pass per model)."""
    config = EvaluateConfig.from_dict(evaluate_params)
    with cpu_threads(config.cpu_threads):
        table = ClipTable.load(segment_embeddings, clip_folds, device)
        return score_rotations(
            table, trained_models, model_splits, label_embeddings, config, strong_labels
        )


def tabulate_test_predictions(test_scores: EvaluationScores) -> pd.DataFrame:
    """The per-clip prediction table, in a node of its own: by the time it runs, the segment
    table and the other inputs of the scoring node are released (at AudioSet scale that is what
    keeps evaluate's peak memory under 8 GiB)."""
    return prediction_table(test_scores)


def summarise_evaluation(
    test_scores: EvaluationScores,
    label_embeddings: pd.DataFrame,
    evaluate_params: dict[str, Any],
    seed: int,
    localisation_report: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], str]:
    """Metrics per rotation and method, mean ± std over rotations, the paired bootstrap of
    attention - uniform; the report and the table.

    The zero-shot localisation scores are nested in the report and their table appended, so one
    document holds every result of the run (their MLflow keys reach MLflow from
    ``localisation_report`` itself).
    """
    config = EvaluateConfig.from_dict(evaluate_params)
    report = tag_report(test_scores, label_texts(label_embeddings), config.std_ddof)
    differences = paired_differences(test_scores, config.bootstrap, int(seed))
    if differences:
        report["mlflow_metrics"].update(differences.pop("mlflow_metrics"))
        report["paired_differences"] = differences
    table = evaluation_table(report)
    if localisation_report is not None:
        report["localisation"] = {
            k: v for k, v in localisation_report.items() if not k.startswith("mlflow_")
        }
        table += "\n" + localisation_table(localisation_report)
    return report, table


def per_class_ap_outputs(
    evaluation_report: dict[str, Any], evaluate_params: dict[str, Any]
) -> tuple[pd.DataFrame, Figure]:
    """AP of every method per test class and rotation (all test clips, as the report holds
    them), and the figure of the classes where attention helps and hurts most against uniform."""
    config = EvaluateConfig.from_dict(evaluate_params)
    table = per_class_ap(evaluation_report)
    return table, per_class_ap_figure(table, k=config.per_class_figure_k)


def plot_f1_chart(evaluation_report: dict[str, Any]) -> Figure:
    per_rotation = {
        name: rotation["methods"] for name, rotation in evaluation_report["rotations"].items()
    }
    return f1_bar_chart(evaluation_report["summary"], per_rotation, METHOD_TITLES)


def plot_attention_heatmaps(
    test_scores: EvaluationScores, label_embeddings: pd.DataFrame, evaluate_params: dict[str, Any]
) -> Figure:
    config = EvaluateConfig.from_dict(evaluate_params).heatmaps
    clips = heatmap_clips(test_scores, label_texts(label_embeddings), config)
    return attention_heatmaps(clips, max_classes=config.max_classes)
