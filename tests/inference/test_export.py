"""The portable checkpoint: safetensors + JSON, identical on reload, no pickle, strict."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import fields

import pytest
import torch

from tests.inference.checkpoints import make_checkpoint
from zeroshot_audio.contracts.checkpoint import Checkpoint
from zeroshot_audio.inference import export
from zeroshot_audio.inference.export import (
    export_checkpoint,
    load_exported,
    resolve_model_source,
    select_checkpoint,
)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def test_round_trip_gives_identical_tensors_and_fields(checkpoint, exported):
    loaded = load_exported(exported)
    assert set(loaded.state_dict) == set(checkpoint.state_dict)
    for name, tensor in checkpoint.state_dict.items():
        assert loaded.state_dict[name].dtype == tensor.dtype
        assert torch.equal(loaded.state_dict[name], tensor), name
    for f in fields(Checkpoint):
        if f.name != "state_dict":
            assert _same(getattr(loaded, f.name), getattr(checkpoint, f.name)), f.name


def test_round_trip_keeps_nan_and_a_float16_tensor(tmp_path):
    base = make_checkpoint()
    state = {k: v.to(torch.float16) if "acoustic" in k else v for k, v in base.state_dict.items()}
    fields_ = {**base.to_dict(), "state_dict": state, "validation_micro_f1": float("nan")}
    original = Checkpoint.from_dict(fields_)
    loaded = load_exported(export_checkpoint(original, tmp_path / "m"))
    assert math.isnan(loaded.validation_micro_f1)
    assert loaded.state_dict["acoustic.0.weight"].dtype == torch.float16


def test_the_export_folder_holds_no_pickle_and_loading_never_unpickles(exported, monkeypatch):
    assert sorted(p.name for p in exported.iterdir()) == ["config.json", "model.safetensors"]
    raw = (exported / "model.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])  # a safetensors file: u64 length + JSON header
    assert header["__metadata__"]["format"] == export.EXPORT_FORMAT
    assert {k for k in header if k != "__metadata__"} == set(make_checkpoint().state_dict)
    # Nothing but the header and the raw tensor bytes it describes: no room for a pickle.
    data_end = max(entry["data_offsets"][1] for k, entry in header.items() if k != "__metadata__")
    assert len(raw) == 8 + header_len + data_end
    config = json.loads((exported / "config.json").read_text())  # plain JSON
    assert set(config) == set(export.CONFIG_KEYS)
    assert not any(p.read_bytes().startswith(b"\x80") for p in exported.iterdir())  # pickle PROTO

    def no_unpickling(*args, **kwargs):
        raise AssertionError("torch.load / pickle must not be used to load an export")

    monkeypatch.setattr(torch, "load", no_unpickling)
    monkeypatch.setattr("pickle.load", no_unpickling)
    monkeypatch.setattr("pickle.loads", no_unpickling)
    assert load_exported(exported).method == "temporal_attention"


def _tampered(exported, tmp_path, edit) -> object:
    copy = tmp_path / "tampered"
    shutil.copytree(exported, copy)
    config = json.loads((copy / "config.json").read_text())
    edit(config)
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def test_an_unknown_key_in_config_json_is_refused_naming_it(exported, tmp_path):
    top = _tampered(exported, tmp_path / "a", lambda c: c.update(run_me="os.system"))
    with pytest.raises(ValueError, match="run_me"):
        load_exported(top)
    inner = _tampered(exported, tmp_path / "b", lambda c: c["checkpoint"].update(tua=0.5))
    with pytest.raises(ValueError, match="tua"):
        load_exported(inner)


def test_replaced_weights_are_refused(exported, tmp_path):
    other = export_checkpoint(make_checkpoint(torch_seed=1), tmp_path / "other")
    mixed = tmp_path / "mixed"
    shutil.copytree(exported, mixed)
    shutil.copy(other / "model.safetensors", mixed / "model.safetensors")
    with pytest.raises(ValueError, match="sha256"):
        load_exported(mixed)


def test_contradicting_provenance_is_refused(exported, tmp_path):
    def wrong_width(config):
        config["checkpoint"]["label_encoder"]["dimension"] = 768

    with pytest.raises(ValueError, match="768-d"):
        load_exported(_tampered(exported, tmp_path, wrong_width))


def test_export_refuses_to_overwrite(checkpoint, exported):
    with pytest.raises(FileExistsError):
        export_checkpoint(checkpoint, exported)


def test_resolve_model_source_reads_a_folder_and_names_a_bad_source(exported, tmp_path):
    assert resolve_model_source(str(exported)).name == "rot0/temporal_attention"
    assert resolve_model_source(exported.parent).name == "rot0/temporal_attention"  # found below
    with pytest.raises(FileNotFoundError, match="not an MLflow URI"):
        resolve_model_source(tmp_path / "nowhere")


def test_select_checkpoint_takes_the_best_validation_rotation_or_a_name():
    base = make_checkpoint().to_dict()  # the stored form, as trained_models holds it
    rot1 = {"name": "rot1", "train": [1], "validation": 2, "test": 0}
    trained = {
        "rot0/temporal_attention": {**base, "validation_micro_f1": 0.2},
        "rot1/temporal_attention": {**base, "rotation": rot1, "validation_micro_f1": 0.4},
        "rot1/uniform": {**base, "method": "uniform", "validation_micro_f1": 0.9},
    }
    assert select_checkpoint(trained).name == "rot1/temporal_attention"
    assert select_checkpoint(trained, "rot1/uniform").method == "uniform"
    with pytest.raises(ValueError, match="rot9"):
        select_checkpoint(trained, "rot9/temporal_attention")
