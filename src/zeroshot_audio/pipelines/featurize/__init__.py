"""``featurize``: clip_folds + audio files -> VGGish segment embeddings (segment_embeddings)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
