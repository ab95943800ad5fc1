from kedro.pipeline import Pipeline, node

from .nodes import split_folds


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                split_folds,
                inputs=[
                    "audioset_clips",
                    "audioset_classes",
                    "params:split",
                    "params:folds",
                    "params:seed",
                ],
                outputs=["class_folds", "clip_folds", "split_report"],
                name="greedy_class_disjoint_split",
            )
        ]
    )
