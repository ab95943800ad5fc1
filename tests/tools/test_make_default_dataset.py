"""The bundled default dataset and its generator (``tools/make_default_dataset``).

Two groups: a small generation into a temporary folder from the real sound events and AudioSet
metadata committed in ``tests/fixtures``, and checks of the committed ``data/01_raw/default``.
Only the comparison of the committed dataset with a fresh plan of the whole sound pack, and the
planner's quotas on that pack, need ``../shared`` (``full_data`` tier).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.fixtures import AUDIOSET, REPO_ROOT, SOUNDS
from tools import make_default_dataset as dd

COMMITTED = REPO_ROOT / "data" / "01_raw" / "default"
SIZE_LIMIT_BYTES = 20_000_000

# The AudioSet segments format, strictly: checked against a slice of the real file below.
HEADER_CREATED = re.compile(r"^# Segments csv created \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$")
HEADER_COUNTS = re.compile(
    r"^# num_ytids=(\d+), num_segs=(\d+), num_unique_labels=(\d+), num_positive_labels=(\d+)$"
)
HEADER_COLUMNS = "# YTID, start_seconds, end_seconds, positive_labels"
SEGMENT_ROW = re.compile(
    r'^([A-Za-z0-9_-]{11}), (\d+\.\d{3}), (\d+\.\d{3}), "(/[mgt]/[0-9a-z_]+(?:,/[mgt]/[0-9a-z_]+)*)"$'
)


def parse_segments(text: str) -> tuple[dict[str, int], list[tuple[str, float, float, list[str]]]]:
    """Parse an AudioSet segments CSV strictly; return the header counts and the rows."""
    lines = text.split("\n")
    assert lines[-1] == "", "file must end with a newline"
    lines = lines[:-1]
    assert HEADER_CREATED.match(lines[0]), lines[0]
    counts = HEADER_COUNTS.match(lines[1])
    assert counts, lines[1]
    assert lines[2] == HEADER_COLUMNS
    rows = []
    for number, line in enumerate(lines[3:], start=4):
        match = SEGMENT_ROW.match(line)
        assert match, f"line {number} is not in AudioSet format: {line!r}"
        ytid, start, end, labels = match.groups()
        rows.append((ytid, float(start), float(end), labels.split(",")))
    keys = ("num_ytids", "num_segs", "num_unique_labels", "num_positive_labels")
    return dict(zip(keys, map(int, counts.groups()), strict=True)), rows


def true_counts(rows: list[tuple[str, float, float, list[str]]]) -> dict[str, int]:
    return {
        "num_ytids": len({r[0] for r in rows}),
        "num_segs": len(rows),
        "num_unique_labels": len({m for r in rows for m in r[3]}),
        "num_positive_labels": sum(len(r[3]) for r in rows),
    }


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def manifest_rows(sounds: Path = SOUNDS) -> dict[str, dict[str, str]]:
    return {row["file"]: row for row in read_csv(sounds / "manifest.csv")}


def check_dataset_consistency(folder: Path) -> None:
    """Labels, strong labels, recipe, licences and class metadata agree with one another."""
    counts, segments = parse_segments((folder / "segments.csv").read_text(encoding="utf-8"))
    assert counts == true_counts(segments)
    ytids = [r[0] for r in segments]
    assert ytids == sorted(ytids) and len(set(ytids)) == len(ytids)
    for ytid, start, end, labels in segments:
        assert start % 10 == 0 and end == start + 10, ytid
        assert len(set(labels)) == len(labels), ytid
    labels_of = {r[0]: set(r[3]) for r in segments}

    strong = read_csv(folder / "strong_labels.csv")
    assert list(strong[0]) == ["clip", "mid", "onset_s", "offset_s"]
    strong_mids = defaultdict(set)
    for row in strong:
        onset, offset = float(row["onset_s"]), float(row["offset_s"])
        assert 0.0 <= onset < offset <= 10.0, row
        assert re.fullmatch(r"\d+\.\d{3}", row["onset_s"]) and re.fullmatch(
            r"\d+\.\d{3}", row["offset_s"]
        )
        strong_mids[row["clip"]].add(row["mid"])
    assert dict(strong_mids) == labels_of

    mixtures = read_csv(folder / "mixtures.csv")
    events_per_clip = defaultdict(list)
    for row in mixtures:
        events_per_clip[row["clip"]].append(row)
    assert set(events_per_clip) == set(labels_of)
    assert all(1 <= len(rows) <= 3 for rows in events_per_clip.values())
    for clip, rows in events_per_clip.items():
        assert len({r["mix_gain_db"] for r in rows}) == 1, clip
        assert float(rows[0]["mix_gain_db"]) <= 0.0

    clip_licences = {
        r["clip"]: r["licenses"].split(";") for r in read_csv(folder / "clip_licenses.csv")
    }
    assert set(clip_licences) == set(labels_of)
    for clip, rows in events_per_clip.items():
        assert sorted({r["license"] for r in rows}) == clip_licences[clip]
        assert dd.licences_compatible(clip_licences[clip]), clip

    present = set().union(*labels_of.values())
    index_rows = (folder / "class_labels_indices.csv").read_text(encoding="utf-8").splitlines()
    assert index_rows[0] == "index,mid,display_name"
    index_mids = []
    for line in index_rows[1:]:
        match = re.fullmatch(r'(\d+),(/[mgt]/[0-9a-z_]+),"([^"]+)"', line)
        assert match, line
        index_mids.append(match.group(2))
    assert set(index_mids) == present and len(index_mids) == len(present)
    ontology = json.loads((folder / "ontology.json").read_text(encoding="utf-8"))
    assert {node["id"] for node in ontology} == present
    for node in ontology:
        assert set(node["child_ids"]) <= present


# --------------------------------------------------------------------------------------------
# A small generation from the real sound events committed in tests/fixtures
# --------------------------------------------------------------------------------------------

N_SMALL = 20


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("default_dataset")
    folders = {"a": root / "a", "b": root / "b", "other": root / "other"}
    for name, seed in (("a", 7), ("b", 7), ("other", 8)):
        dd.write_dataset(SOUNDS, AUDIOSET, folders[name], seed=seed, n_clips=N_SMALL)
    return folders


def test_parser_accepts_the_real_audioset_file() -> None:
    """The strict parser used below reads the real release, so passing it means real format."""
    text = (AUDIOSET / "balanced_train_segments.csv").read_text(encoding="utf-8")
    counts, rows = parse_segments(text)
    assert len(rows) == 4000 and counts == true_counts(rows)


def test_small_generation_is_consistent(small: dict[str, Path]) -> None:
    check_dataset_consistency(small["a"])
    _, rows = parse_segments((small["a"] / "segments.csv").read_text(encoding="utf-8"))
    assert len(rows) == N_SMALL


def test_segment_labels_are_the_union_of_the_mixed_events_mids(small: dict[str, Path]) -> None:
    manifest = manifest_rows()
    _, rows = parse_segments((small["a"] / "segments.csv").read_text(encoding="utf-8"))
    mixed = defaultdict(set)
    for row in read_csv(small["a"] / "mixtures.csv"):
        mixed[row["clip"]] |= set(manifest[row["event_file"]]["mids"].split(";"))
        assert row["license"] == dd.licence_spdx(manifest[row["event_file"]]["license"])
    assert {ytid: set(labels) for ytid, _, _, labels in rows} == dict(mixed)


def test_strong_labels_match_the_recipe(small: dict[str, Path]) -> None:
    """Each event's every mid spans exactly [onset, onset + event duration] of the recipe."""
    manifest = manifest_rows()
    expected = set()
    for row in read_csv(small["a"] / "mixtures.csv"):
        frames = sf.info(str(SOUNDS / row["event_file"])).frames
        onset = float(row["onset_s"])
        offset = round(onset + frames / dd.SAMPLE_RATE, 3)
        assert offset <= 10.0
        for mid in manifest[row["event_file"]]["mids"].split(";"):
            expected.add((row["clip"], mid, onset, offset))
    strong = read_csv(small["a"] / "strong_labels.csv")
    got = {(r["clip"], r["mid"], float(r["onset_s"]), float(r["offset_s"])) for r in strong}
    assert got == expected and len(strong) == len(expected)


def test_audio_is_the_recipe_and_never_clips(small: dict[str, Path]) -> None:
    """Rebuild every clip from mixtures.csv independently; the Ogg file must be that mix."""
    recipe = defaultdict(list)
    for row in read_csv(small["a"] / "mixtures.csv"):
        recipe[row["clip"]].append(row)
    for clip, rows in recipe.items():
        mix = np.zeros(dd.CLIP_SAMPLES)
        for row in rows:
            event, _ = sf.read(str(SOUNDS / row["event_file"]))
            start = round(float(row["onset_s"]) * dd.SAMPLE_RATE)
            mix[start : start + len(event)] += 10 ** (float(row["gain_db"]) / 20) * event
        mix *= 10 ** (float(rows[0]["mix_gain_db"]) / 20)
        assert np.abs(mix).max() <= 10 ** (dd.DEFAULT_PEAK_LIMIT_DBFS / 20) + 1e-6, clip
        decoded, rate = sf.read(str(small["a"] / "audio" / f"{clip}.ogg"))
        assert rate == dd.SAMPLE_RATE and decoded.shape == (dd.CLIP_SAMPLES,)
        assert np.abs(decoded).max() < 1.0, clip
        assert dd.snr_db(mix, decoded) > 3.0, clip


def test_generator_is_deterministic(small: dict[str, Path]) -> None:
    a, b, other = small["a"], small["b"], small["other"]
    for name in (
        "segments.csv",
        "strong_labels.csv",
        "mixtures.csv",
        "clip_licenses.csv",
        "class_labels_indices.csv",
        "ontology.json",
    ):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    files = sorted(p.name for p in (a / "audio").glob("*.ogg"))
    assert files == sorted(p.name for p in (b / "audio").glob("*.ogg"))
    for name in files:
        assert (a / "audio" / name).read_bytes() == (b / "audio" / name).read_bytes(), name
        first, _ = sf.read(str(a / "audio" / name))
        second, _ = sf.read(str(b / "audio" / name))
        assert np.array_equal(first, second)
    assert (a / "mixtures.csv").read_bytes() != (other / "mixtures.csv").read_bytes()
    assert not set(files) & {p.name for p in (other / "audio").glob("*.ogg")}


def test_class_index_and_ontology_are_excerpts_of_the_real_files(small: dict[str, Path]) -> None:
    real_lines = {
        line.split(",")[1]: line
        for line in (AUDIOSET / "class_labels_indices.csv")
        .read_text(encoding="utf-8")
        .splitlines()[1:]
    }
    lines = (small["a"] / "class_labels_indices.csv").read_text(encoding="utf-8").splitlines()
    for line in lines[1:]:
        assert line == real_lines[line.split(",")[1]]
    real_nodes = {n["id"]: n for n in json.loads((AUDIOSET / "ontology.json").read_text())}
    nodes = json.loads((small["a"] / "ontology.json").read_text(encoding="utf-8"))
    present = {n["id"] for n in nodes}
    for node in nodes:
        real = real_nodes[node["id"]]
        assert node == {**real, "child_ids": [c for c in real["child_ids"] if c in present]}


def test_ontology_writer_reproduces_the_release_layout() -> None:
    original = (AUDIOSET / "ontology.json").read_text(encoding="utf-8")
    nodes = json.loads(original)
    assert dd.ontology_json_text(nodes, {n["id"] for n in nodes}) == original


# --------------------------------------------------------------------------------------------
# The planner and the Ogg serial rewrite
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sounds",
    ["sounds_dir", pytest.param("full_sounds_dir", marks=pytest.mark.full_data)],
)
def test_plan_balances_events_and_keeps_clips_valid(request, sounds: str) -> None:
    events = dd.read_manifest(request.getfixturevalue(sounds))
    plans = dd.plan_mixtures(events, 600, np.random.default_rng(0))
    sizes = np.array([len(p.events) for p in plans])
    assert set(sizes) == {1, 2, 3}
    assert abs((sizes == 1).mean() - 0.4) < 0.07 and abs((sizes == 3).mean() - 0.2) < 0.07
    uses = defaultdict(int)
    for plan in plans:
        primaries = [p.event.primary_mid for p in plan.events]
        assert len(set(primaries)) == len(primaries), plan.ytid
        assert dd.licences_compatible(plan.spdx_ids), plan.ytid
        for placement in plan.events:
            assert 0 <= placement.onset_sample
            assert placement.onset_sample + placement.event.n_samples <= dd.CLIP_SAMPLES
            assert -12.0 <= placement.gain_db <= 0.0
            uses[placement.event.file] += 1
    # Uses follow the quota n**-0.5 per most-specific class of n files, within one use.
    per_class = defaultdict(int)
    for event in events:
        per_class[event.primary_mid] += 1
    weights = np.array([per_class[e.primary_mid] ** -0.5 for e in events])
    expected = sizes.sum() * weights / weights.sum()
    got = np.array([uses[e.file] for e in events])
    assert np.all(np.abs(got - expected) < 1.0)
    assert got.min() >= 3


def test_dealing_repairs_late_conflicts_and_refuses_impossible_plans() -> None:
    """With 3 classes in 2-event clips the tail of the pool often conflicts; quotas stay exact."""
    events = [dd.SoundEvent(f"{c}.flac", (f"/m/{c}",), 16000, "MIT") for c in "abc"]
    for seed in range(20):
        plans = dd.plan_mixtures(events, 30, np.random.default_rng(seed), events_per_clip=(0, 1))
        assert all(len({p.event.primary_mid for p in plan.events}) == 2 for plan in plans)
        uses = defaultdict(int)
        for plan in plans:
            for placement in plan.events:
                uses[placement.event.file] += 1
        assert sorted(uses.values()) == [20, 20, 20]
    # Two of three files share a class: 2/3 of the slots cannot go into 2-event clips.
    crowded = [
        dd.SoundEvent("a1.flac", ("/m/a",), 16000, "MIT"),
        dd.SoundEvent("a2.flac", ("/m/a",), 16000, "MIT"),
        dd.SoundEvent("b.flac", ("/m/b",), 16000, "MIT"),
    ]
    with pytest.raises(RuntimeError, match="cannot complete clip"):
        dd.plan_mixtures(
            crowded, 30, np.random.default_rng(0), events_per_clip=(0, 1), class_balance=0
        )


def test_licence_rule() -> None:
    assert dd.licences_compatible(["MIT", "GPL-3.0-or-later", "CC0-1.0"])
    assert dd.licences_compatible(["CC-BY-3.0", "CC-BY-SA-3.0", "MIT"])
    assert not dd.licences_compatible(["GPL-2.0-or-later", "CC-BY-SA-3.0"])
    assert not dd.licences_compatible(["GPL-3.0-or-later", "CC-BY-3.0"])
    assert dd.licence_spdx(
        "espeak-ng output (espeak-ng program and voice data: GPL-3.0-or-later)"
    ) == ("GPL-3.0-or-later")
    with pytest.raises(ValueError, match="no known SPDX"):
        dd.licence_spdx("all rights reserved")


def test_ogg_serial_rewrite_keeps_valid_pages() -> None:
    """Fixed serials make encodes identical; the recomputed page CRCs are what libogg checks."""
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(dd.CLIP_SAMPLES) / dd.SAMPLE_RATE)).astype(
        np.float32
    )
    first = dd.encode_ogg_vorbis(tone, 1234, 1.0)
    second = dd.encode_ogg_vorbis(tone, 1234, 1.0)
    assert first == second
    decoded, _ = sf.read(io.BytesIO(first))
    assert decoded.shape == (dd.CLIP_SAMPLES,) and dd.snr_db(tone, decoded) > 10
    corrupted = bytearray(first)
    corrupted[-30] ^= 0xFF  # in the last page, whose CRC no longer matches
    try:
        broken, _ = sf.read(io.BytesIO(bytes(corrupted)))
    except sf.LibsndfileError:
        return
    assert len(broken) < dd.CLIP_SAMPLES


# --------------------------------------------------------------------------------------------
# The committed dataset (what a fresh clone runs on)
# --------------------------------------------------------------------------------------------


def test_committed_dataset_is_consistent() -> None:
    check_dataset_consistency(COMMITTED)
    assert (COMMITTED / "README.md").is_file()
    for name in ("MIT-FluidR3.txt", "GPL-2.0.txt", "GPL-3.0.txt", "CC0-1.0.txt"):
        assert (COMMITTED / "LICENSES" / name).stat().st_size > 500, name


def test_committed_audio_files_are_10_s_16_khz_mono_ogg() -> None:
    _, rows = parse_segments((COMMITTED / "segments.csv").read_text(encoding="utf-8"))
    ytids = {r[0] for r in rows}
    assert len(ytids) >= 1200
    assert {p.stem for p in (COMMITTED / "audio").glob("*.ogg")} == ytids
    for ytid in ytids:
        info = sf.info(str(COMMITTED / "audio" / f"{ytid}.ogg"))
        assert (info.frames, info.samplerate, info.channels) == (dd.CLIP_SAMPLES, 16000, 1), ytid
        assert (info.format, info.subtype) == ("OGG", "VORBIS"), ytid
    sample = np.random.default_rng(0).choice(sorted(ytids), size=60, replace=False)
    for ytid in sample:
        audio, _ = sf.read(str(COMMITTED / "audio" / f"{ytid}.ogg"))
        assert audio.shape == (dd.CLIP_SAMPLES,) and np.isfinite(audio).all()
        assert 0.01 < np.abs(audio).max() < 1.0, ytid


def test_committed_dataset_fits_the_size_budget() -> None:
    total = sum(p.stat().st_size for p in COMMITTED.rglob("*") if p.is_file())
    assert total <= SIZE_LIMIT_BYTES, f"{total / 1e6:.2f} MB"


def test_committed_dataset_is_what_the_generator_plans(full_sounds_dir: Path) -> None:
    """The committed recipe is the default plan of the whole pack, and its audio is that recipe."""
    events = dd.read_manifest(full_sounds_dir)
    plans = dd.plan_mixtures(events, dd.DEFAULT_N_CLIPS, np.random.default_rng(dd.DEFAULT_SEED))
    planned = [
        (plan.ytid, p.event.file, f"{p.onset_s:.3f}", f"{p.gain_db:.2f}")
        for plan in sorted(plans, key=lambda c: c.ytid)
        for p in plan.events
    ]
    rows = read_csv(COMMITTED / "mixtures.csv")
    committed = [(r["clip"], r["event_file"], r["onset_s"], r["gain_db"]) for r in rows]
    assert committed == planned
    gains = {r["clip"]: float(r["mix_gain_db"]) for r in rows}
    by_ytid = {plan.ytid: plan for plan in plans}
    audio = dd.load_event_audio(full_sounds_dir, events)
    for ytid in sorted(by_ytid)[:5]:
        mix, _ = dd.render_clip(by_ytid[ytid], audio, mix_gain_db=gains[ytid])
        decoded, _ = sf.read(str(COMMITTED / "audio" / f"{ytid}.ogg"), dtype="float32")
        assert dd.snr_db(mix, decoded) > 3.0, ytid
