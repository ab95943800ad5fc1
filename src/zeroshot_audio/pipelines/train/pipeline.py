"""``train``: fold-rotation training of the temporal-attention model and its baselines."""

from kedro.pipeline import Pipeline, node

from .nodes import assign_clip_roles, train_models


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                assign_clip_roles,
                inputs=[
                    "segment_embeddings",
                    "clip_folds",
                    "params:folds",
                    "params:seed",
                    "params:train",
                ],
                outputs="model_splits",
                name="assign_clip_roles",
            ),
            node(
                train_models,
                inputs=[
                    "segment_embeddings",
                    "label_embeddings",
                    "class_folds",
                    "clip_folds",
                    "model_splits",
                    "params:folds",
                    "params:train",
                    "params:seed",
                    "params:device",
                ],
                outputs=["trained_models", "training_history", "training_report"],
                name="train_models",
            ),
        ]
    )
