"""``evaluate`` stage: scores every saved model on the held-out test clips and reports."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
