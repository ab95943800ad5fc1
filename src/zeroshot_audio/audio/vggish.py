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

import hashlib
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

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
    OFFICIAL_PCA_URL,
    OFFICIAL_WEIGHTS_URL,
    QUANTIZE_MAX,
    QUANTIZE_MIN,
    SAMPLE_RATE,
    STFT_HOP_SAMPLES,
    STFT_WINDOW_SAMPLES,
)
from zeroshot_audio.contracts.segment_table import quantize

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


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------


class WeightsUnavailableError(RuntimeError):
    """The official VGGish weights are needed and not at hand."""


@dataclass(frozen=True)
class WeightsSpec:
    """Where the network (and PCA) weights come from.

    Lookup: ``path`` if set, else ``cache_dir/<basename of url>``; if absent and ``download``,
    fetch ``url`` into the cache. ``sha256`` may be a prefix (the port's file names carry one).
    The hash only identifies the file: loading is always ``weights_only`` (see
    :func:`load_weights_file`), so a file that matches it cannot run code either.
    """

    path: str | None = None
    url: str | None = OFFICIAL_WEIGHTS_URL
    sha256: str | None = "10086976"
    pca_path: str | None = None
    pca_url: str | None = OFFICIAL_PCA_URL
    pca_sha256: str | None = "970ea276"
    cache_dir: str = "data/06_models/vggish"
    download: bool = True
    download_timeout_s: float = 30.0
    allow_random: bool = False

    def network_file(self) -> Path | None:
        return _local_file(self.path, self.url, self.cache_dir)

    def pca_file(self) -> Path | None:
        return _local_file(self.pca_path, self.pca_url, self.cache_dir)


def _local_file(path: str | None, url: str | None, cache_dir: str) -> Path | None:
    if path:
        return Path(path)
    if url:
        return Path(cache_dir) / url.rsplit("/", 1)[-1]
    return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _how_to_get(target: Path, url: str | None) -> str:
    if url:
        return (
            f"download it on a machine with internet access, e.g. `curl -L -o {target} {url}`, "
            f"and copy it to {target} (or set the weights path parameter to where it is)"
        )
    return f"put the file at {target} or set its path parameter"


def ensure_file(
    target: Path | None, url: str | None, sha256: str | None, spec: WeightsSpec, what: str
) -> Path:
    """Return a verified local copy of a weights file, downloading it if allowed.

    Raises :class:`WeightsUnavailableError` naming the file and how to obtain it.
    """
    if target is None:
        raise WeightsUnavailableError(f"VGGish {what}: neither a path nor a URL is configured")
    if not target.is_file() and url and spec.download:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        try:
            logger.info("Downloading VGGish %s from %s", what, url)
            with (
                urllib.request.urlopen(url, timeout=spec.download_timeout_s) as response,
                open(tmp, "wb") as out,
            ):
                while block := response.read(1 << 20):
                    out.write(block)
            tmp.replace(target)
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            tmp.unlink(missing_ok=True)
            logger.info("Could not download %s: %s", url, err)
    if not target.is_file():
        raise WeightsUnavailableError(
            f"VGGish {what} file {target} is missing and could not be fetched "
            f"(offline?). To use the official weights, {_how_to_get(target, url)}."
        )
    if sha256:
        actual = file_sha256(target)
        if not actual.startswith(sha256.lower()):
            raise WeightsUnavailableError(
                f"VGGish {what} file {target} has sha256 {actual}, expected {sha256}...: "
                f"a corrupt or different file; delete it and {_how_to_get(target, url)}."
            )
    return target


def _numpy_array_globals() -> list:
    """The only globals a pickled numpy array needs: ``ndarray``, ``dtype`` and the
    ``_reconstruct`` helper under its numpy 1.x (``numpy.core``) and 2.x (``numpy._core``) names,
    and the numeric dtype classes whose state a dtype restores. None of them can run code: ``_reconstruct`` makes an empty array of an allowed type and
    ``ndarray.__setstate__`` fills it with raw bytes."""
    from numpy._core.multiarray import _reconstruct

    numeric_dtypes = {type(np.dtype(code)) for code in "?bBhHiIlLqQefdg"}  # numpy 2 classes
    return [
        np.ndarray,
        np.dtype,
        *sorted(numeric_dtypes, key=lambda t: t.__name__),
        (_reconstruct, "numpy.core.multiarray._reconstruct"),
        (_reconstruct, "numpy._core.multiarray._reconstruct"),
    ]


def _why(err: Exception) -> str:
    """The line of torch's long weights_only message that says what was refused."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "WeightsUnpickler error" in line:
            rest = line.split("WeightsUnpickler error:", 1)[-1].strip()
            rest = rest or (lines[i + 1] if i + 1 < len(lines) else line)
            return rest.split(" Please use", 1)[0]  # not torch's advice to allowlist it
    return lines[0] if lines else repr(err)


def load_weights_file(path: Path) -> dict:
    """``torch.load(weights_only=True)`` with numpy arrays allowed: never the full unpickler.

    The released network file is a state_dict of tensors; the released PCA file is a dict of
    numpy arrays. Anything else (a pickled class, a function call) is refused before it runs,
    whatever the file's hash: a hash says which file this is, not that unpickling it is safe.
    """
    try:
        with torch.serialization.safe_globals(_numpy_array_globals()):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle.UnpicklingError, RuntimeError for foreign or corrupt files
        raise WeightsUnavailableError(
            f"refused to load {path}: it is not a plain file of tensors or numpy arrays "
            f"(weights are only ever loaded with torch.load(weights_only=True)): {_why(err)}"
        ) from err
    if not isinstance(data, dict):
        raise WeightsUnavailableError(f"{path}: expected a dict of arrays, got {type(data)}")
    for key, value in data.items():
        if isinstance(value, np.ndarray) and value.dtype.kind not in "fiub":
            raise WeightsUnavailableError(f"{path}: array {key!r} has dtype {value.dtype}")
    return data


@dataclass
class LoadedWeights:
    """The weights to build an embedder from, with where they came from."""

    network_state: dict[str, torch.Tensor] | None
    pca: tuple[torch.Tensor, torch.Tensor] | None
    source: str  # network weights: "official" or "random"
    pca_source: str  # "official", "identity" (random fallback) or "unused"
    fingerprint: str  # identifies the weights (file hashes, or "random:<seed>")


def _degrade(spec: WeightsSpec, err: WeightsUnavailableError, what: str) -> None:
    if not spec.allow_random:
        raise err
    logger.warning(
        "!!! VGGish runs with %s: embeddings are NOT those of the published model and results "
        "are NOT comparable with the paper. Cause: %s",
        what,
        err,
    )


def resolve_weights(spec: WeightsSpec, seed: int, need_pca: bool) -> LoadedWeights:
    """Load the official weights; only if ``spec.allow_random``, fall back to a seeded random
    network (and an identity PCA) with a loud warning."""
    try:
        net_file = ensure_file(spec.network_file(), spec.url, spec.sha256, spec, "network weights")
        state = load_weights_file(net_file)
        source, fingerprint = "official", file_sha256(net_file)
    except WeightsUnavailableError as err:
        _degrade(spec, err, f"RANDOM network weights (seed {seed})")
        state, source, fingerprint = None, "random", f"random:he-normal:{seed}"
    pca, pca_source = None, "unused"
    if need_pca:
        try:
            pca_file = ensure_file(
                spec.pca_file(), spec.pca_url, spec.pca_sha256, spec, "PCA params"
            )
            params = load_weights_file(pca_file)
            pca = (
                torch.as_tensor(np.asarray(params["pca_eigen_vectors"]), dtype=torch.float32),
                torch.as_tensor(np.asarray(params["pca_means"]), dtype=torch.float32).reshape(
                    -1, 1
                ),
            )
            pca_source = "official"
            fingerprint += ":" + file_sha256(pca_file)
        except WeightsUnavailableError as err:
            _degrade(spec, err, "an IDENTITY PCA instead of the released one")
            pca = (torch.eye(EMBEDDING_SIZE), torch.zeros(EMBEDDING_SIZE, 1))
            pca_source = "identity"
            fingerprint += ":identity-pca"
    return LoadedWeights(state, pca, source, pca_source, fingerprint)


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
