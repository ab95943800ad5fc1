"""The sounds pack and the AudioSet metadata as the generator reads them, and a clip's recipe."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .constants import CLIP_SAMPLES, SAMPLE_RATE, SAMPLES_PER_MS
from .licences import licence_spdx


@dataclass(frozen=True)
class SoundEvent:
    """One file of the sounds pack with its AudioSet labels (most specific first)."""

    file: str
    mids: tuple[str, ...]
    n_samples: int
    license: str

    @property
    def primary_mid(self) -> str:
        return self.mids[0]

    @property
    def spdx(self) -> str:
        return licence_spdx(self.license)


@dataclass(frozen=True)
class EventPlacement:
    """An event placed in a clip; ``onset_ms`` is whole milliseconds so CSV times are exact."""

    event: SoundEvent
    onset_ms: int
    gain_db: float

    @property
    def onset_sample(self) -> int:
        return self.onset_ms * SAMPLES_PER_MS

    @property
    def onset_s(self) -> float:
        return self.onset_ms / 1000

    @property
    def offset_s(self) -> float:
        return (self.onset_sample + self.event.n_samples) / SAMPLE_RATE


@dataclass(frozen=True)
class ClipPlan:
    """The recipe of one clip, before rendering."""

    ytid: str
    start_s: int
    events: tuple[EventPlacement, ...]

    @property
    def labels(self) -> set[str]:
        return {mid for placement in self.events for mid in placement.event.mids}

    @property
    def spdx_ids(self) -> list[str]:
        return sorted({placement.event.spdx for placement in self.events})


def read_manifest(sounds_dir: Path) -> list[SoundEvent]:
    """Read ``manifest.csv`` and check each file's audio header against the 16 kHz mono contract.

    Fails on the first bad row, naming the line: a broken pack must be fixed, not half-used.
    """
    sounds_dir = Path(sounds_dir)
    manifest_path = sounds_dir / "manifest.csv"
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"{manifest_path} not found: --sounds must be the sounds pack folder"
        )
    events: list[SoundEvent] = []
    with manifest_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"file", "mids", "duration_s", "license"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{manifest_path}: missing columns {sorted(missing)}")
        for row in reader:
            where = f"{manifest_path}, line {reader.line_num}"
            mids = tuple(m.strip() for m in row["mids"].split(";") if m.strip())
            if not mids or len(set(mids)) != len(mids):
                raise ValueError(f"{where}: mids {row['mids']!r} empty or repeated")
            path = sounds_dir / row["file"]
            if not path.is_file():
                raise FileNotFoundError(f"{where}: audio file {path} not found")
            info = sf.info(str(path))
            if info.samplerate != SAMPLE_RATE or info.channels != 1:
                raise ValueError(
                    f"{where}: {row['file']} is {info.samplerate} Hz x {info.channels} channels, "
                    f"expected {SAMPLE_RATE} Hz mono"
                )
            if not 0 < info.frames <= CLIP_SAMPLES:
                raise ValueError(
                    f"{where}: {row['file']} has {info.frames} samples, not 1..{CLIP_SAMPLES}"
                )
            licence_spdx(row["license"])  # fail here, not mid-run
            events.append(SoundEvent(row["file"], mids, int(info.frames), row["license"]))
    if not events:
        raise ValueError(f"{manifest_path} lists no events")
    return events


def load_event_audio(sounds_dir: Path, events: Iterable[SoundEvent]) -> dict[str, np.ndarray]:
    """Decode the events once (float64) so that rendering is a sum of array slices."""
    audio: dict[str, np.ndarray] = {}
    for event in events:
        if event.file in audio:
            continue
        samples, rate = sf.read(
            str(Path(sounds_dir) / event.file), dtype="float64", always_2d=False
        )
        if rate != SAMPLE_RATE or samples.ndim != 1 or len(samples) != event.n_samples:
            raise ValueError(
                f"{event.file}: decoded {samples.shape} at {rate} Hz, manifest header said "
                f"{event.n_samples} samples at {SAMPLE_RATE} Hz"
            )
        audio[event.file] = samples
    return audio


def read_class_index(audioset_dir: Path) -> list[tuple[int, str, str]]:
    """(index, mid, display_name) of the real ``class_labels_indices.csv``."""
    path = Path(audioset_dir) / "class_labels_indices.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        return [(int(r["index"]), r["mid"], r["display_name"]) for r in csv.DictReader(handle)]


def read_ontology(audioset_dir: Path) -> list[dict]:
    return json.loads((Path(audioset_dir) / "ontology.json").read_text(encoding="utf-8"))
