"""Rendering a planned clip, encoding it as Ogg Vorbis with a reproducible stream serial."""

from __future__ import annotations

import io
import logging
import math
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from .constants import (
    CLIP_SAMPLES,
    DECODED_PEAK_LIMIT_DBFS,
    DEFAULT_COMPRESSION_LEVEL,
    DEFAULT_PEAK_LIMIT_DBFS,
    SAMPLE_RATE,
)
from .pack import ClipPlan

logger = logging.getLogger(__name__)


@dataclass
class RenderedClip:
    """A rendered clip: the recipe, the gain applied to the sum, and how the codec did."""

    plan: ClipPlan
    mix_gain_db: float
    codec_snr_db: float
    decoded_peak: float
    n_bytes: int


def db_to_gain(db: float) -> float:
    return 10.0 ** (db / 20.0)


def sum_events(plan: ClipPlan, audio: Mapping[str, np.ndarray]) -> np.ndarray:
    """The unscaled float64 sum of the clip's events at their onsets and gains."""
    mix = np.zeros(CLIP_SAMPLES, dtype=np.float64)
    for placement in plan.events:
        samples = audio[placement.event.file]
        start = placement.onset_sample
        if start < 0 or start + len(samples) > CLIP_SAMPLES:
            raise ValueError(f"{plan.ytid}: {placement.event.file} at {start} leaves the clip")
        mix[start : start + len(samples)] += db_to_gain(placement.gain_db) * samples
    return mix


def limiting_gain_db(peak: float, limit_dbfs: float) -> float:
    """Gain (<= 0 dB) bringing ``peak`` to at most ``limit_dbfs``, floored to 0.01 dB.

    Flooring keeps the peak at or below the limit with the rounded value, so the recorded
    gain reproduces the rendered audio exactly.
    """
    limit = db_to_gain(limit_dbfs)
    if peak <= limit:
        return 0.0
    return math.floor(100 * 20 * math.log10(limit / peak)) / 100


def render_clip(
    plan: ClipPlan,
    audio: Mapping[str, np.ndarray],
    peak_limit_dbfs: float = DEFAULT_PEAK_LIMIT_DBFS,
    mix_gain_db: float | None = None,
) -> tuple[np.ndarray, float]:
    """Sum the placed events and scale the whole clip down if its peak would exceed the limit.

    Returns the float32 mix and the gain applied to the sum (0.0 when none was needed). Pass
    ``mix_gain_db`` (e.g. from ``mixtures.csv``) to apply a recorded gain instead.
    """
    mix = sum_events(plan, audio)
    if mix_gain_db is None:
        mix_gain_db = limiting_gain_db(float(np.abs(mix).max()), peak_limit_dbfs)
    return (mix * db_to_gain(mix_gain_db)).astype(np.float32), mix_gain_db


def _ogg_crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
        table.append(crc & 0xFFFFFFFF)
    return table


_OGG_CRC_TABLE = _ogg_crc_table()


def _ogg_crc(data: bytes) -> int:
    """CRC-32 of an Ogg page (polynomial 0x04C11DB7, no reflection, zero init, no final xor)."""
    crc = 0
    table = _OGG_CRC_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ byte]
    return crc


def set_ogg_serial(data: bytes, serial: int) -> bytes:
    """Rewrite the stream serial number of every page of a single-stream Ogg file.

    libsndfile draws the serial at random, which makes otherwise identical encodes differ;
    a fixed serial makes the files reproducible. Each page's CRC is recomputed.
    """
    out = bytearray(data)
    position = 0
    while position < len(out):
        if out[position : position + 4] != b"OggS":
            raise ValueError(f"not an Ogg page at byte {position}")
        n_segments = out[position + 26]
        header_length = 27 + n_segments
        body_length = sum(out[position + 27 : position + header_length])
        end = position + header_length + body_length
        out[position + 14 : position + 18] = serial.to_bytes(4, "little")
        out[position + 22 : position + 26] = b"\0\0\0\0"
        crc = _ogg_crc(bytes(out[position:end]))
        out[position + 22 : position + 26] = crc.to_bytes(4, "little")
        position = end
    return bytes(out)


def encode_ogg_vorbis(mix: np.ndarray, serial: int, compression_level: float) -> bytes:
    """Encode 16 kHz mono float audio as Ogg Vorbis with a fixed stream serial."""
    buffer = io.BytesIO()
    sf.write(
        buffer,
        mix,
        SAMPLE_RATE,
        format="OGG",
        subtype="VORBIS",
        compression_level=compression_level,
    )
    return set_ogg_serial(buffer.getvalue(), serial)


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """Waveform signal-to-noise ratio of ``test`` against ``reference``."""
    reference = np.asarray(reference, dtype=np.float64)
    noise = np.sum((reference - np.asarray(test, dtype=np.float64)) ** 2)
    return float(10 * np.log10(np.sum(reference**2) / max(noise, 1e-30)))


def _ytid_serial(ytid: str) -> int:
    return zlib.crc32(ytid.encode("ascii"))


def _encode_within_limits(
    plan: ClipPlan,
    audio: Mapping[str, np.ndarray],
    compression_level: float,
    peak_limit_dbfs: float,
) -> tuple[np.ndarray, float, bytes, np.ndarray]:
    """Render and encode a clip whose mix and decoded audio both stay below their limits.

    Vorbis overshoots the peaks of some signals (square-ish hum, dense noise) by up to ~2 dB,
    so a decoder writing fixed point would clip; the whole clip is then lowered by the
    overshoot and encoded again.
    """
    raw = sum_events(plan, audio)
    mix_gain_db = limiting_gain_db(float(np.abs(raw).max()), peak_limit_dbfs)
    for _ in range(5):
        mix = (raw * db_to_gain(mix_gain_db)).astype(np.float32)
        data = encode_ogg_vorbis(mix, _ytid_serial(plan.ytid), compression_level)
        decoded, rate = sf.read(io.BytesIO(data), dtype="float32")
        if rate != SAMPLE_RATE or decoded.shape != (CLIP_SAMPLES,):
            raise RuntimeError(
                f"{plan.ytid}: Vorbis round trip gave {decoded.shape} at {rate} Hz, "
                f"expected ({CLIP_SAMPLES},) at {SAMPLE_RATE} Hz"
            )
        overshoot = limiting_gain_db(float(np.abs(decoded).max()), DECODED_PEAK_LIMIT_DBFS)
        if overshoot == 0.0:
            return mix, mix_gain_db, data, decoded
        mix_gain_db = round(mix_gain_db + overshoot, 2)
    raise RuntimeError(f"{plan.ytid}: decoded peak still above {DECODED_PEAK_LIMIT_DBFS} dBFS")


def render_and_write_audio(
    plans: Sequence[ClipPlan],
    audio: Mapping[str, np.ndarray],
    audio_dir: Path,
    *,
    compression_level: float = DEFAULT_COMPRESSION_LEVEL,
    peak_limit_dbfs: float = DEFAULT_PEAK_LIMIT_DBFS,
) -> list[RenderedClip]:
    """Render, encode and write every clip; each file is checked to decode to 160000 samples."""
    audio_dir.mkdir(parents=True, exist_ok=True)
    rendered = []
    started = time.perf_counter()
    for plan in tqdm(plans, desc="clips", unit="clip", disable=None):
        mix, mix_gain_db, data, decoded = _encode_within_limits(
            plan, audio, compression_level, peak_limit_dbfs
        )
        (audio_dir / f"{plan.ytid}.ogg").write_bytes(data)
        rendered.append(
            RenderedClip(
                plan=plan,
                mix_gain_db=mix_gain_db,
                codec_snr_db=snr_db(mix, decoded),
                decoded_peak=float(np.abs(decoded).max()),
                n_bytes=len(data),
            )
        )
    elapsed = time.perf_counter() - started
    logger.info(
        "rendered %d clips in %.1f s (%.1f clips/s, %.2f MB of audio)",
        len(rendered),
        elapsed,
        len(rendered) / max(elapsed, 1e-9),
        sum(c.n_bytes for c in rendered) / 1e6,
    )
    return rendered
