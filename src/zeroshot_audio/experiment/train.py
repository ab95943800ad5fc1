"""Training of the paper's protocol: every rotation x method (x gamma of the grid) -> Checkpoint.

- :func:`train_method` fits one method of one rotation. For temporal attention with a
  ``gamma_grid`` it fits one network per gamma and keeps the best on the validation monitor; the
  candidates it tried are returned (:attr:`TrainedMethod.grid`), so the selection is visible
  without patching the fit loop.
- :func:`train_rotations` runs the loop over rotations and methods in the protocol's order (the
  supervised upper bound reuses the gamma temporal attention chose) and returns typed
  :class:`Checkpoint` s with the provenance of both inputs. The supervised upper bound is
  cross-fitted (``experiment.protocol``): K models per rotation, ``<rotation>/supervised/k<i>``.

Seeds: every fit gets its own seed derived from the run seed, the rotation index, the method and
the grid position, so one model's seed never depends on what else is trained.

No Kedro here: the ``train`` node is a doorway to :func:`train_rotations`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from zeroshot_audio.config import build_strict
from zeroshot_audio.contracts.checkpoint import Checkpoint
from zeroshot_audio.contracts.label_table import LabelEncoderSpec
from zeroshot_audio.experiment.clips import ClipTable, label_encoder_spec
from zeroshot_audio.experiment.protocol import TRAINED_METHODS, Rotation, fold_classes
from zeroshot_audio.model.attention import ModelConfig, TemporalAttentionModel
from zeroshot_audio.model.metrics import tune_global_threshold
from zeroshot_audio.model.training import (
    MONITORS,
    ClipSet,
    FitConfig,
    FitResult,
    fit,
    score_clips,
)

logger = logging.getLogger(__name__)

# Stage-specific stream of the shared seed for weight initialisation and batch order.
MODEL_SEED_STREAM = 6
# ... and for the per-epoch validation subset (model.training.validation_subset).
VALIDATION_SUBSET_STREAM = 7


@dataclass(frozen=True)
class SupervisedCrossFit:
    """K cross-fit parts of each test fold; ``validation_fraction`` of a model's K - 1 training
    parts early-stop it and tune its threshold."""

    k: int = 3
    validation_fraction: float = 0.2

    def __post_init__(self) -> None:
        if int(self.k) < 2:
            raise ValueError(f"train.supervised_crossfit.k must be >= 2, got {self.k}")
        if not 0.0 < float(self.validation_fraction) < 1.0:
            raise ValueError(
                "train.supervised_crossfit.validation_fraction must lie in (0, 1), got "
                f"{self.validation_fraction}"
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> SupervisedCrossFit:
        return build_strict(cls, values, "train.supervised_crossfit")


@dataclass(frozen=True)
class TrainConfig:
    """The ``train`` parameters. ``model`` is ``ModelConfig`` without the two input widths (they
    come from the data); an unknown key anywhere is an error naming it."""

    methods: tuple[str, ...] = TRAINED_METHODS
    model: Mapping[str, Any] = field(default_factory=dict)
    fit: FitConfig = field(default_factory=FitConfig)
    gamma_grid: tuple[float, ...] = ()
    supervised_crossfit: SupervisedCrossFit = field(default_factory=SupervisedCrossFit)
    cpu_threads: int | None = None

    def __post_init__(self) -> None:
        unknown = set(self.methods) - set(TRAINED_METHODS)
        if unknown:
            raise ValueError(f"train.methods: unknown {sorted(unknown)}; known: {TRAINED_METHODS}")
        # protocol order, whatever the list order: supervised reuses temporal attention's gamma
        object.__setattr__(
            self, "methods", tuple(m for m in TRAINED_METHODS if m in set(self.methods))
        )
        object.__setattr__(self, "gamma_grid", tuple(float(g) for g in self.gamma_grid or ()))
        widths = {"acoustic_dim", "semantic_dim"} & set(self.model)
        if widths:
            raise ValueError(f"train.model: {sorted(widths)} come from the data, not parameters")
        ModelConfig.from_dict({**self.model, "semantic_dim": 1})  # unknown keys, bad values

    @property
    def gamma(self) -> float:
        return float(self.model.get("gamma", ModelConfig(semantic_dim=1).gamma))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        values = dict(values)
        if "fit" in values and not isinstance(values["fit"], FitConfig):
            values["fit"] = FitConfig.from_dict(values["fit"])
        if "supervised_split" in values:
            raise ValueError(
                "train.supervised_split was replaced by train.supervised_crossfit {k, "
                "validation_fraction}: every test-fold clip is now scored (docs/reproduction.md)"
            )
        if "supervised_crossfit" in values and not isinstance(
            values["supervised_crossfit"], SupervisedCrossFit
        ):
            values["supervised_crossfit"] = SupervisedCrossFit.from_dict(
                values["supervised_crossfit"]
            )
        if values.get("methods") is not None:
            values["methods"] = tuple(values["methods"])
        values["model"] = dict(values.get("model") or {})
        return build_strict(cls, values, "train")


@dataclass
class GridPoint:
    """One fit of a method: the gamma it used and the best validation monitor it reached."""

    gamma: float
    best_value: float


@dataclass
class TrainedMethod:
    """One method of one rotation: its checkpoint, the chosen fit and every gamma tried."""

    checkpoint: Checkpoint
    result: FitResult
    grid: list[GridPoint]
    n_train_classes: int
    clip_ids: dict[str, tuple[str, ...]] = field(default_factory=dict)  # role -> ytids it used


@dataclass
class TrainingRun:
    """Every trained method, keyed ``<rotation>/<method>``, and how long it took."""

    methods: dict[str, TrainedMethod]
    table: ClipTable
    seconds: float = 0.0

    @property
    def checkpoints(self) -> dict[str, Checkpoint]:
        return {name: trained.checkpoint for name, trained in self.methods.items()}


def model_seed(seed: int, *stream: int) -> int:
    """The seed of one fit: (run seed, this stage's stream, rotation, method, grid position)."""
    return int(np.random.SeedSequence([seed, MODEL_SEED_STREAM, *stream]).generate_state(1)[0])


def gammas_of(method: str, config: TrainConfig, chosen_gamma: float) -> list[float]:
    """The gammas a method is fitted with: uniform is gamma 0; temporal attention tries the grid
    (if any); the others use ``chosen_gamma`` (the configured one, or temporal's choice)."""
    if method == "uniform":
        return [0.0]
    if method == "temporal_attention" and config.gamma_grid:
        return list(config.gamma_grid)
    return [chosen_gamma]


def final_threshold(
    model: TemporalAttentionModel, validation: ClipSet, result: FitResult, config: FitConfig
) -> tuple[float, float]:
    """The global threshold (and its micro-F1) tuned on the WHOLE validation split, scored once:
    reused from the best epoch when that epoch was validated on the whole split, else scored
    now (per-epoch validation ran on a subset)."""
    if result.full_validation is not None:
        return (
            float(result.full_validation["val_threshold"]),
            float(result.full_validation["val_micro_f1"]),
        )
    scores = score_clips(
        model,
        validation,
        batch_size=config.eval_batch_size,
        mixed_precision=config.mixed_precision,
    )["scores"]
    return tune_global_threshold(validation.targets.cpu().numpy(), scores)


def train_method(
    table: ClipTable,
    rotation: Rotation,
    method: str,
    *,
    class_folds: pd.DataFrame,
    model_splits: pd.DataFrame,
    label_embeddings: pd.DataFrame,
    config: TrainConfig,
    seed: int,
    rotation_index: int = 0,
    gamma: float | None = None,
    label_encoder: LabelEncoderSpec | None = None,
    part: int | None = None,
) -> TrainedMethod:
    """Fit ``method`` on ``rotation`` (each gamma of :func:`gammas_of`), keep the best on the
    validation monitor and tune its global threshold on the validation clips. ``part``: the
    cross-fit part a supervised model scores (it trains on the other parts' clips)."""
    name = f"{rotation.name}/{method}" + ("" if part is None else f"/k{part}")
    train_role, validation_role = Rotation.roles_of(method)
    train_classes = fold_classes(class_folds, rotation.class_folds_of(method, "train"))
    validation_classes = fold_classes(class_folds, rotation.class_folds_of(method, "validation"))
    train_clips = table.role(model_splits, rotation.name, train_role, part)
    validation_clips = table.role(model_splits, rotation.name, validation_role, part)
    for role, clips in ((train_role, train_clips), (validation_role, validation_clips)):
        if clips.empty:
            raise ValueError(
                f"{name}: no {role} clips with segment embeddings in model_splits; re-run train"
            )
    train_set = table.clip_set(train_clips, train_classes, label_embeddings)
    validation_set = table.clip_set(validation_clips, validation_classes, label_embeddings)
    gammas = gammas_of(method, config, config.gamma if gamma is None else gamma)
    # Every gamma candidate validates on the same clips (one seed per rotation x method).
    validation_seed = int(
        np.random.SeedSequence(
            [int(seed), VALIDATION_SUBSET_STREAM, rotation_index, TRAINED_METHODS.index(method)]
        ).generate_state(1)[0]
    )
    larger_is_better = MONITORS[config.fit.monitor] == "max"
    best: tuple[TemporalAttentionModel, FitResult, float] | None = None
    grid: list[GridPoint] = []
    for g, candidate_gamma in enumerate(gammas):
        stream = (rotation_index, TRAINED_METHODS.index(method), g)
        fit_seed = model_seed(int(seed), *stream, *(() if part is None else (part,)))
        torch.manual_seed(fit_seed)
        model_config = ModelConfig.from_dict(
            {
                **config.model,
                "gamma": candidate_gamma,
                "acoustic_dim": table.width,
                "semantic_dim": int(train_set.label_embeddings.shape[1]),
            }
        )
        model = TemporalAttentionModel(model_config)
        suffix = f" gamma={candidate_gamma:g}" if len(gammas) > 1 else ""
        result = fit(
            model,
            train_set,
            validation_set,
            config.fit,
            seed=fit_seed,
            description=name + suffix,
            validation_seed=validation_seed,
        )
        grid.append(GridPoint(float(candidate_gamma), float(result.best_value)))
        if (
            best is None
            or (larger_is_better and result.best_value > best[1].best_value)
            or (not larger_is_better and result.best_value < best[1].best_value)
        ):
            best = (model, result, candidate_gamma)
    assert best is not None  # gammas is never empty
    model, result, chosen = best
    threshold, validation_micro_f1 = final_threshold(model, validation_set, result, config.fit)
    checkpoint = Checkpoint(
        model_config=model.config.to_dict(),
        state_dict={k: v.detach().cpu() for k, v in model.state_dict().items()},
        method=method,
        rotation=rotation.to_dict(),
        threshold=float(threshold),
        train_classes=train_classes,
        validation_classes=validation_classes,
        test_classes=fold_classes(class_folds, [rotation.test]),
        embedder=table.embedder,
        label_encoder=label_encoder or label_encoder_spec(label_embeddings),
        threshold_rule="tuned",
        validation_micro_f1=float(validation_micro_f1),
        monitor=result.monitor,
        best_value=float(result.best_value),
        best_epoch=int(result.best_epoch),
        epochs_run=int(result.epochs_run),
        n_train_clips=len(train_set),
        n_validation_clips=len(validation_set),
        segment_dtype=table.segment_dtype,
        gamma_grid=list(config.gamma_grid) if method == "temporal_attention" else [],
        history=result.history,
        crossfit_part=part,
    )
    assert checkpoint.gamma == float(chosen)
    used = {
        train_role: tuple(train_clips["ytid"].astype(str)),
        validation_role: tuple(validation_clips["ytid"].astype(str)),
    }
    return TrainedMethod(checkpoint, result, grid, len(train_classes), used)


def crossfit_parts(model_splits: pd.DataFrame, rotation: str) -> list[int]:
    """The cross-fit parts of one rotation's test fold (one supervised model each)."""
    if "part" not in model_splits.columns:
        raise ValueError("model_splits has no 'part' column: re-run the train pipeline")
    mine = model_splits[(model_splits["rotation"] == rotation) & (model_splits["role"] == "test")]
    return sorted(int(p) for p in mine["part"].unique())


def train_rotations(
    table: ClipTable,
    rotations: Sequence[Rotation],
    *,
    class_folds: pd.DataFrame,
    model_splits: pd.DataFrame,
    label_embeddings: pd.DataFrame,
    config: TrainConfig,
    seed: int,
) -> TrainingRun:
    """Every rotation x method of ``config.methods``, in protocol order (see module docstring)."""
    started = time.perf_counter()
    label_encoder = label_encoder_spec(label_embeddings)
    logger.info(
        "training %s on %d rotations: %d clips with embeddings (%s, T=%d, D=%d) on %s",
        ", ".join(config.methods),
        len(rotations),
        len(table.clips),
        table.segment_dtype,
        table.n_segments,
        table.width,
        table.device,
    )
    methods: dict[str, TrainedMethod] = {}
    for r, rotation in enumerate(rotations):
        chosen_gamma = config.gamma
        for method in config.methods:
            parts = crossfit_parts(model_splits, rotation.name) if method == "supervised" else []
            for part in parts or [None]:
                trained = train_method(
                    table,
                    rotation,
                    method,
                    class_folds=class_folds,
                    model_splits=model_splits,
                    label_embeddings=label_embeddings,
                    config=config,
                    seed=seed,
                    rotation_index=r,
                    gamma=chosen_gamma,
                    label_encoder=label_encoder,
                    part=part,
                )
                if method == "temporal_attention":
                    chosen_gamma = trained.checkpoint.gamma
                methods[trained.checkpoint.name] = trained
    seconds = time.perf_counter() - started
    logger.info("trained %d models in %.1f s", len(methods), seconds)
    return TrainingRun(methods, table, seconds)


# Logged to MLflow per epoch (val_loss stays in the checkpoint history: each MLflow point costs
# ~10 ms on SQLite, and 9 models x 40 epochs x 4 metrics added half a minute to a CPU run).
HISTORY_METRICS = ("train_loss", "val_map", "val_micro_f1")


def history_metrics(run: TrainingRun) -> dict[str, list[dict[str, float]]]:
    """Per-epoch curves as MLflow metric histories: ``train/<rotation>/<method>/<metric>``."""
    return {
        f"train/{name}/{metric}": [
            {"step": int(h["epoch"]), "value": float(h[metric])} for h in trained.result.history
        ]
        for name, trained in run.methods.items()
        for metric in HISTORY_METRICS
    }


def training_report(
    run: TrainingRun, clip_folds: pd.DataFrame, model_splits: pd.DataFrame, config: TrainConfig
) -> dict[str, Any]:
    """What was trained on what, how fast, and what was left out; MLflow keys ``train/<name>``."""
    table = run.table
    per_model: dict[str, dict[str, Any]] = {}
    for name, trained in run.methods.items():
        checkpoint, result = trained.checkpoint, trained.result
        per_model[name] = {
            "gamma": checkpoint.gamma,
            "threshold": checkpoint.threshold,
            "validation_micro_f1": checkpoint.validation_micro_f1,
            f"best_{result.monitor}": float(result.best_value),
            "best_epoch": int(result.best_epoch),
            "epochs_run": int(result.epochs_run),
            "stopped_early": bool(result.stopped_early),
            "train_seconds": round(result.train_seconds, 3),
            "validation_seconds": round(result.validation_seconds, 3),
            "n_validation_clips_per_epoch": result.n_validation_clips_per_epoch,
            "clips_per_second": round(result.clips_per_second, 1),
            "n_train_clips": checkpoint.n_train_clips,
            "n_validation_clips": checkpoint.n_validation_clips,
            "n_train_classes": trained.n_train_classes,
            **({"gamma_grid": [vars(p) for p in trained.grid]} if len(trained.grid) > 1 else {}),
        }
    metrics: dict[str, float] = {
        "train/clips_with_embeddings": float(len(table.clips)),
        "train/clips_missing_embeddings": float(len(table.missing)),
        "train/seconds": round(run.seconds, 2),
    }
    for name, facts in per_model.items():
        for key in ("best_epoch", "threshold", "validation_micro_f1", "clips_per_second"):
            metrics[f"train/{name}/{key}"] = float(facts[key])
    mixed = config.fit.mixed_precision and table.device.type == "cuda"
    tags = {
        "train.device": str(table.device),
        "train.cpu_threads": str(torch.get_num_threads()),
        "train.mixed_precision": "bf16/fp16 autocast" if mixed else "off",
        "train.segment_dtype": table.segment_dtype,
        "train.embedder": table.embedder.source,
    }
    if len(table.missing):
        tags["train.degraded"] = f"{len(table.missing)} clips without segment embeddings left out"
    role_counts = (
        model_splits.groupby(["rotation", "role"]).size().unstack(fill_value=0).to_dict("index")
    )
    return {
        "device": str(table.device),
        "segment_dtype": table.segment_dtype,
        "embedder": table.embedder.to_dict(),
        "clips": {
            "in_clip_folds": int(len(clip_folds)),
            "with_embeddings": int(len(table.clips)),
            "missing_embeddings": int(len(table.missing)),
            "missing_examples": table.missing.head(20)
            .astype({"start_s": float})
            .to_dict("records"),
        },
        "clips_per_rotation_and_role": {
            rot: {role: int(n) for role, n in counts.items()} for rot, counts in role_counts.items()
        },
        "fit": vars(config.fit).copy(),
        "models": per_model,
        "seconds": round(run.seconds, 2),
        "mlflow_metrics": metrics,
        "mlflow_tags": tags,
    }
