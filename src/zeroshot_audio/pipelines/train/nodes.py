"""Nodes of the ``train`` stage: assign clip roles per rotation, then fit every method.

The science (model, loss, fit loop, protocol) lives in ``zeroshot_audio.model``; these functions
only join the catalog's inputs to it and shape what goes back to the catalog and MLflow.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from zeroshot_audio.contracts.segment_table import to_arrays
from zeroshot_audio.device import resolve_device
from zeroshot_audio.model.attention import ModelConfig, TemporalAttentionModel
from zeroshot_audio.model.metrics import tune_global_threshold
from zeroshot_audio.model.protocol import (
    TRAINED_METHODS,
    Rotation,
    assign_roles,
    attach_rows,
    fold_classes,
    label_matrix,
    multi_hot,
    parse_rotations,
    segment_index,
    split_clips,
)
from zeroshot_audio.model.training import (
    MONITORS,
    ClipSet,
    FitConfig,
    cpu_threads,
    fit,
    make_clip_set,
    score_clips,
    segments_to_device,
)

logger = logging.getLogger(__name__)

# Logged to MLflow per epoch (val_loss stays in the checkpoint history: each MLflow point costs
# ~10 ms on SQLite, and 9 models x 40 epochs x 4 metrics added half a minute to a CPU run).
HISTORY_METRICS = ("train_loss", "val_map", "val_micro_f1")
# Stage-specific stream of the shared seed for weight initialisation and batch order.
_MODEL_SEED_STREAM = 6


def assign_clip_roles(
    segment_embeddings: pa.Table,
    clip_folds: pd.DataFrame,
    folds: dict[str, Any],
    seed: int,
    train_params: dict[str, Any],
) -> pd.DataFrame:
    """Which clips each rotation trains, validates and tests on (see ``model.protocol``).

    Persisted so that ``evaluate`` scores exactly the clips that training held out. Clips without
    segment embeddings (skipped by ``featurize``) get no role; ``train_models`` counts them.
    """
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
    split = train_params["supervised_split"]
    return assign_roles(
        clips,
        parse_rotations(folds),
        test_fraction=float(split["test"]),
        validation_fraction=float(split["validation"]),
        seed=int(seed),
    )


def _model_seed(seed: int, *stream: int) -> int:
    return int(np.random.SeedSequence([seed, _MODEL_SEED_STREAM, *stream]).generate_state(1)[0])


def _clip_set(
    segments: torch.Tensor,
    n_valid: torch.Tensor,
    clips: pd.DataFrame,
    classes: list[str],
    label_embeddings: pd.DataFrame,
) -> ClipSet:
    return make_clip_set(
        segments,
        n_valid,
        clips["row"].to_numpy(),
        multi_hot(clips["labels"], classes),
        label_matrix(label_embeddings, classes),
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
    label_encoder: dict[str, Any],
) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, float]]], dict[str, Any]]:
    """Fit every (rotation, method); return checkpoints, per-epoch history and a report.

    A checkpoint holds the weights and config plus what ``evaluate`` and ``predict`` need: the
    rotation, the method, fusion gamma, the validation-tuned global threshold, the class lists and
    the label encoder that produced the label embeddings it was trained with.
    """
    with cpu_threads(train_params.get("cpu_threads")):
        started = time.perf_counter()
        rotations = parse_rotations(folds)
        methods = list(train_params.get("methods", TRAINED_METHODS))
        unknown = set(methods) - set(TRAINED_METHODS)
        if unknown:
            raise ValueError(f"train.methods: unknown {sorted(unknown)}; known: {TRAINED_METHODS}")
        methods = [m for m in TRAINED_METHODS if m in methods]  # supervised reuses temporal's gamma
        fit_config = FitConfig.from_dict(train_params["fit"])
        gamma_grid = [float(g) for g in (train_params.get("gamma_grid") or [])]

        arrays = to_arrays(segment_embeddings)
        clips, missing = attach_rows(clip_folds, segment_index(arrays.ytid, arrays.start_s))
        torch_device = resolve_device(device)
        segments, n_valid = segments_to_device(
            arrays.embeddings, arrays.n_valid_segments, torch_device
        )
        segment_dtype = str(arrays.embeddings.dtype)
        logger.info(
            "training %s on %d rotations: %d clips with embeddings (%s, T=%d) on %s",
            ", ".join(methods),
            len(rotations),
            len(clips),
            segment_dtype,
            arrays.embeddings.shape[1],
            torch_device,
        )

        checkpoints: dict[str, dict[str, Any]] = {}
        history: dict[str, list[dict[str, float]]] = {}
        per_model: dict[str, dict[str, Any]] = {}
        for r, rotation in enumerate(rotations):
            chosen_gamma = float(train_params["model"]["gamma"])
            for method in methods:
                key = f"{rotation.name}/{method}"
                train_role, validation_role = Rotation.roles_of(method)
                train_classes = fold_classes(class_folds, rotation.class_folds_of(method, "train"))
                validation_classes = fold_classes(
                    class_folds, rotation.class_folds_of(method, "validation")
                )
                train_clips = split_clips(clips, model_splits, rotation.name, train_role)
                validation_clips = split_clips(clips, model_splits, rotation.name, validation_role)
                train_set = _clip_set(
                    segments, n_valid, train_clips, train_classes, label_embeddings
                )
                validation_set = _clip_set(
                    segments, n_valid, validation_clips, validation_classes, label_embeddings
                )
                if method == "uniform":
                    gammas = [0.0]
                elif method == "temporal_attention" and gamma_grid:
                    gammas = gamma_grid
                else:
                    gammas = [chosen_gamma]

                best: tuple[TemporalAttentionModel, Any, float] | None = None
                for g, gamma in enumerate(gammas):
                    model_seed = _model_seed(int(seed), r, TRAINED_METHODS.index(method), g)
                    torch.manual_seed(model_seed)
                    config = ModelConfig.from_dict(
                        {
                            **train_params["model"],
                            "gamma": gamma,
                            "acoustic_dim": int(arrays.embeddings.shape[2]),
                            "semantic_dim": int(train_set.label_embeddings.shape[1]),
                        }
                    )
                    model = TemporalAttentionModel(config)
                    suffix = f" gamma={gamma:g}" if len(gammas) > 1 else ""
                    result = fit(
                        model,
                        train_set,
                        validation_set,
                        fit_config,
                        seed=model_seed,
                        description=f"{key}{suffix}",
                    )
                    better = MONITORS[fit_config.monitor] == "max"
                    if (
                        best is None
                        or (better and result.best_value > best[1].best_value)
                        or (not better and result.best_value < best[1].best_value)
                    ):
                        best = (model, result, gamma)
                assert best is not None  # gammas is never empty
                model, result, gamma = best
                if method == "temporal_attention":
                    chosen_gamma = gamma

                validation_scores = score_clips(
                    model, validation_set, batch_size=fit_config.eval_batch_size
                )["scores"]
                threshold, validation_micro_f1 = tune_global_threshold(
                    validation_set.targets.cpu().numpy(), validation_scores
                )
                checkpoints[key] = {
                    **model.checkpoint(),
                    "rotation": rotation.to_dict(),
                    "method": method,
                    "gamma": float(gamma),
                    "threshold": float(threshold),
                    "threshold_rule": "tuned",
                    "validation_micro_f1": float(validation_micro_f1),
                    "monitor": result.monitor,
                    "best_value": float(result.best_value),
                    "best_epoch": int(result.best_epoch),
                    "epochs_run": int(result.epochs_run),
                    "train_classes": train_classes,
                    "validation_classes": validation_classes,
                    "test_classes": fold_classes(class_folds, [rotation.test]),
                    "n_classes": len(train_classes),
                    "n_train_clips": len(train_set),
                    "n_validation_clips": len(validation_set),
                    "segment_dtype": segment_dtype,
                    "label_encoder": dict(label_encoder or {}),
                    "gamma_grid": gamma_grid if method == "temporal_attention" else [],
                    "history": result.history,
                }
                for metric in HISTORY_METRICS:
                    history[f"{key}/{metric}"] = [
                        {"step": int(h["epoch"]), "value": float(h[metric])} for h in result.history
                    ]
                per_model[key] = {
                    "gamma": float(gamma),
                    "threshold": float(threshold),
                    "validation_micro_f1": float(validation_micro_f1),
                    f"best_{result.monitor}": float(result.best_value),
                    "best_epoch": int(result.best_epoch),
                    "epochs_run": int(result.epochs_run),
                    "stopped_early": bool(result.stopped_early),
                    "train_seconds": round(result.train_seconds, 3),
                    "clips_per_second": round(result.clips_per_second, 1),
                    "n_train_clips": len(train_set),
                    "n_validation_clips": len(validation_set),
                    "n_train_classes": len(train_classes),
                }

        seconds = time.perf_counter() - started
        report = _training_report(
            per_model,
            clips,
            clip_folds,
            missing,
            model_splits,
            torch_device,
            fit_config,
            segment_dtype,
        )
        report["seconds"] = round(seconds, 2)
        report["mlflow_metrics"]["train.seconds"] = round(seconds, 2)
        logger.info("trained %d models in %.1f s", len(checkpoints), seconds)
        return checkpoints, history, report


def _training_report(
    per_model: dict[str, dict[str, Any]],
    clips: pd.DataFrame,
    clip_folds: pd.DataFrame,
    missing: pd.DataFrame,
    model_splits: pd.DataFrame,
    device: torch.device,
    fit_config: FitConfig,
    segment_dtype: str,
) -> dict[str, Any]:
    role_counts = (
        model_splits.groupby(["rotation", "role"]).size().unstack(fill_value=0).to_dict("index")
    )
    metrics: dict[str, float] = {
        "train.clips_with_embeddings": float(len(clips)),
        "train.clips_missing_embeddings": float(len(missing)),
    }
    for key, facts in per_model.items():
        for name in ("best_epoch", "threshold", "validation_micro_f1", "clips_per_second"):
            metrics[f"train/{key}/{name}"] = float(facts[name])
    mixed = fit_config.mixed_precision and device.type == "cuda"
    tags = {
        "train.device": str(device),
        "train.cpu_threads": str(torch.get_num_threads()),
        "train.mixed_precision": "bf16/fp16 autocast" if mixed else "off",
        "train.segment_dtype": segment_dtype,
    }
    if len(missing):
        tags["train.degraded"] = f"{len(missing)} clips without segment embeddings left out"
    return {
        "device": str(device),
        "segment_dtype": segment_dtype,
        "clips": {
            "in_clip_folds": int(len(clip_folds)),
            "with_embeddings": int(len(clips)),
            "missing_embeddings": int(len(missing)),
            "missing_examples": missing.head(20).astype({"start_s": float}).to_dict("records"),
        },
        "clips_per_rotation_and_role": {
            rot: {role: int(n) for role, n in counts.items()} for rot, counts in role_counts.items()
        },
        "fit": {k: getattr(fit_config, k) for k in fit_config.__dataclass_fields__},
        "models": per_model,
        "mlflow_metrics": metrics,
        "mlflow_tags": tags,
    }
