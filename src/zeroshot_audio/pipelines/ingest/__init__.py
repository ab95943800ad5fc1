"""``ingest``: AudioSet metadata as published -> validated clip and class tables."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
