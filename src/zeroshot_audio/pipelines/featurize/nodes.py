"""Nodes of the featurize pipeline: thin wrappers over ``zeroshot_audio.audio.featurize``."""

from __future__ import annotations

import glob
import logging
from typing import Any

import pandas as pd
import pyarrow as pa

from zeroshot_audio.audio.featurize import FeaturizeConfig, featurize
from zeroshot_audio.audio.released import from_released_embeddings
from zeroshot_audio.contracts.segment_table import ShardedTable

logger = logging.getLogger(__name__)

SOURCES = ("audio", "released_embeddings")


def _mlflow_fields(report: dict[str, Any]) -> dict[str, Any]:
    tags = {
        "vggish_weights": report["vggish_weights"],
        "vggish_pca": report["vggish_pca"],
        "featurize_source": report.get("source", "audio"),
        "featurize_postprocess": report["postprocess"],
    }
    if report.get("precision"):  # computed embeddings only (released ones are Google's)
        tags["featurize.precision"] = report["precision"]
    metrics: dict[str, float] = {
        "featurize/clips_ok": report["n_featurized"],
        "featurize/clips_failed": report["n_failed"],
    }
    metrics |= {
        f"featurize/failed_{reason}": n for reason, n in report["failures_by_reason"].items()
    }
    for key in ("n_shards_reused", "n_clips_computed", "clips_per_second", "n_short_clips_padded"):
        if report.get(key) is not None:
            metrics[f"featurize/{key}"] = report[key]
    for key in ("short_clips", "label_mismatches"):
        if report.get(key) is not None:
            metrics[f"featurize/{key}"] = report[key]["n"]
    if "tfrecord_files_not_read_whole" in report:
        metrics["featurize/tfrecord_files_not_read_whole"] = len(
            report["tfrecord_files_not_read_whole"]
        )
    return {"mlflow_tags": tags, "mlflow_metrics": metrics}


def featurize_clips(
    clip_folds: pd.DataFrame,
    params: dict[str, Any],
    seed: int,
    device: str,
    classes: pd.DataFrame | None = None,
) -> tuple[ShardedTable | pa.Table, dict[str, Any]]:
    """Embed every clip of ``clip_folds``; unusable clips are left out and listed in the report.

    ``params["source"]``: ``audio`` runs VGGish on the audio files; ``released_embeddings``
    reads AudioSet's released TFRecords (``params["released_embeddings_glob"]``) instead, and
    compares their class indices with the CSV labels through ``classes`` (index -> mid).
    """
    params = dict(params)
    source = params.pop("source", "audio")
    released_glob = params.pop("released_embeddings_glob", None)
    if source not in SOURCES:
        raise ValueError(f"featurize.source must be one of {SOURCES}, got {source!r}")
    config = FeaturizeConfig.from_params(params, seed=seed, device=device)
    if source == "released_embeddings":
        if not released_glob:
            raise ValueError(
                "featurize.source=released_embeddings needs featurize.released_embeddings_glob"
            )
        class_mids = None if classes is None else dict(zip(classes["index"], classes["mid"]))
        table, report = from_released_embeddings(
            clip_folds, glob.glob(released_glob, recursive=True), config.n_segments, class_mids
        )
    else:
        result = featurize(clip_folds, config)
        table, report = result.table, {"source": "audio", **result.report}
    return table, {**report, **_mlflow_fields(report)}
