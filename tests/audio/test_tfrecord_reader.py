"""AudioSet released embeddings: TFRecord SequenceExamples read without TensorFlow."""

from __future__ import annotations

import struct
from pathlib import Path

import crc32c
import numpy as np
import pandas as pd
import pytest
from tfrecord import example_pb2

from zeroshot_audio.audio.released import from_released_embeddings
from zeroshot_audio.audio.tfrecord_reader import read_released_embeddings
from zeroshot_audio.contracts import segment_table
from zeroshot_audio.contracts.segment_table import dequantize


def _masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC-32C."""
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _frame(payload: bytes) -> bytes:
    """One TFRecord: uint64 length, masked crc of the length, data, masked crc of the data."""
    length = struct.pack("<Q", len(payload))
    return (
        length
        + struct.pack("<I", _masked_crc(length))
        + payload
        + struct.pack("<I", _masked_crc(payload))
    )


def _sequence_example(
    ytid: str, start: float, end: float, labels: list[int], frames: np.ndarray
) -> bytes:
    """The AudioSet release's layout of one clip."""
    ex = example_pb2.SequenceExample()
    ctx = ex.context.feature
    ctx["video_id"].bytes_list.value.append(ytid.encode())
    ctx["start_time_seconds"].float_list.value.append(start)
    ctx["end_time_seconds"].float_list.value.append(end)
    ctx["labels"].int64_list.value.extend(labels)
    feature_list = ex.feature_lists.feature_list["audio_embedding"]
    for row in frames:
        feature_list.feature.add().bytes_list.value.append(row.astype(np.uint8).tobytes())
    return ex.SerializeToString()


@pytest.fixture()
def release(tmp_path: Path) -> tuple[Path, dict]:
    rng = np.random.default_rng(0)
    clips = {
        ("-0RWZT-miFs", 420.0): (rng.integers(0, 256, (10, 128)), [0, 137]),
        ("--aE2O5G5WE", 12.345): (rng.integers(0, 256, (7, 128)), [300]),  # short clip
        ("-1nilez17Dg", 30.0): (rng.integers(0, 256, (11, 128)), [5]),  # 11 s: cut to 10
    }
    path = tmp_path / "bal_train" / "-0.tfrecord"
    path.parent.mkdir()
    with open(path, "wb") as f:
        for (ytid, start), (frames, labels) in clips.items():
            f.write(_frame(_sequence_example(ytid, start, start + len(frames), labels, frames)))
        f.write(_frame(b"\x0a\xff\xff garbage that is not a SequenceExample"))
        empty = _sequence_example("emptyclip00", 0.0, 10.0, [1], np.zeros((0, 128)))
        f.write(_frame(empty))
    return path, clips


def test_reader_returns_the_segment_embeddings_table(release) -> None:
    path, clips = release
    out = read_released_embeddings([path], n_segments=10)
    arrays = segment_table.to_arrays(out.table)
    assert out.table.schema.equals(segment_table.segment_schema(10, "uint8"))
    assert list(arrays.ytid) == [y for y, _ in clips]
    np.testing.assert_allclose(arrays.start_s, [420.0, 12.345, 30.0])
    assert list(arrays.n_valid_segments) == [10, 7, 10]
    for i, (frames, _) in enumerate(clips.values()):
        n = min(len(frames), 10)
        np.testing.assert_array_equal(arrays.embeddings[i, :n], frames[:n])
        assert np.all(arrays.embeddings[i, n:] == 0)
    assert out.clips["label_indices"].tolist() == [[0, 137], [300], [5]]
    reasons = sorted(p["reason"] for p in out.problems)
    assert reasons == ["bad_record", "bad_record"]  # the garbage record and the empty clip
    assert any("empty" in p["detail"] for p in out.problems)
    # dequantised values land in [-2, 2]
    x = dequantize(arrays.embeddings)
    assert x.min() >= -2 and x.max() <= 2


def test_truncated_file_keeps_the_records_before_the_cut(release, tmp_path) -> None:
    path, _ = release
    data = path.read_bytes()
    cut = tmp_path / "cut.tfrecord"
    first_len = struct.unpack("<Q", data[:8])[0]
    cut.write_bytes(data[: 16 + first_len + 20])  # the first record and a piece of the second
    out = read_released_embeddings([cut])
    assert out.table.num_rows == 1
    assert [p["reason"] for p in out.problems] == ["truncated_file"]


# --- Defects that must not pass silently, on files written by the `tfrecord` package's writer ---

CLASS_MIDS = {0: "/m/09x0r", 1: "/m/05zppz", 2: "/m/02zsn", 3: "/m/0ytgt"}


def _write_release_file(path: Path, clips: list[tuple[str, float, float, list[int], int]]) -> None:
    """``clips``: (ytid, start, end, label indices, n_frames) in the release's SequenceExample."""
    from tfrecord.writer import TFRecordWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = TFRecordWriter(str(path))
    rng = np.random.default_rng(len(clips))
    for ytid, start, end, labels, n_frames in clips:
        frames = rng.integers(0, 256, (n_frames, 128), dtype=np.uint8)
        writer.write(
            {
                "video_id": (ytid.encode(), "byte"),
                "start_time_seconds": (start, "float"),
                "end_time_seconds": (end, "float"),
                "labels": (labels, "int"),
            },
            {"audio_embedding": ([row.tobytes() for row in frames], "byte")},
        )
    writer.close()


def _clip_folds(rows: list[tuple[str, float, str, list[str]]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ytid": [r[0] for r in rows],
            "start_s": [r[1] for r in rows],
            "end_s": [r[1] + 10.0 for r in rows],
            "fold": 0,
            "labels": [np.array(r[3], dtype=object) for r in rows],
            "source_split": [r[2] for r in rows],
        }
    )


def test_a_clip_with_fewer_frames_than_its_duration_is_kept_and_counted(tmp_path) -> None:
    path = tmp_path / "bal_train" / "ab.tfrecord"
    _write_release_file(
        path,
        [
            ("abcdefghijk", 30.0, 40.0, [0], 10),
            ("abXXXXXXXXX", 0.0, 10.0, [1], 9),  # a 10-s clip with 9 frames
            ("abYYYYYYYYY", 5.0, 12.0, [2], 7),  # a 7-s clip with 7 frames: complete
        ],
    )
    clips = _clip_folds(
        [
            ("abcdefghijk", 30.0, "balanced", ["/m/09x0r"]),
            ("abXXXXXXXXX", 0.0, "balanced", ["/m/05zppz"]),
            ("abYYYYYYYYY", 5.0, "balanced", ["/m/02zsn"]),
        ]
    )
    table, report = from_released_embeddings(clips, [path], 10, CLASS_MIDS)
    assert segment_table.to_arrays(table).n_valid_segments.tolist() == [10, 9, 7]
    short = report["short_clips"]
    assert short["n"] == 1 and short["by_n_frames"] == {9: 1}
    assert short["examples"] == [
        {"ytid": "abXXXXXXXXX", "start_s": 0.0, "n_frames": 9, "expected_frames": 10,
         "path": str(path)}
    ]  # fmt: skip
    assert report["n_failed"] == 0 and report["label_mismatches"]["n"] == 0


def test_an_empty_file_is_reported_with_its_path_and_its_clips_blamed_on_it(tmp_path) -> None:
    good = tmp_path / "eval" / "Zz.tfrecord"
    _write_release_file(good, [("Zz123456789", 0.0, 10.0, [0], 10)])
    empty = tmp_path / "eval" / "Qq.tfrecord"
    empty.write_bytes(b"")
    clips = _clip_folds(
        [
            ("Zz123456789", 0.0, "eval", ["/m/09x0r"]),
            ("Qq123456789", 20.0, "eval", ["/m/09x0r"]),
            ("Nn123456789", 0.0, "eval", ["/m/09x0r"]),  # no file for it at all
        ]
    )
    table, report = from_released_embeddings(clips, [good, empty], 10, CLASS_MIDS)
    assert table.num_rows == 1
    assert report["tfrecord_files_not_read_whole"] == {str(empty): "empty_file"}
    assert {"path": str(empty), "record": 0, "reason": "empty_file", "detail": "0 bytes"} in report[
        "tfrecord_problems"
    ]
    by_ytid = {f["ytid"]: f for f in report["failures"]}
    assert by_ytid["Qq123456789"]["reason"] == "empty_file"
    assert by_ytid["Qq123456789"]["path"] == str(empty)
    assert by_ytid["Nn123456789"]["reason"] == "not_released"
    assert report["failures_by_reason"] == {"empty_file": 1, "not_released": 1}


def test_clips_lost_to_a_truncated_file_name_the_file(tmp_path) -> None:
    path = tmp_path / "unbal_train" / "--.tfrecord"
    rows = [(f"--clip{i:05d}", 10.0 * i, 10.0 * i + 10, [3], 10) for i in range(4)]
    _write_release_file(path, rows)
    data = path.read_bytes()
    record = len(data) // 4  # every record has the same size
    path.write_bytes(data[: 2 * record + record // 2])  # two whole records and half of the third
    clips = _clip_folds([(y, s, "unbalanced", ["/m/0ytgt"]) for y, s, *_ in rows])
    table, report = from_released_embeddings(clips, [path], 10, CLASS_MIDS)
    assert table.column("ytid").to_pylist() == ["--clip00000", "--clip00001"]
    assert report["tfrecord_files_not_read_whole"] == {str(path): "truncated_file"}
    lost = [(f["ytid"], f["reason"], f["path"]) for f in report["failures"]]
    assert lost == [
        ("--clip00002", "truncated_file", str(path)),
        ("--clip00003", "truncated_file", str(path)),
    ]


def test_tfrecord_labels_are_compared_with_the_csv_labels(tmp_path) -> None:
    path = tmp_path / "bal_train" / "xy.tfrecord"
    _write_release_file(
        path,
        [
            ("xy000000000", 0.0, 10.0, [0, 1], 10),  # agrees
            ("xy000000001", 0.0, 10.0, [0], 10),  # the CSV also says /m/05zppz
            ("xy000000002", 0.0, 10.0, [2, 1], 10),  # the TFRecord adds /m/05zppz
            ("xy000000003", 0.0, 10.0, [2, 3], 10),  # /m/0ytgt: not a class of this fold
            ("xy000000004", 0.0, 10.0, [2, 99], 10),  # an index outside the class index
        ],
    )
    clips = _clip_folds(
        [
            ("xy000000000", 0.0, "balanced", ["/m/09x0r", "/m/05zppz"]),
            ("xy000000001", 0.0, "balanced", ["/m/09x0r", "/m/05zppz"]),
            ("xy000000002", 0.0, "balanced", ["/m/02zsn"]),
            ("xy000000003", 0.0, "balanced", ["/m/02zsn"]),
            ("xy000000004", 0.0, "balanced", ["/m/02zsn"]),
        ]
    )
    table, report = from_released_embeddings(clips, [path], 10, CLASS_MIDS)
    assert table.num_rows == 5  # the CSV is the truth: every clip is kept
    mismatches = report["label_mismatches"]
    assert mismatches["n"] == 3 and mismatches["n_compared"] == 5
    assert mismatches["unknown_class_indices"] == {99: 1}
    assert [(e["ytid"], e["csv_only"], e["tfrecord_only"]) for e in mismatches["examples"]] == [
        ("xy000000001", ["/m/05zppz"], []),
        ("xy000000002", [], ["/m/05zppz"]),
        ("xy000000004", [], ["index:99"]),
    ]
    assert all(e["path"] == str(path) for e in mismatches["examples"])
    # Without the class index nothing is compared (and nothing claimed).
    assert from_released_embeddings(clips, [path], 10)[1]["label_mismatches"] is None


def test_kept_clips_come_in_the_callers_order_in_one_buffer(release) -> None:
    """With ``keep``, each record goes straight to its clip's row: the table follows ``keep``'s
    order (absent clips left out, a duplicate reported) and its embeddings are one buffer that
    ``to_arrays`` returns without a copy (the table is built once)."""
    import pyarrow as pa

    path, clips = release
    with open(path, "ab") as f:  # the first clip once more
        (ytid, start), (frames, labels) = next(iter(clips.items()))
        f.write(_frame(_sequence_example(ytid, start, start + 10, labels, frames)))
    keep = [("-1nilez17Dg", 30.0), ("not-released", 0.0), ("-0RWZT-miFs", 420.0)]
    out = read_released_embeddings([path], n_segments=10, keep=keep)
    assert out.table.column("embedding").num_chunks == 1
    before = pa.total_allocated_bytes()
    arrays = segment_table.to_arrays(out.table)
    assert pa.total_allocated_bytes() == before
    assert list(arrays.ytid) == ["-1nilez17Dg", "-0RWZT-miFs"]
    np.testing.assert_array_equal(arrays.embeddings[0], clips[("-1nilez17Dg", 30.0)][0][:10])
    np.testing.assert_array_equal(arrays.embeddings[1], clips[("-0RWZT-miFs", 420.0)][0])
    assert out.clips["label_indices"].tolist() == [[5], [0, 137]]
    assert [p["reason"] for p in out.problems].count("duplicate") == 1


def test_reading_everything_grows_the_buffer_and_keeps_file_order(tmp_path) -> None:
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (1500, 1, 128))
    path = tmp_path / "many.tfrecord"
    with open(path, "wb") as f:
        for i in range(1500):  # more than the first allocation (1024 rows)
            f.write(_frame(_sequence_example(f"clip{i:07d}", 0.0, 1.0, [i], frames[i])))
    out = read_released_embeddings([path], n_segments=2)
    arrays = segment_table.to_arrays(out.table)
    assert list(arrays.ytid) == [f"clip{i:07d}" for i in range(1500)]
    np.testing.assert_array_equal(arrays.embeddings[:, 0], frames[:, 0])
    assert not arrays.embeddings[:, 1].any() and set(arrays.n_valid_segments) == {1}
