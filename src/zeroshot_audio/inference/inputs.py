"""Predict's inputs: which files, which labels, and each file cut into windows of the training layout.

Decoding is featurize's (``audio.io.load_file``: soundfile, FFmpeg fallback, the same decode checks
and failure codes); a window is cut and padded exactly like a training clip
(``audio.io.SegmentLayout``), so the model sees new audio as it saw its training clips.
"""

from __future__ import annotations

import glob
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from zeroshot_audio.audio import io as audio_io
from zeroshot_audio.inference.config import AUDIO_EXTENSIONS, is_audioset_mid, parse_labels

# A listed path that does not exist is reported like a missing audio file; a failure that is not
# one of featurize's reasons (audio_io.FAILURE_REASONS) gets its own code.
MISSING_FILE = audio_io.MISSING_FILE
UNEXPECTED_ERROR = "unexpected_error"


@dataclass(frozen=True)
class FileFailure:
    file: str
    reason: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "reason": self.reason, "detail": self.detail}


def _not_a_file(path: Path) -> FileFailure:
    mode = path.stat().st_mode
    kind = "named pipe" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device"
    return FileFailure(
        str(path), audio_io.UNSUPPORTED_FORMAT, f"not a regular file but a {kind}; not read"
    )


def list_audio_files(
    sources: Sequence[str],
    extensions: Sequence[str] = AUDIO_EXTENSIONS,
    max_files: int | None = None,
) -> tuple[list[str], list[FileFailure]]:
    """Files to tag from folders (searched recursively for ``extensions``), files and globs.

    A source that matches nothing is reported as a failure rather than stopping the others.
    Order: sources in the given order, each one's files sorted; duplicates dropped. A path that
    exists is taken literally (``[take 2].wav`` is a file name, not a glob).
    """
    suffixes = {f".{e.lower().lstrip('.')}" for e in extensions}
    files: list[str] = []
    failures: list[FileFailure] = []
    for source in sources:
        path = Path(source).expanduser()
        if path.is_dir():
            # a dangling link is listed, so that it is reported (missing_file), not dropped
            found, n_failed = [], len(failures)
            for p in sorted(path.rglob("*")):
                if p.suffix.lower() not in suffixes or p.is_dir():
                    continue
                if p.is_file() or p.is_symlink():
                    found.append(str(p))
                else:  # a named pipe, socket or device: reading it could block forever
                    failures.append(_not_a_file(p))
            if not found and len(failures) == n_failed:
                failures.append(
                    FileFailure(
                        source,
                        MISSING_FILE,
                        f"folder has no audio file with extension {sorted(suffixes)}",
                    )
                )
        elif path.is_file():
            found = [str(path)]
        elif path.exists():
            found = []
            failures.append(_not_a_file(path))
        elif glob.has_magic(source):
            found = sorted(p for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
            if not found:
                failures.append(FileFailure(source, MISSING_FILE, "the pattern matches no file"))
        else:
            found = []
            failures.append(FileFailure(source, MISSING_FILE, "no such file or folder"))
        files.extend(found)
    files = list(dict.fromkeys(files))
    if max_files is not None:
        files = files[:max_files]
    return files, failures


def resolve_labels(
    labels: Sequence[str],
    label_embeddings: pd.DataFrame | None = None,
    train_classes: Iterable[str] = (),
) -> pd.DataFrame:
    """``label`` (as given), ``mid`` (None for free text), ``text`` (what gets embedded) and
    ``seen_in_training``.

    A mid takes the text its class was embedded from at training time; an unknown mid is an
    error naming it (free text is always accepted). A label is seen in training when it is one of
    ``train_classes`` (same mid, or the same text as a training class, case-insensitive): every
    other label is zero-shot.
    """
    texts: dict[str, str] = {}
    if label_embeddings is not None and len(label_embeddings):
        texts = dict(zip(label_embeddings["mid"].astype(str), label_embeddings["text"].astype(str)))
    rows = []
    unknown = []
    for label in parse_labels(list(labels)):
        if is_audioset_mid(label):
            if label not in texts:
                unknown.append(label)
                continue
            rows.append({"label": label, "mid": label, "text": texts[label]})
        else:
            rows.append({"label": label, "mid": None, "text": label})
    if unknown:
        raise ValueError(
            f"unknown AudioSet mid(s) {unknown}: not among the {len(texts)} classes of "
            "label_embeddings (run embed_labels on the class table that has them, or give the "
            "label as free text)"
        )
    table = pd.DataFrame(rows, columns=["label", "mid", "text"]).astype(object)
    table["mid"] = table["mid"].where(table["mid"].notna(), None)
    trained = set(train_classes)
    trained_texts = {texts[m].casefold() for m in trained if m in texts}
    table["seen_in_training"] = [
        (mid in trained) if mid is not None else (text.casefold() in trained_texts)
        for mid, text in zip(table["mid"], table["text"], strict=True)
    ]
    return table


@dataclass
class AudioWindows:
    """One file cut into windows of the training layout, with their segment embeddings."""

    path: str
    duration_s: float
    sample_rate: int  # of the file as decoded (before resampling to 16 kHz)
    window_start_s: np.ndarray  # [W]
    n_valid: np.ndarray  # [W] valid segments per window
    coverage: np.ndarray  # [W, T] share of each segment's example that is real audio, 0 if masked
    embeddings: np.ndarray  # [W, T, 128] float32 or uint8, zeros past n_valid
    envelope: dict[str, np.ndarray]  # time_s, low, high: min/max per bin, for figures

    @property
    def valid_mask(self) -> np.ndarray:
        t = np.arange(self.embeddings.shape[1])
        return t[None, :] < self.n_valid[:, None]


@dataclass
class CutFile:
    """A decoded file cut into windows, before embedding."""

    path: str
    duration_s: float
    sample_rate: int
    window_start_s: np.ndarray  # [W]
    clips: list[audio_io.ClipAudio]  # one per window, padded to the layout
    envelope: dict[str, np.ndarray]


def hop_samples(layout: audio_io.SegmentLayout, hop_s: float | None) -> int:
    """The window hop in samples; it must be a whole number of segments so that all windows
    share one segment grid (events then merge across windows)."""
    if hop_s is None:
        return layout.total_samples
    hop = round(hop_s * layout.sample_rate)
    if hop % layout.segment_samples or hop <= 0:
        raise ValueError(
            f"hop_s={hop_s} must be a positive multiple of the segment length "
            f"({layout.segment_s} s), so that windows share one segment grid"
        )
    return hop


def window_starts(n_samples: int, layout: audio_io.SegmentLayout, hop_samples: int) -> list[int]:
    """Start samples of the windows of a file: every hop, while a window still holds at least one
    valid segment (a last window shorter than the layout is masked, not padded with fake audio)."""
    starts = []
    start = 0
    while start < n_samples and layout.n_valid_segments(n_samples - start) > 0:
        starts.append(start)
        start += hop_samples
    return starts


def cut_file(path: str | Path, layout: audio_io.SegmentLayout, hop_s: float | None) -> CutFile:
    """Decode ``path`` and cut it into windows; ``ClipFailure`` for anything unusable."""
    waveform, sr, duration_s = audio_io.load_file(path)
    starts = window_starts(len(waveform), layout, hop_samples(layout, hop_s))
    if not starts:
        raise audio_io.ClipFailure(audio_io.TOO_SHORT, path, layout.too_short_detail(len(waveform)))
    clips = []
    for start in starts:
        piece, n_real = audio_io.fit_length(waveform[start:], layout.total_samples)
        valid = layout.n_valid_segments(n_real)
        clips.append(
            audio_io.ClipAudio(waveform=piece, n_real_samples=n_real, n_valid_segments=valid)
        )
    return CutFile(
        path=str(path),
        duration_s=float(duration_s),
        sample_rate=int(sr),
        window_start_s=np.asarray(starts, dtype=np.float64) / layout.sample_rate,
        clips=clips,
        envelope=envelope(waveform, layout.sample_rate),
    )


def envelope(waveform: np.ndarray, sample_rate: int, n_bins: int = 2000) -> dict[str, np.ndarray]:
    """Min/max per bin: what a waveform plot needs, at a fixed small size per file."""
    n_bins = max(1, min(n_bins, len(waveform)))
    edges = np.linspace(0, len(waveform), n_bins + 1).astype(np.int64)
    low = np.minimum.reduceat(waveform, edges[:-1])
    high = np.maximum.reduceat(waveform, edges[:-1])
    return {
        "time_s": (edges[:-1] / sample_rate).astype(np.float32),
        "low": low.astype(np.float32),
        "high": high.astype(np.float32),
    }
