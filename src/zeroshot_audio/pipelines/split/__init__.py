"""``split``: class selection and the greedy class-disjoint fold split."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
