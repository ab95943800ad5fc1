"""Fixtures of the inference tests: the planted model, real audio and encoders of
tests/inference/planted.py, and one small real checkpoint with its portable export."""

from __future__ import annotations

import pytest

from tests.inference.checkpoints import make_checkpoint
from tests.inference.planted import (  # noqa: F401  (fixtures)
    audio_dir,
    embedder,
    featurize_config,
    planted,
    predictor,
    sounds,
    text_encoder,
)
from zeroshot_audio.inference.export import export_checkpoint


@pytest.fixture(scope="session")
def checkpoint():
    return make_checkpoint()


@pytest.fixture(scope="session")
def exported(checkpoint, tmp_path_factory):
    return export_checkpoint(checkpoint, tmp_path_factory.mktemp("export") / "model")
