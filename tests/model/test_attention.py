"""The model's arithmetic, masking, class-set independence, quantised input and checkpoints."""

import io

import pytest
import torch

from zeroshot_audio.contracts.checkpoint import Checkpoint
from zeroshot_audio.contracts.label_table import LabelEncoderSpec
from zeroshot_audio.contracts.segment_table import EmbedderSpec
from zeroshot_audio.model.attention import ModelConfig, TemporalAttentionModel, dequantize


@pytest.fixture
def model():
    torch.manual_seed(0)
    return TemporalAttentionModel(ModelConfig(semantic_dim=12, joint_dim=16, gamma=0.3)).eval()


def _inputs(n_valid=(3, 6), n_segments=6, n_classes=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(n_valid), n_segments, 128, generator=g)
    mask = torch.arange(n_segments)[None, :] < torch.tensor(n_valid)[:, None]
    labels = torch.randn(n_classes, 12, generator=g)
    return x, mask, labels


def test_scores_follow_the_paper_formulas(model):
    x, mask, labels = _inputs(n_valid=(4, 6))
    with torch.no_grad():
        out = model(x, mask, labels)
        g = model.embed_segments(x) @ model.embed_labels(labels).T  # [B, T, C]
    for b, n in enumerate((4, 6)):
        gv = g[b, :n]  # valid segments only
        alpha = torch.softmax(gv / model.config.tau, dim=0)
        expected = 0.3 * (alpha * gv).sum(0) + 0.7 * gv.mean(0)
        torch.testing.assert_close(out.scores[b], expected)
        torch.testing.assert_close(out.attention[b, :n], alpha)


def test_padding_never_changes_scores_or_attention(model):
    x, mask, labels = _inputs(n_valid=(3, 6))
    garbage = x.clone()
    garbage[0, 3:] = 1e4 * torch.randn(3, 128)
    with torch.no_grad():
        clean, dirty = model(x, mask, labels), model(garbage, mask, labels)
        truncated = model(x[:1, :3], mask[:1, :3], labels)
    torch.testing.assert_close(clean.scores, dirty.scores)
    torch.testing.assert_close(clean.attention, dirty.attention)
    assert torch.all(dirty.attention[0, 3:] == 0)
    torch.testing.assert_close(dirty.attention.sum(dim=1), torch.ones(2, 5))
    # a padded clip scores exactly like the same clip without padding
    torch.testing.assert_close(clean.scores[:1], truncated.scores)
    torch.testing.assert_close(clean.attention[:1, :3], truncated.attention)


def test_clip_without_valid_segment_scores_zero_without_nan(model):
    x, mask, labels = _inputs(n_valid=(0, 6))
    out = model(x, mask, labels)
    assert torch.isfinite(out.scores).all() and torch.isfinite(out.attention).all()
    assert torch.all(out.scores[0] == 0) and torch.all(out.attention[0] == 0)
    out.scores.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_gamma_zero_is_the_uniform_mean_and_gamma_one_the_attended_score(model):
    x, mask, labels = _inputs()
    with torch.no_grad():
        g = model.embed_segments(x) @ model.embed_labels(labels).T
        uniform = model(x, mask, labels, gamma=0.0).scores
        attended = model(x, mask, labels, gamma=1.0).scores
    torch.testing.assert_close(uniform[0], g[0, :3].mean(0))
    assert torch.all(attended >= uniform - 1e-5)  # softmax-weighting leans to the larger g


def test_classes_are_an_input_not_an_output_layer(model):
    x, mask, labels = _inputs(n_classes=5)
    with torch.no_grad():
        all_five = model(x, mask, labels).scores
        subset = model(x, mask, labels[[4, 1]]).scores
    torch.testing.assert_close(subset, all_five[:, [4, 1]])


def test_uint8_input_is_dequantised_like_audioset():
    u8 = torch.tensor([0, 255, 128], dtype=torch.uint8)
    torch.testing.assert_close(dequantize(u8), torch.tensor([-2.0, 2.0, 128 * 4 / 255 - 2]))


def test_float_input_passes_through_unscaled():
    x = torch.tensor([[-1.5, 0.0, 3.0]], dtype=torch.float64)
    out = dequantize(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, x.float())


def test_checkpoint_round_trip_through_torch_save_weights_only(model):
    x, mask, labels = _inputs()
    buffer = io.BytesIO()
    torch.save(model.checkpoint(), buffer)
    buffer.seek(0)
    restored = TemporalAttentionModel.from_checkpoint(torch.load(buffer, weights_only=True))
    assert restored.config == model.config
    with torch.no_grad():
        torch.testing.assert_close(restored(x, mask, labels).scores, model(x, mask, labels).scores)


def test_invalid_config_is_refused():
    with pytest.raises(ValueError, match="gamma"):
        ModelConfig(semantic_dim=4, gamma=1.5)
    with pytest.raises(ValueError, match="tau"):
        ModelConfig(semantic_dim=4, tau=0)
    # a typo is an error naming the key, never a silent default (tau = 1)
    with pytest.raises(ValueError, match=r"unknown model parameter\(s\) \['tua'\]"):
        ModelConfig.from_dict({"semantic_dim": 4, "tua": 0.5})


def test_model_is_rebuilt_from_a_typed_checkpoint(model):
    checkpoint = Checkpoint(
        model_config=model.config.to_dict(),
        state_dict=model.checkpoint()["state_dict"],
        method="temporal_attention",
        rotation={"name": "rot0", "train": [0], "validation": 1, "test": 2},
        threshold=0.1,
        train_classes=[],
        validation_classes=[],
        test_classes=[],
        embedder=EmbedderSpec(),
        label_encoder=LabelEncoderSpec(),
    )
    restored = TemporalAttentionModel.from_checkpoint(checkpoint)
    x, mask, labels = _inputs()
    assert restored.config == model.config and not restored.training
    with torch.no_grad():
        torch.testing.assert_close(restored(x, mask, labels).scores, model(x, mask, labels).scores)


def test_standardisation_buffers_travel_with_the_checkpoint(model):
    model.set_segment_statistics(torch.full((128,), 3.0), torch.full((128,), 2.0))
    x, mask, labels = _inputs()
    restored = TemporalAttentionModel.from_checkpoint(model.checkpoint())
    with torch.no_grad():
        torch.testing.assert_close(restored(x, mask, labels).scores, model(x, mask, labels).scores)
        # (x - 3) / 2 is what the projection sees
        torch.testing.assert_close(model.embed_segments(x), model.acoustic((x - 3.0) / 2.0))


@pytest.mark.parametrize("uint8", [False, True])
@pytest.mark.parametrize(
    "config",
    [
        dict(gamma=0.3),
        dict(gamma=0.0),
        dict(gamma=1.0, tau=0.5),
        dict(gamma=0.7, n_layers=2),
    ],
    ids=["gamma0.3", "uniform", "attended-tau0.5", "two-layers"],
)
def test_fast_scoring_path_equals_forward(config, uint8):
    """``score`` (folded weights, sigmoid form, padded classes, attention of some rows) gives
    ``forward``'s scores and attention; padding, clips without audio and gamma = 0 included."""
    torch.manual_seed(0)
    model = TemporalAttentionModel(ModelConfig(semantic_dim=12, joint_dim=16, **config)).eval()
    model.set_segment_statistics(0.3 * torch.randn(128), 0.5 + torch.rand(128))
    x, mask, labels = _inputs(n_valid=(3, 6, 0, 6, 1), n_classes=21)
    if uint8:
        x = torch.randint(0, 256, x.shape, dtype=torch.uint8)
    with torch.no_grad():
        reference = model(x, mask, labels)
    fast = model.score(x, mask, labels)
    torch.testing.assert_close(fast.scores, reference.scores, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.attention, reference.attention, rtol=1e-5, atol=1e-6)
    rows = torch.tensor([True, False, True, False, True])
    some = model.score(x, mask, labels, gamma=0.0, attention_rows=rows)
    with torch.no_grad():
        uniform = model(x, mask, labels, gamma=0.0)
    torch.testing.assert_close(some.scores, uniform.scores, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(some.attention, uniform.attention[rows], rtol=1e-5, atol=1e-6)
    none = model.score(x, mask, labels, attention_rows=torch.zeros(5, dtype=torch.bool))
    assert none.attention.shape == (0, 6, 21)
    torch.testing.assert_close(none.scores, reference.scores, rtol=1e-5, atol=1e-5)


def test_fast_scoring_path_refuses_training_mode(model):
    x, mask, labels = _inputs()
    with pytest.raises(RuntimeError, match="eval"):
        model.train().score(x, mask, labels)


def test_fast_scoring_path_under_autocast_stays_close_to_forward():
    """Under autocast (bf16 on a GPU) ``score`` runs in mixed dtypes (its tanh form, not the
    float32 sigmoid form); its error is that of ``forward`` under the same autocast."""
    torch.manual_seed(0)
    model = TemporalAttentionModel(ModelConfig(semantic_dim=12, joint_dim=16, gamma=0.4)).eval()
    x, mask, labels = _inputs(n_valid=(3, 6, 0, 6, 1), n_classes=21)
    with torch.no_grad():
        exact = model(x, mask, labels).scores
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with torch.no_grad():
            error_forward = (model(x, mask, labels).scores.float() - exact).abs().max()
        fast = model.score(x, mask, labels)
    assert torch.isfinite(fast.scores).all()
    assert (fast.scores.float() - exact).abs().max() <= 2 * error_forward + 1e-3
