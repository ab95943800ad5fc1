"""AudioSet's released embeddings (TFRecord ``SequenceExample``s) -> ``segment_embeddings``.

The release (``audioset_v1_embeddings/{bal_train,eval,unbal_train}/*.tfrecord``) stores one
``SequenceExample`` per clip: context ``video_id`` (bytes), ``start_time_seconds`` and
``end_time_seconds`` (float), ``labels`` (int64 class indices); feature list
``audio_embedding``: one 128-byte string (PCA-whitened, 8-bit quantised VGGish) per second.

Read without TensorFlow: the ``tfrecord`` package frames the records and ships the
``SequenceExample`` protobuf definition; the fields are taken straight from the protobuf. A
malformed record is reported and skipped; a truncated file keeps the records before the cut.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from tfrecord import example_pb2
from tfrecord.reader import tfrecord_iterator

from zeroshot_audio.contracts import segment_table

logger = logging.getLogger(__name__)

EMBEDDING_BYTES = segment_table.EMBEDDING_SIZE


@dataclass
class ReleasedEmbeddings:
    """The table (uint8 embeddings), the clips' metadata and what could not be read."""

    table: pa.Table
    clips: pd.DataFrame  # ytid, start_s, end_s, label_indices (list[int])
    problems: list[dict[str, Any]] = field(default_factory=list)


def _time_key(start_s: float) -> int:
    """Milliseconds: the release stores times as float32, metadata tables as decimal text."""
    return round(float(start_s) * 1000)


def parse_sequence_example(record: bytes | memoryview, n_segments: int) -> dict[str, Any]:
    """One serialised ``SequenceExample`` -> ytid, times, labels, ``[n_segments, 128]`` uint8.

    Raises ``ValueError`` naming what is wrong.
    """
    example = example_pb2.SequenceExample()
    example.ParseFromString(bytes(record))
    context = example.context.feature
    for key in ("video_id", "start_time_seconds", "end_time_seconds"):
        if key not in context:
            raise ValueError(f"context feature {key!r} missing")
    ytid = context["video_id"].bytes_list.value[0].decode("utf-8")
    start_s = float(context["start_time_seconds"].float_list.value[0])
    end_s = float(context["end_time_seconds"].float_list.value[0])
    labels = list(context["labels"].int64_list.value) if "labels" in context else []
    if "audio_embedding" not in example.feature_lists.feature_list:
        raise ValueError(f"{ytid}: feature list 'audio_embedding' missing")
    frames = example.feature_lists.feature_list["audio_embedding"].feature
    if len(frames) == 0:
        raise ValueError(f"{ytid}: 'audio_embedding' is empty")
    embedding = np.zeros((n_segments, EMBEDDING_BYTES), dtype=np.uint8)
    n_valid = min(len(frames), n_segments)
    for t in range(n_valid):
        values = frames[t].bytes_list.value
        if len(values) != 1 or len(values[0]) != EMBEDDING_BYTES:
            raise ValueError(
                f"{ytid}: audio_embedding[{t}] is {[len(v) for v in values]} bytes, expected one of {EMBEDDING_BYTES}"
            )
        embedding[t] = np.frombuffer(values[0], dtype=np.uint8)
    return {
        "ytid": ytid,
        "start_s": round(start_s, 3),
        "end_s": round(end_s, 3),
        "labels": labels,
        "n_valid_segments": n_valid,
        "n_frames": len(frames),
        "embedding": embedding,
    }


def read_released_embeddings(
    paths: Iterable[str | Path],
    n_segments: int = 10,
    keep: Iterable[tuple[str, float]] | None = None,
) -> ReleasedEmbeddings:
    """Read TFRecord files into the ``segment_embeddings`` table (uint8).

    ``keep``: only these (ytid, start_s) clips (matched to the millisecond); all if None.
    Clips longer than ``n_segments`` seconds are cut; shorter ones get ``n_valid_segments``.
    """
    wanted = None if keep is None else {(str(y), _time_key(s)) for y, s in keep}
    rows: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    seen: set[tuple[str, int]] = set()
    for path in map(str, paths):
        index = -1
        try:
            for index, record in enumerate(tfrecord_iterator(path)):
                try:
                    row = parse_sequence_example(record, n_segments)
                except Exception as err:  # protobuf DecodeError, missing/short fields
                    problems.append(
                        {"path": path, "record": index, "reason": "bad_record", "detail": str(err)}
                    )
                    continue
                key = (row["ytid"], _time_key(row["start_s"]))
                if wanted is not None and key not in wanted:
                    continue
                if key in seen:
                    problems.append(
                        {
                            "path": path,
                            "record": index,
                            "reason": "duplicate",
                            "detail": f"{key} seen before",
                        }
                    )
                    continue
                seen.add(key)
                rows.append(row)
        except (RuntimeError, OSError) as err:  # truncated file, unreadable file
            problems.append(
                {"path": path, "record": index + 1, "reason": "truncated_file", "detail": str(err)}
            )
    for problem in problems:
        logger.warning("released embeddings: %s", problem)
    embeddings = (
        np.stack([r["embedding"] for r in rows])
        if rows
        else np.zeros((0, n_segments, EMBEDDING_BYTES), dtype=np.uint8)
    )
    table = segment_table.from_arrays(
        [r["ytid"] for r in rows],
        [r["start_s"] for r in rows],
        [r["n_valid_segments"] for r in rows],
        embeddings,
    )
    clips = pd.DataFrame(
        {
            "ytid": [r["ytid"] for r in rows],
            "start_s": [r["start_s"] for r in rows],
            "end_s": [r["end_s"] for r in rows],
            "label_indices": [r["labels"] for r in rows],
        }
    )
    return ReleasedEmbeddings(table=table, clips=clips, problems=problems)
