from kedro.pipeline import Pipeline, node

from .nodes import build_classes, parse_segment_files


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                parse_segment_files,
                inputs=["audioset_segment_files", "audioset_class_index", "params:ingest"],
                outputs=["audioset_clips", "ingest_report"],
                name="parse_audioset_segments",
            ),
            node(
                build_classes,
                inputs=["audioset_class_index", "audioset_ontology", "audioset_clips"],
                outputs="audioset_classes",
                name="build_audioset_classes",
            ),
        ]
    )
