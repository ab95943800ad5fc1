"""The planted catalog: one small in-memory catalog in the shape of the real stage inputs, built
once per test session and shared by the experiment, report and pipeline tests.

Segment features come from the planted generator (tests/model/planted.py): each class of a clip
sounds in one or two known segments, which are also its strong labels. Clip, class and label
tables follow the contracts of clip_folds, class_folds and label_embeddings; the first
``DROPPED_CLIPS`` clips have no segment embeddings (featurize "skipped" them).

``planted_catalog()`` is cached: call it from any test; do not mutate what it returns.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from tests.model.planted import make_planted
from zeroshot_audio.contracts.label_table import LabelEncoderSpec, with_encoder_spec
from zeroshot_audio.contracts.segment_table import from_arrays

DROPPED_CLIPS = 3
CLIPS_PER_FOLD = 120
SEMANTIC_DIM = 8
LABEL_ENCODER = LabelEncoderSpec(
    model_name_or_path="synthetic:planted", text_source="display_name", dimension=SEMANTIC_DIM
)

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
    "featurize": {"segment_s": 1.0},
    "predict": {"localisation": {"rule": "uniform_ratio", "value": 1.0}},
    "train": {
        "methods": ["temporal_attention", "uniform", "supervised"],
        "model": {"joint_dim": 32, "n_layers": 1, "tau": 1.0, "gamma": 0.5, "dropout": 0.0},
        "gamma_grid": [],
        "cpu_threads": 1,
        "fit": {
            "epochs": 6,
            "batch_size": 32,
            "optimizer": "adam",
            "learning_rate": 0.003,
            "weight_decay": 0.0,
            "momentum": 0.9,
            "margin": 1.0,
            "monitor": "val_map",
            "patience": 6,
            "eval_batch_size": 512,
            "mixed_precision": True,
            "show_progress": False,
        },
        "supervised_crossfit": {"k": 3, "validation_fraction": 0.2},
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


def params() -> dict[str, Any]:
    """A fresh copy of the parameters (tests change them freely)."""
    return copy.deepcopy(PARAMS)


def build_catalog(
    *,
    clips_per_fold: int = CLIPS_PER_FOLD,
    seed: int = 3,
    segment_dim: int = 128,
    semantic_dim: int = SEMANTIC_DIM,
    quantised: bool = True,
    with_specs: bool = True,
) -> dict[str, Any]:
    """The stage inputs; ``with_specs=False`` leaves out the label-encoder spec (external vectors)."""
    data = make_planted(
        seed=seed,
        semantic_dim=semantic_dim,
        classes_per_fold=6,
        clips_per_fold=clips_per_fold,
        quantised=quantised,
        segment_dim=segment_dim,
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
    n, t, k = np.nonzero(data.active)  # events inside their segment: 0.2-0.9 s in
    strong_labels = pd.DataFrame(
        {"clip": np.asarray(ytids)[n], "mid": np.asarray(mids)[k], "onset_s": t + 0.2,
         "offset_s": t + 0.9}
    )  # fmt: skip
    keep = slice(DROPPED_CLIPS, None)
    segment_embeddings = from_arrays(
        ytids[keep], [30.0] * (len(ytids) - DROPPED_CLIPS), data.n_valid[keep], data.segments[keep]
    )
    label_embeddings = pd.DataFrame(
        {
            "mid": mids,
            "text": [f"class {k}" for k in range(len(mids))],
            "embedding": [np.asarray(v, np.float32) for v in data.label_embeddings],
        }
    )
    if with_specs:
        label_embeddings = with_encoder_spec(label_embeddings, LABEL_ENCODER)
    return {
        "segment_embeddings": segment_embeddings,
        "clip_folds": clip_folds,
        "class_folds": pd.DataFrame({"mid": mids, "fold": data.class_fold}),
        "strong_labels": strong_labels,
        "label_embeddings": label_embeddings,
    }


@lru_cache(maxsize=1)
def planted_catalog() -> dict[str, Any]:
    """The shared planted catalog (built once per session)."""
    return build_catalog()


def parameter_datasets(values: dict[str, Any] = PARAMS) -> dict[str, Any]:
    """``params:x`` and ``params:x.y`` entries, as Kedro's catalog exposes them."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        flat[f"params:{prefix}"] = value
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}", sub)

    for key, value in values.items():
        walk(key, value)
    return flat


@lru_cache(maxsize=1)
def planted_training() -> dict[str, Any]:
    """The planted catalog trained once through the experiment API (every method, 3 rotations):
    ``table`` (ClipTable), ``splits`` (model_splits), ``run`` (TrainingRun)."""
    from zeroshot_audio.experiment.clips import ClipTable
    from zeroshot_audio.experiment.protocol import assign_roles, parse_rotations
    from zeroshot_audio.experiment.train import TrainConfig, train_rotations
    from zeroshot_audio.model.training import cpu_threads

    inputs = planted_catalog()
    config = TrainConfig.from_dict(PARAMS["train"])
    rotations = parse_rotations(PARAMS["folds"])
    with cpu_threads(1):
        table = ClipTable.load(inputs["segment_embeddings"], inputs["clip_folds"], "cpu")
        splits = assign_roles(
            table.clips,
            rotations,
            k=config.supervised_crossfit.k,
            validation_fraction=config.supervised_crossfit.validation_fraction,
            seed=PARAMS["seed"],
        )
        run = train_rotations(
            table,
            rotations,
            class_folds=inputs["class_folds"],
            model_splits=splits,
            label_embeddings=inputs["label_embeddings"],
            config=config,
            seed=PARAMS["seed"],
        )
    return {"table": table, "splits": splits, "run": run}
