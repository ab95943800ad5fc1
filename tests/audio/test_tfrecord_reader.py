"""AudioSet released embeddings: TFRecord SequenceExamples read without TensorFlow."""

from __future__ import annotations

import struct
from pathlib import Path

import crc32c
import numpy as np
import pytest
from tfrecord import example_pb2

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
