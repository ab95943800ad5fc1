"""AudioSet's released embeddings (TFRecord ``SequenceExample``s) -> ``segment_embeddings``.

The release (``audioset_v1_embeddings/{bal_train,eval,unbal_train}/*.tfrecord``) stores one
``SequenceExample`` per clip: context ``video_id`` (bytes), ``start_time_seconds`` and
``end_time_seconds`` (float), ``labels`` (int64 class indices); feature list
``audio_embedding``: one 128-byte string (PCA-whitened, 8-bit quantised VGGish) per second.

Read without TensorFlow: the ``tfrecord`` package frames the records and ships the
``SequenceExample`` protobuf definition; the fields are taken straight from the protobuf. A
malformed record is reported and skipped; a truncated file keeps the records before the cut.

Nothing passes silently (:func:`released_for_clips`): a 0-byte file and a cut file are reported
with their path, a wanted clip that is missing is blamed on the file the release layout puts it in
(``<split dir>/<first two characters of the ytid>.tfrecord``) when that file was cut or empty, a
clip with fewer embedding frames than its duration says is kept but counted (``short_clips``), and
the TFRecord ``labels`` are compared with the CSV's (the CSV is the truth; mismatches reported).
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping
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
# Folder of each source split in the release (audioset_v1_embeddings/<dir>/<ytid[:2]>.tfrecord).
RELEASE_SPLIT_DIRS = {"balanced": "bal_train", "eval": "eval", "unbalanced": "unbal_train"}
N_EXAMPLES = 20  # examples of each defect kept in the report


@dataclass
class ReleasedEmbeddings:
    """The table (uint8 embeddings), the clips' metadata and what could not be read."""

    table: pa.Table
    clips: pd.DataFrame  # ytid, start_s, end_s, label_indices (list[int]), n_frames, path
    problems: list[dict[str, Any]] = field(default_factory=list)
    # With ``keep``: for each row of the table, the position in ``keep`` (deduplicated to the
    # millisecond) of its clip; the positions not listed were not found.
    kept_positions: np.ndarray | None = None

    def file_problems(self) -> dict[str, str]:
        """``{path: "empty_file" | "truncated_file"}`` for the files that were not read whole."""
        kinds = ("empty_file", "truncated_file")
        return {p["path"]: p["reason"] for p in self.problems if p["reason"] in kinds}


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
        self.n_frames = np.zeros(capacity, dtype=np.int64)
        self.path: list[str | None] = [None] * capacity
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
        for name in ("embeddings", "filled", "n_valid", "start_s", "end_s", "n_frames"):
            old = getattr(self, name)
            grown = np.zeros((new, *old.shape[1:]), dtype=old.dtype)
            grown[: len(old)] = old
            setattr(self, name, grown)
        self.ytid += [None] * (new - len(self.ytid))
        self.labels += [None] * (new - len(self.labels))
        self.path += [None] * (new - len(self.path))

    def put(self, slot: int, row: dict[str, Any], path: str) -> None:
        self.embeddings[slot] = row["embedding"]
        self.filled[slot] = True
        self.n_valid[slot] = row["n_valid_segments"]
        self.start_s[slot] = row["start_s"]
        self.end_s[slot] = row["end_s"]
        self.ytid[slot] = row["ytid"]
        self.labels[slot] = row["labels"]
        self.n_frames[slot] = row["n_frames"]
        self.path[slot] = path

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
        if os.path.getsize(path) == 0:
            problems.append(
                {"path": path, "record": 0, "reason": "empty_file", "detail": "0 bytes"}
            )
            continue
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
                rows.put(slot, row, path)
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
            "n_frames": rows.n_frames[present],
            "path": [rows.path[i] for i in present],
        }
    )
    return ReleasedEmbeddings(
        table=table,
        clips=clips,
        problems=problems,
        kept_positions=present if slots is not None else None,
    )


def _release_file(ytid: str, source_split: str | None, files: Mapping[tuple[str, str], str]):
    """The file the release layout puts a clip in, among ``files`` ({(dir, stem): path})."""
    prefix = ytid[:2]
    folder = RELEASE_SPLIT_DIRS.get(str(source_split))
    if folder is not None and (folder, prefix) in files:
        return files[(folder, prefix)]
    candidates = [path for (_, stem), path in files.items() if stem == prefix]
    return candidates[0] if len(candidates) == 1 else None


def _missing_clips(
    missing: pd.DataFrame, paths: list[str], file_problems: dict[str, str]
) -> list[dict[str, Any]]:
    """Why each wanted clip is absent: lost with a cut or empty file (named), or not released."""
    files = {(Path(p).parent.name, Path(p).stem): p for p in paths}
    splits = missing["source_split"] if "source_split" in missing else [None] * len(missing)
    damaged = sorted(file_problems)
    failures = []
    for ytid, start, split in zip(missing["ytid"], missing["start_s"], splits, strict=True):
        path = _release_file(str(ytid), split, files)
        if path in file_problems:
            reason, detail = file_problems[path], "the file holding this clip was not read whole"
        elif path is None and damaged:
            reason = "not_released"
            detail = f"no release-layout file for it; {len(damaged)} files were cut or empty"
        else:
            reason, detail = "not_released", "" if path is None else "not in its release file"
        failures.append(
            {"ytid": str(ytid), "start_s": float(start), "path": path, "reason": reason,
             "detail": detail}
        )  # fmt: skip
    return failures


def _short_clips(kept: pd.DataFrame, n_segments: int) -> dict[str, Any]:
    """Clips with fewer embedding frames than their duration (seconds) says; kept, but counted."""
    duration = (kept["end_s"].to_numpy(float) - kept["start_s"].to_numpy(float)).round()
    expected = np.minimum(duration, n_segments).astype(np.int64)
    n_frames = kept["n_frames"].to_numpy()
    short = np.flatnonzero(n_frames < expected)
    examples = [
        {"ytid": kept["ytid"].iat[i], "start_s": float(kept["start_s"].iat[i]),
         "n_frames": int(n_frames[i]), "expected_frames": int(expected[i]),
         "path": kept["path"].iat[i]}
        for i in short[:N_EXAMPLES]
    ]  # fmt: skip
    by_frames = Counter(int(n) for n in n_frames[short])
    return {"n": len(short), "by_n_frames": dict(sorted(by_frames.items())), "examples": examples}


def _label_mismatches(
    wanted: pd.DataFrame, kept: pd.DataFrame, class_mids: Mapping[int, str]
) -> dict[str, Any]:
    """TFRecord ``labels`` (class indices) against the CSV labels of the same clips.

    ``wanted`` has the CSV ``labels`` (mids) the project uses. When it has a ``fold``, the labels
    are compared on the classes of the clip's fold (``split`` removes the others), otherwise on
    every class that any clip carries. The CSV is the truth: nothing is changed, only reported.
    """
    labels = [set(map(str, x)) for x in wanted["labels"]]
    folds = wanted["fold"].to_numpy() if "fold" in wanted else np.zeros(len(wanted), np.int64)
    scope: dict[Any, set[str]] = {}
    for fold, mids in zip(folds, labels, strict=True):
        scope.setdefault(fold, set()).update(mids)
    n, unknown, examples = 0, Counter(), []
    for i, (fold, csv, indices) in enumerate(
        zip(folds, labels, kept["label_indices"], strict=True)
    ):
        tf = set()
        for index in indices:
            mid = class_mids.get(int(index))
            if mid is None:
                unknown[int(index)] += 1
                tf.add(f"index:{int(index)}")
            else:
                tf.add(mid)
        csv_only = csv - tf
        tf_only = {m for m in tf if m in scope[fold] or m.startswith("index:")} - csv
        if csv_only or tf_only:
            n += 1
            if len(examples) < N_EXAMPLES:
                examples.append(
                    {"ytid": kept["ytid"].iat[i], "start_s": float(kept["start_s"].iat[i]),
                     "path": kept["path"].iat[i], "csv_only": sorted(csv_only),
                     "tfrecord_only": sorted(tf_only)}
                )  # fmt: skip
    return {"n": n, "n_compared": len(labels), "unknown_class_indices": dict(unknown),
            "examples": examples}  # fmt: skip


def released_for_clips(
    clips: pd.DataFrame,
    tfrecord_paths: Iterable[str | Path],
    n_segments: int = 10,
    class_mids: Mapping[int, str] | None = None,
) -> tuple[pa.Table, dict[str, Any]]:
    """The release's embeddings for the clips of ``clips`` (in its order) and a report of defects.

    ``clips``: ytid, start_s (and optionally source_split, fold, labels). ``class_mids``: class
    index -> mid of ``class_labels_indices.csv``; without it the labels are not compared.
    """
    started = time.perf_counter()
    frame = clips.drop_duplicates(["ytid", "start_s"])
    paths = sorted(str(p) for p in tfrecord_paths)
    if not paths:
        raise FileNotFoundError("featurize: no TFRecord files match the released_embeddings glob")
    keys = pd.Series(
        [(str(y), _time_key(s)) for y, s in zip(frame["ytid"], frame["start_s"], strict=True)]
    )
    slot_of_row = pd.factorize(keys)[0]  # rows of one (ytid, millisecond) share one slot
    unique = keys.drop_duplicates()
    released = read_released_embeddings(
        paths, n_segments, keep=[(y, ms / 1000) for y, ms in unique]
    )
    table_row_of_slot = np.full(len(unique), -1, dtype=np.int64)
    table_row_of_slot[released.kept_positions] = np.arange(len(released.kept_positions))
    order = table_row_of_slot[slot_of_row]
    found = order >= 0
    order = order[found]
    table, kept = released.table, released.clips
    if len(order) != table.num_rows or (np.diff(order) <= 0).any():  # two rows share a clip
        table = table.take(pa.array(order, pa.int64()))
        kept = kept.iloc[order].reset_index(drop=True)
    failures = _missing_clips(frame.loc[~found], paths, released.file_problems())
    short = _short_clips(kept, n_segments)
    mismatches = None
    if class_mids is not None and "labels" in frame:
        mismatches = _label_mismatches(frame.loc[found], kept, class_mids)
    file_problems = released.file_problems()
    if short["n"]:
        logger.warning(
            "released embeddings: %d clips have fewer frames than their duration (kept, counted "
            "in featurize_report.short_clips; frames: %s)", short["n"], short["by_n_frames"],
        )  # fmt: skip
    if mismatches and mismatches["n"]:
        logger.warning(
            "released embeddings: %d of %d clips have TFRecord labels that differ from the CSV "
            "(the CSV is kept; featurize_report.label_mismatches), e.g. %s",
            mismatches["n"], mismatches["n_compared"], mismatches["examples"][0],
        )  # fmt: skip
    report = {
        "source": "released_embeddings",
        "n_clips_input": int(len(clips)),
        "n_clips": int(len(frame)),
        "n_featurized": len(order),
        "n_failed": len(failures),
        "failures_by_reason": dict(Counter(f["reason"] for f in failures)),
        "failures": failures,
        "tfrecord_files": len(paths),
        "tfrecord_problems": released.problems,
        "tfrecord_files_not_read_whole": file_problems,
        "short_clips": short,
        "label_mismatches": mismatches,
        "vggish_weights": "official",
        "vggish_pca": "official",
        "embedding_dtype": "uint8",
        "n_segments": n_segments,
        "postprocess": "quantized",
        "total_seconds": round(time.perf_counter() - started, 3),
    }
    return table, report
