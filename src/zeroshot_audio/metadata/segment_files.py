"""Every segments file of a run, parsed and reconciled: rows kept, rows quarantined, counts checked.

One file is parsed by :func:`.audioset.parse_segments`; this adds what only the set of files knows:
duplicates across files, absent optional files, and the bookkeeping that makes a lost row
impossible (per file, ``data_lines == rows_kept + rows_quarantined``, or an error).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from zeroshot_audio.metadata.audioset import MalformedRowError, find_duplicates, parse_segments

log = logging.getLogger(__name__)


def read_segment_files(
    segment_files: Mapping[str, tuple[str, str | None]],
    known_mids: Iterable[str],
    strict: bool,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Parse every segments file; quarantine (lenient) or raise on (strict) malformed rows.

    Per file the report holds ``data_lines == rows_kept + rows_quarantined``; a file whose header
    ``num_segs`` disagrees with its rows (a truncated copy) is listed in ``header_problems``.
    A file the catalog marks optional and that is absent comes as ``(path, None)``: it is skipped
    and listed in the report as ``missing_optional``.
    """
    known_mids = pd.Series(list(known_mids))
    frames, quarantined, files, header_problems, skipped = [], [], {}, [], {}
    for split, (source, text) in segment_files.items():
        if text is None:
            log.warning("%s (%s): optional file absent, split not ingested", source, split)
            skipped[split] = {"file": source, "missing_optional": True, "rows_kept": 0}
            continue
        parsed, bad, header_counts = parse_segments(text, source, split, known_mids, strict=strict)
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
    files |= skipped
    by_reason = Counter(row.kind for row in quarantined)
    if quarantined:
        log.warning(
            "%d malformed segment rows quarantined into ingest_report (first: %s line %d: %s)",
            len(quarantined), quarantined[0].file, quarantined[0].line, quarantined[0].reason,
        )  # fmt: skip
    report = {
        "files": files,
        "n_clips": len(clips),
        "n_quarantined": len(quarantined),
        "quarantined_by_reason": dict(by_reason),
        "quarantined_rows": [row.to_dict() for row in quarantined],
        "header_problems": header_problems,
    }
    return clips, report
