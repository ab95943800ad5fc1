"""``contracts.checkpoint``: the typed checkpoint is strict in both directions."""

from __future__ import annotations

import pytest

from tests.datasets.test_torch_model import _checkpoints
from zeroshot_audio.contracts.checkpoint import Checkpoint


def test_round_trip_and_gamma_lives_in_the_model_config_once():
    checkpoint = _checkpoints()[1]["rot0/uniform"]
    assert (
        Checkpoint.from_dict(checkpoint.to_dict()).to_dict().keys() == checkpoint.to_dict().keys()
    )
    assert checkpoint.gamma == checkpoint.model_config["gamma"] == 0.5
    assert "gamma" not in checkpoint.to_dict()
    assert checkpoint.name == "rot0/uniform"


def test_unknown_missing_and_future_keys_are_errors_naming_them():
    values = _checkpoints()[1]["rot0/uniform"].to_dict()
    with pytest.raises(ValueError, match=r"unknown checkpoint parameter\(s\) \['gama'\]"):
        Checkpoint.from_dict({**values, "gama": 0.5})
    with pytest.raises(ValueError, match=r"unknown embedder spec parameter\(s\) \['widht'\]"):
        Checkpoint.from_dict({**values, "embedder": {**values["embedder"], "widht": 3}})
    with pytest.raises(ValueError, match="incomplete"):
        Checkpoint.from_dict({k: v for k, v in values.items() if k != "threshold"})
    with pytest.raises(ValueError, match="format_version 2"):
        Checkpoint.from_dict({**values, "format_version": 2})
