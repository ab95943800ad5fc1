"""The temporal-attention zero-shot audio tagger of Dogan et al. (IWAENC 2024), in one file.

A clip is a sequence of T segment embeddings x_t (VGGish: 128 values; any width works); a class is
a label embedding e_c (a sentence encoder's vector of its name/description). Both are mapped into
one D-dimensional space by small fc + tanh networks, a_t = f(x_t) and s_c = h(e_c), and scored by
their dot product:

    g[t, c]     = a_t . s_c                                   segment-by-class compatibility
    alpha[t, c] = softmax over the clip's valid t of g[t, c] / tau    temporal attention per class
    y_c         = sum_t alpha[t, c] g[t, c]                   attended score
    z_c         = mean over valid t of g[t, c]                uniform score
    p_c         = gamma * y_c + (1 - gamma) * z_c             fused score (gamma = 0: uniform baseline)

Classes are an input of ``forward`` rather than rows of an output layer, so a model trained on one
set of classes scores any other set (that is the zero-shot part). Padding segments (t >= the clip's
number of valid segments) never reach a score or an attention weight.

No Kedro here: this module is usable from a notebook or a script as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from zeroshot_audio.config import build_strict
from zeroshot_audio.contracts.checkpoint import Checkpoint
from zeroshot_audio.contracts.segment_table import EMBEDDING_SIZE as SEGMENT_DIM
from zeroshot_audio.contracts.segment_table import QUANTIZE_MIN, QUANTIZE_STEP, dequantize

# ``score`` pads the class dimension of its [B*T, D] x [D, C] product to a multiple of this: at
# AudioSet's ~130 test classes MKL's sgemm ran 1.5x slower at C = 130 than at C = 144 (AVX2 CPU).
_CLASS_PAD = 16


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network; saved next to its weights."""

    semantic_dim: int
    acoustic_dim: int = SEGMENT_DIM
    joint_dim: int = 256
    n_layers: int = 1
    tau: float = 1.0
    gamma: float = 0.5
    dropout: float = 0.0
    # Standardise segments with the training clips' per-dimension mean/std (buffers set by ``fit``;
    # identity until then). Not in the paper, whose PCA-whitened AudioSet inputs are already near
    # unit scale; raw VGGish vectors (|x| ~ 7) would otherwise saturate the tanh from the start.
    standardize_segments: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must lie in [0, 1], got {self.gamma}")
        if self.tau <= 0:
            raise ValueError(f"tau must be positive, got {self.tau}")
        if self.n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {self.n_layers}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelConfig:
        """Build from ``train.model`` parameters or a checkpoint; an unknown key is an error."""
        return build_strict(cls, values, "model")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ModelOutput(NamedTuple):
    scores: Tensor  # [B, C] fused scores p
    attention: Tensor  # [B, T, C] alpha, zero on padding segments


def _projection(in_dim: int, out_dim: int, n_layers: int, dropout: float) -> nn.Sequential:
    """n_layers of fc + tanh; the last one lands in the joint space."""
    layers: list[nn.Module] = []
    for i in range(n_layers):
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [nn.Linear(in_dim if i == 0 else out_dim, out_dim), nn.Tanh()]
    return nn.Sequential(*layers)


class TemporalAttentionModel(nn.Module):
    """Scores T-segment clips against any set of label embeddings (see module docstring)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.acoustic = _projection(
            config.acoustic_dim, config.joint_dim, config.n_layers, config.dropout
        )
        self.semantic = _projection(
            config.semantic_dim, config.joint_dim, config.n_layers, config.dropout
        )
        self.register_buffer("segment_mean", torch.zeros(config.acoustic_dim))
        self.register_buffer("segment_std", torch.ones(config.acoustic_dim))

    def set_segment_statistics(self, mean: Tensor, std: Tensor) -> None:
        """Input standardisation (x - mean) / std, saved with the weights; see ModelConfig."""
        self.segment_mean.copy_(mean.to(self.segment_mean))
        self.segment_std.copy_(std.to(self.segment_std).clamp(min=1e-6))

    def embed_segments(self, segments: Tensor) -> Tensor:
        """[B, T, acoustic_dim] (uint8 or float) -> a: [B, T, joint_dim]."""
        x = (dequantize(segments) - self.segment_mean) / self.segment_std
        return self.acoustic(x)

    def embed_labels(self, label_embeddings: Tensor) -> Tensor:
        """[C, E] -> s: [C, D]."""
        return self.semantic(label_embeddings.to(torch.float32))

    def forward(
        self,
        segments: Tensor,
        valid_mask: Tensor,
        label_embeddings: Tensor,
        gamma: float | None = None,
    ) -> ModelOutput:
        """Fused scores [B, C] and attention [B, T, C] of each clip for each given class.

        ``valid_mask`` [B, T] is True on segments holding audio. ``gamma`` overrides the configured
        fusion weight (used to score one trained network both ways).
        """
        gamma = self.config.gamma if gamma is None else gamma
        a = self.embed_segments(segments)  # [B, T, D]
        s = self.embed_labels(label_embeddings)  # [C, D]
        g = a @ s.T  # [B, T, C]
        mask = valid_mask[:, :, None]  # [B, T, 1]
        logits = (g / self.config.tau).masked_fill(~mask, torch.finfo(g.dtype).min)
        # A finite fill keeps a clip with no valid segment at zero attention instead of NaN.
        attention = torch.softmax(logits, dim=1) * mask
        attended = (attention * g).sum(dim=1)
        n_valid = valid_mask.sum(dim=1, keepdim=True).clamp(min=1)
        uniform = (g * mask).sum(dim=1) / n_valid
        scores = gamma * attended + (1.0 - gamma) * uniform
        return ModelOutput(scores=scores, attention=attention)

    @torch.no_grad()
    def score(
        self,
        segments: Tensor,
        valid_mask: Tensor,
        label_embeddings: Tensor,
        gamma: float | None = None,
        attention_rows: Tensor | None = None,
    ) -> ModelOutput:
        """``forward``'s numbers (to float32 rounding, tested) for scoring many clips, faster.

        Why a second path: evaluating AudioSet's test folds is millions of clip forwards, and
        ``forward`` is written to be read and trained. Here, in eval mode and without gradients:
        the dequantisation and standardisation are folded into the first layer's weights; on
        float32 the joint-space tanh is computed as ``2 * sigmoid(2h) - 1`` (sigmoid is ~2x
        faster than tanh on CPU), whose affine part folds into the class product and the mean;
        the uniform score is ``mean_t(a) . s`` (no [B, T, C] pass); the [B, T, C] compatibilities
        are only formed when ``gamma > 0`` or attention is asked for, and padding is masked in
        place on the padded clips only. On a 2-core CPU: 1.7x ``forward`` with attention, 4.3x
        for the uniform model. ``attention_rows`` (bool [B]) returns the attention of those clips
        only ([m, T, C]); None returns all of it.
        """
        if self.training:
            raise RuntimeError("score() folds eval-mode weights; call model.eval() first")
        gamma = self.config.gamma if gamma is None else gamma
        n_clips, n_segments, _ = segments.shape
        linears = [layer for layer in self.acoustic if isinstance(layer, nn.Linear)]
        step, low = (QUANTIZE_STEP, QUANTIZE_MIN) if segments.dtype == torch.uint8 else (1.0, 0.0)
        scale = step / self.segment_std  # x_standardised = u8 * scale + shift
        shift = (low - self.segment_mean) / self.segment_std
        # float32 only: in bf16, 2u - 1 near u = 0.5 keeps fewer bits than tanh near 0
        sigmoid_form = not torch.is_autocast_enabled(segments.device.type)
        h = segments.reshape(n_clips * n_segments, -1).to(torch.float32)
        for i, linear in enumerate(linears):
            weight, bias = linear.weight, linear.bias
            if i == 0:
                weight, bias = weight * scale, bias + weight @ shift
            if i == len(linears) - 1 and sigmoid_form:  # h holds u = (a + 1) / 2 from here on
                h = torch.addmm(2 * bias, h, 2 * weight.T).sigmoid_()
            else:
                h = torch.addmm(bias, h, weight.T).tanh_()
        s = self.embed_labels(label_embeddings)  # [C, D]
        n_classes = s.shape[0]
        s = torch.cat([s, s.new_zeros((-n_classes) % _CLASS_PAD, s.shape[1])])
        # a . s = (2u - 1) . s = u . 2s - sum(s): one product with a bias
        product_weight, product_bias = (2 * s.T, -s.sum(dim=1)) if sigmoid_form else (s.T, None)

        valid = valid_mask.to(h.dtype)
        n_valid = valid.sum(dim=1, keepdim=True)
        pooled = torch.bmm(valid[:, None, :], h.view(n_clips, n_segments, -1))[:, 0]  # [B, D]
        if sigmoid_form:
            pooled = 2 * pooled - n_valid
        uniform = (pooled / n_valid.clamp(min=1)) @ s.T  # [B, C]

        if gamma == 0:  # the scores need no compatibilities: form them for the asked attention only
            rows = torch.ones(n_clips, dtype=torch.bool, device=h.device)
            if attention_rows is not None:
                rows = attention_rows.to(h.device, torch.bool)
            h = h.view(n_clips, n_segments, -1)[rows].reshape(-1, h.shape[1])
            valid_mask, valid, attention_rows = valid_mask[rows], valid[rows], None
        g = torch.addmm(product_bias, h, product_weight) if sigmoid_form else h @ product_weight
        g = g.view(-1, n_segments, s.shape[0])  # [B, T, C]
        logits = g if self.config.tau == 1.0 else g / self.config.tau
        padded = ~valid_mask.all(dim=1)
        if bool(padded.any()):  # in place, on the padded clips only: no copy of the whole batch
            fill = ~valid_mask[padded][:, :, None]
            logits[padded] = logits[padded].masked_fill(fill, torch.finfo(g.dtype).min)
        weights = torch.softmax(logits, dim=1)
        kept = slice(None) if attention_rows is None else attention_rows.to(h.device, torch.bool)
        attention = (weights[kept] * valid[kept][:, :, None])[..., :n_classes]
        if gamma == 0:
            return ModelOutput(scores=uniform[:, :n_classes], attention=attention)
        # g may hold the fill on padding (tau = 1), where the weights are 0; a clip without audio
        # (weights 1 / T on the fill) attends to nothing: 0, as in forward
        # (under CUDA autocast the softmax is float32 and g bfloat16: vecdot wants one dtype)
        attended = torch.linalg.vecdot(weights, g.to(weights.dtype), dim=1)
        attended = torch.where(n_valid > 0, attended, 0.0)
        scores = gamma * attended + (1.0 - gamma) * uniform
        return ModelOutput(scores=scores[:, :n_classes], attention=attention)

    def checkpoint(self) -> dict[str, Any]:
        """Plain-data weights (config dict + CPU state_dict), loadable with
        ``torch.load(weights_only=True)``; a trained model's full record is a ``Checkpoint``."""
        return {
            "config": self.config.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
        }

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint | Mapping[str, Any]) -> TemporalAttentionModel:
        """Rebuild from a :class:`Checkpoint` (``model_config`` + ``state_dict``), or from the
        plain ``checkpoint()`` mapping (``config`` + ``state_dict``); in eval mode."""
        if isinstance(checkpoint, Checkpoint):
            config, state_dict = checkpoint.model_config, checkpoint.state_dict
        else:
            config = checkpoint["model_config" if "model_config" in checkpoint else "config"]
            state_dict = checkpoint["state_dict"]
        model = cls(ModelConfig.from_dict(config))
        model.load_state_dict(state_dict)
        return model.eval()
