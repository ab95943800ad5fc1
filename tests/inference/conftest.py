"""Session fixtures of the sharing tests: one small real checkpoint and its export."""

from __future__ import annotations

import pytest

from tests.inference.checkpoints import make_checkpoint
from zeroshot_audio.inference.export import export_checkpoint


@pytest.fixture(scope="session")
def checkpoint():
    return make_checkpoint()


@pytest.fixture(scope="session")
def exported(checkpoint, tmp_path_factory):
    return export_checkpoint(checkpoint, tmp_path_factory.mktemp("export") / "model")
