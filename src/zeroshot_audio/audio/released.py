"""``featurize.source: released_embeddings``: AudioSet's released VGGish embeddings instead of
computing them, in the segment table of the contract, with their EmbedderSpec (``released``)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from zeroshot_audio.audio.embed import released_spec
from zeroshot_audio.contracts import segment_table


def from_released_embeddings(
    clips: pd.DataFrame, tfrecord_paths: Iterable[str | Path], n_segments: int = 10
) -> tuple[pa.Table, dict[str, Any]]:
    """The AudioSet release's embeddings for the clips of ``clips`` (in its order), instead of
    computing them: the clips absent from the TFRecords are reported as ``not_released``."""
    from zeroshot_audio.audio.tfrecord_reader import read_released_embeddings

    started = time.perf_counter()
    frame = clips[["ytid", "start_s"]].drop_duplicates()
    paths = sorted(str(p) for p in tfrecord_paths)
    if not paths:
        raise FileNotFoundError("featurize: no TFRecord files match the released_embeddings glob")
    released = read_released_embeddings(
        paths, n_segments, keep=frame.itertuples(index=False, name=None)
    )
    # The reader wrote each kept clip straight to its row, in `frame`'s order of first
    # appearance per (ytid, millisecond): slot = that key's group number (vectorised: no
    # per-clip Python objects at 2M clips); the slots it did not find are the failures.
    ms = np.round(frame["start_s"].to_numpy(dtype=np.float64) * 1000).astype(np.int64)
    slot = frame.groupby([frame["ytid"].astype(str).to_numpy(), ms], sort=False).ngroup()
    slot = slot.to_numpy()
    found = np.zeros(int(slot.max()) + 1 if len(slot) else 0, dtype=bool)
    found[released.kept_positions] = True
    ok = found[slot]
    failures = [
        {"ytid": str(y), "start_s": float(s), "path": None, "reason": "not_released", "detail": ""}
        for y, s in frame.loc[~ok, ["ytid", "start_s"]].itertuples(index=False, name=None)
    ]
    rank = np.cumsum(found) - 1  # slot -> table row
    order = rank[slot[ok]]
    spec = released_spec(n_segments)
    table = released.table
    if not np.array_equal(order, np.arange(len(table))):  # only with ms-duplicates in `frame`
        table = table.take(pa.array(order, pa.int64()))
    table = segment_table.with_embedder_spec(table, spec)
    reasons = Counter(f["reason"] for f in failures)
    report = {
        "source": "released_embeddings",
        "n_clips_input": int(len(clips)),
        "n_clips": int(len(frame)),
        "n_featurized": int(len(order)),
        "n_failed": len(failures),
        "failures_by_reason": dict(reasons),
        "failures": failures,
        "tfrecord_files": len(paths),
        "tfrecord_problems": released.problems,
        "vggish_weights": "official",
        "vggish_pca": "official",
        "embedding_dtype": "uint8",
        "n_segments": n_segments,
        "postprocess": "quantized",
        "embedder": spec.to_dict(),
        "total_seconds": round(time.perf_counter() - started, 3),
    }
    return table, report
