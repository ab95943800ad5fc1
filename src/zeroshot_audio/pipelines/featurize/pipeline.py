"""featurize: clip_folds -> segment_embeddings (+ featurize_report)."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import featurize_clips


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                featurize_clips,
                inputs=[
                    "clip_folds",
                    "params:featurize",
                    "params:seed",
                    "params:device",
                    "audioset_classes",  # class index -> mid, to check the released labels
                ],
                outputs=["segment_embeddings", "featurize_report"],
                name="embed_clip_segments_with_vggish",
            ),
        ]
    )
