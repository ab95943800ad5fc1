"""Audio in: decode, downmix, resample to 16 kHz, cut/pad to the clip, 1-s segments + validity.

Every way a file can be unusable is raised as one :class:`ClipFailure` with a stable ``reason``
code, so the featurize driver can skip the clip and report it instead of stopping a long run.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from zeroshot_audio import storage
from zeroshot_audio.audio.vggish_params import EXAMPLE_SAMPLES, SAMPLE_RATE

TARGET_SAMPLE_RATE = SAMPLE_RATE

# resampy's ``kaiser_best`` filter, expressed in torchaudio's windowed-sinc resampler: 64 zero
# crossings, roll-off 0.9476 of Nyquist, Kaiser beta 14.77. The VGGish reference resamples with
# resampy's default (kaiser_best); these are the constants torchaudio documents for matching it.
KAISER_BEST = {
    "lowpass_filter_width": 64,
    "rolloff": 0.9475937167399596,
    "resampling_method": "sinc_interp_kaiser",
    "beta": 14.769656459379492,
}

# Stable failure codes (they end up as keys in featurize_report and as MLflow metric names).
MISSING_FILE = "missing_file"
UNSUPPORTED_FORMAT = "unsupported_format"
DECODE_ERROR = "decode_error"
ZERO_LENGTH = "zero_length"
NON_FINITE = "non_finite"
TOO_SHORT = "too_short"
FAILURE_REASONS = (
    MISSING_FILE,
    UNSUPPORTED_FORMAT,
    DECODE_ERROR,
    ZERO_LENGTH,
    NON_FINITE,
    TOO_SHORT,
)

_FFMPEG_HINT = (
    "soundfile (libsndfile) reads WAV, FLAC, OGG/Vorbis/Opus and MP3; other containers (m4a, "
    "webm, mp4, aac ...) need FFmpeg and torchcodec: install FFmpeg (e.g. `apt-get install "
    "ffmpeg`) and `pip install torchcodec`, or convert the files first (e.g. `ffmpeg -i IN.m4a "
    "-ac 1 -ar 16000 OUT.flac`)."
)


class ClipFailure(Exception):
    """A clip that cannot be featurised; ``reason`` is one of :data:`FAILURE_REASONS`."""

    def __init__(self, reason: str, path: str | Path, detail: str) -> None:
        super().__init__(f"{path}: {reason}: {detail}")
        self.reason = reason
        self.path = str(path)
        self.detail = detail

    def __reduce__(self) -> tuple:  # crosses process boundaries (decode processes, Dask)
        return (type(self), (self.reason, self.path, self.detail))


@dataclass(frozen=True)
class SegmentLayout:
    """How a clip is cut: ``n_segments`` segments of ``segment_s`` seconds, one VGGish example
    (``example_samples`` long, 0.96 s) taken at the start of each segment.

    A segment is valid when real (not padded) audio covers at least ``min_coverage`` of its
    example window; only valid segments are embedded, the rest are masked.

    Short sounds: a clip (or predict window) with less real audio than that, but at least
    ``min_sound_s`` seconds, gets ONE valid segment whose example is the sound followed by zeros
    (a gunshot, a beep). Its real share of the example is its ``coverage`` (< 1), reported beside
    it. Clips of at least one example are untouched by this rule.
    """

    n_segments: int = 10
    segment_s: float = 1.0
    example_samples: int = EXAMPLE_SAMPLES
    min_coverage: float = 1.0
    sample_rate: int = TARGET_SAMPLE_RATE
    min_sound_s: float = 0.1

    def __post_init__(self) -> None:
        if self.n_segments < 1:
            raise ValueError(f"n_segments must be >= 1, got {self.n_segments}")
        if self.segment_samples < self.example_samples:
            raise ValueError(
                f"segment_s={self.segment_s} s is shorter than one VGGish example "
                f"({self.example_samples / self.sample_rate:.3f} s)"
            )
        if not 0.0 < self.min_coverage <= 1.0:
            raise ValueError(f"min_coverage must be in (0, 1], got {self.min_coverage}")
        if not self.min_sound_s > 0:
            raise ValueError(f"min_sound_s must be > 0 s, got {self.min_sound_s}")

    @property
    def segment_samples(self) -> int:
        return round(self.segment_s * self.sample_rate)

    @property
    def total_samples(self) -> int:
        return self.n_segments * self.segment_samples

    @property
    def min_sound_samples(self) -> int:
        return max(1, math.ceil(self.min_sound_s * self.sample_rate))

    def n_valid_segments(self, n_real_samples: int) -> int:
        """Number of leading segments whose example window holds enough real audio; a sound
        shorter than that but of at least ``min_sound_s`` gets one zero-padded segment."""
        needed = math.ceil(self.min_coverage * self.example_samples)
        if n_real_samples < needed:
            return 1 if n_real_samples >= self.min_sound_samples else 0
        return min(self.n_segments, (n_real_samples - needed) // self.segment_samples + 1)

    def is_padded_short_sound(self, n_real_samples: int) -> bool:
        """True when the only valid segment is a short sound plus zeros."""
        needed = math.ceil(self.min_coverage * self.example_samples)
        return self.min_sound_samples <= n_real_samples < needed

    def coverage(self, n_real_samples: int) -> np.ndarray:
        """``[n_segments]``: the share of each segment's example window holding real audio
        (0 on masked segments; below 1 only on a zero-padded short sound)."""
        starts = np.arange(self.n_segments) * self.segment_samples
        share = np.clip((n_real_samples - starts) / self.example_samples, 0.0, 1.0)
        share[self.n_valid_segments(n_real_samples) :] = 0.0
        return share.astype(np.float32)

    def too_short_detail(self, n_real_samples: int) -> str:
        """Why a sound gives no segment, for the ``too_short`` failure."""
        return (
            f"{n_real_samples / self.sample_rate:.3f} s of audio, less than the shortest sound "
            f"accepted (min_sound_s = {self.min_sound_s} s)"
        )


def decode(
    path: str | Path, start_s: float | None = None, end_s: float | None = None
) -> tuple[np.ndarray, int]:
    """Decode ``path`` (optionally only [start_s, end_s)) to float32 ``[frames, channels]``.

    soundfile first (WAV, FLAC, OGG, MP3 with libsndfile >= 1.1); any other container goes
    through torchaudio's torchcodec/FFmpeg backend when installed, else a clear
    ``unsupported_format`` failure that says how to enable it.
    """
    local = storage.local_path(path)
    if not storage.exists(path):
        raise ClipFailure(MISSING_FILE, path, "no such file")
    if storage.size(path) == 0:
        raise ClipFailure(ZERO_LENGTH, path, "empty file (0 bytes)")
    try:
        # A remote file (any fsspec URL) is read through a seekable file object: only the
        # clip's byte ranges travel.
        with (
            (
                contextlib.nullcontext(local) if local is not None else storage.open_input(path)
            ) as source,
            sf.SoundFile(source) as f,
        ):
            sr = f.samplerate
            start = 0 if start_s is None else max(0, round(start_s * sr))
            stop = -1 if end_s is None else max(start, round(end_s * sr))
            if start:
                f.seek(min(start, f.frames))
            frames = -1 if stop < 0 else stop - start
            data = f.read(frames=frames, dtype="float32", always_2d=True)
        return data, sr
    except sf.LibsndfileError as err:
        sf_error = err
    except (RuntimeError, ValueError) as err:  # seek/read failures inside a recognised file
        raise ClipFailure(DECODE_ERROR, path, f"soundfile: {err}") from err
    suffix = PurePosixPath(str(path)).suffix
    if suffix.lstrip(".").upper() in sf.available_formats():
        raise ClipFailure(DECODE_ERROR, path, f"soundfile: {sf_error}") from sf_error
    return _decode_with_torchcodec(path, start_s, end_s, sf_error)


def _decode_with_torchcodec(
    path: str | Path, start_s: float | None, end_s: float | None, sf_error: Exception
) -> tuple[np.ndarray, int]:
    try:
        import torchcodec  # noqa: F401  (probe: torchaudio.load needs it and FFmpeg)
    except (ImportError, OSError, RuntimeError) as err:
        raise ClipFailure(
            UNSUPPORTED_FORMAT, path, f"soundfile cannot read it ({sf_error}); {_FFMPEG_HINT}"
        ) from err
    import torchaudio

    try:
        local = storage.local_path(path)
        if local is not None:
            wave, sr = torchaudio.load(str(local), channels_first=False)
        else:  # FFmpeg reads a local copy of a remote file
            suffix = PurePosixPath(str(path)).suffix
            with tempfile.NamedTemporaryFile(suffix=suffix) as copy:
                with storage.open_input(path) as remote:
                    shutil.copyfileobj(remote, copy)
                copy.flush()
                wave, sr = torchaudio.load(copy.name, channels_first=False)
    except Exception as err:  # FFmpeg's errors are not typed
        raise ClipFailure(DECODE_ERROR, path, f"torchcodec/FFmpeg: {err}") from err
    data = wave.numpy().astype(np.float32, copy=False)
    start = 0 if start_s is None else max(0, round(start_s * sr))
    stop = len(data) if end_s is None else max(start, round(end_s * sr))
    return data[start:stop], sr


def check_decoded(data: np.ndarray, path: str | Path) -> None:
    """The checks every decoded file passes before use (featurize and predict alike)."""
    if data.shape[0] == 0:
        raise ClipFailure(ZERO_LENGTH, path, "decoded 0 samples")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise ClipFailure(NON_FINITE, path, f"{bad} NaN/inf samples")


def load_file(path: str | Path) -> tuple[np.ndarray, int, float]:
    """A whole file as 16-kHz mono float32, its original rate and its duration in seconds
    (predict's input); raises :class:`ClipFailure` like :func:`load_clip`."""
    data, sr = decode(path)
    check_decoded(data, path)
    return resample(to_mono(data), sr), sr, data.shape[0] / sr


def to_mono(data: np.ndarray) -> np.ndarray:
    """Average the channels (the VGGish reference downmixes by mean)."""
    return data.mean(axis=1, dtype=np.float32) if data.ndim == 2 else data.astype(np.float32)


def resample(waveform: np.ndarray, orig_sr: int, target_sr: int = TARGET_SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling with resampy's kaiser_best filter (via torchaudio)."""
    if orig_sr == target_sr:
        return waveform
    out = AF.resample(
        torch.from_numpy(np.ascontiguousarray(waveform)), orig_sr, target_sr, **KAISER_BEST
    )
    return out.numpy()


def fit_length(waveform: np.ndarray, n_samples: int) -> tuple[np.ndarray, int]:
    """Cut or zero-pad to ``n_samples``; also return how many samples are real audio."""
    n_real = min(len(waveform), n_samples)
    out = np.zeros(n_samples, dtype=np.float32)
    out[:n_real] = waveform[:n_real]
    return out, n_real


@dataclass(frozen=True)
class ClipAudio:
    """A clip ready for the frontend: 16-kHz mono ``waveform`` of ``layout.total_samples``."""

    waveform: np.ndarray
    n_real_samples: int
    n_valid_segments: int

    def example_windows(self, layout: SegmentLayout) -> np.ndarray:
        """``[n_valid_segments, example_samples]`` views, one 0.96-s example per valid segment."""
        segments = self.waveform.reshape(layout.n_segments, layout.segment_samples)
        return segments[: self.n_valid_segments, : layout.example_samples]


def load_clip(
    path: str | Path,
    start_s: float,
    end_s: float,
    layout: SegmentLayout,
    file_is_full_recording: bool = False,
) -> ClipAudio:
    """Decode one clip to the layout; raise :class:`ClipFailure` for anything unusable.

    ``file_is_full_recording``: the file holds the whole recording and the clip is its
    [start_s, end_s) span (e.g. a full YouTube soundtrack); otherwise the file *is* the clip.
    The clip is cut or zero-padded to ``end_s - start_s`` (and to the layout's length).
    """
    clip_s = end_s - start_s
    if not math.isfinite(clip_s) or clip_s <= 0:
        raise ClipFailure(ZERO_LENGTH, path, f"metadata gives end_s - start_s = {clip_s}")
    if file_is_full_recording:
        data, sr = decode(path, start_s, end_s)
    else:
        data, sr = decode(path, 0.0, clip_s)
    check_decoded(data, path)
    mono = resample(to_mono(data), sr)
    target = min(layout.total_samples, round(clip_s * layout.sample_rate))
    waveform, n_real = fit_length(mono, layout.total_samples)
    n_real = min(n_real, target)
    waveform[n_real:] = 0.0
    n_valid = layout.n_valid_segments(n_real)
    if n_valid == 0:
        raise ClipFailure(TOO_SHORT, path, layout.too_short_detail(n_real))
    return ClipAudio(waveform=waveform, n_real_samples=n_real, n_valid_segments=n_valid)


def format_audio_path(
    audio_root: str | Path, pattern: str, ytid: str, start_s: float, end_s: float
) -> str:
    """Fill ``pattern``'s placeholders: {ytid}, {start_s} ("30.000"), {end_s}, {start_ms}, {end_ms}."""
    fields = {
        "ytid": ytid,
        "start_s": f"{start_s:.3f}",
        "end_s": f"{end_s:.3f}",
        "start_ms": round(start_s * 1000),
        "end_ms": round(end_s * 1000),
    }
    try:
        name = pattern.format(**fields)
    except KeyError as err:
        raise ValueError(
            f"filename_pattern {pattern!r} uses unknown placeholder {err}; known: {sorted(fields)}"
        ) from err
    return storage.join(audio_root, name)  # a local path or an fsspec URL
