"""Real audio for the audio tests: sound events of the shared pack, committed in tests/fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from tests.fixtures import SOUNDS

SR = 16_000


def sounds_dir() -> Path:
    return SOUNDS


def read_sound(relative: str) -> np.ndarray:
    data, sr = sf.read(sounds_dir() / relative, dtype="float32")
    assert sr == SR
    return data


# A few varied real events: speech, an instrument, noise, a sweep, a desktop sound.
EVENTS = (
    "espeak_ng/female_01.flac",
    "espeak_ng/male_01.flac",
    "sox/white_noise_01.flac",
    "sox/chirp_100_4000hz.flac",
    "sox/sine_440hz.flac",
    "freedesktop/alarm-clock-elapsed.flac",
    "fluidr3_gm/cello_01.flac",
    "fluidr3_gm/bird_tweet_01.flac",
)


def available_events() -> list[str]:
    missing = [e for e in EVENTS if not (SOUNDS / e).is_file()]
    assert not missing, f"not in {SOUNDS} (see tests/fixtures/make_fixtures.py): {missing}"
    return list(EVENTS)


def mixed_clip(seconds: float, seed: int) -> np.ndarray:
    """``seconds`` of audio: real events placed one after another with small gaps."""
    rng = np.random.default_rng(seed)
    events = available_events()
    out = np.zeros(round(seconds * SR), dtype=np.float32)
    cursor = 0
    while cursor < len(out):
        event = read_sound(events[rng.integers(len(events))])
        take = min(len(event), len(out) - cursor)
        out[cursor : cursor + take] += 0.7 * event[:take]
        cursor += take + int(rng.integers(0, SR // 4))
    return out


def write_clips(folder: Path, seconds: list[float], fmt: str = "flac", seed: int = 0) -> list[str]:
    """Write one mixed real-audio clip per duration as ``clip<i>.<fmt>``; return the ytids."""
    folder.mkdir(parents=True, exist_ok=True)
    ytids = []
    for i, s in enumerate(seconds):
        ytid = f"clip{i:03d}"
        sf.write(folder / f"{ytid}.{fmt}", mixed_clip(s, seed + i), SR)
        ytids.append(ytid)
    return ytids
