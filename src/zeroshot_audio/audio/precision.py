"""The arithmetic VGGish runs in (``featurize.precision``), and the yardstick that decides it.

Modes:

- ``fp32``: today's path, exact (float64 log-mel frontend, float32 network in channels_last).
- ``bf16``: the network's weights and activations in bfloat16 (oneDNN AVX512-BF16/AMX on CPU,
  tensor cores on CUDA); the log-mel frontend stays float64 -> float32 because the log of weak
  mel bands is precision-sensitive and the frontend costs ~1 % of the time. Numerically the same
  as ``torch.autocast(dtype=bfloat16)`` around the network (bit for bit on CPU), but the weights
  are cast once instead of on every call (autocast re-casts the 67M fully connected weights per
  batch: measured ~30 % slower on CPU).
- ``auto``: the fastest mode that is native on the device AND meets the error bound.

The error bound (the AudioSet release is the yardstick): embeddings are whitened, clipped to
[-2, 2] and stored as uint8 with a step of 4/255. A reduced-precision mode is within bound when,
against fp32 on real clips, fewer than ``MAX_FRACTION_DIFFERENT`` of the stored bytes change and
none by more than ``MAX_STEPS`` steps (:func:`byte_difference`). Note that an error "well below
half a step" is not enough: a byte flips whenever the error crosses a step boundary, so the
fraction of changed bytes is about mean|error| / step, and < 1 % needs errors < 1 % of a step.

Measured on 16 bundled clips with seeded random weights (tests/audio/test_precision.py re-measures
it on every run, benchmarks/bench_featurize.py prints it): two fp32 kernels (NCHW vs
channels_last) differ in 0.03 % of bytes, max 1 step; bf16 changes ~70 % of the bytes, up to ~9
steps (its 8-bit mantissa gives ~0.5 % relative error per layer); int8 (torch.ao static
post-training quantisation, x86/oneDNN VNNI, calibrated on the same clips) ~90 %, up to ~50
steps. So only fp32 is within bound, ``auto`` resolves to fp32, int8 is not offered, and bf16 is
an explicit opt-in for users who accept the error for ~1.5-2x speed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from zeroshot_audio.contracts.segment_table import quantize

logger = logging.getLogger(__name__)

#: What ``featurize.precision`` / ``predict.precision`` accept.
PRECISIONS = ("auto", "fp32", "bf16")
#: Concrete modes, fastest first, and their compute dtypes.
SPEED_ORDER = ("bf16", "fp32")
COMPUTE_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
#: Modes measured to meet the bound (kept honest by tests/audio/test_precision.py).
WITHIN_BOUND = frozenset({"fp32"})
#: Modes measured and rejected, with why (asking for one is an error that says so).
REJECTED = {
    "int8": "measured with torch.ao static quantisation (x86/oneDNN VNNI): ~3x faster than fp32 "
    "but ~90 % of the AudioSet bytes change, up to ~50 steps (bound: < 1 %, <= 1 step); "
    "see docs/scaling.md",
}
#: The bound on the AudioSet uint8 bytes, fp32 vs the mode.
MAX_FRACTION_DIFFERENT = 0.01
MAX_STEPS = 1


def check_precision(requested: str) -> str:
    """``requested`` if it is a known mode; else a ValueError naming the choices (and, for a
    measured and rejected mode, why it was rejected)."""
    if requested in REJECTED:
        raise ValueError(f"precision {requested!r} is not offered: {REJECTED[requested]}")
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    return requested


def native_bf16(device: torch.device | str) -> str | None:
    """Why bf16 is native on ``device`` (a short reason), or None when it would be emulated."""
    device = torch.device(device)
    if device.type == "cuda":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False):
            return f"CUDA {torch.cuda.get_device_name(device)} has bf16 tensor cores"
        return None
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        if torch.cpu._is_amx_tile_supported():
            return "CPU has AMX tiles (amx_bf16)"
        if torch.cpu._is_avx512_bf16_supported():
            return "CPU has AVX512-BF16"
    return None


def resolve_precision(
    requested: str,
    device: torch.device | str,
    within_bound: frozenset[str] = WITHIN_BOUND,
) -> str:
    """The concrete mode to run: ``requested`` itself, or for ``auto`` the fastest mode that is
    native on ``device`` and in ``within_bound``. Logs what was chosen and why."""
    check_precision(requested)
    device = torch.device(device)
    if requested != "auto":
        if requested != "fp32" and requested not in within_bound:
            logger.warning(
                "precision %s requested on %s: OUTSIDE the error bound (fp32 vs %s changes more "
                "than %.0f %% of the AudioSet bytes or some by more than %d step); embeddings "
                "differ from the exact fp32 ones",
                requested,
                device,
                requested,
                100 * MAX_FRACTION_DIFFERENT,
                MAX_STEPS,
            )
        if requested == "bf16" and native_bf16(device) is None:
            logger.warning("precision bf16 on %s: no native bf16 here, it will be slow", device)
        logger.info("precision: %s (requested explicitly)", requested)
        return requested
    skipped = []
    for mode in SPEED_ORDER:
        if mode == "fp32":
            break
        native = native_bf16(device) if mode == "bf16" else None
        if native is None:
            skipped.append(f"{mode} is not native on {device}")
        elif mode not in within_bound:
            skipped.append(f"{mode} is native ({native}) but outside the error bound")
        else:
            logger.info(
                "precision auto -> %s on %s: %s and within the error bound", mode, device, native
            )
            return mode
    logger.info("precision auto -> fp32 on %s (exact): %s", device, "; ".join(skipped))
    return "fp32"


# --------------------------------------------------------------------------------------------
# The yardstick
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ByteDifference:
    """How a mode's embeddings compare with fp32's once stored as AudioSet uint8 bytes."""

    fraction_different: float  # of all stored bytes
    max_steps: int  # largest |byte difference|
    relative_error: float  # ||candidate - reference|| / ||reference|| before post-processing
    mean_error_steps: float  # mean |error| in quantisation steps, after the stand-in whitening

    @property
    def within_bound(self) -> bool:
        return self.fraction_different < MAX_FRACTION_DIFFERENT and self.max_steps <= MAX_STEPS

    def as_dict(self) -> dict[str, Any]:
        return {
            "fraction_different": self.fraction_different,
            "max_steps": self.max_steps,
            "relative_error": self.relative_error,
            "mean_error_steps": self.mean_error_steps,
            "within_bound": self.within_bound,
        }


def byte_difference(
    reference: np.ndarray | torch.Tensor,
    candidate: np.ndarray | torch.Tensor,
    pca: tuple[np.ndarray, np.ndarray] | None = None,
) -> ByteDifference:
    """Compare raw ``[N, 128]`` embeddings after the AudioSet post-processing.

    ``pca``: the released ``(eigen_vectors [128, 128], means [128, 1])`` when the official
    weights are used. Without it (random weights, whose raw scale is nowhere near [-2, 2] and
    would be all clipped), the stand-in is a per-dimension standardisation with the REFERENCE's
    mean and std over the same examples: unit variance per dimension, as the release's whitening
    aims for, so ~5 % of values clip as in the release.
    """
    ref = torch.as_tensor(reference, dtype=torch.float64)
    cand = torch.as_tensor(candidate, dtype=torch.float64)
    if ref.shape != cand.shape or ref.ndim != 2:
        raise ValueError(f"need two [N, D] arrays of one shape, got {ref.shape} and {cand.shape}")
    if pca is not None:
        eig = torch.as_tensor(pca[0], dtype=torch.float64)
        means = torch.as_tensor(pca[1], dtype=torch.float64).reshape(1, -1)
        ref, cand = (ref - means) @ eig.T, (cand - means) @ eig.T
    else:
        if ref.shape[0] < 2:
            raise ValueError("the stand-in whitening needs at least 2 reference examples")
        mean, std = ref.mean(0), ref.std(0).clamp_min(1e-12)
        ref, cand = (ref - mean) / std, (cand - mean) / std
    steps = (quantize(ref).to(torch.int16) - quantize(cand).to(torch.int16)).abs()
    raw = torch.as_tensor(candidate, dtype=torch.float64) - torch.as_tensor(
        reference, dtype=torch.float64
    )
    return ByteDifference(
        fraction_different=float((steps > 0).double().mean()),
        max_steps=int(steps.max()) if steps.numel() else 0,
        relative_error=float(
            raw.norm() / torch.as_tensor(reference, dtype=torch.float64).norm().clamp_min(1e-30)
        ),
        mean_error_steps=float((cand - ref).abs().mean() / (4.0 / 255.0)),
    )


# --------------------------------------------------------------------------------------------
# Host -> device batches
# --------------------------------------------------------------------------------------------


class PinnedStaging:
    """A reusable page-locked host buffer, so a CUDA batch copy is asynchronous (a copy from
    ordinary pageable memory is synchronous) and no batch pays for a fresh pinned allocation.
    On CPU it is a plain ``torch.from_numpy`` (no copy)."""

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self._buffer: torch.Tensor | None = None

    def to_device(self, batch: np.ndarray) -> torch.Tensor:
        """``batch`` on the device. The staging buffer is reused by the next call: the caller
        must have consumed the result (e.g. copied the outputs back) before then, which a
        forward pass followed by ``.cpu()`` does."""
        host = torch.from_numpy(np.ascontiguousarray(batch))
        if self.device.type != "cuda":
            return host.to(self.device)
        if (
            self._buffer is None
            or self._buffer.numel() < host.numel()
            or (self._buffer.dtype != host.dtype)
        ):
            self._buffer = torch.empty(host.numel(), dtype=host.dtype).pin_memory()
        staged = self._buffer[: host.numel()].view(host.shape)
        staged.copy_(host)
        return staged.to(self.device, non_blocking=True)
