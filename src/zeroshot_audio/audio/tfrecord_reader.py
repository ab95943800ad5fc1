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
    # With ``keep``: for each row of the table, the position in ``keep`` (deduplicated to the
    # millisecond) of its clip; the positions not listed were not found.
    kept_positions: np.ndarray | None = None


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


class _Rows:
    """The rows read so far, written straight into one preallocated uint8 buffer (no per-row
    arrays kept, no stack-then-take: the table is built once, ~1.28 KB per clip).

    With the wanted clips known (``slots``: key -> position), each record goes to its slot, so
    the rows come out in the caller's order; without them, the buffer grows by doubling.
    """

    def __init__(self, n_segments: int, slots: dict[tuple[str, int], int] | None) -> None:
        self.slots = slots
        capacity = len(slots) if slots is not None else 1024
        self.embeddings = np.zeros((capacity, n_segments, EMBEDDING_BYTES), dtype=np.uint8)
        self.filled = np.zeros(capacity, dtype=bool)
        self.n_valid = np.zeros(capacity, dtype=np.int16)
        self.start_s = np.zeros(capacity, dtype=np.float64)
        self.end_s = np.zeros(capacity, dtype=np.float64)
        self.ytid: list[str | None] = [None] * capacity
        self.labels: list[list[int] | None] = [None] * capacity
        self.seen: set[tuple[str, int]] = set()  # without slots only
        self.count = 0  # rows appended (without slots)

    def slot(self, key: tuple[str, int]) -> int | None:
        """Where a record of ``key`` goes: None = not wanted; -1 = a duplicate."""
        if self.slots is not None:
            slot = self.slots.get(key)
            if slot is None:
                return None
            return -1 if self.filled[slot] else slot
        if key in self.seen:
            return -1
        self.seen.add(key)
        if self.count == len(self.filled):
            self._grow()
        self.count += 1
        return self.count - 1

    def _grow(self) -> None:
        new = 2 * len(self.filled)
        for name in ("embeddings", "filled", "n_valid", "start_s", "end_s"):
            old = getattr(self, name)
            grown = np.zeros((new, *old.shape[1:]), dtype=old.dtype)
            grown[: len(old)] = old
            setattr(self, name, grown)
        self.ytid += [None] * (new - len(self.ytid))
        self.labels += [None] * (new - len(self.labels))

    def put(self, slot: int, row: dict[str, Any]) -> None:
        self.embeddings[slot] = row["embedding"]
        self.filled[slot] = True
        self.n_valid[slot] = row["n_valid_segments"]
        self.start_s[slot] = row["start_s"]
        self.end_s[slot] = row["end_s"]
        self.ytid[slot] = row["ytid"]
        self.labels[slot] = row["labels"]

    def compact(self) -> np.ndarray:
        """Move the filled rows to the front, in place and in order; returns their slots."""
        present = np.flatnonzero(self.filled)
        block = 65536
        for a in range(0, len(present), block):
            # present[i] >= i: reading a block's sources never reads a row already overwritten,
            # and later blocks' sources lie beyond this block's targets.
            b = min(a + block, len(present))
            self.embeddings[a:b] = self.embeddings[present[a:b]]
        return present


def read_released_embeddings(
    paths: Iterable[str | Path],
    n_segments: int = 10,
    keep: Iterable[tuple[str, float]] | None = None,
) -> ReleasedEmbeddings:
    """Read TFRecord files into the ``segment_embeddings`` table (uint8).

    ``keep``: only these (ytid, start_s) clips (matched to the millisecond), and the table's
    rows then follow ``keep``'s order (clips not found are simply absent); all clips in file
    order if None. Clips longer than ``n_segments`` seconds are cut; shorter ones get
    ``n_valid_segments``.
    """
    slots = None
    if keep is not None:
        slots = {}
        for y, s in keep:
            slots.setdefault((str(y), _time_key(s)), len(slots))
    rows = _Rows(n_segments, slots)
    problems: list[dict[str, Any]] = []
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
                slot = rows.slot(key)
                if slot is None:
                    continue
                if slot < 0:
                    problems.append(
                        {
                            "path": path,
                            "record": index,
                            "reason": "duplicate",
                            "detail": f"{key} seen before",
                        }
                    )
                    continue
                rows.put(slot, row)
        except (RuntimeError, OSError) as err:  # truncated file, unreadable file
            problems.append(
                {"path": path, "record": index + 1, "reason": "truncated_file", "detail": str(err)}
            )
    for problem in problems:
        logger.warning("released embeddings: %s", problem)
    present = rows.compact()
    n = len(present)
    ytid = [rows.ytid[i] for i in present]
    table = segment_table.from_arrays(
        ytid, rows.start_s[present], rows.n_valid[present], rows.embeddings[:n]
    )
    clips = pd.DataFrame(
        {
            "ytid": ytid,
            "start_s": rows.start_s[present],
            "end_s": rows.end_s[present],
            "label_indices": [rows.labels[i] for i in present],
        }
    )
    return ReleasedEmbeddings(
        table=table,
        clips=clips,
        problems=problems,
        kept_positions=present if slots is not None else None,
    )
