"""VGGish, exactly: the published log-mel frontend, the network and AudioSet's post-processing.

The frontend reproduces the reference ``mel_features.py`` formulas (periodic Hann, 512-point FFT
magnitude, HTK-mel triangles laid out in mel space with the DC bin zeroed, log(mel + 0.01)) in
torch, batched over examples and on any device. torchaudio's MelSpectrogram builds its
filterbank differently (triangles in Hz, no DC zeroing) and does not reproduce it.

The network keeps the parameter names of the public PyTorch port (harritaylor/torchvggish:
``features.{0,3,6,8,11,13}``, ``embeddings.{0,2,4}``) and its channel-last flattening before the
fully connected layers (the TF original is NHWC), so the port's ``vggish-10086976.pth`` loads
with ``load_state_dict(strict=True)`` and no key remapping.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from zeroshot_audio.audio.precision import COMPUTE_DTYPES
from zeroshot_audio.audio.vggish_params import (
    EMBEDDING_SIZE,
    EXAMPLE_SAMPLES,
    FFT_LENGTH,
    LOG_OFFSET,
    MEL_MAX_HZ,
    MEL_MIN_HZ,
    NUM_MEL_BINS,
    QUANTIZE_MAX,
    QUANTIZE_MIN,
    SAMPLE_RATE,
    STFT_HOP_SAMPLES,
    STFT_WINDOW_SAMPLES,
)
from zeroshot_audio.audio.vggish_weights import (
    LoadedWeights,
    WeightsSpec,
    WeightsUnavailableError,
    ensure_file,
    file_sha256,
    load_weights_file,
    resolve_weights,
)
from zeroshot_audio.contracts.segment_table import quantize

# ``vggish`` is the one import for building an embedder, its weights included (re-exported).
__all__ = [
    "AudioSetPostprocessor",
    "LoadedWeights",
    "LogMelFrontend",
    "VGGish",
    "VGGishEmbedder",
    "WeightsSpec",
    "WeightsUnavailableError",
    "build_embedder",
    "build_network",
    "ensure_file",
    "file_sha256",
    "load_weights_file",
    "random_init_",
    "resolve_weights",
]

logger = logging.getLogger(__name__)

# Layout of the convolutional stack: channels or "M" (2x2 max-pool), as in the paper's VGG "A"
# reduced to four groups. Indices of the conv layers in ``features`` follow from it.
_FEATURE_LAYOUT: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")

# --------------------------------------------------------------------------------------------
# Frontend
# --------------------------------------------------------------------------------------------


def hertz_to_mel(frequencies_hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale, as the reference uses it."""
    return 1127.0 * np.log1p(np.asarray(frequencies_hz, dtype=np.float64) / 700.0)


def mel_weight_matrix(
    num_spectrogram_bins: int = FFT_LENGTH // 2 + 1,
    sample_rate: int = SAMPLE_RATE,
    num_mel_bins: int = NUM_MEL_BINS,
    lower_hz: float = MEL_MIN_HZ,
    upper_hz: float = MEL_MAX_HZ,
) -> np.ndarray:
    """``[num_spectrogram_bins, num_mel_bins]`` float64, triangles in mel space, DC row zeroed."""
    bins_mel = hertz_to_mel(np.linspace(0.0, sample_rate / 2.0, num_spectrogram_bins))
    edges = np.linspace(hertz_to_mel(lower_hz), hertz_to_mel(upper_hz), num_mel_bins + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (center - lower)
    falling = (upper - bins_mel[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


class LogMelFrontend(nn.Module):
    """Waveform examples ``[N, >=15600]`` at 16 kHz -> VGGish input ``[N, 1, 96, 64]`` (float32).

    Computed in float64 like the numpy reference: in float32 the FFT's absolute error (~1e-7 of
    the frame energy) reaches weak mel bands next to loud ones, and log(mel + 0.01) turns it into
    errors up to ~4e-4 on real clips; in float64 they stay below 1e-9. It costs ~1 % of the
    network's time.
    """

    def __init__(self) -> None:
        super().__init__()
        n = torch.arange(STFT_WINDOW_SAMPLES, dtype=torch.float64)
        periodic_hann = 0.5 - 0.5 * torch.cos(2.0 * torch.pi * n / STFT_WINDOW_SAMPLES)
        self.register_buffer("window", periodic_hann, persistent=False)
        self.register_buffer("mel_weights", torch.from_numpy(mel_weight_matrix()), persistent=False)

    def log_mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """``[..., samples]`` -> ``[..., frames, 64]`` log-mel, frames without padding."""
        frames = waveforms.unfold(-1, STFT_WINDOW_SAMPLES, STFT_HOP_SAMPLES) * self.window
        magnitude = torch.fft.rfft(frames, n=FFT_LENGTH).abs()
        return torch.log(magnitude @ self.mel_weights + LOG_OFFSET)

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        if examples.shape[-1] < EXAMPLE_SAMPLES:
            raise ValueError(
                f"an example needs {EXAMPLE_SAMPLES} samples, got {examples.shape[-1]}"
            )
        log_mel = self.log_mel(examples[..., :EXAMPLE_SAMPLES].to(torch.float64))
        return log_mel.to(torch.float32).unsqueeze(1)  # [N, 1, 96, 64]


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------


def _make_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 1
    for item in _FEATURE_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [
                nn.Conv2d(in_channels, int(item), kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
            ]
            in_channels = int(item)
    return nn.Sequential(*layers)


class VGGish(nn.Module):
    """The VGGish network: ``[N, 1, 96, 64]`` log-mel patches -> ``[N, 128]`` embeddings.

    ``final_relu``: whether the 128-d layer is followed by a ReLU. The current TF reference
    (``vggish_slim.py``) has none; the PyTorch port applies one. It has no parameters, so both
    variants share the same state_dict.
    """

    def __init__(self, final_relu: bool = False) -> None:
        super().__init__()
        self.final_relu = final_relu
        self.features = _make_features()
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 6 * 4, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, EMBEDDING_SIZE),
            nn.ReLU(inplace=True) if final_relu else nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # [N, 512, 6, 4]
        # Channel-last flattening (h, w, c), the order the TF weights' fc1 expects. With a
        # channels_last input this permute is a free view.
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        return self.embeddings(x)


class AudioSetPostprocessor(nn.Module):
    """PCA whitening with the released parameters, clipping to [-2, 2], optional 8-bit.

    Buffer names follow the released ``vggish_pca_params`` file (``pca_eigen_vectors``
    ``[128, 128]``, ``pca_means`` ``[128, 1]``).
    """

    def __init__(self, pca_eigen_vectors: torch.Tensor, pca_means: torch.Tensor) -> None:
        super().__init__()
        eig = torch.as_tensor(pca_eigen_vectors, dtype=torch.float32)
        means = torch.as_tensor(pca_means, dtype=torch.float32).reshape(-1, 1)
        if eig.shape != (EMBEDDING_SIZE, EMBEDDING_SIZE) or means.shape != (EMBEDDING_SIZE, 1):
            raise ValueError(
                f"PCA params must be [128, 128] and [128]; got {tuple(eig.shape)}, {tuple(means.shape)}"
            )
        self.register_buffer("pca_eigen_vectors", eig)
        self.register_buffer("pca_means", means)

    def whiten(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``[N, 128]`` -> PCA-whitened and clipped to [-2, 2]."""
        pca = (embeddings - self.pca_means.T) @ self.pca_eigen_vectors.T
        return pca.clamp(QUANTIZE_MIN, QUANTIZE_MAX)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """AudioSet release format: uint8 ``[N, 128]``."""
        return quantize(self.whiten(embeddings))


POSTPROCESS_MODES = ("none", "pca", "quantized")


class VGGishEmbedder(nn.Module):
    """Waveform examples ``[N, 15600]`` -> embeddings ``[N, 128]`` on one device.

    ``postprocess``: ``none`` (raw float32), ``pca`` (whitened + clipped float32) or
    ``quantized`` (the AudioSet release's uint8). ``precision`` (see audio/precision.py): the
    network's arithmetic; the frontend is float64 -> float32 and the output float32 in every mode.
    """

    def __init__(
        self,
        network: VGGish,
        postprocessor: AudioSetPostprocessor | None = None,
        postprocess: str = "none",
    ) -> None:
        super().__init__()
        if postprocess not in POSTPROCESS_MODES:
            raise ValueError(f"postprocess must be one of {POSTPROCESS_MODES}, got {postprocess!r}")
        if postprocess != "none" and postprocessor is None:
            raise ValueError(f"postprocess={postprocess!r} needs the PCA parameters")
        self.frontend = LogMelFrontend()
        self.network = network
        self.postprocessor = postprocessor
        self.postprocess = postprocess
        self.channels_last = False
        self.precision = "fp32"

    @property
    def output_dtype(self) -> str:
        return "uint8" if self.postprocess == "quantized" else "float32"

    def optimize_for_inference(
        self, channels_last: bool = True, precision: str = "fp32"
    ) -> VGGishEmbedder:
        """eval() + channels_last weights (oneDNN's fast NHWC convolutions on CPU, also good for
        cuDNN) + the network's weights cast once to ``precision`` (``fp32`` or ``bf16``, already
        resolved: see precision.resolve_precision); measured in benchmarks/bench_featurize.py."""
        self.eval()
        self.channels_last = channels_last
        self.precision = precision
        self.network.to(dtype=COMPUTE_DTYPES[precision])  # KeyError: unresolved mode
        if channels_last:
            self.network.features.to(memory_format=torch.channels_last)
        return self

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        x = self.frontend(examples).to(COMPUTE_DTYPES[self.precision])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        emb = self.network(x).float()
        if self.postprocess == "pca":
            return self.postprocessor.whiten(emb)
        if self.postprocess == "quantized":
            return self.postprocessor(emb)
        return emb


def random_init_(network: VGGish, seed: int) -> VGGish:
    """Seeded He-normal weights and zero biases (identical on every worker).

    PyTorch's default init shrinks the activations layer by layer, so a random VGGish would
    emit nearly the same vector (its biases) for every input; He init keeps the scale through
    the ReLU stack and makes the random network a random-feature extractor whose output still
    varies with the audio, which keeps the offline default run meaningful as a smoke test.
    """
    generator = torch.Generator().manual_seed(seed)
    for module in network.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            fan_in = module.weight[0].numel()
            with torch.no_grad():
                module.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=generator)
                module.bias.zero_()
    return network


def build_network(weights: LoadedWeights, seed: int, final_relu: bool) -> VGGish:
    """The network with the given weights, or a seeded random init."""
    with torch.device("meta"):  # skip the default init: every parameter is set below
        network = VGGish(final_relu=final_relu)
    network = network.to_empty(device="cpu")
    if weights.network_state is not None:
        network.load_state_dict(weights.network_state, strict=True)
    else:
        random_init_(network, seed)
    return network


def build_embedder(
    weights: LoadedWeights,
    seed: int,
    final_relu: bool = False,
    postprocess: str = "none",
    device: str | torch.device = "cpu",
    channels_last: bool = True,
    precision: str = "fp32",
) -> VGGishEmbedder:
    """Frontend + network + post-processing, on ``device``, ready for inference."""
    network = build_network(weights, seed, final_relu)
    postprocessor = None
    if postprocess != "none":
        if weights.pca is None:
            raise ValueError(f"postprocess={postprocess!r} but no PCA params were resolved")
        postprocessor = AudioSetPostprocessor(*weights.pca)
    embedder = VGGishEmbedder(network, postprocessor, postprocess)
    if torch.device(device).type == "cuda":
        # cuDNN convolutions default to TF32 on Ampere and later (10-bit mantissa): keep the
        # published model's float32 arithmetic.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    return embedder.to(device).optimize_for_inference(channels_last, precision)
