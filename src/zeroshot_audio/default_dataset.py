"""Generator of the bundled default dataset: AudioSet-style 10-s clips mixed from the sounds pack.

Why it exists: ``kedro run`` on the base env must work on a fresh clone, offline, and real AudioSet
audio cannot be redistributed. So the default run uses clips mixed from the freely licensed,
AudioSet-labelled sound events of ``../shared/data/sounds`` and committed to
``data/01_raw/default/``, with metadata in the exact formats of the AudioSet release, so that the
same ingestion code reads the default data and a real AudioSet copy.

Each clip is 10 s of 16 kHz mono audio holding 1 to 3 events at random onsets (some overlap, some
sit in separate seconds), each at a random gain in dB, summed and, when the sum would peak above
-1 dBFS, scaled down as a whole (the applied gain is recorded). Its weak labels are the union of
the events' mids (which include the ancestor classes the pack assigns); its strong labels give
each event's mids with the event's onset and offset in the clip.

Files written to ``--out`` (the contract of the default data):

- ``segments.csv``: AudioSet segments format (three ``#`` header lines with true counts, ``, ``
  separators, 3-decimal times, quoted comma-separated mids), rows sorted by YTID.
- ``audio/{ytid}.ogg``: 160000 samples, 16 kHz, mono, Ogg Vorbis.
- ``strong_labels.csv``: ``clip, mid, onset_s, offset_s``, one row per (event, mid of the event).
- ``mixtures.csv``: the recipe, ``clip, event_file, onset_s, gain_db, mix_gain_db, license``
  (SPDX id of the event);
  ``mix = 10**(mix_gain_db/20) * sum(10**(gain_db/20) * event shifted to onset_s)`` exactly.
- ``clip_licenses.csv``: ``clip, licenses``: the SPDX ids of the material in each clip.
- ``class_labels_indices.csv``, ``ontology.json``: the real files restricted to the classes
  present, original indices and every ontology field kept, in the original layout.
- ``README.md``: what, how, counts, licences and attributions (``LICENSES/`` holds the texts and
  is not written by this script).

Reproducibility: every random choice comes from one ``numpy.random.Generator`` seeded by
``--seed``. libsndfile gives each Ogg stream a random serial number; it is rewritten to a value
derived from the YTID (page CRCs recomputed), so the same seed, sounds pack and libvorbis give
byte-identical files.

Run (from the repository root)::

    python -m zeroshot_audio.default_dataset --sounds ../shared/data/sounds \\
        --audioset ../shared/data/audioset --out data/01_raw/default --seed 2024 --n-clips 1260

Only numpy and soundfile (plus tqdm for the progress bar); no Kedro, so it runs anywhere.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import re
import shlex
import sys
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
CLIP_SECONDS = 10
CLIP_SAMPLES = SAMPLE_RATE * CLIP_SECONDS
SAMPLES_PER_MS = SAMPLE_RATE // 1000

DEFAULT_SEED = 2024
DEFAULT_N_CLIPS = 1260
DEFAULT_EVENTS_PER_CLIP = (0.4, 0.4, 0.2)
DEFAULT_GAIN_DB_RANGE = (-12.0, 0.0)
DEFAULT_CLASS_BALANCE = 0.5
DEFAULT_PEAK_LIMIT_DBFS = -1.0
# The decoded Vorbis audio must stay below full scale too (codec overshoot, see
# ``_encode_within_limits``); 0.1 dB of margin covers decoders that round differently.
DECODED_PEAK_LIMIT_DBFS = -0.1
# soundfile maps compression_level to Vorbis quality 1 - level; 1.0 is Vorbis q0, the smallest.
DEFAULT_COMPRESSION_LEVEL = 1.0
# Latest start (s) of the pretend source video; start_s is a multiple of 10 below it.
MAX_VIDEO_START_S = 300

# A fixed creation date keeps segments.csv byte-reproducible (the real files carry the date the
# release was made, in this ``time.asctime`` style).
SEGMENTS_CREATED = "Sun Sep  1 00:00:00 2024"
YTID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
YTID_LENGTH = 11

_SPDX_PATTERN = re.compile(
    r"CC0-1\.0|CC-BY-SA-\d\.\d|CC-BY-\d\.\d|GPL-\d\.\d-(?:or-later|only)|MIT"
)


def licence_spdx(license_text: str) -> str:
    """SPDX id of a manifest licence string (the pack states it in words around the id)."""
    match = _SPDX_PATTERN.search(license_text)
    if match is None:
        raise ValueError(f"no known SPDX licence id in {license_text!r}")
    return match.group(0)


def _licence_family(spdx: str) -> str:
    if spdx.startswith("GPL-"):
        return "GPL"
    if spdx.startswith("CC-BY"):
        return "CC-BY"
    return "permissive"


def licences_compatible(spdx_ids: Iterable[str]) -> bool:
    """Whether material under these licences may be mixed into one clip.

    A mix is a derivative work of every event in it. GPL material is never combined with CC BY /
    CC BY-SA 3.0 material: CC BY-SA 3.0 is not GPL-compatible and the compatibility of CC BY 3.0
    with the GPL is not established. MIT and CC0 combine with anything; GPL-2.0-or-later with
    GPL-3.0-or-later gives GPL-3.0-or-later.
    """
    families = {_licence_family(s) for s in spdx_ids}
    return not {"GPL", "CC-BY"} <= families


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


@dataclass
class RenderedClip:
    """A rendered clip: the recipe, the gain applied to the sum, and how the codec did."""

    plan: ClipPlan
    mix_gain_db: float
    codec_snr_db: float
    decoded_peak: float
    n_bytes: int


@dataclass
class DatasetSummary:
    """Counts and codec statistics of a written dataset (also printed into its README)."""

    n_clips: int
    n_classes: int
    n_positive_labels: int
    n_strong_rows: int
    events_per_clip: dict[int, int]
    n_events_used: int
    event_uses_min: int
    event_uses_max: int
    n_clips_scaled: int
    audio_bytes: int
    snr_db_median: float
    snr_db_p10: float
    snr_db_min: float
    decoded_peak_max: float
    clips_per_licence: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Reading the sounds pack and the AudioSet metadata
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------


def _event_quotas(
    events: Sequence[SoundEvent], total: int, class_balance: float, rng: np.random.Generator
) -> np.ndarray:
    """How many times each event is used: total occurrences split by weight, largest remainder.

    The weight of an event is ``n ** -class_balance`` where n is the number of events sharing
    its most specific class: 0 uses every event equally (classes with many files dominate, as
    speech does in the pack), 1 uses every class equally (single-file classes repeat the same
    recording many times). In between, both every event and every class recur.
    """
    per_class = Counter(e.primary_mid for e in events)
    weights = np.array([per_class[e.primary_mid] ** -class_balance for e in events], dtype=float)
    exact = total * weights / weights.sum()
    quotas = np.floor(exact).astype(int)
    remainder = exact - quotas
    # Largest remainders get the leftover uses; a random key breaks ties reproducibly.
    order = np.lexsort((rng.random(len(events)), -remainder))
    quotas[order[: total - quotas.sum()]] += 1
    return quotas


def _fits(candidate: SoundEvent, chosen: Sequence[SoundEvent]) -> bool:
    if any(candidate.primary_mid == other.primary_mid for other in chosen):
        return False
    return licences_compatible([candidate.spdx, *(other.spdx for other in chosen)])


def _deal(pool: list[int], sizes: Sequence[int], events: Sequence[SoundEvent]) -> list[list[int]]:
    """Cut the shuffled pool of event uses into clips, keeping every clip valid.

    Each slot takes the next pool entry that fits the clip (distinct most specific classes,
    compatible licences), swapping it forward. When nothing left fits (only near the end),
    the next entry is exchanged with an event of an earlier clip where both sides fit.
    """
    clips: list[list[int]] = []
    cursor = 0
    for clip_index, size in enumerate(sizes):
        chosen: list[int] = []
        for _ in range(size):
            current = [events[i] for i in chosen]
            pick = next(
                (j for j in range(cursor, len(pool)) if _fits(events[pool[j]], current)), None
            )
            if pick is not None:
                pool[cursor], pool[pick] = pool[pick], pool[cursor]
                chosen.append(pool[cursor])
                cursor += 1
                continue
            incoming = pool[cursor]
            for earlier in clips:
                swap = next(
                    (
                        slot
                        for slot, old in enumerate(earlier)
                        if _fits(events[old], current)
                        and _fits(events[incoming], [events[i] for i in earlier if i != old])
                    ),
                    None,
                )
                if swap is not None:
                    earlier[swap], pool[cursor] = incoming, earlier[swap]
                    chosen.append(pool[cursor])
                    cursor += 1
                    break
            else:
                raise RuntimeError(
                    f"cannot complete clip {clip_index}: no event fits it; the manifest has too "
                    "few distinct classes for the requested events per clip"
                )
        clips.append(chosen)
    return clips


def _draw_ytids(n: int, rng: np.random.Generator) -> list[str]:
    alphabet = np.array(list(YTID_ALPHABET))
    ytids: list[str] = []
    seen: set[str] = set()
    while len(ytids) < n:
        for row in rng.integers(0, len(alphabet), size=(n - len(ytids), YTID_LENGTH)):
            ytid = "".join(alphabet[row])
            if ytid not in seen:
                seen.add(ytid)
                ytids.append(ytid)
    return ytids


def plan_mixtures(
    events: Sequence[SoundEvent],
    n_clips: int,
    rng: np.random.Generator,
    *,
    events_per_clip: Sequence[float] = DEFAULT_EVENTS_PER_CLIP,
    gain_db_range: tuple[float, float] = DEFAULT_GAIN_DB_RANGE,
    class_balance: float = DEFAULT_CLASS_BALANCE,
) -> list[ClipPlan]:
    """Decide every clip: its YTID, start time, events, onsets and gains (no audio touched).

    ``events_per_clip[k]`` is the probability of k + 1 events. Event uses follow fixed quotas
    (see ``_event_quotas``) dealt in a random order, so usage is balanced exactly rather than
    only in expectation. Within a clip the most specific classes differ and licences are
    compatible (``licences_compatible``). Onsets are uniform in whole ms over
    [0, 10 s - duration], gains uniform in ``gain_db_range`` rounded to 0.01 dB (the recipe
    stores exactly what is rendered).
    """
    probs = np.asarray(events_per_clip, dtype=float)
    if n_clips < 1:
        raise ValueError(f"n_clips must be positive, got {n_clips}")
    if probs.ndim != 1 or (probs < 0).any() or not math.isclose(probs.sum(), 1.0):
        raise ValueError(
            f"events_per_clip must be probabilities summing to 1, got {events_per_clip}"
        )
    if gain_db_range[0] > gain_db_range[1]:
        raise ValueError(f"gain_db_range must be (low, high), got {gain_db_range}")
    sizes = rng.choice(np.arange(1, len(probs) + 1), size=n_clips, p=probs)
    quotas = _event_quotas(events, int(sizes.sum()), class_balance, rng)
    pool = rng.permutation(np.repeat(np.arange(len(events)), quotas)).tolist()
    dealt = _deal(pool, sizes.tolist(), events)
    ytids = _draw_ytids(n_clips, rng)
    starts = rng.integers(0, MAX_VIDEO_START_S // CLIP_SECONDS, size=n_clips) * CLIP_SECONDS
    plans = []
    for ytid, start, members in zip(ytids, starts, dealt, strict=True):
        placements = []
        for index in members:
            event = events[index]
            latest_onset_ms = (CLIP_SAMPLES - event.n_samples) // SAMPLES_PER_MS
            placements.append(
                EventPlacement(
                    event=event,
                    onset_ms=int(rng.integers(0, latest_onset_ms + 1)),
                    gain_db=round(float(rng.uniform(*gain_db_range)), 2),
                )
            )
        placements.sort(key=lambda p: (p.onset_ms, p.event.file))
        plans.append(ClipPlan(ytid=ytid, start_s=int(start), events=tuple(placements)))
    return plans


# --------------------------------------------------------------------------------------------
# Rendering and encoding
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _label_order(labels: Iterable[str], index_of: Mapping[str, int]) -> list[str]:
    return sorted(labels, key=lambda mid: index_of[mid])


def segments_csv_text(plans: Sequence[ClipPlan], index_of: Mapping[str, int]) -> str:
    """The segments CSV exactly as AudioSet writes it, header counts computed from the rows."""
    rows = sorted(plans, key=lambda p: p.ytid)
    all_labels = {mid for plan in rows for mid in plan.labels}
    n_positive = sum(len(plan.labels) for plan in rows)
    lines = [
        f"# Segments csv created {SEGMENTS_CREATED}",
        f"# num_ytids={len({p.ytid for p in rows})}, num_segs={len(rows)}, "
        f"num_unique_labels={len(all_labels)}, num_positive_labels={n_positive}",
        "# YTID, start_seconds, end_seconds, positive_labels",
    ]
    for plan in rows:
        labels = ",".join(_label_order(plan.labels, index_of))
        lines.append(
            f'{plan.ytid}, {plan.start_s:.3f}, {plan.start_s + CLIP_SECONDS:.3f}, "{labels}"'
        )
    return "\n".join(lines) + "\n"


def class_index_csv_text(classes: Sequence[tuple[int, str, str]], present: set[str]) -> str:
    """``class_labels_indices.csv`` restricted to ``present``, original indices and quoting."""
    lines = ["index,mid,display_name"]
    for index, mid, name in classes:
        if mid in present:
            lines.append(f'{index},{mid},"{name.replace(chr(34), chr(34) * 2)}"')
    return "\n".join(lines) + "\n"


def ontology_json_text(nodes: Sequence[dict], present: set[str]) -> str:
    """The ontology nodes of ``present`` with child_ids filtered, in the release's layout.

    The release puts one field per line and each list on one line; this writer reproduces the
    original file byte for byte when nothing is filtered.
    """
    parts = []
    for node in nodes:
        if node["id"] not in present:
            continue
        kept = {**node, "child_ids": [c for c in node["child_ids"] if c in present]}
        fields = [
            f"    {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}"
            for key, value in kept.items()
        ]
        parts.append("  {\n" + ",\n".join(fields) + "\n  }")
    return "[\n" + ",\n".join(parts) + "\n]\n"


def _csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def strong_labels_csv_text(plans: Sequence[ClipPlan]) -> str:
    rows = [
        (plan.ytid, mid, f"{p.onset_s:.3f}", f"{p.offset_s:.3f}")
        for plan in sorted(plans, key=lambda c: c.ytid)
        for p in plan.events
        for mid in p.event.mids
    ]
    return _csv_text(("clip", "mid", "onset_s", "offset_s"), rows)


def mixtures_csv_text(clips: Sequence[RenderedClip]) -> str:
    rows = [
        (
            clip.plan.ytid,
            p.event.file,
            f"{p.onset_s:.3f}",
            f"{p.gain_db:.2f}",
            f"{clip.mix_gain_db:.2f}",
            p.event.spdx,
        )
        for clip in sorted(clips, key=lambda c: c.plan.ytid)
        for p in clip.plan.events
    ]
    header = ("clip", "event_file", "onset_s", "gain_db", "mix_gain_db", "license")
    return _csv_text(header, rows)


def clip_licenses_csv_text(plans: Sequence[ClipPlan]) -> str:
    rows = [(plan.ytid, ";".join(plan.spdx_ids)) for plan in sorted(plans, key=lambda c: c.ytid)]
    return _csv_text(("clip", "licenses"), rows)


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


def summarize(clips: Sequence[RenderedClip], events: Sequence[SoundEvent]) -> DatasetSummary:
    plans = [c.plan for c in clips]
    uses = Counter(p.event.file for plan in plans for p in plan.events)
    per_event = [uses.get(e.file, 0) for e in events]
    snrs = np.array([c.codec_snr_db for c in clips])
    per_licence: Counter[str] = Counter()
    for plan in plans:
        per_licence.update(plan.spdx_ids)
    return DatasetSummary(
        n_clips=len(plans),
        n_classes=len({mid for plan in plans for mid in plan.labels}),
        n_positive_labels=sum(len(plan.labels) for plan in plans),
        n_strong_rows=sum(len(p.event.mids) for plan in plans for p in plan.events),
        events_per_clip=dict(sorted(Counter(len(plan.events) for plan in plans).items())),
        n_events_used=sum(1 for u in per_event if u),
        event_uses_min=min(per_event),
        event_uses_max=max(per_event),
        n_clips_scaled=sum(1 for c in clips if c.mix_gain_db < 0),
        audio_bytes=sum(c.n_bytes for c in clips),
        snr_db_median=float(np.median(snrs)),
        snr_db_p10=float(np.percentile(snrs, 10)),
        snr_db_min=float(snrs.min()),
        decoded_peak_max=max(c.decoded_peak for c in clips),
        clips_per_licence=dict(sorted(per_licence.items())),
    )


def write_dataset(
    sounds_dir: Path,
    audioset_dir: Path,
    out_dir: Path,
    *,
    seed: int = DEFAULT_SEED,
    n_clips: int = DEFAULT_N_CLIPS,
    events_per_clip: Sequence[float] = DEFAULT_EVENTS_PER_CLIP,
    gain_db_range: tuple[float, float] = DEFAULT_GAIN_DB_RANGE,
    class_balance: float = DEFAULT_CLASS_BALANCE,
    peak_limit_dbfs: float = DEFAULT_PEAK_LIMIT_DBFS,
    compression_level: float = DEFAULT_COMPRESSION_LEVEL,
    command: str | None = None,
) -> DatasetSummary:
    """Plan, render and write the whole dataset into ``out_dir``.

    Ogg files in ``out_dir/audio`` that are not part of this plan (a previous generation) are
    removed so that the folder holds exactly one dataset; ``LICENSES/`` is left alone.
    """
    sounds_dir, audioset_dir, out_dir = Path(sounds_dir), Path(audioset_dir), Path(out_dir)
    events = read_manifest(sounds_dir)
    classes = read_class_index(audioset_dir)
    index_of = {mid: index for index, mid, _ in classes}
    unknown = sorted({mid for e in events for mid in e.mids} - index_of.keys())
    if unknown:
        raise ValueError(f"manifest mids not in class_labels_indices.csv: {unknown}")
    ontology = read_ontology(audioset_dir)
    not_in_ontology = sorted(set(index_of) - {node["id"] for node in ontology})
    if not_in_ontology:
        raise ValueError(f"class index mids missing from ontology.json: {not_in_ontology}")

    rng = np.random.default_rng(seed)
    plans = plan_mixtures(
        events,
        n_clips,
        rng,
        events_per_clip=events_per_clip,
        gain_db_range=gain_db_range,
        class_balance=class_balance,
    )
    used = {p.event.file for plan in plans for p in plan.events}
    audio = load_event_audio(sounds_dir, [e for e in events if e.file in used])

    out_dir.mkdir(parents=True, exist_ok=True)
    audio_dir = out_dir / "audio"
    wanted = {f"{plan.ytid}.ogg" for plan in plans}
    stale = (
        [p for p in audio_dir.glob("*.ogg") if p.name not in wanted] if audio_dir.exists() else []
    )
    for path in stale:
        path.unlink()
    if stale:
        logger.info("removed %d Ogg files of a previous generation from %s", len(stale), audio_dir)

    clips = render_and_write_audio(
        plans,
        audio,
        audio_dir,
        compression_level=compression_level,
        peak_limit_dbfs=peak_limit_dbfs,
    )
    present = {mid for plan in plans for mid in plan.labels}
    texts = {
        "segments.csv": segments_csv_text(plans, index_of),
        "strong_labels.csv": strong_labels_csv_text(plans),
        "mixtures.csv": mixtures_csv_text(clips),
        "clip_licenses.csv": clip_licenses_csv_text(plans),
        "class_labels_indices.csv": class_index_csv_text(classes, present),
        "ontology.json": ontology_json_text(ontology, present),
    }
    for name, text in texts.items():
        (out_dir / name).write_text(text, encoding="utf-8")
    summary = summarize(clips, events)
    settings = {
        "seed": seed,
        "n_clips": n_clips,
        "events_per_clip": tuple(events_per_clip),
        "gain_db_range": tuple(gain_db_range),
        "class_balance": class_balance,
        "peak_limit_dbfs": peak_limit_dbfs,
        "compression_level": compression_level,
    }
    names = {mid: name for _, mid, name in classes}
    readme = readme_text(
        summary, events, plans, names, settings, command or _default_command(settings)
    )
    (out_dir / "README.md").write_text(readme, encoding="utf-8")
    return summary


# --------------------------------------------------------------------------------------------
# README
# --------------------------------------------------------------------------------------------


def _default_command(settings: Mapping[str, object]) -> str:
    return (
        "python -m zeroshot_audio.default_dataset --sounds ../shared/data/sounds "
        f"--audioset ../shared/data/audioset --out data/01_raw/default "
        f"--seed {settings['seed']} --n-clips {settings['n_clips']}"
    )


_LICENCE_NOTES = {
    "MIT": "MIT; see `LICENSES/MIT-FluidR3.txt` (copyright notice and permission notice).",
    "CC0-1.0": "CC0 1.0; see `LICENSES/CC0-1.0.txt`.",
    "GPL-2.0-or-later": "GNU GPL version 2 or (at your option) any later version; "
    "see `LICENSES/GPL-2.0.txt` and `LICENSES/GPL-3.0.txt`.",
    "GPL-3.0-or-later": "GNU GPL version 3 or (at your option) any later version; "
    "see `LICENSES/GPL-3.0.txt`.",
    "CC-BY-3.0": "Creative Commons Attribution 3.0 Unported, "
    "https://creativecommons.org/licenses/by/3.0/legalcode",
    "CC-BY-SA-3.0": "Creative Commons Attribution-ShareAlike 3.0 Unported, "
    "https://creativecommons.org/licenses/by-sa/3.0/legalcode",
}


def readme_text(
    summary: DatasetSummary,
    events: Sequence[SoundEvent],
    plans: Sequence[ClipPlan],
    class_names: Mapping[str, str],
    settings: Mapping[str, object],
    command: str,
) -> str:
    """The dataset's README: what it is, how it was made, and the licence of every part."""
    used_by_licence: dict[str, list[str]] = defaultdict(list)
    for event in events:
        used_by_licence[event.license].append(event.file)
    clips_by_licence_text: Counter[str] = Counter()
    for plan in plans:
        clips_by_licence_text.update({p.event.license for p in plan.events})
    licence_rows = "\n".join(
        f"| {text} | `{licence_spdx(text)}` | {len(files)} | {clips_by_licence_text[text]} | "
        + (", ".join(f"`{f}`" for f in files) if len(files) <= 12 else f"{len(files)} files")
        + " |"
        for text, files in sorted(
            used_by_licence.items(), key=lambda kv: (licence_spdx(kv[0]), kv[0])
        )
    )
    spdx_rows = "\n".join(
        f"| `{spdx}` | {n} | {_LICENCE_NOTES.get(spdx, '')} |"
        for spdx, n in summary.clips_per_licence.items()
    )
    clips_per_class = Counter(mid for plan in plans for mid in plan.labels)
    class_rows = "\n".join(
        f"| {class_names[mid]} | `{mid}` | {n} |"
        for mid, n in sorted(clips_per_class.items(), key=lambda kv: (-kv[1], class_names[kv[0]]))
    )
    per_clip = ", ".join(f"{k} event(s): {n} clips" for k, n in summary.events_per_clip.items())
    p1, p2, p3 = (list(settings["events_per_clip"]) + [0, 0, 0])[:3]
    gain_lo, gain_hi = settings["gain_db_range"]
    return f"""# Bundled default dataset (AudioSet format, mixed from freely licensed sound events)

What `kedro run` uses on the base env. {summary.n_clips} AudioSet-style clips of 10 s (16 kHz,
mono, Ogg Vorbis), each a mixture of 1 to 3 real, freely licensed sound events of the
zeroshot-audio sounds pack (instrument phrases rendered from the FluidR3 GM SoundFont, espeak-ng
speech, freedesktop sound-theme files, sox test signals), labelled with
{summary.n_classes} AudioSet classes. The metadata files have the exact formats of the AudioSet
release, so the project reads this folder and a real AudioSet copy with the same code.

The events are clean, single-source and mostly rendered, so this is a smoke-scale stand-in for
AudioSet, useful to run and test the whole pipeline, not to measure real-world accuracy.

## Files

| file | what |
| --- | --- |
| `segments.csv` | AudioSet segments format: 3 `#` header lines (true counts), `YTID, start_seconds, end_seconds, "mid,mid,..."`; labels = union of the mixed events' mids (ancestors included), ordered by class index |
| `audio/{{ytid}}.ogg` | the clip: 160000 samples, 16 kHz, mono, Ogg Vorbis |
| `strong_labels.csv` | `clip, mid, onset_s, offset_s`: one row per (event, mid of that event), seconds from the clip start |
| `mixtures.csv` | the recipe: `clip, event_file, onset_s, gain_db, mix_gain_db, license`; clip = 10^(mix_gain_db/20) x sum of 10^(gain_db/20) x event at onset_s; `event_file` is relative to the sounds pack folder, `license` the event's SPDX id |
| `clip_licenses.csv` | `clip, licenses`: SPDX ids of the material in each clip |
| `class_labels_indices.csv` | the AudioSet class index restricted to the {summary.n_classes} classes present, original indices |
| `ontology.json` | the AudioSet ontology nodes of those classes, all fields, `child_ids` restricted to them |
| `LICENSES/` | licence texts (see below; not written by the generator, which leaves the folder alone) |

YTIDs are random 11-character strings in YouTube's alphabet (they name no real video);
`start_seconds` is a random multiple of 10, `end_seconds` = start + 10.

## How it was made

```
{command}
```

Generator: `src/zeroshot_audio/default_dataset.py` (numpy + soundfile); choices and reasons in
`docs/data.md`. From the events of `../shared/data/sounds/manifest.csv`, seed
{settings["seed"]}:

- events per clip: 1 with p={p1}, 2 with p={p2}, 3 with p={p3} (drawn: {per_clip});
- event uses follow fixed quotas, weight n^-{settings["class_balance"]} for an event whose most specific class has n files: {summary.n_events_used} events used, each {summary.event_uses_min} to {summary.event_uses_max} times;
- the events of one clip have distinct most specific classes, and GPL material is never mixed with CC BY / CC BY-SA material;
- onset uniform in whole ms over [0, 10 s - event duration];
- gain uniform in {gain_lo:g}..{gain_hi:g} dB (the pack's events are peak-normalised to -3 dBFS);
- if the sum peaks above {settings["peak_limit_dbfs"]:g} dBFS, or its decoded Vorbis above {DECODED_PEAK_LIMIT_DBFS:g} dBFS, the whole clip is scaled down ({summary.n_clips_scaled} clips; the gain is `mix_gain_db`);
- Ogg Vorbis through libsndfile at compression level {settings["compression_level"]} (libvorbis VBR quality {1 - float(settings["compression_level"]):.1f}, as `oggenc -q {10 * (1 - float(settings["compression_level"])):g}`); every file decodes to exactly 160000 samples;
- waveform SNR of the decoded audio against the float mix: median {summary.snr_db_median:.1f} dB, 10th percentile {summary.snr_db_p10:.1f} dB, minimum {summary.snr_db_min:.1f} dB (noise-like sounds are coded perceptually, so their waveform SNR is low); highest decoded peak {summary.decoded_peak_max:.3f} (full scale 1.0); {summary.audio_bytes / 1e6:.2f} MB of audio.

Counts: {summary.n_clips} clips, {summary.n_classes} classes, {summary.n_positive_labels} positive
labels, {summary.n_strong_rows} strong-label rows.

Clips per class (a clip counts once per label; ancestors such as Music are labels too):

| class | mid | clips |
| --- | --- | --- |
{class_rows}

## Licences and attributions

The sound events come from Debian 12 packages (details: `../shared/data/sounds/README.md` in the
project workspace); they were resampled to 16 kHz mono, trimmed, capped at 4 s and
peak-normalised there, and mixed, gain-changed and Vorbis-encoded here. **Each clip is a
derivative of every event in it and is distributed under the licences of all of them**
(`clip_licenses.csv`, and the `license` column of `mixtures.csv` per event). A clip holding
CC BY-SA or GPL material carries that licence.

| licence of the material (as the pack states it) | SPDX | events | clips using it | files |
| --- | --- | --- | --- | --- |
{licence_rows}

Clips per licence:

| SPDX | clips | licence text |
| --- | --- | --- |
{spdx_rows}

Attributions:

- Instrument, drum and GM sound-effect phrases: rendered with fluidsynth from the **FluidR3 GM
  SoundFont, Copyright (c) 2000-2002, 2008 Frank Wen** (samples partly public domain, partly
  recorded by the author and contributors), released under the MIT licence
  (`LICENSES/MIT-FluidR3.txt`).
- Synthetic speech: produced by **espeak-ng** (program and voice data GPL-3.0-or-later); the clips
  holding it are offered under GPL-3.0-or-later.
- freedesktop sound theme (`sound-theme-freedesktop`): "alarm-clock-elapsed" by **Tim
  (corsica_s)**, CC BY-SA 3.0; "camera-shutter" by **freesound user horsthorstensen**,
  CC BY-SA 3.0; "complete" by **Dr. Richard Boulanger et al.**, CC BY 3.0; "audio-channel-*" and
  "audio-test-signal" by **The ALSA developers**, GPL-2.0-or-later; "phone-incoming-call" and
  "phone-outgoing-busy" by **Damien Sandras**, GPL-2.0-or-later. All were modified as described
  above.
- sox test signals: generated, no third-party audio; CC0 1.0.
- `class_labels_indices.csv` and `ontology.json` are excerpts of the AudioSet metadata,
  "AudioSet" by Google LLC, https://research.google.com/audioset/, licensed CC BY 4.0
  (https://creativecommons.org/licenses/by/4.0/); restricted to the classes present, otherwise
  unchanged. The CSV formats follow the AudioSet release.

For the GPL material, the preferred form for modification is the recipe (`mixtures.csv`), the
generator and the sounds pack with its source commands (the pack's `manifest.csv` gives the
exact espeak-ng / sox command or package file of every event).
"""


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m zeroshot_audio.default_dataset",
        description="Generate the bundled default dataset (AudioSet format) from the sounds pack.",
    )
    parser.add_argument("--sounds", type=Path, required=True, help="sounds pack folder")
    parser.add_argument("--audioset", type=Path, required=True, help="AudioSet metadata folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--n-clips", type=int, default=DEFAULT_N_CLIPS)
    parser.add_argument(
        "--events-per-clip",
        type=float,
        nargs="+",
        default=list(DEFAULT_EVENTS_PER_CLIP),
        help="probabilities of 1, 2, 3, ... events per clip",
    )
    parser.add_argument("--gain-db", type=float, nargs=2, default=list(DEFAULT_GAIN_DB_RANGE))
    parser.add_argument("--class-balance", type=float, default=DEFAULT_CLASS_BALANCE)
    parser.add_argument("--peak-limit-dbfs", type=float, default=DEFAULT_PEAK_LIMIT_DBFS)
    parser.add_argument("--compression-level", type=float, default=DEFAULT_COMPRESSION_LEVEL)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    argv_list = list(sys.argv[1:] if argv is None else argv)
    command = "python -m zeroshot_audio.default_dataset " + shlex.join(argv_list)
    started = time.perf_counter()
    summary = write_dataset(
        args.sounds,
        args.audioset,
        args.out,
        seed=args.seed,
        n_clips=args.n_clips,
        events_per_clip=args.events_per_clip,
        gain_db_range=(args.gain_db[0], args.gain_db[1]),
        class_balance=args.class_balance,
        peak_limit_dbfs=args.peak_limit_dbfs,
        compression_level=args.compression_level,
        command=command,
    )
    total_bytes = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    logger.info(
        "wrote %s: %d clips, %d classes, %.2f MB in all; codec SNR median %.1f dB (min %.1f); "
        "%.1f s",
        args.out,
        summary.n_clips,
        summary.n_classes,
        total_bytes / 1e6,
        summary.snr_db_median,
        summary.snr_db_min,
        time.perf_counter() - started,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
