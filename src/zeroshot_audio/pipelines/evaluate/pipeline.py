"""``evaluate``: F1/mAP (with paired intervals), per-class AP and localisation of every method
on every test-fold clip, table, figures, MLflow. Every test clip is scored once per model
(``score_test_clips``)."""

from kedro.pipeline import Pipeline, node

from .localisation import score_localisation
from .nodes import (
    per_class_ap_outputs,
    plot_attention_heatmaps,
    plot_f1_chart,
    score_test_clips,
    summarise_evaluation,
    tabulate_test_predictions,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                score_test_clips,
                inputs=[
                    "trained_models",
                    "model_splits",
                    "segment_embeddings",
                    "label_embeddings",
                    "clip_folds",
                    "strong_labels",
                    "params:evaluate",
                    "params:device",
                ],
                outputs="test_scores",
                name="score_test_clips",
            ),
            node(
                tabulate_test_predictions,
                inputs="test_scores",
                outputs="test_predictions",
                name="tabulate_test_predictions",
            ),
            node(
                score_localisation,
                inputs=[
                    "test_scores",
                    "strong_labels",
                    "params:evaluate",
                    "params:predict.localisation",
                ],
                outputs="localisation_report",
                name="score_localisation",
            ),
            node(
                summarise_evaluation,
                inputs=[
                    "test_scores",
                    "label_embeddings",
                    "params:evaluate",
                    "params:seed",
                    "localisation_report",
                ],
                outputs=["evaluation_report", "evaluation_table"],
                name="summarise_evaluation",
            ),
            node(
                per_class_ap_outputs,
                inputs=["evaluation_report", "params:evaluate"],
                outputs=["per_class_ap", "per_class_ap_figure"],
                name="per_class_ap",
            ),
            node(
                plot_f1_chart,
                inputs="evaluation_report",
                outputs="evaluation_f1_chart",
                name="plot_f1_chart",
            ),
            node(
                plot_attention_heatmaps,
                inputs=["test_scores", "label_embeddings", "params:evaluate"],
                outputs="attention_heatmaps",
                name="plot_attention_heatmaps",
            ),
        ]
    )
