"""``TorchModelDataset``: versioned save/load round trip, safety checks and preview."""

import pytest
import torch
from kedro.io import DatasetError
from kedro.io.core import Version

from zeroshot_audio.datasets.torch_model import TorchModelDataset
from zeroshot_audio.model.attention import ModelConfig, TemporalAttentionModel


def _checkpoints():
    torch.manual_seed(0)
    model = TemporalAttentionModel(ModelConfig(semantic_dim=8, joint_dim=16, gamma=0.5))
    entry = {**model.checkpoint(), "rotation": {"name": "rot0", "train": [0]}, "method": "uniform"}
    return model, {"rot0/uniform": {**entry, "threshold": 0.25, "train_classes": ["/m/a", "/m/b"]}}


def test_versioned_round_trip_rebuilds_the_same_model(tmp_path):
    model, data = _checkpoints()
    dataset = TorchModelDataset(filepath=str(tmp_path / "models.pt"), version=Version(None, None))
    dataset.save(data)
    assert dataset.exists()
    loaded = TorchModelDataset(
        filepath=str(tmp_path / "models.pt"), version=Version(None, None)
    ).load()
    entry = loaded["rot0/uniform"]
    assert entry["threshold"] == 0.25 and entry["train_classes"] == ["/m/a", "/m/b"]
    restored = TemporalAttentionModel.from_checkpoint(entry)
    x, mask = torch.randn(2, 4, 128), torch.ones(2, 4, dtype=torch.bool)
    labels = torch.randn(3, 8)
    with torch.no_grad():
        torch.testing.assert_close(restored(x, mask, labels).scores, model(x, mask, labels).scores)
    # versioned: a second save lands next to the first instead of overwriting it
    TorchModelDataset(filepath=str(tmp_path / "models.pt"), version=Version(None, None)).save(data)
    assert len(list((tmp_path / "models.pt").iterdir())) == 2


def test_save_refuses_entries_without_config_or_weights(tmp_path):
    dataset = TorchModelDataset(filepath=str(tmp_path / "models.pt"))
    with pytest.raises(DatasetError, match="'config' and 'state_dict'"):
        dataset.save({"rot0/uniform": {"threshold": 0.1}})


def test_load_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"m": {"config": {}, "state_dict": {}, "hook": print}}, path)
    with pytest.raises(DatasetError, match="not a checkpoint file"):
        TorchModelDataset(filepath=str(path)).load()


def test_preview_lists_each_checkpoint(tmp_path):
    _, data = _checkpoints()
    dataset = TorchModelDataset(filepath=str(tmp_path / "models.pt"))
    dataset.save(data)
    preview = dataset.preview()
    row = dict(zip(preview["columns"], preview["data"][0], strict=True))
    assert row["name"] == "rot0/uniform" and row["threshold"] == 0.25
    assert row["n_parameters"] == sum(
        t.numel() for t in data["rot0/uniform"]["state_dict"].values()
    )
    assert "filepath" in dataset._describe()
