"""Nodes of ``ingest``; the parsing itself is in :mod:`zeroshot_audio.metadata.audioset`."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pandas as pd

from zeroshot_audio.metadata.audioset import (
    MalformedRowError,
    build_class_table,
    find_duplicates,
    parse_segments,
)

log = logging.getLogger(__name__)
MODES = ("strict", "lenient")


def parse_segment_files(
    segment_files: dict[str, tuple[str, str]],
    class_index: pd.DataFrame,
    params: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Parse every segments file; quarantine (lenient) or raise on (strict) malformed rows.

    Per file the report holds ``data_lines == rows_kept + rows_quarantined``; a file whose header
    ``num_segs`` disagrees with its rows (a truncated copy) is listed in ``header_problems``.
    """
    mode = params.get("mode", "lenient")
    if mode not in MODES:
        raise ValueError(f"ingest.mode must be one of {MODES}, got {mode!r}")
    strict = mode == "strict"
    frames, quarantined, files, header_problems = [], [], {}, []
    for split, (source, text) in segment_files.items():
        parsed, bad, header_counts = parse_segments(
            text, source, split, class_index["mid"], strict=strict
        )
        frames.append(parsed.assign(source=source))
        quarantined.extend(bad)
        files[split] = {
            "file": source,
            "data_lines": parsed.attrs["n_data_lines"],
            "header_counts": header_counts,
            "header_problem": parsed.attrs["header_problem"],
        }
        if parsed.attrs["header_problem"]:
            header_problems.append(parsed.attrs["header_problem"])
            log.warning("%(file)s, line %(line)d: %(reason)s", parsed.attrs["header_problem"])
    clips = pd.concat(frames, ignore_index=True)
    duplicate, duplicates = find_duplicates(clips, clips["source"])
    if strict and duplicates:
        raise MalformedRowError(duplicates[0])
    quarantined.extend(duplicates)
    clips = clips.loc[~duplicate].drop(columns=["line", "source"]).reset_index(drop=True)
    for split, info in files.items():
        info["rows_kept"] = int((clips["source_split"] == split).sum())
        info["rows_quarantined"] = sum(row.file == info["file"] for row in quarantined)
        if info["rows_kept"] + info["rows_quarantined"] != info["data_lines"]:  # never silent
            raise RuntimeError(f"ingest lost rows of {info['file']}: {info}")
        log.info(
            "%s (%s): %d rows kept, %d quarantined",
            info["file"], split, info["rows_kept"], info["rows_quarantined"],
        )  # fmt: skip
    by_reason = Counter(row.kind for row in quarantined)
    if quarantined:
        log.warning(
            "%d malformed segment rows quarantined into ingest_report (first: %s line %d: %s)",
            len(quarantined), quarantined[0].file, quarantined[0].line, quarantined[0].reason,
        )  # fmt: skip
    report = {
        "mode": mode,
        "files": files,
        "n_clips": len(clips),
        "n_quarantined": len(quarantined),
        "quarantined_by_reason": dict(by_reason),
        "quarantined_rows": [row.to_dict() for row in quarantined],
        "header_problems": header_problems,
        "mlflow_metrics": {
            "ingest/clips": len(clips),
            "ingest/quarantined_rows": len(quarantined),
            "ingest/header_problems": len(header_problems),
        },
    }
    return clips, report


def build_classes(
    class_index: pd.DataFrame, ontology: list[dict[str, Any]], clips: pd.DataFrame
) -> pd.DataFrame:
    classes = build_class_table(class_index, ontology, clips)
    missing = classes.loc[~classes["in_ontology"], "mid"].tolist()
    if missing:
        log.warning("%d classes of the index are not in the ontology: %s", len(missing), missing)
    return classes
