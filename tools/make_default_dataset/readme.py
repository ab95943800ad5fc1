"""The README written beside the dataset: what it is, how it was made, every licence.

The text lives in ``README.template.md`` (``$name`` placeholders, ``string.Template``); this module
computes the numbers and tables that fill it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

from .constants import DECODED_PEAK_LIMIT_DBFS
from .licences import licence_spdx
from .pack import ClipPlan, SoundEvent

if TYPE_CHECKING:
    from .dataset import DatasetSummary

README_TEMPLATE = Template(
    (Path(__file__).with_name("README.template.md")).read_text(encoding="utf-8")
)


def default_command(settings: Mapping[str, object]) -> str:
    return (
        "python -m tools.make_default_dataset --sounds ../shared/data/sounds "
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
    values = {
        "n_clips": summary.n_clips,
        "n_classes": summary.n_classes,
        "command": command,
        "seed": settings["seed"],
        "p1": p1,
        "p2": p2,
        "p3": p3,
        "per_clip": per_clip,
        "class_balance": settings["class_balance"],
        "n_events_used": summary.n_events_used,
        "event_uses_min": summary.event_uses_min,
        "event_uses_max": summary.event_uses_max,
        "gain_lo": f"{gain_lo:g}",
        "gain_hi": f"{gain_hi:g}",
        "peak_limit_dbfs": f"{settings['peak_limit_dbfs']:g}",
        "decoded_peak_limit_dbfs": f"{DECODED_PEAK_LIMIT_DBFS:g}",
        "n_clips_scaled": summary.n_clips_scaled,
        "compression_level": settings["compression_level"],
        "vorbis_quality": f"{1 - float(settings['compression_level']):.1f}",
        "oggenc_quality": f"{10 * (1 - float(settings['compression_level'])):g}",
        "snr_db_median": f"{summary.snr_db_median:.1f}",
        "snr_db_p10": f"{summary.snr_db_p10:.1f}",
        "snr_db_min": f"{summary.snr_db_min:.1f}",
        "decoded_peak_max": f"{summary.decoded_peak_max:.3f}",
        "audio_mb": f"{summary.audio_bytes / 1e6:.2f}",
        "n_positive_labels": summary.n_positive_labels,
        "n_strong_rows": summary.n_strong_rows,
        "class_rows": class_rows,
        "licence_rows": licence_rows,
        "spdx_rows": spdx_rows,
    }
    return README_TEMPLATE.substitute(values)
