"""Nodes of the ``train`` stage: doorways to ``zeroshot_audio.experiment``.

The protocol (clip roles), the rotation x method x gamma loop and the typed checkpoints live in
``experiment/``; these functions only unpack the catalog's inputs and hand back its outputs.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import pyarrow as pa

from zeroshot_audio.contracts.checkpoint import Checkpoint
from zeroshot_audio.experiment.clips import ClipTable
from zeroshot_audio.experiment.protocol import (
    assign_roles,
    attach_rows,
    parse_rotations,
    segment_index,
)
from zeroshot_audio.experiment.train import (
    TrainConfig,
    history_metrics,
    train_rotations,
    training_report,
)
from zeroshot_audio.model.training import cpu_threads

logger = logging.getLogger(__name__)


def assign_clip_roles(
    segment_embeddings: pa.Table,
    clip_folds: pd.DataFrame,
    folds: dict[str, Any],
    seed: int,
    train_params: dict[str, Any],
) -> pd.DataFrame:
    """Which clips each rotation trains, validates and tests on, and the cross-fit part of each
    test-fold clip (see ``experiment.protocol``).

    Persisted so that ``evaluate`` scores exactly the clips that training held out. Clips without
    segment embeddings (skipped by ``featurize``) get no role; ``train_models`` counts them.
    """
    config = TrainConfig.from_dict(train_params)
    index = segment_index(
        segment_embeddings.column("ytid").to_numpy(zero_copy_only=False),
        segment_embeddings.column("start_s").to_numpy(),
    )
    clips, missing = attach_rows(clip_folds, index)
    if len(missing):
        logger.warning(
            "%d of %d clips in clip_folds have no segment embeddings and are left out, e.g. %s",
            len(missing),
            len(clip_folds),
            missing["ytid"].head(5).tolist(),
        )
    crossfit = config.supervised_crossfit
    return assign_roles(
        clips,
        parse_rotations(folds),
        k=int(crossfit.k),
        validation_fraction=float(crossfit.validation_fraction),
        seed=int(seed),
    )


def train_models(
    segment_embeddings: pa.Table,
    label_embeddings: pd.DataFrame,
    class_folds: pd.DataFrame,
    clip_folds: pd.DataFrame,
    model_splits: pd.DataFrame,
    folds: dict[str, Any],
    train_params: dict[str, Any],
    seed: int,
    device: str,
) -> tuple[dict[str, Checkpoint], dict[str, list[dict[str, float]]], dict[str, Any]]:
    """Fit every (rotation, method): typed checkpoints, per-epoch history and a report."""
    config = TrainConfig.from_dict(train_params)
    with cpu_threads(config.cpu_threads):
        table = ClipTable.load(segment_embeddings, clip_folds, device)
        run = train_rotations(
            table,
            parse_rotations(folds),
            class_folds=class_folds,
            model_splits=model_splits,
            label_embeddings=label_embeddings,
            config=config,
            seed=int(seed),
        )
    report = training_report(run, clip_folds, model_splits, config)
    return run.checkpoints, history_metrics(run), report
