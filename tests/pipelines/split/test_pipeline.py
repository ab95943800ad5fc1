"""`ingest` + `split` wired through a Kedro runner on a slice of the real eval file."""

from __future__ import annotations

import re

from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from kedro_datasets.pandas import ParquetDataset

from zeroshot_audio.pipelines.ingest import create_pipeline as ingest
from zeroshot_audio.pipelines.split import create_pipeline as split


def test_ingest_then_split_through_the_kedro_runner(tmp_path, audioset_dir, class_index, ontology):
    lines = (audioset_dir / "eval_segments.csv").read_text().splitlines()[:3003]
    lines[1] = re.sub(r"num_segs=\d+", "num_segs=3000", lines[1])  # the header counts the slice
    catalog = DataCatalog(
        {
            "audioset_segment_files": MemoryDataset({"eval": ("eval.csv", "\n".join(lines))}),
            "audioset_class_index": MemoryDataset(class_index),
            "audioset_ontology": MemoryDataset(ontology),
            "params:ingest": MemoryDataset({"mode": "strict"}),
            "params:split": MemoryDataset(
                {
                    "class_selection": {
                        "drop_restrictions": ["abstract", "blacklist"],
                        "leaf_only": True,
                        "min_clips": 5,
                    },
                    "cross_fold_policy": "drop",
                    "balance_tolerance": 0.1,
                }
            ),
            "params:folds": MemoryDataset(
                {
                    "n_folds": 3,
                    "rotations": [{"name": "r", "train": [0], "validation": 1, "test": 2}],
                }
            ),
            "params:seed": MemoryDataset(1),
        }
    )
    # the outputs go through the same file formats as in the project catalog
    for name in ("audioset_clips", "audioset_classes", "class_folds", "clip_folds"):
        catalog[name] = ParquetDataset(filepath=str(tmp_path / f"{name}.parquet"))
    for name in ("ingest_report", "split_report"):
        catalog[name] = JSONDataset(filepath=str(tmp_path / f"{name}.json"))
    SequentialRunner().run(ingest() + split(), catalog)

    clips = catalog.load("audioset_clips")
    assert len(clips) == 3000
    assert list(clips.columns) == ["ytid", "start_s", "end_s", "labels", "source_split"]
    classes = catalog.load("audioset_classes")
    assert {"mid", "index", "display_name", "description", "child_ids", "is_leaf",
            "restrictions", "n_clips_eval"} <= set(classes.columns)  # fmt: skip
    clip_folds = catalog.load("clip_folds")
    assert list(clip_folds.columns) == [
        "ytid",
        "start_s",
        "end_s",
        "fold",
        "labels",
        "source_split",
    ]
    report = catalog.load("split_report")
    assert report["n_kept_clips"] == len(clip_folds)
    assert sum(report["clips_per_fold"]) == len(clip_folds)
    assert catalog.load("ingest_report")["n_quarantined"] == 0
    fold_of = dict(zip(catalog.load("class_folds")["mid"], catalog.load("class_folds")["fold"]))
    assert all(
        {fold_of[m] for m in labels} == {fold}
        for labels, fold in zip(clip_folds["labels"], clip_folds["fold"], strict=True)
    )
