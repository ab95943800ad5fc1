"""The dataset's metadata files, written in the exact formats of the AudioSet release."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence

from .constants import CLIP_SECONDS, SEGMENTS_CREATED
from .pack import ClipPlan
from .render import RenderedClip


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
