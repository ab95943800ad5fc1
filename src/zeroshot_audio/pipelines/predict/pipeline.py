"""``predict``: trained model + any audio + any label texts -> tags, scores, sound events, figures."""

from kedro.pipeline import Pipeline, node

from .nodes import plot_predictions, resolve_predict_labels, select_predict_model, tag_audio_files


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                select_predict_model,
                inputs=["trained_models", "params:predict"],
                outputs="predict_model",
                name="select_predict_model",
            ),
            node(
                resolve_predict_labels,
                inputs=["predict_model", "label_embeddings", "params:predict"],
                outputs="predict_labels",
                name="resolve_predict_labels",
            ),
            node(
                tag_audio_files,
                inputs=[
                    "predict_model",
                    "predict_labels",
                    "params:predict",
                    "params:featurize",
                    "params:device",
                ],
                outputs=[
                    "predictions",
                    "sound_events",
                    "segment_attention",
                    "prediction_audio",
                    "predict_report",
                ],
                name="tag_audio_files",
            ),
            node(
                plot_predictions,
                inputs=[
                    "predictions",
                    "sound_events",
                    "segment_attention",
                    "prediction_audio",
                    "params:predict",
                ],
                outputs="prediction_figures",
                name="plot_predictions",
            ),
        ]
    )
