"""Nodes of ``ingest``; the parsing itself is in :mod:`zeroshot_audio.metadata.audioset`."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from zeroshot_audio.metadata.audioset import build_class_table
from zeroshot_audio.metadata.segment_files import read_segment_files

log = logging.getLogger(__name__)
MODES = ("strict", "lenient")


def parse_segment_files(
    segment_files: dict[str, tuple[str, str | None]],
    class_index: pd.DataFrame,
    params: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Parse every segments file; quarantine (``lenient``) or raise on (``strict``) malformed rows.
    An optional file the catalog could not find comes as ``(path, None)`` and is reported."""
    mode = params.get("mode", "lenient")
    if mode not in MODES:
        raise ValueError(f"ingest.mode must be one of {MODES}, got {mode!r}")
    clips, report = read_segment_files(segment_files, class_index["mid"], strict=mode == "strict")
    metrics = {
        "ingest/clips": len(clips),
        "ingest/quarantined_rows": report["n_quarantined"],
        "ingest/header_problems": len(report["header_problems"]),
    }
    return clips, {"mode": mode, **report, "mlflow_metrics": metrics}


def build_classes(
    class_index: pd.DataFrame, ontology: list[dict[str, Any]], clips: pd.DataFrame
) -> pd.DataFrame:
    classes = build_class_table(class_index, ontology, clips)
    missing = classes.loc[~classes["in_ontology"], "mid"].tolist()
    if missing:
        log.warning("%d classes of the index are not in the ontology: %s", len(missing), missing)
    return classes
