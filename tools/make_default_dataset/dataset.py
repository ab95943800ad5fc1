"""Plan, render and write a whole dataset folder, and summarise it for its README."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .constants import (
    DEFAULT_CLASS_BALANCE,
    DEFAULT_COMPRESSION_LEVEL,
    DEFAULT_EVENTS_PER_CLIP,
    DEFAULT_GAIN_DB_RANGE,
    DEFAULT_N_CLIPS,
    DEFAULT_PEAK_LIMIT_DBFS,
    DEFAULT_SEED,
)
from .metadata_files import (
    class_index_csv_text,
    clip_licenses_csv_text,
    mixtures_csv_text,
    ontology_json_text,
    segments_csv_text,
    strong_labels_csv_text,
)
from .pack import SoundEvent, load_event_audio, read_class_index, read_manifest, read_ontology
from .plan import plan_mixtures
from .readme import default_command, readme_text
from .render import RenderedClip, render_and_write_audio

logger = logging.getLogger(__name__)


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
        summary, events, plans, names, settings, command or default_command(settings)
    )
    (out_dir / "README.md").write_text(readme, encoding="utf-8")
    return summary
