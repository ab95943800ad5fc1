"""`embed_labels`: one semantic vector per AudioSet class, from its label text."""

from zeroshot_audio.pipelines.embed_labels.pipeline import create_pipeline

__all__ = ["create_pipeline"]
