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
import re
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ("segment_id", "start_time_seconds", "end_time_seconds", "label")
OUTPUT_COLUMNS = ("clip", "mid", "onset_s", "offset_s", "start_s")
_SEGMENT_ID = re.compile(r"^(?P<ytid>.+)_(?P<start_ms>\d+)$")
# Slack for the times: the release writes them with 3 decimals; a segment lasts 10 s at most.
MAX_SEGMENT_S = 10.0 + 1e-3


class StrongLabelError(ValueError):
    """A malformed strong-label file; the message names file and line."""


def _fail(source: str, line: int, message: str) -> StrongLabelError:
    return StrongLabelError(f"{source}, line {line}: {message}")


def parse_strong_labels(text: str, source: str) -> pd.DataFrame:
    """Parse the text of one strong-label TSV (``source`` names it in errors)."""
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
    starts = events.groupby("clip")["start_s"].nunique()
    ambiguous = starts[starts > 1]
    if len(ambiguous):
        clip = ambiguous.index[0]
        seen = sorted(events.loc[events["clip"] == clip, "start_s"].unique())
        raise StrongLabelError(
            f"{', '.join(map(str, paths))}: clip {clip!r} has strong labels for segments starting "
            f"at {seen} s; one segment per YTID is expected"
        )
    return events
