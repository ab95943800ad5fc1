"""zeroshot-audio: multi-label zero-shot audio classification with temporal attention."""

__version__ = "0.1.0"
