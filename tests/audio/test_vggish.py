"""VGGish frontend numerics, network layout/state_dict compatibility, post-processing, weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.audio.sounds import mixed_clip
from zeroshot_audio.audio import vggish
from zeroshot_audio.contracts import segment_table

# --------------------------------------------------------------------------------------------
# An independent float64 numpy implementation of the published VGGish frontend formulas
# (mel_features.py / vggish_input.py), written from the formulas, loop by loop.
# --------------------------------------------------------------------------------------------


def _ref_hz_to_mel(hz):
    return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _ref_mel_matrix(n_bins=257, sr=16000, n_mel=64, lo=125.0, hi=7500.0):
    bin_hz = np.array([k * (sr / 2.0) / (n_bins - 1) for k in range(n_bins)])
    bin_mel = _ref_hz_to_mel(bin_hz)
    lo_mel, hi_mel = _ref_hz_to_mel(lo), _ref_hz_to_mel(hi)
    step = (hi_mel - lo_mel) / (n_mel + 1)
    m = np.zeros((n_bins, n_mel))
    for band in range(n_mel):
        left, center, right = (
            lo_mel + band * step,
            lo_mel + (band + 1) * step,
            lo_mel + (band + 2) * step,
        )
        for k in range(1, n_bins):  # the DC bin stays zero
            up = (bin_mel[k] - left) / (center - left)
            down = (right - bin_mel[k]) / (right - center)
            m[k, band] = max(0.0, min(up, down))
    return m


def _ref_examples(wave: np.ndarray) -> np.ndarray:
    """[samples] -> [n_examples, 96, 64] log-mel examples (hop 0.96 s), float64."""
    wave = wave.astype(np.float64)
    win, hop, n_fft = 400, 160, 512
    window = np.array([0.5 - 0.5 * np.cos(2 * np.pi * i / win) for i in range(win)])  # periodic
    n_frames = 1 + (len(wave) - win) // hop
    frames = np.stack([wave[i * hop : i * hop + win] for i in range(n_frames)]) * window
    spectrum = np.abs(np.fft.rfft(frames, n_fft))
    log_mel = np.log(spectrum @ _ref_mel_matrix() + 0.01)
    n_examples = 1 + (n_frames - 96) // 96
    return np.stack([log_mel[i * 96 : i * 96 + 96] for i in range(n_examples)])


def test_mel_matrix_matches_reference_formula() -> None:
    ours = vggish.mel_weight_matrix()
    ref = _ref_mel_matrix()
    assert ours.shape == (257, 64)
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    assert (ours[0] == 0).all(), "DC bin must be zeroed"
    # Each triangle peaks near 1 and the bands are ordered by frequency.
    assert np.all(np.diff(ours.argmax(axis=0)) >= 0)


def test_log_mel_frontend_matches_float64_numpy_reference() -> None:
    # 3.84 s of real audio (speech, instruments, noise) = 4 reference examples at hop 0.96 s.
    wave = mixed_clip(3.9, seed=3)
    ref = _ref_examples(wave)[:4]
    # Our frontend takes one 15600-sample window per example, starting at multiples of 0.96 s.
    starts = [i * 96 * 160 for i in range(4)]
    windows = torch.from_numpy(np.stack([wave[s : s + vggish.EXAMPLE_SAMPLES] for s in starts]))
    ours = vggish.LogMelFrontend()(windows).double().numpy()
    assert ours.shape == (4, 1, 96, 64)
    assert np.abs(ours[:, 0] - ref).max() < 1e-4
    # The signal is not trivial: energies span a wide range.
    assert ref.max() - ref.min() > 5


def test_frontend_is_batched_and_device_agnostic() -> None:
    wave = torch.from_numpy(mixed_clip(2.0, seed=5))
    frontend = vggish.LogMelFrontend()
    batch = torch.stack([wave[:15600], wave[16000 : 16000 + 15600]])
    one_by_one = torch.cat([frontend(batch[:1]), frontend(batch[1:])])
    torch.testing.assert_close(frontend(batch), one_by_one, rtol=0, atol=1e-5)
    if torch.cuda.is_available():
        on_gpu = frontend.to("cuda")(batch.to("cuda")).cpu()
        torch.testing.assert_close(on_gpu, frontend.cpu()(batch), rtol=0, atol=1e-4)


# --------------------------------------------------------------------------------------------
# Network layout and state_dict compatibility with the public PyTorch port
# --------------------------------------------------------------------------------------------

# The parameter names and shapes of harritaylor/torchvggish's vggish-10086976.pth.
PORT_STATE_DICT = {
    "features.0.weight": (64, 1, 3, 3),
    "features.0.bias": (64,),
    "features.3.weight": (128, 64, 3, 3),
    "features.3.bias": (128,),
    "features.6.weight": (256, 128, 3, 3),
    "features.6.bias": (256,),
    "features.8.weight": (256, 256, 3, 3),
    "features.8.bias": (256,),
    "features.11.weight": (512, 256, 3, 3),
    "features.11.bias": (512,),
    "features.13.weight": (512, 512, 3, 3),
    "features.13.bias": (512,),
    "embeddings.0.weight": (4096, 12288),
    "embeddings.0.bias": (4096,),
    "embeddings.2.weight": (4096, 4096),
    "embeddings.2.bias": (4096,),
    "embeddings.4.weight": (128, 4096),
    "embeddings.4.bias": (128,),
}


class PortLayoutVGG(nn.Module):
    """The port's module structure and forward (two transposes to NHWC before flattening),
    restated here to check that our network is interchangeable with it."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 1
        for v in [64, "M", 128, "M", 256, 256, "M", 512, 512, "M"]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(True)]
                c = v
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 4 * 6, 4096),
            nn.ReLU(True),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Linear(4096, 128),
            nn.ReLU(True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.transpose(x, 1, 3)
        x = torch.transpose(x, 1, 2)
        return self.embeddings(x.contiguous().view(x.size(0), -1))


@pytest.fixture(scope="module")
def random_network() -> vggish.VGGish:
    return vggish.random_init_(vggish.VGGish(final_relu=False), seed=7).eval()


@pytest.fixture(scope="module")
def log_mel_batch() -> torch.Tensor:
    wave = torch.from_numpy(mixed_clip(3.0, seed=11))
    return vggish.LogMelFrontend()(wave[: 3 * 16000].reshape(3, 16000))


def test_state_dict_has_exactly_the_ports_names_and_shapes(random_network) -> None:
    state = random_network.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == PORT_STATE_DICT
    assert list(state) == list(PORT_STATE_DICT)  # same order as well


def test_saved_state_dict_loads_back_with_identical_outputs(
    tmp_path, random_network, log_mel_batch
) -> None:
    path = tmp_path / "vggish-test.pth"
    torch.save(random_network.state_dict(), path)
    reloaded = vggish.VGGish(final_relu=False)
    reloaded.load_state_dict(torch.load(path, weights_only=True), strict=True)
    with torch.inference_mode():
        torch.testing.assert_close(
            reloaded.eval()(log_mel_batch), random_network(log_mel_batch), rtol=0, atol=0
        )


def test_port_layout_model_loads_our_state_dict_and_agrees(random_network, log_mel_batch) -> None:
    port = PortLayoutVGG().eval()
    port.load_state_dict(random_network.state_dict(), strict=True)
    ours_relu = vggish.VGGish(final_relu=True).eval()
    ours_relu.load_state_dict(random_network.state_dict(), strict=True)
    with torch.inference_mode():
        expected = port(log_mel_batch)
        torch.testing.assert_close(ours_relu(log_mel_batch), expected, rtol=1e-5, atol=1e-5)
        # channels_last execution (the fast CPU path) flattens in the same order
        fast = vggish.VGGish(final_relu=True).eval()
        fast.load_state_dict(random_network.state_dict())
        fast.features.to(memory_format=torch.channels_last)
        out = fast(log_mel_batch.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
        # A channel-first flattening would give a different answer: the order matters.
        feats = port.features(log_mel_batch).reshape(3, -1)
        assert not torch.allclose(port.embeddings(feats), expected, atol=1e-3)


def test_final_relu_is_a_parameter_without_weights(random_network, log_mel_batch) -> None:
    with_relu = vggish.VGGish(final_relu=True).eval()
    with_relu.load_state_dict(random_network.state_dict(), strict=True)
    with torch.inference_mode():
        raw = random_network(log_mel_batch)
        relu = with_relu(log_mel_batch)
    assert (raw < 0).any(), "without final ReLU some outputs are negative"
    assert (relu >= 0).all()
    torch.testing.assert_close(relu, raw.clamp(min=0))


def test_random_init_is_seeded_and_varies_with_the_audio(random_network, log_mel_batch) -> None:
    net = vggish.random_init_(vggish.VGGish(), seed=7).eval()  # same seed as the fixture
    torch.testing.assert_close(net.state_dict(), random_network.state_dict(), rtol=0, atol=0)
    vggish.random_init_(net, seed=8)
    assert not torch.equal(net.embeddings[4].weight, random_network.embeddings[4].weight)
    with torch.inference_mode():
        out = random_network(log_mel_batch)
    # Different 1-s segments of real audio give clearly different embeddings.
    cos = torch.nn.functional.cosine_similarity(out[0], out[2], dim=0)
    assert cos < 0.99


# --------------------------------------------------------------------------------------------
# AudioSet post-processing
# --------------------------------------------------------------------------------------------


def test_postprocessor_matches_the_release_formula() -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(0, 1, (20, 128)).astype(np.float32)
    eig = np.linalg.qr(rng.normal(size=(128, 128)))[0].astype(np.float32) * 1.5
    means = rng.normal(0, 0.2, 128).astype(np.float32)
    # The release's numpy formula: PCA in [D, N] layout, clip, scale to [0, 255], truncate.
    pca = np.dot(eig, (emb.T - means.reshape(-1, 1))).T
    expected = ((np.clip(pca, -2, 2) + 2) * (255.0 / 4)).astype(np.uint8)
    post = vggish.AudioSetPostprocessor(torch.from_numpy(eig), torch.from_numpy(means))
    out = post(torch.from_numpy(emb)).numpy()
    assert out.dtype == np.uint8
    # float32 here vs float64 there may land on either side of a step edge
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    assert (out == expected).mean() > 0.99
    assert (np.clip(pca, -2, 2) == 2).any() and out.max() == 255


def test_dequantize_inverts_quantize_within_one_step() -> None:
    x = torch.linspace(-2, 2, 1001)
    back = segment_table.dequantize(segment_table.quantize(x))
    assert (back <= x + 1e-6).all() and (x - back).max() <= 4 / 255 + 1e-6  # truncation
    assert segment_table.quantize(torch.tensor([1.999])).item() == 254  # not rounded up to 255
    u8 = np.array([0, 255, 128], dtype=np.uint8)
    np.testing.assert_allclose(
        segment_table.dequantize(u8), [-2.0, 2.0, 128 * 4 / 255 - 2], atol=1e-6
    )
    assert segment_table.dequantize(u8).dtype == np.float32


def test_embedder_output_formats(random_network) -> None:
    wave = torch.from_numpy(mixed_clip(2.0, seed=2))[: 2 * 16000].reshape(2, 16000)
    weights = vggish.LoadedWeights(
        random_network.state_dict(),
        (torch.eye(128), torch.zeros(128, 1)),
        "official",
        "official",
        "x",
    )
    outputs = {}
    for mode in vggish.POSTPROCESS_MODES:
        emb = vggish.build_embedder(weights, seed=0, postprocess=mode)
        with torch.inference_mode():
            outputs[mode] = emb(wave)
        assert outputs[mode].shape == (2, 128)
    assert outputs["quantized"].dtype == torch.uint8
    torch.testing.assert_close(outputs["pca"], outputs["none"].clamp(-2, 2))
    torch.testing.assert_close(
        segment_table.dequantize(outputs["quantized"]), outputs["pca"], atol=4 / 255, rtol=0
    )


# --------------------------------------------------------------------------------------------
# Weights files are never unpickled with the full unpickler
# --------------------------------------------------------------------------------------------
