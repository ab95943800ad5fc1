"""AudioSet's strong (time-stamped) labels -> the events table ``evaluate`` scores localisation on.

The release (``audioset_train_strong.tsv``, ``audioset_eval_strong.tsv``; Hershey et al., ICASSP
2021) is tab-separated with a header line::

    segment_id	start_time_seconds	end_time_seconds	label
    b0RFKhbpFJA_30000	0.000	10.000	/m/03m9d0z

``segment_id`` is ``<YTID>_<segment start in ms>`` (a YTID may itself contain ``_``, so the start is
what follows the last one); the times are seconds from the 10-s segment's start; ``label`` is a mid.

The output has the columns of the bundled ``strong_labels.csv``: ``clip`` (the ytid, the key
``evaluate`` matches test clips on), ``mid``, ``onset_s``, ``offset_s``, plus ``start_s`` (the
segment's start in the recording, from the segment id). Any malformed line is an error naming the
file, the line and what is wrong: these labels are a ground truth, a silently dropped event would
bias the score.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

COLUMNS = ("segment_id", "start_time_seconds", "end_time_seconds", "label")
OUTPUT_COLUMNS = ("clip", "mid", "onset_s", "offset_s", "start_s")
logger = logging.getLogger(__name__)
_SEGMENT_ID = re.compile(r"^(?P<ytid>.+)_(?P<start_ms>\d+)$")
# Slack for the times: the release writes them with 3 decimals; a segment lasts 10 s at most.
MAX_SEGMENT_S = 10.0 + 1e-3


class StrongLabelError(ValueError):
    """A malformed strong-label file; the message names file and line."""


def _fail(source: str, line: int, message: str) -> StrongLabelError:
    return StrongLabelError(f"{source}, line {line}: {message}")


def parse_strong_labels(text: str, source: str) -> pd.DataFrame:
    """Parse the text of one strong-label TSV (``source`` names it in errors).

    A well-formed file is read column-wise by Arrow (the release's train file has ~1M lines:
    seconds instead of a Python loop's tens of seconds); anything the fast path does not accept
    is read line by line, which finds the first bad line and names it, or accepts what Python's
    own parsing accepts (the result is the same either way).
    """
    events = _parse_well_formed(text)
    return events if events is not None else _parse_line_by_line(text, source)


def _parse_well_formed(text: str) -> pd.DataFrame | None:
    """The events of a file in which every check holds, vectorised; None on the first doubt."""
    try:
        table = pacsv.read_csv(
            io.BytesIO(text.encode("utf-8")),
            parse_options=pacsv.ParseOptions(delimiter="\t"),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(COLUMNS, pa.string()), strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowKeyError):
        return None
    if tuple(table.column_names) != COLUMNS:
        return None
    columns = [table.column(c) for c in COLUMNS]
    # The release is ASCII, where Arrow's ASCII trim (5x faster than its UTF-8 one) is the same.
    ascii_only = all(pc.all(pc.string_is_ascii(c)).as_py() is not False for c in columns)
    trim = pc.ascii_trim_whitespace if ascii_only else pc.utf8_trim_whitespace
    ids, onset_text, offset_text, mids = (trim(c) for c in columns)
    # _SEGMENT_ID's split (the last "_" before the digits), without the regex's backtracking
    halves = pc.split_pattern(ids, "_", max_splits=1, reverse=True)
    try:
        ytids = pc.list_element(halves, 0)
        start_text = pc.list_element(halves, 1)  # ArrowInvalid where an id has no "_"
        onsets = pc.cast(onset_text, pa.float64()).to_numpy()
        offsets = pc.cast(offset_text, pa.float64()).to_numpy()
        start_ms = pc.cast(start_text, pa.int64()).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    valid = (
        np.isfinite(onsets) & np.isfinite(offsets) & (onsets >= 0) & (onsets <= offsets)
        & (offsets <= MAX_SEGMENT_S) & pc.starts_with(mids, "/").to_numpy(zero_copy_only=False)
        & pc.utf8_is_digit(start_text).to_numpy(zero_copy_only=False)
        & (pc.utf8_length(ytids).to_numpy() > 0)
    )  # fmt: skip
    if not valid.all():
        return None
    return pd.DataFrame(
        {
            "clip": pd.Series(ytids.to_numpy(zero_copy_only=False), dtype=object),
            "mid": pd.Series(mids.to_numpy(zero_copy_only=False), dtype=object),
            "onset_s": onsets,
            "offset_s": offsets,
            "start_s": start_ms / 1000,
        }
    )


def _parse_line_by_line(text: str, source: str) -> pd.DataFrame:
    rows = list(csv.reader(text.splitlines(), delimiter="\t"))
    if not rows or tuple(c.strip() for c in rows[0]) != COLUMNS:
        found = rows[0] if rows else "an empty file"
        raise _fail(source, 1, f"header must be {'<TAB>'.join(COLUMNS)}, found {found}")
    clips, mids, onsets, offsets, starts = [], [], [], [], []
    for line, fields in enumerate(rows[1:], start=2):
        if not fields or fields == [""]:
            continue  # a blank line (e.g. at the end of the file)
        if len(fields) != len(COLUMNS):
            raise _fail(
                source, line, f"{len(fields)} tab-separated fields, expected {len(COLUMNS)}"
            )
        segment_id, onset_text, offset_text, mid = (f.strip() for f in fields)
        match = _SEGMENT_ID.match(segment_id)
        if match is None:
            raise _fail(source, line, f"segment_id {segment_id!r} is not <YTID>_<start ms>")
        try:
            onset, offset = float(onset_text), float(offset_text)
        except ValueError:
            raise _fail(
                source, line, f"times {onset_text!r}, {offset_text!r} are not numbers"
            ) from None
        if not (np.isfinite(onset) and np.isfinite(offset) and 0 <= onset <= offset):
            raise _fail(source, line, f"need 0 <= start <= end, got {onset} and {offset}")
        if offset > MAX_SEGMENT_S:
            raise _fail(
                source, line, f"end_time_seconds {offset} is past the 10-s segment (seconds are "
                "counted from the segment start)"
            )  # fmt: skip
        if not mid.startswith("/"):
            raise _fail(source, line, f"label {mid!r} is not a mid such as /m/09x0r")
        clips.append(match["ytid"])
        starts.append(int(match["start_ms"]) / 1000)
        mids.append(mid)
        onsets.append(onset)
        offsets.append(offset)
    return pd.DataFrame(
        {
            "clip": pd.Series(clips, dtype=object),
            "mid": pd.Series(mids, dtype=object),
            "onset_s": np.asarray(onsets, dtype=np.float64),
            "offset_s": np.asarray(offsets, dtype=np.float64),
            "start_s": np.asarray(starts, dtype=np.float64),
        }
    )


def read_strong_labels(paths: list[str | Path]) -> pd.DataFrame:
    """Read and concatenate strong-label TSVs (train and eval together, as the folds mix them).

    A clip (ytid) must have one segment start across all files, since ``evaluate`` matches test
    clips by ytid.
    """
    frames = [parse_strong_labels(Path(p).read_text(encoding="utf-8"), str(p)) for p in paths]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in OUTPUT_COLUMNS})
    events = pd.concat(frames, ignore_index=True)
    codes, clips = pd.factorize(events["clip"])
    start = events["start_s"].to_numpy()
    some_start = np.empty(len(clips))
    some_start[codes] = start  # one of each clip's starts: any other start of that clip differs
    ambiguous = np.flatnonzero(start != some_start[codes])
    if ambiguous.size:
        clip = clips[codes[ambiguous[0]]]
        seen = sorted(np.unique(start[codes == codes[ambiguous[0]]]).tolist())
        raise StrongLabelError(
            f"{', '.join(map(str, paths))}: clip {clip!r} has strong labels for segments starting "
            f"at {seen} s; one segment per YTID is expected"
        )
    logger.info("strong labels: %d events of %d clips", len(events), len(clips))
    return events
