"""Precision modes of the VGGish embedder and the error bound that decides ``auto``.

The bound is measured here, on every run, on real audio: the first 8 clips of the bundled
default dataset (data/01_raw/default/audio, in the repo, so this runs in a fresh clone), 80
examples, through a seeded RANDOM VGGish (the official weights are not available offline). With
random weights the raw embeddings are nowhere near the release's [-2, 2] range, so the stand-in
for the release's PCA whitening is a per-dimension standardisation with the fp32 reference's own
mean and std over the same examples (unit variance per dimension, ~5 % of values clipped, as in
the release); then clip to [-2, 2] and quantise to uint8 with the release's formula. A mode is
within bound when < 1 % of those bytes differ from fp32's and none by more than 1 step.

What it shows (and pins, so a change in the numerics cannot go unnoticed): two fp32 kernels
(NCHW vs channels_last) are within bound (~0.03 % of bytes, 1 step); bf16 is far outside it
(~70 % of bytes, several steps), so ``WITHIN_BOUND`` holds fp32 only and ``auto`` keeps fp32.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from zeroshot_audio.audio import precision, vggish
from zeroshot_audio.contracts.segment_table import QUANTIZE_STEP, quantize

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_AUDIO = REPO_ROOT / "data" / "01_raw" / "default" / "audio"
N_CLIPS = 8


def bundled_examples(n_clips: int = N_CLIPS) -> torch.Tensor:
    """``[10 * n_clips, 15600]``: the 0.96-s example of every 1-s segment of real 10-s clips."""
    files = sorted(BUNDLED_AUDIO.glob("*.ogg"))[:n_clips]
    assert len(files) == n_clips, f"the bundled clips are missing from {BUNDLED_AUDIO}"
    examples = []
    for f in files:
        wave, sr = sf.read(f, dtype="float32")
        assert sr == 16_000 and wave.ndim == 1, f
        wave = np.pad(wave, (0, max(0, 160_000 - len(wave))))[:160_000]
        examples.append(wave.reshape(10, 16_000)[:, : vggish.EXAMPLE_SAMPLES])
    return torch.from_numpy(np.concatenate(examples))


@pytest.fixture(scope="module")
def weights() -> vggish.LoadedWeights:
    return vggish.LoadedWeights(None, None, "random", "unused", "random:0")


@pytest.fixture(scope="module")
def examples() -> torch.Tensor:
    return bundled_examples()


@pytest.fixture(scope="module")
def reference(weights, examples) -> torch.Tensor:
    with torch.inference_mode():
        return vggish.build_embedder(weights, seed=0, precision="fp32")(examples)


# --------------------------------------------------------------------------------------------
# Choosing the mode
# --------------------------------------------------------------------------------------------


def test_unknown_and_rejected_modes_fail_with_the_reason() -> None:
    with pytest.raises(ValueError, match="one of"):
        precision.check_precision("fp16")
    with pytest.raises(ValueError, match="int8.*not offered.*bytes change"):
        precision.resolve_precision("int8", "cpu")


def test_auto_picks_the_fastest_native_mode_within_bound(monkeypatch, caplog) -> None:
    monkeypatch.setattr(precision, "native_bf16", lambda device: "test CPU has AVX512-BF16")
    with caplog.at_level(logging.INFO, logger=precision.__name__):
        assert precision.resolve_precision("auto", "cpu") == "fp32"  # measured: bf16 fails
    assert "auto -> fp32" in caplog.text and "outside the error bound" in caplog.text
    assert precision.resolve_precision("auto", "cpu", frozenset({"fp32", "bf16"})) == "bf16"

    monkeypatch.setattr(precision, "native_bf16", lambda device: None)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=precision.__name__):
        assert precision.resolve_precision("auto", "cpu", frozenset({"fp32", "bf16"})) == "fp32"
    assert "bf16 is not native" in caplog.text


def test_an_explicit_mode_outside_the_bound_runs_with_a_warning(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger=precision.__name__):
        assert precision.resolve_precision("bf16", "cpu") == "bf16"
    assert "OUTSIDE the error bound" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=precision.__name__):
        assert precision.resolve_precision("fp32", "cpu") == "fp32"
    assert caplog.text == ""


def test_native_bf16_matches_the_cpu_flags() -> None:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if not flags or not torch.backends.mkldnn.is_available():
        pytest.skip("no /proc/cpuinfo or no oneDNN")
    has_flag = " avx512_bf16" in flags or " amx_bf16" in flags
    assert (precision.native_bf16("cpu") is not None) == has_flag


# --------------------------------------------------------------------------------------------
# The yardstick
# --------------------------------------------------------------------------------------------


def test_byte_difference_counts_changed_bytes_and_steps() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(3.0, 0.5, size=(400, 128))
    std = ref.std(0, ddof=1)
    same = precision.byte_difference(ref, ref.copy())
    assert same.fraction_different == 0 and same.max_steps == 0 and same.within_bound

    # Column 0 moved by 1 step (in whitened units): its unclipped bytes move by exactly 1.
    one_step = ref.copy()
    one_step[:, 0] += 1.0001 * QUANTIZE_STEP * std[0]
    moved = precision.byte_difference(ref, one_step)
    assert moved.max_steps == 1
    assert 0.8 / 128 < moved.fraction_different <= 1 / 128  # ~5 % of values sit clipped
    assert moved.within_bound  # < 1 % and <= 1 step
    assert moved.mean_error_steps == pytest.approx(1.0001 / 128, rel=1e-3)

    two_steps = ref.copy()
    two_steps[:, 0] += 2.0001 * QUANTIZE_STEP * std[0]
    assert precision.byte_difference(ref, two_steps).max_steps == 2
    assert not precision.byte_difference(ref, two_steps).within_bound

    # Identity PCA on values already in range compares them as they are.
    in_range = rng.uniform(-1.5, 1.5, size=(10, 128))
    shifted = in_range + 0.5 * QUANTIZE_STEP
    pca = (np.eye(128), np.zeros((128, 1)))
    assert 0.3 < precision.byte_difference(in_range, shifted, pca).fraction_different < 0.7


# --------------------------------------------------------------------------------------------
# The embedder in each mode, and the bound measured on real clips
# --------------------------------------------------------------------------------------------


def test_fp32_mode_is_todays_exact_path(weights, examples, reference) -> None:
    embedder = vggish.build_embedder(weights, seed=0)
    assert embedder.precision == "fp32"
    network = vggish.build_network(weights, seed=0, final_relu=False).eval()
    network.features.to(memory_format=torch.channels_last)  # as before precision existed
    with torch.inference_mode():
        plain = network(embedder.frontend(examples).contiguous(memory_format=torch.channels_last))
    assert torch.equal(reference, plain)


def test_bf16_runs_the_network_only_in_bf16(weights, examples, reference) -> None:
    embedder = vggish.build_embedder(weights, seed=0, precision="bf16")
    assert {p.dtype for p in embedder.network.parameters()} == {torch.bfloat16}
    with torch.inference_mode():
        frontend = embedder.frontend(examples[:4])
        out = embedder(examples)
        # the same numbers as autocast around the fp32 model (weights cast once instead)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = vggish.build_embedder(weights, seed=0)(examples)
    assert frontend.dtype == torch.float32  # the log-mel frontend is not reduced
    assert out.dtype == torch.float32 and out.shape == reference.shape
    assert torch.equal(out, autocast.float())
    rel = float((out - reference).norm() / reference.norm())
    assert 1e-4 < rel < 3e-2  # reduced precision, not garbage


def test_measured_bound_matches_what_auto_may_choose(weights, examples, reference) -> None:
    """The table ``WITHIN_BOUND`` that ``auto`` trusts must agree with the measurement."""
    # Noise floor: the same fp32 model through NCHW instead of channels_last kernels.
    nchw = vggish.build_embedder(weights, seed=0, channels_last=False)
    bf16 = vggish.build_embedder(weights, seed=0, precision="bf16")
    with torch.inference_mode():
        floor = precision.byte_difference(reference, nchw(examples))
        measured = {"bf16": precision.byte_difference(reference, bf16(examples))}
    logging.getLogger(__name__).info("fp32 NCHW vs channels_last: %s", floor.as_dict())
    logging.getLogger(__name__).info("bf16 vs fp32: %s", measured["bf16"].as_dict())
    assert floor.within_bound and floor.max_steps <= 1
    for mode, diff in measured.items():
        assert diff.within_bound == (mode in precision.WITHIN_BOUND), (mode, diff)
    assert set(measured) | {"fp32"} == set(precision.SPEED_ORDER)


def test_pinned_staging_delivers_the_batch() -> None:
    batch = np.random.default_rng(0).normal(size=(3, 100)).astype(np.float32)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    staging = precision.PinnedStaging(device)
    for scale in (1.0, 2.0):  # the buffer is reused
        on_device = staging.to_device(scale * batch)
        assert on_device.device.type == device
        np.testing.assert_array_equal(on_device.cpu().numpy(), scale * batch)
    if device == "cuda":
        assert staging._buffer is not None and staging._buffer.is_pinned()


@pytest.mark.slow
def test_bf16_sized_byte_changes_leave_the_planted_f1_within_noise(weights, examples, reference):
    """A PROXY for bf16's effect on what is learnt (the planted-structure data are synthetic,
    not VGGish outputs): the signed byte changes bf16 makes on real clips are resampled onto the
    planted uint8 segments, and the temporal-attention model is trained on both versions."""
    from tests.model.planted import make_planted
    from zeroshot_audio.model.attention import ModelConfig, TemporalAttentionModel
    from zeroshot_audio.model.metrics import classification_metrics, tune_global_threshold
    from zeroshot_audio.model.training import (
        FitConfig,
        fit,
        make_clip_set,
        score_clips,
        segments_to_device,
    )

    bf16 = vggish.build_embedder(weights, seed=0, precision="bf16")
    with torch.inference_mode():
        measured = bf16(examples)
    mean, std = reference.mean(0), reference.std(0)
    steps = quantize((measured - mean) / std).int() - quantize((reference - mean) / std).int()
    steps = steps.flatten().numpy()
    assert (steps != 0).mean() > 0.5  # the bf16 change is real, not a no-op

    data = make_planted(
        seed=2, semantic_dim=5, classes_per_fold=12, clips_per_fold=200, background_scale=1.5,
        quantised=True,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    noisy = data.segments.astype(np.int32) + rng.choice(steps, size=data.segments.shape)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    f1 = {}
    try:
        for name, segs in (("fp32", data.segments), ("bf16", np.clip(noisy, 0, 255))):
            segments, n_valid = segments_to_device(
                segs.astype(np.uint8), data.n_valid, torch.device("cpu")
            )

            def clip_set(fold, segments=segments, n_valid=n_valid):
                rows, classes = data.clips_of([fold]), data.classes_of([fold])
                targets = data.targets[np.ix_(rows, classes)]
                emb = data.label_embeddings[classes]
                return make_clip_set(segments, n_valid, rows, targets, emb)

            train, validation, test = clip_set(0), clip_set(1), clip_set(2)
            torch.manual_seed(0)
            model = TemporalAttentionModel(ModelConfig(semantic_dim=5, joint_dim=64, gamma=0.5))
            fit_config = FitConfig(
                epochs=25, batch_size=32, learning_rate=3e-3, patience=6, show_progress=False
            )
            fit(model, train, validation, fit_config, seed=0)
            threshold, _ = tune_global_threshold(
                validation.targets.numpy(), score_clips(model, validation)["scores"]
            )
            scores = score_clips(model, test)["scores"]
            f1[name] = classification_metrics(test.targets.numpy(), scores >= threshold, scores)[
                "micro_f1"
            ]
    finally:
        torch.set_num_threads(threads)
    logging.getLogger(__name__).info("planted micro-F1: %s", f1)
    # Seed-to-seed spread of this F1 is ~0.05 (tests/model/test_planted_structure.py: 0.75-0.85)
    assert abs(f1["bf16"] - f1["fp32"]) < 0.05, f1
