"""The malformed-metadata battery: every kind of broken segments file, through ``ingest``'s
loader (``AudioSetSegmentFiles``) and node, in both modes.

Every file is cut from the real ``balanced_train_segments.csv`` and broken in one way. Lenient
mode must name each bad row by file, line and reason and keep the counts adding up (kept +
quarantined == data lines); strict mode must stop with the same file and line in its message.
Nothing may end in a traceback from inside a parser (IndexError, ArrowInvalid) or pass silently.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from tests.metadata.test_audioset import recount
from zeroshot_audio.datasets.audioset_files import AudioSetSegmentFiles
from zeroshot_audio.metadata.audioset import MalformedRowError
from zeroshot_audio.pipelines.ingest.nodes import parse_segment_files

N_ROWS = 20


@pytest.fixture(scope="module")
def real_lines(audioset_dir) -> list[str]:
    """Header (3 lines) and the first N_ROWS rows of the real file, header count made true."""
    text = (audioset_dir / "balanced_train_segments.csv").read_text(encoding="utf-8")
    return recount(text.splitlines()[: 3 + N_ROWS])


def _fields(line: str) -> list[str]:
    return line.split(", ", 3)


def _row_case(lines: list[str], kind: str) -> str:
    """The row that replaces data row 5 (file line 8) for one malformed kind."""
    ytid, start, end, labels = _fields(lines[7])
    return {
        "field_count": f"{ytid}, {start}, {end}",
        "bad_time": f"{ytid}, ten, {end}, {labels}",
        "reversed_time": f"{ytid}, {end}, {start}, {labels}",
        "unknown_mid": f'{ytid}, {start}, {end}, "/m/09x0r,/m/not_a_class"',
        "empty_labels": f'{ytid}, {start}, {end}, ""',
        "duplicate": lines[4],  # same YTID and start as line 5
        "unterminated_quote": f'{ytid}, {start}, {end}, "/m/09x0r,/m/04rlf',
    }[kind]


ROW_KINDS = (
    "field_count",
    "bad_time",
    "reversed_time",
    "unknown_mid",
    "empty_labels",
    "duplicate",
    "unterminated_quote",
)
BAD_LINE = 8


def _write(path: Path, text: str, *, gz: bool = False, bom: bool = False) -> str:
    data = ("\ufeff" if bom else "") + text
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(data)
    else:
        path.write_text(data, encoding="utf-8")
    return str(path)


def _ingest(path: str, class_index, mode: str):
    """What ``kedro run --pipeline=ingest`` does with the file: load it, run the node."""
    files = AudioSetSegmentFiles({"balanced": path}).load()
    return parse_segment_files(files, class_index, {"mode": mode})


def _bad_file(tmp_path: Path, lines: list[str], kind: str, gz: bool = False) -> str:
    broken = list(lines)
    broken[BAD_LINE - 1] = _row_case(lines, kind)
    name = f"{kind}.csv.gz" if gz else f"{kind}.csv"
    return _write(tmp_path / name, "\n".join(broken) + "\n", gz=gz)


def _assert_counts_add_up(report: dict, n_data_lines: int) -> None:
    (info,) = report["files"].values()
    assert info["data_lines"] == n_data_lines
    assert info["rows_kept"] + info["rows_quarantined"] == n_data_lines
    assert report["n_clips"] + report["n_quarantined"] == n_data_lines


@pytest.mark.parametrize("gz", [False, True], ids=["csv", "gz"])
@pytest.mark.parametrize("kind", ROW_KINDS)
def test_lenient_quarantines_the_bad_row_by_file_line_and_reason(
    tmp_path, real_lines, class_index, kind, gz
):
    path = _bad_file(tmp_path, real_lines, kind, gz)
    clips, report = _ingest(path, class_index, "lenient")
    (row,) = report["quarantined_rows"]
    assert (row["file"], row["line"], row["kind"]) == (path, BAD_LINE, kind)
    assert row["reason"] and row["text"] == _row_case(real_lines, kind)
    assert report["quarantined_by_reason"] == {kind: 1}
    assert report["header_problems"] == []
    _assert_counts_add_up(report, N_ROWS)
    # every other row kept, in order, untouched (no neighbour merged into the bad row)
    expected = [_fields(line)[0] for i, line in enumerate(real_lines[3:], 4) if i != BAD_LINE]
    assert list(clips["ytid"]) == expected
    assert clips["labels"].map(len).min() >= 1


@pytest.mark.parametrize("gz", [False, True], ids=["csv", "gz"])
@pytest.mark.parametrize("kind", ROW_KINDS)
def test_strict_stops_at_the_bad_row_naming_file_line_and_reason(
    tmp_path, real_lines, class_index, kind, gz
):
    path = _bad_file(tmp_path, real_lines, kind, gz)
    with pytest.raises(MalformedRowError) as error:
        _ingest(path, class_index, "strict")
    assert str(error.value).startswith(f"{path}, line {BAD_LINE}: ")
    assert error.value.row.kind == kind


@pytest.mark.parametrize("mode", ["strict", "lenient"])
def test_a_byte_order_mark_is_accepted(tmp_path, real_lines, class_index, mode):
    path = _write(tmp_path / "bom.csv", "\n".join(real_lines) + "\n", bom=True)
    clips, report = _ingest(path, class_index, mode)
    assert report["n_quarantined"] == 0 and report["header_problems"] == []
    assert len(clips) == N_ROWS
    assert clips["ytid"].iat[0] == _fields(real_lines[3])[0]  # no "\ufeff" glued to anything
    _assert_counts_add_up(report, N_ROWS)


@pytest.mark.parametrize("mode", ["strict", "lenient"])
@pytest.mark.parametrize(
    ("case", "line", "reason"),
    [
        ("empty", 1, "the file is empty"),
        ("blank", 1, "the file is empty"),
        ("header_only", 3, r"the header \(3 '#' lines\) is followed by no data"),
    ],
)
def test_a_file_without_rows_is_an_error_naming_it(
    tmp_path, real_lines, class_index, mode, case, line, reason
):
    text = {"empty": "", "blank": "\n\n", "header_only": "\n".join(real_lines[:3]) + "\n"}[case]
    path = _write(tmp_path / f"{case}.csv", text)
    with pytest.raises(
        MalformedRowError, match=rf"^{path}, line {line}: no segment rows: {reason}"
    ):
        _ingest(path, class_index, mode)


def _truncated(tmp_path: Path, real_lines: list[str], cut: int) -> tuple[str, list[str]]:
    """The real header (num_segs=N_ROWS) over only N_ROWS - cut rows, as a copy cut short."""
    lines = real_lines[: 3 + N_ROWS - cut]
    return _write(tmp_path / "truncated.csv", "\n".join(lines) + "\n"), lines


def test_strict_rejects_a_truncated_file_by_its_header_count(tmp_path, real_lines, class_index):
    path, _ = _truncated(tmp_path, real_lines, cut=5)
    with pytest.raises(MalformedRowError) as error:
        _ingest(path, class_index, "strict")
    assert str(error.value).startswith(
        f"{path}, line 2: the header states num_segs={N_ROWS} but the file holds "
        f"{N_ROWS - 5} data lines"
    )
    assert error.value.row.kind == "row_count"


def test_lenient_reports_a_truncated_file_with_the_numbers(tmp_path, real_lines, class_index):
    path, lines = _truncated(tmp_path, real_lines, cut=5)
    clips, report = _ingest(path, class_index, "lenient")
    assert len(clips) == N_ROWS - 5 and report["n_quarantined"] == 0
    (problem,) = report["header_problems"]
    assert (problem["file"], problem["line"], problem["kind"]) == (path, 2, "row_count")
    assert f"num_segs={N_ROWS} but the file holds {N_ROWS - 5} data lines" in problem["reason"]
    assert report["files"]["balanced"]["header_problem"] == problem
    assert report["mlflow_metrics"]["ingest/header_problems"] == 1
    _assert_counts_add_up(report, N_ROWS - 5)


def test_a_file_cut_inside_a_row_names_the_cut_row_and_the_count(tmp_path, real_lines, class_index):
    """The usual truncation: the last line stops half-way through its label list."""
    text = "\n".join(real_lines)
    path = _write(tmp_path / "cut.csv", text[: text.rindex('"') - 4])
    clips, report = _ingest(path, class_index, "lenient")
    (row,) = report["quarantined_rows"]
    assert (row["line"], row["kind"]) == (3 + N_ROWS, "unterminated_quote")
    assert report["header_problems"] == []  # N_ROWS data lines: the count agrees, the row is bad
    _assert_counts_add_up(report, N_ROWS)
    with pytest.raises(MalformedRowError, match=rf"^{path}, line {3 + N_ROWS}: unterminated"):
        _ingest(path, class_index, "strict")


def test_every_kind_in_one_file_blank_lines_ignored(tmp_path, real_lines, class_index):
    """All row kinds at once with blank lines between: each named on its own line, counts add up."""
    lines = list(real_lines)
    where = {}
    for kind in ROW_KINDS:
        lines.append("")
        lines.append(_row_case(real_lines, kind))
        where[len(lines)] = kind
    path = _write(tmp_path / "all.csv", "\n".join(recount(lines)) + "\n")
    clips, report = _ingest(path, class_index, "lenient")
    assert {row["line"]: row["kind"] for row in report["quarantined_rows"]} == where
    assert all(row["file"] == path for row in report["quarantined_rows"])
    assert len(clips) == N_ROWS
    _assert_counts_add_up(report, N_ROWS + len(ROW_KINDS))


def test_text_that_is_not_utf8_names_the_file(tmp_path, real_lines, class_index):
    from kedro.io import DatasetError

    path = tmp_path / "latin1.csv"
    path.write_bytes(("\n".join(real_lines) + "\n").encode() + b'x, 0.0, 1.0, "\xe9"\n')
    with pytest.raises(DatasetError, match=rf"{path} is not UTF-8 text"):
        _ingest(str(path), class_index, "lenient")
