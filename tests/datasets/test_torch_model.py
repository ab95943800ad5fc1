"""``TorchModelDataset``: typed checkpoints, versioned round trip, safety checks and preview."""

import dataclasses

import pytest
import torch
from kedro.io import DatasetError
from kedro.io.core import Version

from zeroshot_audio.contracts.checkpoint import Checkpoint
from zeroshot_audio.contracts.label_table import LabelEncoderSpec
from zeroshot_audio.contracts.segment_table import EmbedderSpec
from zeroshot_audio.datasets.torch_model import TorchModelDataset
from zeroshot_audio.model.attention import ModelConfig, TemporalAttentionModel


def _checkpoints():
    torch.manual_seed(0)
    model = TemporalAttentionModel(ModelConfig(semantic_dim=8, joint_dim=16, gamma=0.5))
    checkpoint = Checkpoint(
        model_config=model.config.to_dict(),
        state_dict={k: v.clone() for k, v in model.state_dict().items()},
        method="uniform",
        rotation={"name": "rot0", "train": [0], "validation": 1, "test": 2},
        threshold=0.25,
        train_classes=["/m/a", "/m/b"],
        validation_classes=["/m/c"],
        test_classes=["/m/d"],
        embedder=EmbedderSpec(weights_fingerprint="10086976"),
        label_encoder=LabelEncoderSpec(model_name_or_path="package:x", dimension=8),
        validation_micro_f1=0.4,
        best_value=0.5,  # (the NaN defaults would never compare equal)
    )
    return model, {"rot0/uniform": checkpoint}


def _dataset(tmp_path, versioned=True):
    version = Version(None, None) if versioned else None
    return TorchModelDataset(filepath=str(tmp_path / "models.pt"), version=version)


def test_versioned_round_trip_gives_the_same_checkpoints_and_model(tmp_path):
    model, data = _checkpoints()
    _dataset(tmp_path).save(data)
    loaded = _dataset(tmp_path).load()
    entry = loaded["rot0/uniform"]
    assert isinstance(entry, Checkpoint)
    assert dataclasses.replace(entry, state_dict={}) == dataclasses.replace(
        data["rot0/uniform"], state_dict={}
    )
    restored = TemporalAttentionModel.from_checkpoint(entry)
    x, mask = torch.randn(2, 4, 128), torch.ones(2, 4, dtype=torch.bool)
    labels = torch.randn(3, 8)
    with torch.no_grad():
        torch.testing.assert_close(restored(x, mask, labels).scores, model(x, mask, labels).scores)
    # on disk: plain {name: Checkpoint.to_dict()}, readable with weights_only=True
    (version,) = (tmp_path / "models.pt").iterdir()
    raw = torch.load(version / "models.pt", weights_only=True)
    assert raw["rot0/uniform"]["embedder"]["weights_fingerprint"] == "10086976"
    # versioned: a second save lands next to the first instead of overwriting it
    _dataset(tmp_path).save(data)
    assert len(list((tmp_path / "models.pt").iterdir())) == 2


def test_save_refuses_anything_but_checkpoints(tmp_path):
    with pytest.raises(DatasetError, match=r"trained_models\['rot0/uniform'\] is a dict"):
        _dataset(tmp_path, False).save({"rot0/uniform": {"threshold": 0.1}})


def test_load_refuses_pickled_code_old_formats_and_incomplete_entries(tmp_path):
    path = tmp_path / "models.pt"
    torch.save({"m": {"config": {}, "state_dict": {}, "hook": print}}, path)
    with pytest.raises(DatasetError, match="not a checkpoint file"):
        _dataset(tmp_path, False).load()
    torch.save({"rot0/uniform": {"config": {"semantic_dim": 8}, "state_dict": {}}}, path)
    with pytest.raises(DatasetError, match="untyped format of an older zeroshot-audio.*retrain"):
        _dataset(tmp_path, False).load()
    entry = _checkpoints()[1]["rot0/uniform"].to_dict()
    torch.save({"rot0/uniform": {**entry, "thresold": 0.3}}, path)
    with pytest.raises(DatasetError, match=r"'rot0/uniform'.*unknown checkpoint.*thresold"):
        _dataset(tmp_path, False).load()
    del entry["embedder"]
    torch.save({"rot0/uniform": entry}, path)
    with pytest.raises(DatasetError, match="incomplete"):
        _dataset(tmp_path, False).load()
    path.write_bytes(b"not a torch file")
    with pytest.raises(DatasetError, match="not a checkpoint file"):
        _dataset(tmp_path, False).load()


def test_preview_lists_each_checkpoint(tmp_path):
    _, data = _checkpoints()
    dataset = _dataset(tmp_path, False)
    dataset.save(data)
    preview = dataset.preview()
    row = dict(zip(preview["columns"], preview["data"][0], strict=True))
    assert row["name"] == "rot0/uniform" and row["threshold"] == 0.25
    assert row["rotation"] == "rot0" and row["config.gamma"] == 0.5
    assert row["n_parameters"] == sum(t.numel() for t in data["rot0/uniform"].state_dict.values())
    assert "filepath" in dataset._describe()
