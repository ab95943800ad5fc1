"""The fit loop's bookkeeping: input statistics, early stopping, reproducibility, refusals."""

import numpy as np
import pytest
import torch

from zeroshot_audio.model.attention import ModelConfig, TemporalAttentionModel
from zeroshot_audio.model.training import (
    FitConfig,
    cpu_threads,
    fit,
    make_clip_set,
    segment_statistics,
    segments_to_device,
)


def _clip_set(n=40, n_valid=4, seed=0, scale=5.0):
    rng = np.random.default_rng(seed)
    segments = (scale * rng.normal(size=(n, 6, 128)) + 2.0).astype(np.float32)
    segments[:, n_valid:] = 1e6  # padding garbage
    valid = np.full(n, n_valid)
    targets = rng.random((n, 5)) < 0.3
    targets[:, 0] |= ~targets.any(axis=1)
    seg, nv = segments_to_device(segments, valid, torch.device("cpu"))
    labels = rng.normal(size=(5, 8)).astype(np.float32)
    return make_clip_set(seg, nv, np.arange(n), targets, labels), segments[:, :n_valid]


def test_segment_statistics_use_valid_segments_only():
    clips, valid = _clip_set()
    mean, std = segment_statistics(clips, chunk=7)  # several chunks
    flat = valid.reshape(-1, 128).astype(np.float64)
    np.testing.assert_allclose(mean.numpy(), flat.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(std.numpy(), flat.std(axis=0), rtol=1e-4)


def test_fit_standardises_inputs_keeps_best_epoch_and_is_reproducible():
    train, _ = _clip_set(seed=0)
    validation, _ = _clip_set(seed=1)
    config = FitConfig(epochs=6, batch_size=8, patience=2, show_progress=False)
    runs = []
    with cpu_threads(1):
        for _ in range(2):
            torch.manual_seed(0)
            model = TemporalAttentionModel(ModelConfig(semantic_dim=8, joint_dim=16))
            result = fit(model, train, validation, config, seed=3)
            runs.append((model, result))
    (model, result), (_, again) = runs
    assert model.segment_mean.mean().item() == pytest.approx(2.0, abs=0.2)
    assert model.segment_std.mean().item() == pytest.approx(5.0, rel=0.1)
    values = [h["val_map"] for h in result.history]
    assert result.best_epoch == 1 + int(np.argmax(values)) and result.best_value == max(values)
    assert result.epochs_run == len(values) <= 6
    assert result.stopped_early == (result.epochs_run < 6)
    assert [h["train_loss"] for h in again.history] == [h["train_loss"] for h in result.history]


def test_empty_split_and_bad_settings_are_refused():
    train, _ = _clip_set()
    empty = make_clip_set(
        train.segments,
        train.n_valid,
        np.array([], dtype=np.int64),
        np.zeros((0, 5), bool),
        train.label_embeddings.numpy(),
    )
    model = TemporalAttentionModel(ModelConfig(semantic_dim=8, joint_dim=16))
    with pytest.raises(ValueError, match="empty split"):
        fit(model, train, empty, FitConfig(show_progress=False), seed=0)
    with pytest.raises(ValueError, match="optimizer"):
        FitConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match=r"unknown train.fit parameter\(s\) \['learning_rte'\]"):
        FitConfig.from_dict({"epochs": 3, "learning_rte": 0.1})


def test_cpu_threads_is_scoped():
    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
