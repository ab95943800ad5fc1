"""Label texts and their semantic embeddings (no Kedro imports: usable from a notebook)."""

from zeroshot_audio.text.encoder import (
    BUNDLED_MINILM,
    POOLINGS,
    EncoderConfig,
    ModelNotAvailableError,
    ModelSource,
    TextEncoder,
    encode_texts,
    resolve_device,
    resolve_model_source,
)
from zeroshot_audio.text.labels import (
    TEXT_SOURCES,
    LabelEmbeddingConfig,
    build_label_texts,
    label_embedding_matrix,
)

__all__ = [
    "BUNDLED_MINILM",
    "POOLINGS",
    "TEXT_SOURCES",
    "EncoderConfig",
    "LabelEmbeddingConfig",
    "ModelNotAvailableError",
    "ModelSource",
    "TextEncoder",
    "build_label_texts",
    "encode_texts",
    "label_embedding_matrix",
    "resolve_device",
    "resolve_model_source",
]
