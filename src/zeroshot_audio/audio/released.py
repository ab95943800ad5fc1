"""``featurize.source: released_embeddings``: AudioSet's released VGGish embeddings instead of
computing them, in the segment table of the contract, with their EmbedderSpec (``released``).

Reading and matching the TFRecords, and reporting their defects (clips absent with the file that
lost them, short clips, label mismatches), is :func:`.tfrecord_reader.released_for_clips`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from zeroshot_audio.audio.embed import released_spec
from zeroshot_audio.audio.tfrecord_reader import released_for_clips
from zeroshot_audio.contracts import segment_table


def from_released_embeddings(
    clips: pd.DataFrame,
    tfrecord_paths: Iterable[str | Path],
    n_segments: int = 10,
    class_mids: Mapping[int, str] | None = None,
) -> tuple[pa.Table, dict[str, Any]]:
    """The release's embeddings for the clips of ``clips`` (in its order) and a defect report;
    ``class_mids`` (class index -> mid) lets the TFRecord labels be checked against the CSV's."""
    table, report = released_for_clips(clips, tfrecord_paths, n_segments, class_mids)
    spec = released_spec(n_segments)
    report["embedder"] = spec.to_dict()
    return segment_table.with_embedder_spec(table, spec), report
