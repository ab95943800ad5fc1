"""Reading AudioSet's published metadata: segment CSVs, the class index and the ontology.

The segment files are almost CSV but not quite (`, ` separators, a quoted comma-separated label list,
three `#` header lines), and real copies of them are sometimes truncated or hand-edited. So each line
is validated on its own and a malformed one is never silently dropped: in ``strict`` mode the first
one raises :class:`MalformedRowError` naming file, line and reason; in ``lenient`` mode it is returned
as a :class:`MalformedRow` for the caller to quarantine and report.

Problems of the whole file are never quarantined, since no row could hold them: a file with no
segment rows (empty, or header only) is an error in both modes, and a file holding fewer or more
rows than its header's ``num_segs`` states (a truncated copy) is an error in strict mode and a
``header_problem`` for the report in lenient mode. A UTF-8 byte-order mark is accepted and dropped.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

_HEADER_COUNT = re.compile(r"(\w+)=(\d+)")
MALFORMED_KINDS = (
    "field_count",
    "unterminated_quote",
    "empty_ytid",
    "bad_time",
    "reversed_time",
    "empty_labels",
    "unknown_mid",
    "duplicate",
)
#: Problems of a whole file rather than of one row; never quarantined.
FILE_PROBLEM_KINDS = ("no_rows", "row_count")
BOM = "\ufeff"


class MalformedRowError(ValueError):
    """A segment row that cannot be trusted, raised in strict mode."""

    def __init__(self, row: MalformedRow):
        super().__init__(f"{row.file}, line {row.line}: {row.reason}: {row.text!r}")
        self.row = row


@dataclass(frozen=True)
class MalformedRow:
    file: str
    line: int
    kind: str  # one of MALFORMED_KINDS, for counting
    reason: str  # human-readable, with the offending values
    text: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _split_header(text: str) -> tuple[list[str], str, int]:
    """Leading ``#`` lines, the rest of the text, and how many lines the header took."""
    header: list[str] = []
    pos = 0
    while text.startswith("#", pos):
        newline = text.find("\n", pos)
        newline = len(text) if newline < 0 else newline
        header.append(text[pos:newline])
        pos = newline + 1
    return header, text[pos:], len(header)


def _no_rows_error(source: str, n_header: int, had_text: bool) -> MalformedRowError:
    what = f"the header ({n_header} '#' lines) is followed by" if n_header else "the file holds"
    reason = (
        f"no segment rows: {what} no data" if had_text else "no segment rows: the file is empty"
    )
    return MalformedRowError(MalformedRow(source, max(n_header, 1), "no_rows", reason, ""))


def check_row_count(
    header: list[str], header_counts: Mapping[str, int], n_data_lines: int, source: str
) -> MalformedRow | None:
    """A :class:`MalformedRow` of kind ``row_count`` (pointing at the header line) when the
    header's ``num_segs`` disagrees with the data lines found, e.g. in a truncated copy."""
    expected = header_counts.get("num_segs")
    if expected is None or expected == n_data_lines:
        return None
    line = next(i for i, text in enumerate(header, 1) if "num_segs=" in text)
    how = "truncated or cut short?" if n_data_lines < expected else "rows added by hand?"
    return MalformedRow(
        source,
        line,
        "row_count",
        f"the header states num_segs={expected} but the file holds {n_data_lines} data lines "
        f"({how})",
        header[line - 1],
    )


def _unterminated_quotes(lines: pa.Array) -> np.ndarray:
    """Indices of lines with an odd number of double quotes: a label list opened, never closed.

    Arrow's reader would carry on into the next line(s) to find the closing quote, merging rows
    and shifting every later line number, so these lines are taken out before it runs."""
    counts = pc.count_substring(lines, '"').to_numpy(zero_copy_only=False)
    return np.flatnonzero(counts % 2 == 1)


def _read_rows(body: str, on_invalid) -> pa.Table:
    columns = ["ytid", "start", "end", "labels"]
    if not body.strip():
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    return pacsv.read_csv(
        io.BytesIO(body.replace(", ", ",").encode("utf-8")),
        read_options=pacsv.ReadOptions(column_names=columns, use_threads=False),
        parse_options=pacsv.ParseOptions(ignore_empty_lines=False, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in columns},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _time_column(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Parsed seconds and a mask of the rows whose value is not a finite non-negative number."""
    values = pd.to_numeric(column.to_pandas(), errors="coerce").to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | (values < 0)
    return values, bad


def parse_segments(
    text: str,
    source: str,
    source_split: str,
    known_mids: Iterable[str],
    *,
    strict: bool,
) -> tuple[pd.DataFrame, list[MalformedRow], dict[str, int]]:
    """Parse one AudioSet segments file given as text.

    Returns the valid rows (``ytid``, ``start_s``, ``end_s``, ``labels``, ``source_split``,
    ``line``), the malformed rows, and the counts the header claims. Parsing is done by Arrow's CSV
    reader and validated column-wise, so the 2M-row unbalanced file takes seconds; only the rows
    that fail are looked at one by one. Duplicates across files are checked by
    :func:`find_duplicates` on the concatenated rows.

    ``frame.attrs`` holds ``n_data_lines`` (non-blank lines after the header: kept plus malformed
    rows) and ``header_problem`` (a ``row_count`` :class:`MalformedRow` as a dict, lenient only).
    Raises :class:`MalformedRowError` for a file without rows in both modes.
    """
    had_text = bool(text) and not text.isspace()
    header, body, n_header = _split_header(text.removeprefix(BOM))
    header_counts = {
        k: int(v) for line in header for k, v in _HEADER_COUNT.findall(line) if k.startswith("num_")
    }
    bad: list[MalformedRow] = []
    invalid_lines: list[int] = []
    raw_lines = body.split("\n")
    n_lines = len(raw_lines) - (1 if raw_lines and raw_lines[-1] == "" else 0)
    line_array = pa.array(raw_lines[:n_lines], pa.string())
    blank = ~pc.not_equal(pc.utf8_trim_whitespace(line_array), "").to_numpy(zero_copy_only=False)
    n_data_lines = int(n_lines - blank.sum())
    if n_data_lines == 0:
        raise _no_rows_error(source, n_header, had_text)
    row_count = check_row_count(header, header_counts, n_data_lines, source)

    unterminated = _unterminated_quotes(line_array)
    for i in unterminated:
        bad.append(
            MalformedRow(
                source,
                n_header + int(i) + 1,
                "unterminated_quote",
                'unterminated quote: the label list opens a " that this line never closes',
                raw_lines[i],
            )
        )
    # Arrow reads an empty line as a row of empty strings, and an unterminated quote as the start
    # of a value spanning lines: both are replaced by a one-field placeholder that it rejects
    # as an invalid row, so that its row numbers keep matching the lines.
    skipped = set((np.flatnonzero(blank) + 1).tolist()) | {int(i) + 1 for i in unterminated}
    if skipped:
        arrow_lines = list(raw_lines)
        for number in skipped:
            arrow_lines[number - 1] = "?"
        body = "\n".join(arrow_lines)

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid_lines.append(row.number)
        if row.number not in skipped:
            bad.append(
                MalformedRow(
                    source,
                    n_header + row.number,
                    "field_count",
                    "expected 4 fields (YTID, start_seconds, end_seconds, quoted labels), "
                    f"found {row.actual_columns}",
                    raw_lines[row.number - 1],
                )
            )
        return "skip"

    table = _read_rows(body, on_invalid)
    line = np.setdiff1d(np.arange(1, n_lines + 1), np.asarray(invalid_lines, dtype=np.int64))
    if len(line) != table.num_rows:  # a quoted newline or similar that Arrow read differently
        raise ValueError(
            f"{source}: {table.num_rows} rows parsed from {len(line)} lines; the file's quoting "
            "cannot be mapped back to its lines"
        )

    columns = {name: table.column(name).combine_chunks() for name in table.column_names}
    ytid = pc.utf8_trim_whitespace(columns["ytid"])
    start, bad_start = _time_column(columns["start"])
    end, bad_end = _time_column(columns["end"])
    labels = pc.split_pattern(pc.utf8_trim_whitespace(columns["labels"]), ",")
    flat = pc.utf8_trim_whitespace(pc.list_flatten(labels))
    parent = pc.list_parent_indices(labels).to_numpy()
    nonempty = pc.not_equal(flat, "").to_numpy(zero_copy_only=False)
    known_flat = pc.is_in(flat, value_set=pa.array(list(known_mids), pa.string()))
    unknown_flat = nonempty & ~known_flat.to_numpy(zero_copy_only=False)
    n_rows = table.num_rows
    n_labels = np.bincount(parent[nonempty], minlength=n_rows)
    first_unknown = np.full(n_rows, -1, dtype=np.int64)
    where_unknown = np.flatnonzero(unknown_flat)[::-1]
    first_unknown[parent[where_unknown]] = where_unknown

    ytid_np = ytid.to_numpy(zero_copy_only=False)
    checks = [
        ("empty_ytid", ytid_np == "", lambda i: "empty YTID"),
        (
            "bad_time",
            bad_start | bad_end,
            lambda i: (
                f"start_seconds {columns['start'][i].as_py().strip()!r} / end_seconds "
                f"{columns['end'][i].as_py().strip()!r}: not a finite non-negative number"
            ),
        ),
        (
            "reversed_time",
            ~(bad_start | bad_end) & (end <= start),
            lambda i: f"end_seconds {end[i]:g} is not after start_seconds {start[i]:g}",
        ),
        ("empty_labels", n_labels == 0, lambda i: "empty label list"),
        (
            "unknown_mid",
            first_unknown >= 0,
            lambda i: f"unknown mid {flat[first_unknown[i]].as_py()!r} (not in the class index)",
        ),
    ]
    rejected = np.zeros(n_rows, dtype=bool)
    for kind, mask, describe in checks:
        for i in np.flatnonzero(mask & ~rejected):
            bad.append(
                MalformedRow(
                    source, n_header + int(line[i]), kind, describe(i), raw_lines[line[i] - 1]
                )
            )
        rejected |= mask
    bad.sort(key=lambda row: row.line)
    if strict and bad:
        raise MalformedRowError(bad[0])
    if strict and row_count is not None:
        raise MalformedRowError(row_count)

    keep = ~rejected
    kept_flat = nonempty & keep[parent]
    clean = pa.ListArray.from_arrays(
        pa.array(
            np.concatenate(
                [[0], np.cumsum(np.bincount(parent[kept_flat], minlength=n_rows)[keep])]
            ).astype(np.int32)
        ),
        flat.filter(pa.array(kept_flat)),
    )
    frame = pd.DataFrame(
        {
            "ytid": pd.Series(
                ytid.filter(pa.array(keep)).to_numpy(zero_copy_only=False), dtype=object
            ),
            "start_s": start[keep],
            "end_s": end[keep],
            "labels": pd.Series(clean.to_numpy(zero_copy_only=False), dtype=object),
            "source_split": source_split,
            "line": n_header + line[keep],
        }
    )
    frame.attrs["n_data_lines"] = n_data_lines
    frame.attrs["header_problem"] = row_count.to_dict() if row_count is not None else None
    return frame, bad, header_counts


def find_duplicates(
    clips: pd.DataFrame, sources: pd.Series
) -> tuple[np.ndarray, list[MalformedRow]]:
    """Rows repeating an earlier (YTID, start) segment, in the same file or an earlier one.

    ``clips`` holds the concatenated output of :func:`parse_segments` (with its ``line`` column) and
    ``sources`` the file of each row.
    """
    key = ["ytid", "start_s"]
    dup = clips.duplicated(key, keep="first").to_numpy()
    if not dup.any():
        return dup, []
    first = clips.loc[~dup, [*key, "line"]].assign(source=sources[~dup].to_numpy()).set_index(key)
    bad = []
    for i in np.flatnonzero(dup):
        ytid, start, end = clips["ytid"].iat[i], clips["start_s"].iat[i], clips["end_s"].iat[i]
        origin = first.loc[(ytid, start)]
        labels = ",".join(clips["labels"].iat[i])
        bad.append(
            MalformedRow(
                str(sources.iat[i]),
                int(clips["line"].iat[i]),
                "duplicate",
                f"duplicate segment {ytid} at {start:g} s (first seen in {origin['source']}, "
                f"line {int(origin['line'])})",
                f'{ytid}, {start:.3f}, {end:.3f}, "{labels}"',
            )
        )
    return dup, bad


def _descendants(mid: str, children: Mapping[str, list[str]]) -> set[str]:
    out: set[str] = set()
    stack = list(children.get(mid, []))
    while stack:
        child = stack.pop()
        if child not in out:
            out.add(child)
            stack.extend(children.get(child, []))
    return out


def build_class_table(
    class_index: pd.DataFrame,
    ontology: list[Mapping[str, object]],
    clips: pd.DataFrame,
) -> pd.DataFrame:
    """One row per labelled class, with its ontology facts and clip counts per source split.

    ``is_leaf`` is taken among *labelled* classes: a class is a leaf when no class of the index
    descends from it, even through unlabelled intermediate nodes of the ontology.
    """
    missing_cols = {"index", "mid", "display_name"} - set(class_index.columns)
    if missing_cols:
        raise ValueError(f"class index lacks columns {sorted(missing_cols)}")
    nodes = {str(node["id"]): node for node in ontology}
    children = {mid: list(node.get("child_ids", [])) for mid, node in nodes.items()}
    labelled = set(class_index["mid"])

    counts = pd.DataFrame(index=pd.Index(class_index["mid"], name="mid"))
    if len(clips):
        exploded = clips[["labels", "source_split"]].explode("labels")
        per_split = exploded.groupby(["labels", "source_split"]).size().unstack(fill_value=0)
        for split_name in per_split.columns:
            counts[f"n_clips_{split_name}"] = per_split[split_name]
    counts = counts.fillna(0).astype(np.int64)

    rows = []
    for index, mid, display_name in class_index[["index", "mid", "display_name"]].itertuples(
        index=False
    ):
        node = nodes.get(mid, {})
        rows.append(
            {
                "mid": mid,
                "index": int(index),
                "display_name": display_name,
                "description": str(node.get("description", "")),
                "child_ids": list(node.get("child_ids", [])),
                "is_leaf": not (_descendants(mid, children) & labelled),
                "restrictions": list(node.get("restrictions", [])),
                "in_ontology": mid in nodes,
            }
        )
    table = pd.DataFrame(rows)
    return table.join(counts, on="mid").sort_values("index", ignore_index=True)
