"""AudioSet strong labels (TSV) -> the events table evaluate's localisation scores against."""

from __future__ import annotations

import numpy as np
import pytest
from pandas.testing import assert_frame_equal

from zeroshot_audio.metadata.strong_labels import (
    StrongLabelError,
    parse_strong_labels,
    read_strong_labels,
)
from zeroshot_audio.model.localisation import strong_label_grid

# The release's format: header, tab-separated, segment_id = YTID_startms, seconds from the start.
TRAIN_TSV = (
    "segment_id\tstart_time_seconds\tend_time_seconds\tlabel\n"
    "b0RFKhbpFJA_30000\t0.000\t10.000\t/m/03m9d0z\n"
    "b0RFKhbpFJA_30000\t2.350\t3.720\t/m/07qrkrw\n"
    "a_b-c_d_efg_120500\t0.500\t1.250\t/m/07qrkrw\n"  # a YTID with underscores
    "\n"
)
EVAL_TSV = (
    "segment_id\tstart_time_seconds\tend_time_seconds\tlabel\n"
    "--4gqARaEJE_0\t7.900\t10.000\t/m/068hy\n"
)


def test_the_release_format_becomes_the_events_table(tmp_path) -> None:
    (tmp_path / "train.tsv").write_text(TRAIN_TSV)
    (tmp_path / "eval.tsv").write_text(EVAL_TSV)
    events = read_strong_labels([tmp_path / "train.tsv", tmp_path / "eval.tsv"])
    assert events["clip"].tolist() == ["b0RFKhbpFJA", "b0RFKhbpFJA", "a_b-c_d_efg", "--4gqARaEJE"]
    assert events["mid"].tolist() == ["/m/03m9d0z", "/m/07qrkrw", "/m/07qrkrw", "/m/068hy"]
    np.testing.assert_allclose(events["onset_s"], [0.0, 2.35, 0.5, 7.9])
    np.testing.assert_allclose(events["offset_s"], [10.0, 3.72, 1.25, 10.0])
    np.testing.assert_allclose(events["start_s"], [30.0, 30.0, 120.5, 0.0])

    # What evaluate does with it: 1-s segments active where an event overlaps them.
    grid = strong_label_grid(
        events, ["b0RFKhbpFJA", "a_b-c_d_efg"], ["/m/07qrkrw", "/m/03m9d0z"], 10, 1.0
    )
    assert np.flatnonzero(grid[0, :, 0]).tolist() == [2, 3]
    assert grid[0, :, 1].all()
    assert np.flatnonzero(grid[1, :, 0]).tolist() == [0, 1]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("b0RFKhbpFJA\t0.0\t1.0\t/m/03m9d0z", "segment_id 'b0RFKhbpFJA' is not <YTID>_<start ms>"),
        ("b0RFKhbpFJA_-5\t0.0\t1.0\t/m/03m9d0z", "segment_id 'b0RFKhbpFJA_-5' is not <YTID>"),
        ("_30000\t0.0\t1.0\t/m/03m9d0z", "segment_id '_30000' is not <YTID>_<start ms>"),
        ("b0RFKhbpFJA_\t0.0\t1.0\t/m/03m9d0z", "segment_id 'b0RFKhbpFJA_' is not <YTID>"),
        ("b0RFKhbpFJA_3e4\t0.0\t1.0\t/m/03m9d0z", "segment_id 'b0RFKhbpFJA_3e4' is not <YTID>"),
        ("b0RFKhbpFJA_30000\t0.0\t/m/03m9d0z", "3 tab-separated fields, expected 4"),
        ("b0RFKhbpFJA_30000\tabc\t1.0\t/m/03m9d0z", "are not numbers"),
        ("b0RFKhbpFJA_30000\t4.0\t1.0\t/m/03m9d0z", "need 0 <= start <= end"),
        ("b0RFKhbpFJA_30000\t4.0\t30.0\t/m/03m9d0z", "past the 10-s segment"),
        ("b0RFKhbpFJA_30000\t0.0\t1.0\tDog", "label 'Dog' is not a mid"),
    ],
)
def test_a_bad_line_names_file_and_line(line: str, message: str) -> None:
    text = TRAIN_TSV.rstrip("\n") + "\n" + line + "\n"
    with pytest.raises(StrongLabelError, match=f"^my.tsv, line 5: .*{message}"):
        parse_strong_labels(text, "my.tsv")


def test_a_wrong_header_is_an_error(tmp_path) -> None:
    with pytest.raises(StrongLabelError, match="x.tsv, line 1: header must be segment_id"):
        parse_strong_labels("clip,mid,onset_s,offset_s\n", "x.tsv")
    with pytest.raises(StrongLabelError, match="found an empty file"):
        parse_strong_labels("", "x.tsv")


def test_one_segment_per_clip(tmp_path) -> None:
    (tmp_path / "a.tsv").write_text(TRAIN_TSV + "b0RFKhbpFJA_40000\t0.0\t1.0\t/m/03m9d0z\n")
    with pytest.raises(StrongLabelError, match=r"'b0RFKhbpFJA' has strong labels for segments"):
        read_strong_labels([tmp_path / "a.tsv"])


def test_the_column_wise_reader_gives_what_the_line_reader_gives() -> None:
    """A well-formed file takes the Arrow path; its table must be the line-by-line one, exactly
    (odd spacing, YTIDs with underscores, tab-stripped fields, a blank line in the middle)."""
    from zeroshot_audio.metadata import strong_labels

    rng = np.random.default_rng(0)
    lines = [
        f"{ytid}_{start}\t {onset:.3f}\t{onset + length:.3f} \t/m/{mid}"
        for ytid, start, onset, length, mid in zip(
            ["b0RFKhbpFJA", "a_b-c_d_efg", "--4gqARaEJE"] * 200,
            rng.integers(0, 600_000, 600),
            rng.uniform(0, 5, 600),
            rng.uniform(0, 5, 600),
            rng.integers(1000, 9999, 600),
            strict=True,
        )
    ]
    text = "\t".join(strong_labels.COLUMNS) + "\n" + "\n".join(lines[:300] + [""] + lines[300:])
    fast = strong_labels._parse_well_formed(text)
    assert fast is not None
    assert_frame_equal(fast, strong_labels._parse_line_by_line(text, "x.tsv"))
    assert len(fast) == 600
    # a value Arrow does not parse (Python's float would) sends the file line by line
    assert (
        strong_labels._parse_well_formed(TRAIN_TSV + "b0RFKhbpFJA_30000\t1_0\t1e0\t/m/0\n") is None
    )


@pytest.mark.parametrize(
    "segment_id",
    ["abc_12_34000", "  abc_120 ", "abc_120\u00a0", "ab\u00e9_7", "x__5", "9_9"],
    ids=["digits-between-underscores", "ascii-spaces", "non-ascii-space", "non-ascii", "__", "9_9"],
)
def test_the_column_wise_split_of_segment_ids_is_the_regex_split(segment_id: str) -> None:
    """The Arrow path splits ``YTID_startms`` at the last underscore; whatever it accepts must be
    what the line reader (the regex) makes of it."""
    from zeroshot_audio.metadata import strong_labels

    text = "\t".join(strong_labels.COLUMNS) + f"\n{segment_id}\t0.5\t1.0\t/m/0\n"
    fast = strong_labels._parse_well_formed(text)
    assert fast is not None
    assert_frame_equal(fast, strong_labels._parse_line_by_line(text, "x.tsv"))
