"""``train`` stage: temporal attention, uniform and supervised models over the fold rotations."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
