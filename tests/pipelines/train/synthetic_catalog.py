"""A small in-memory catalog in the shape of the real stage inputs, for the pipeline tests.

Segment features come from the planted generator (tests/model/planted.py); clip, class and label
tables follow the contracts of clip_folds, class_folds and label_embeddings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tests.model.planted import make_planted
from zeroshot_audio.contracts.segment_table import from_arrays

DROPPED_CLIPS = 3  # clips present in clip_folds but missing from segment_embeddings

PARAMS: dict[str, Any] = {
    "seed": 7,
    "device": "cpu",
    "folds": {
        "n_folds": 3,
        "rotations": [
            {"name": "rot0", "train": [0], "validation": 1, "test": 2},
            {"name": "rot1", "train": [1], "validation": 2, "test": 0},
            {"name": "rot2", "train": [2], "validation": 0, "test": 1},
        ],
    },
    "embed_labels": {"encoder": {"model_name_or_path": "synthetic:planted", "pooling": "mean"}},
    "featurize": {"segment_s": 1.0},
    "predict": {"localisation": {"rule": "uniform_ratio", "value": 1.0}},
    "train": {
        "methods": ["temporal_attention", "uniform", "supervised"],
        "model": {"joint_dim": 32, "n_layers": 1, "tau": 1.0, "gamma": 0.5, "dropout": 0.0},
        "gamma_grid": [],
        "cpu_threads": 1,
        "fit": {
            "epochs": 4,
            "batch_size": 32,
            "optimizer": "adam",
            "learning_rate": 0.003,
            "weight_decay": 0.0,
            "momentum": 0.9,
            "margin": 1.0,
            "monitor": "val_map",
            "patience": 10,
            "eval_batch_size": 512,
            "mixed_precision": True,
            "show_progress": False,
        },
        "supervised_split": {"test": 0.3, "validation": 0.2},
    },
    "evaluate": {
        "threshold": {"rule": "tuned", "fixed": 0.0, "top_k": 1},
        "batch_size": 512,
        "cpu_threads": 1,
        "std_ddof": 1,
        "heatmaps": {
            "rotation": None,
            "method": "temporal_attention",
            "n_clips": 3,
            "max_classes": 4,
        },
    },
}


def stage_inputs(clips_per_fold: int = 60, seed: int = 0) -> dict[str, Any]:
    data = make_planted(
        seed=seed,
        semantic_dim=5,
        classes_per_fold=6,
        clips_per_fold=clips_per_fold,
        quantised=True,
    )
    mids = [f"/m/c{k:02d}" for k in range(len(data.class_fold))]
    ytids = [f"clip{i:04d}" for i in range(len(data.clip_fold))]
    clip_folds = pd.DataFrame(
        {
            "ytid": ytids,
            "start_s": 30.0,
            "end_s": 40.0,
            "fold": data.clip_fold,
            "labels": [[mids[k] for k in row.nonzero()[0]] for row in data.targets],
            "source_split": "eval",
        }
    )
    n, t, k = np.nonzero(data.active)  # the planted segments are the strong labels
    strong_labels = pd.DataFrame(
        {"clip": np.asarray(ytids)[n], "mid": np.asarray(mids)[k], "onset_s": t + 0.2,
         "offset_s": t + 0.9}
    )  # fmt: skip
    keep = slice(DROPPED_CLIPS, None)  # featurize "skipped" the first clips
    segment_embeddings = from_arrays(
        ytids[keep], [30.0] * (len(ytids) - DROPPED_CLIPS), data.n_valid[keep], data.segments[keep]
    )
    return {
        "segment_embeddings": segment_embeddings,
        "clip_folds": clip_folds,
        "class_folds": pd.DataFrame({"mid": mids, "fold": data.class_fold}),
        "strong_labels": strong_labels,
        "label_embeddings": pd.DataFrame(
            {
                "mid": mids,
                "text": [f"class {k}" for k in range(len(mids))],
                "embedding": [list(v) for v in data.label_embeddings],
            }
        ),
    }


def parameter_datasets(params: dict[str, Any] = PARAMS) -> dict[str, Any]:
    """``params:x`` and ``params:x.y`` entries, as Kedro's catalog exposes them."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        flat[f"params:{prefix}"] = value
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}", sub)

    for key, value in params.items():
        walk(key, value)
    return flat
