"""Parsing AudioSet's published metadata: the real files, and every kind of malformed row."""

from __future__ import annotations

import gzip
import re

import pandas as pd
import pytest

from zeroshot_audio.datasets.audioset_files import AudioSetSegmentFiles
from zeroshot_audio.metadata.audioset import (
    MALFORMED_KINDS,
    MalformedRowError,
    build_class_table,
    parse_segments,
)
from zeroshot_audio.pipelines.ingest.nodes import parse_segment_files


def _header_totals(clips: pd.DataFrame) -> dict[str, int]:
    labels = clips["labels"].explode()
    return {
        "num_ytids": clips["ytid"].nunique(),
        "num_segs": len(clips),
        "num_unique_labels": labels.nunique(),
        "num_positive_labels": len(labels),
    }


@pytest.mark.parametrize("name", ["balanced_train_segments.csv", "eval_segments.csv"])
def test_real_segment_files_parse_to_the_counts_their_headers_state(
    audioset_dir, class_index, name
):
    text = (audioset_dir / name).read_text()
    clips, bad, header = parse_segments(text, name, "x", class_index["mid"], strict=True)
    assert bad == []
    assert _header_totals(clips) == header
    first = text.splitlines()[3].split(", ")
    assert clips["ytid"].iat[0] == first[0]
    assert clips["start_s"].iat[0] == float(first[1])
    assert clips["line"].iat[0] == 4


@pytest.mark.slow
def test_unbalanced_gz_parses_to_its_header_counts(audioset_dir, class_index):
    path = audioset_dir / "unbalanced_train_segments.csv.gz"
    ((split, (source, text)),) = AudioSetSegmentFiles({"unbalanced": str(path)}).load().items()
    clips, bad, header = parse_segments(text, source, split, class_index["mid"], strict=True)
    assert bad == []
    assert header["num_segs"] == 2_041_789
    assert _header_totals(clips) == header


def recount(lines: list[str]) -> list[str]:
    """The lines with the header's ``num_segs`` set to the data lines that follow it, as an
    untruncated file has it (other header counts left as published)."""
    n = sum(1 for line in lines[3:] if line.strip())
    return [lines[0], re.sub(r"num_segs=\d+", f"num_segs={n}", lines[1]), *lines[2:]]


def _slice(audioset_dir, n_rows: int = 30) -> list[str]:
    lines = (audioset_dir / "balanced_train_segments.csv").read_text().splitlines()[: 3 + n_rows]
    return recount(lines)


def _corrupt(lines: list[str]) -> tuple[str, dict[int, str]]:
    """A real slice with one row of every malformed kind; returns text and {line: kind}."""
    lines = list(lines)
    row = lines[5].split(", ", 3)  # a valid row to derive corruptions from
    corruptions = {
        "field_count": f"{row[0]}X, {row[1]}, {row[2]}",
        "unterminated_quote": f'{row[0]}U, {row[1]}, {row[2]}, "/m/09x0r',
        "empty_ytid": f", {row[1]}, {row[2]}, {row[3]}",
        "bad_time": f"{row[0]}Y, thirty, {row[2]}, {row[3]}",
        "reversed_time": f"{row[0]}Z, 40.000, 30.000, {row[3]}",
        "empty_labels": f'{row[0]}W, {row[1]}, {row[2]}, ""',
        "unknown_mid": f'{row[0]}V, {row[1]}, {row[2]}, "/m/09x0r,/m/not_a_class"',
        "duplicate": lines[4],
    }
    where = {}
    for kind, text in corruptions.items():
        lines.append(text)
        where[len(lines)] = kind
    return "\n".join(recount(lines)) + "\n", where


def test_lenient_mode_quarantines_every_malformed_kind_with_file_and_line(
    audioset_dir, class_index
):
    lines = _slice(audioset_dir)
    text, where = _corrupt(lines)
    clips, report = parse_segment_files(
        {"balanced": ("slice.csv", text)}, class_index, {"mode": "lenient"}
    )
    found = {row["line"]: row["kind"] for row in report["quarantined_rows"]}
    assert found == where
    assert set(found.values()) == set(MALFORMED_KINDS)
    assert all(row["file"] == "slice.csv" and row["reason"] for row in report["quarantined_rows"])
    assert report["quarantined_by_reason"] == {kind: 1 for kind in MALFORMED_KINDS}
    assert report["mlflow_metrics"]["ingest/quarantined_rows"] == len(MALFORMED_KINDS)
    assert len(clips) == 30  # every valid row kept, none of the bad ones
    assert list(clips["ytid"]) == [line.split(", ")[0] for line in lines[3:]]


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_strict_mode_fails_on_the_first_malformed_row_naming_file_and_line(
    audioset_dir, class_index, kind
):
    text, where = _corrupt(_slice(audioset_dir))
    line = next(n for n, k in where.items() if k == kind)
    lines = text.splitlines()
    kept = recount(lines[:33] + [lines[line - 1]])
    with pytest.raises(MalformedRowError, match=r"slice\.csv, line 34: ") as error:
        parse_segment_files(
            {"balanced": ("slice.csv", "\n".join(kept))}, class_index, {"mode": "strict"}
        )
    assert error.value.row.kind == kind


def test_duplicates_are_caught_across_files(audioset_dir, class_index):
    lines = _slice(audioset_dir, 5)
    files = {
        "a": ("a.csv", "\n".join(lines)),
        "b": ("b.csv", "\n".join(recount(lines[:3] + lines[5:6]))),
    }
    clips, report = parse_segment_files(files, class_index, {"mode": "lenient"})
    assert len(clips) == 5
    (row,) = report["quarantined_rows"]
    assert (row["file"], row["line"], row["kind"]) == ("b.csv", 4, "duplicate")
    assert "first seen in a.csv, line 6" in row["reason"]


def test_gzip_and_plain_segment_files_load_the_same(tmp_path, audioset_dir):
    text = "\n".join(_slice(audioset_dir)) + "\n"
    (tmp_path / "s.csv").write_text(text)
    with gzip.open(tmp_path / "s.csv.gz", "wt") as handle:
        handle.write(text)
    loaded = AudioSetSegmentFiles(
        {"plain": str(tmp_path / "s.csv"), "gz": str(tmp_path / "s.csv.gz")}
    ).load()
    assert loaded["plain"][1] == loaded["gz"][1] == text


def test_missing_segment_file_error_says_what_to_do(tmp_path):
    from kedro.io import DatasetError

    with pytest.raises(DatasetError, match="not found: .*nope.csv.*Download"):
        AudioSetSegmentFiles({"eval": str(tmp_path / "nope.csv")}).load()


def test_class_table_on_the_real_ontology(audioset_dir, class_index, ontology):
    text = (audioset_dir / "eval_segments.csv").read_text()
    clips, _, _ = parse_segments(text, "eval", "eval", class_index["mid"], strict=True)
    table = build_class_table(class_index, ontology, clips).set_index("mid")
    assert len(table) == 527
    assert table["index"].tolist() == list(range(527))
    # Music has labelled descendants; Pizzicato (a child of Violin) has none.
    assert not table.at["/m/04rlf", "is_leaf"]
    assert not table.at["/m/07y_7", "is_leaf"]
    assert table.at["/m/0d8_n", "is_leaf"]
    assert table.at["/m/09x0r", "description"].startswith("Speech is the vocalized form")
    # leaf status follows descendants through unlabelled ontology nodes too
    nodes = {n["id"]: n for n in ontology}
    labelled = set(class_index["mid"])

    def has_labelled_descendant(mid: str) -> bool:
        return any(c in labelled or has_labelled_descendant(c) for c in nodes[mid]["child_ids"])

    expected = {mid: not has_labelled_descendant(mid) for mid in labelled}
    assert table["is_leaf"].to_dict() == expected
    # per-split clip counts equal the label occurrences of the file
    counts = clips["labels"].explode().value_counts()
    assert (table["n_clips_eval"] == counts.reindex(table.index, fill_value=0)).all()
    assert table["restrictions"].to_dict() == {
        mid: list(nodes[mid].get("restrictions", [])) for mid in labelled
    }
    assert table["restrictions"].map(len).sum() > 0
