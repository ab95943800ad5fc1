"""``predict``: zero-shot tags and sound-event time stamps for any audio and any label text."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
