"""The bad-input battery's files: real sound events and awkward files made from them.

Each :class:`Case` is one file a user could hand to ``featurize`` or ``predict``, with the outcome
it must get: ``ACCEPTED`` (finite embeddings and scores) or the ``ClipFailure`` reason it must be
rejected with. The real audio is the committed excerpt of the shared sound pack
(``tests/fixtures/sounds``); the generated files are written from it with soundfile
(libsndfile here writes MP3 too, so the MP3 case is a real MPEG Layer III file, no encoder needed).
``tests/audio/test_bad_input.py`` runs them through featurize, ``tests/inference/test_bad_input.py``
through the predict API and the ``zeroshot-audio predict`` command.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from tests.audio.sounds import SR, read_sound, sounds_dir
from zeroshot_audio.audio import io as audio_io

ACCEPTED = "accepted"


@dataclass(frozen=True)
class Case:
    id: str
    name: str  # the file name written (awkward on purpose for some cases)
    write: Callable[[Path], None]
    expect: str  # ACCEPTED or a failure reason of audio.io


def _copy(relative: str) -> Callable[[Path], None]:
    return lambda path: path.write_bytes((sounds_dir() / relative).read_bytes())


def _event(seconds: float, relative: str = "fluidr3_gm/cello_01.flac") -> np.ndarray:
    """The first ``seconds`` of a real event (looped if it is shorter)."""
    x = read_sound(relative)
    n = round(seconds * SR)
    return np.tile(x, -(-n // len(x)))[:n].astype(np.float32)


def _write(audio: np.ndarray, sr: int = SR, **kwargs: Any) -> Callable[[Path], None]:
    return lambda path: sf.write(path, audio, sr, **kwargs)


def _stereo_48k_24bit(path: Path) -> None:
    left = audio_io.resample(_event(2.0), SR, 48_000)
    right = audio_io.resample(_event(2.0, "espeak_ng/female_01.flac"), SR, 48_000)
    sf.write(path, np.stack([left, right], axis=1), 48_000, subtype="PCM_24")


def _ulaw_8k(path: Path) -> None:
    sf.write(path, audio_io.resample(_event(2.0, "espeak_ng/male_01.flac"), SR, 8_000), 8_000,
             subtype="ULAW")  # fmt: skip


def _truncated_flac(path: Path) -> None:
    data = (sounds_dir() / "fluidr3_gm/cello_01.flac").read_bytes()
    path.write_bytes(data[: len(data) // 2])  # an interrupted download


def _truncated_wav(path: Path) -> None:
    sf.write(path, _event(2.0), SR)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header still says 2 s


def _with(value: float) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        x = _event(2.0)
        x[SR // 2 : SR // 2 + 10] = value
        sf.write(path, x, SR, subtype="FLOAT")

    return write


def _35_s(path: Path) -> None:
    parts = [read_sound(e) for e in ("espeak_ng/female_01.flac", "sox/pink_noise_01.flac",
                                     "fluidr3_gm/drum_kit_01.flac", "sox/chirp_100_4000hz.flac")]  # fmt: skip
    x = np.concatenate(parts)
    sf.write(path, np.tile(x, -(-35 * SR // len(x)))[: 35 * SR], SR)


CASES: tuple[Case, ...] = (
    # real events of the pack, as they are (the shortest ones included)
    Case("real_cello", "cello_01.flac", _copy("fluidr3_gm/cello_01.flac"), ACCEPTED),
    Case("real_gunshot", "gunshot_02.flac", _copy("fluidr3_gm/gunshot_02.flac"), ACCEPTED),
    Case("real_beep", "beep_1000hz_x1.flac", _copy("sox/beep_1000hz_x1.flac"), ACCEPTED),
    Case("real_speech", "female_02.flac", _copy("espeak_ng/female_02.flac"), ACCEPTED),
    # broken files
    Case("zero_byte", "zero_byte.wav", lambda p: p.write_bytes(b""), audio_io.ZERO_LENGTH),
    Case("truncated_flac", "truncated.flac", _truncated_flac, audio_io.DECODE_ERROR),
    Case(
        "text_named_wav",
        "notes.wav",
        lambda p: p.write_text("not audio, a shopping list\n"),
        audio_io.DECODE_ERROR,
    ),  # fmt: skip
    Case("header_only_wav", "no_frames.wav", _write(np.zeros(0, np.float32)), audio_io.ZERO_LENGTH),
    Case("truncated_wav", "truncated.wav", _truncated_wav, ACCEPTED),  # the frames that are there
    Case(
        "dangling_symlink",
        "moved away.wav",
        lambda p: p.symlink_to(p.parent / "gone.wav"),
        audio_io.MISSING_FILE,
    ),  # fmt: skip
    # other formats and rates
    Case("stereo_48k_24bit", "stereo_48k_24bit.wav", _stereo_48k_24bit, ACCEPTED),
    Case("ulaw_8k", "ulaw_8k.wav", _ulaw_8k, ACCEPTED),
    Case("mp3", "event.mp3", _write(_event(2.5), format="MP3"), ACCEPTED),
    Case("pcm_u8", "pcm_u8.wav", _write(_event(1.5), subtype="PCM_U8"), ACCEPTED),
    Case(
        "rate_192k",
        "rate_192k.flac",
        _write(audio_io.resample(_event(1.5), SR, 192_000), 192_000),
        ACCEPTED,
    ),  # fmt: skip
    Case("ogg_vorbis", "event.ogg", _write(_event(1.5), format="OGG", subtype="VORBIS"), ACCEPTED),
    # durations
    Case("one_sample", "one_sample.wav", _write(_event(1 / SR)), audio_io.TOO_SHORT),
    Case("event_0.05s", "event_0.05s.flac", _write(_event(0.05)), audio_io.TOO_SHORT),
    Case("event_0.1s", "event_0.1s.flac", _write(_event(0.1)), ACCEPTED),
    Case(
        "event_0.3s",
        "event_0.3s.flac",
        _write(_event(0.3, "fluidr3_gm/snare_drum_01.flac")),
        ACCEPTED,
    ),  # fmt: skip
    Case("event_0.5s", "event_0.5s.wav", _write(_event(0.5, "sox/beep_1000hz_x1.flac")), ACCEPTED),
    Case("event_0.9s", "event_0.9s.flac", _write(_event(0.9, "espeak_ng/male_02.flac")), ACCEPTED),
    Case("long_35s", "long_35s.flac", _35_s, ACCEPTED),
    # sample values
    Case("digital_silence", "silence.wav", _write(np.zeros(3 * SR, np.float32)), ACCEPTED),
    Case("nan_samples", "nan_samples.wav", _with(np.nan), audio_io.NON_FINITE),
    Case("inf_samples", "inf_samples.wav", _with(np.inf), audio_io.NON_FINITE),
    Case("huge_float", "huge.wav", _write(1e30 * _event(2.0), subtype="FLOAT"), ACCEPTED),
    Case("clipped_float", "loud.wav", _write(8.0 * _event(2.0), subtype="FLOAT"), ACCEPTED),
    # awkward names
    Case(
        "name_spaces_unicode_brackets",
        "my take [2] – café 鳥 (final).flac",
        _copy("fluidr3_gm/flute_01.flac"),
        ACCEPTED,
    ),  # fmt: skip
    Case(
        "name_leading_dash",
        "-rf dash.wav",
        _write(_event(1.5, "sox/chirp_100_4000hz.flac")),
        ACCEPTED,
    ),  # fmt: skip
)


def write_cases(folder: Path, cases: tuple[Case, ...] = CASES) -> dict[str, Path]:
    """Write every case into ``folder``; return ``{case id: path}``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for case in cases:
        path = folder / case.name
        case.write(path)
        paths[case.id] = path
    assert len({p.name for p in paths.values()}) == len(paths), "case file names must differ"
    return paths


def within(seconds: float, function: Callable[[], Any]) -> Any:
    """``function()``, failing the test if it has not returned after ``seconds`` (a hang)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = function()
        except BaseException as err:  # re-raised in the test's thread
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s: a hang"
    if "error" in box:
        raise box["error"]
    return box["value"]
