"""Wiring of the `embed_labels` stage."""

from kedro.pipeline import Pipeline, node, pipeline

from zeroshot_audio.pipelines.embed_labels.nodes import embed_labels


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                embed_labels,
                inputs=["audioset_classes", "params:embed_labels", "params:device"],
                outputs=["label_embeddings", "embed_labels_report"],
                name="embed_class_labels",
            )
        ]
    )
