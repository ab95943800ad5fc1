"""The planted model, real audio and encoders of tests/inference/planted.py, for this folder."""

from tests.inference.planted import (  # noqa: F401  (fixtures)
    audio_dir,
    embedder,
    featurize_config,
    planted,
    predictor,
    sounds,
    text_encoder,
)
