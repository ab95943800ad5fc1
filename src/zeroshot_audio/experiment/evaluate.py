"""Evaluation of the paper's protocol: score every test clip once per model, report many times.

:func:`score_rotation` scores one rotation's held-out test clips with each of its checkpoints
in ONE pass that yields scores and attention, plus the zero-rule baseline. From these
:class:`RotationScores` everything else is computed without touching a model again: tag metrics
and the paper's table (``tag_report``), segment-level localisation (``experiment.localisation``),
the per-clip prediction table and the attention heat maps.

Attention is ``[n, T, C]`` per model: on a large test split only the clips that need it (those
with strong labels, the heat-map clips) keep theirs (``attention_rows``).

No Kedro here: the ``evaluate`` nodes are doorways to these functions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from zeroshot_audio.config import build_strict
from zeroshot_audio.contracts.checkpoint import Checkpoint
from zeroshot_audio.experiment.clips import ClipTable, label_encoder_spec
from zeroshot_audio.experiment.protocol import label_matrix, multi_hot
from zeroshot_audio.model.attention import TemporalAttentionModel
from zeroshot_audio.model.metrics import ThresholdConfig, apply_threshold_rule, zero_rule
from zeroshot_audio.model.training import make_clip_set, score_clips

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeatmapConfig:
    """Which model's attention the heat-map figure shows, for how many clips and classes."""

    rotation: str | None = None  # None: the first rotation
    method: str = "temporal_attention"
    n_clips: int = 4
    max_classes: int = 6

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> HeatmapConfig:
        return build_strict(cls, values, "evaluate.heatmaps")


@dataclass(frozen=True)
class LocalisationScoring:
    """When a strong-label event makes a segment true: overlap > ``min_overlap_s`` (0: any)."""

    min_overlap_s: float = 0.0

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> LocalisationScoring:
        return build_strict(cls, values, "evaluate.localisation")


@dataclass(frozen=True)
class EvaluateConfig:
    """The ``evaluate`` parameters; an unknown key anywhere is an error naming it."""

    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    batch_size: int = 4096
    cpu_threads: int | None = None
    std_ddof: int = 1
    heatmaps: HeatmapConfig = field(default_factory=HeatmapConfig)
    localisation: LocalisationScoring = field(default_factory=LocalisationScoring)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> EvaluateConfig:
        values = dict(values)
        for key, sub in (
            ("threshold", ThresholdConfig),
            ("heatmaps", HeatmapConfig),
            ("localisation", LocalisationScoring),
        ):
            if key in values and not isinstance(values[key], sub):
                values[key] = sub.from_dict(values[key])
        return build_strict(cls, values, "evaluate")


@dataclass
class MethodScores:
    """One method on one rotation's test clips."""

    scores: np.ndarray  # [n, C]
    predictions: np.ndarray  # [n, C] bool, under the threshold rule
    threshold: float | None = None
    k: int | None = None
    gamma: float | None = None
    attention: np.ndarray | None = None  # [len(attention_rows), T, C]; None for the zero-rule


@dataclass
class RotationScores:
    """Every method on one rotation's test clips, scored once."""

    name: str
    folds: dict[str, Any]
    classes: list[str]
    clips: pd.DataFrame  # ytid, start_s, fold, labels, row
    y_true: np.ndarray  # [n, C] bool
    valid: np.ndarray  # [n, T] bool
    n_reference_clips: int
    methods: dict[str, MethodScores]
    attention_rows: np.ndarray  # sorted positions (into clips) whose attention is kept

    def attention_of(self, method: str, positions: np.ndarray) -> np.ndarray:
        """[len(positions), T, C] attention of ``method`` for test-clip ``positions``."""
        positions = np.asarray(positions, dtype=np.int64)
        index = np.searchsorted(self.attention_rows, positions)
        if len(positions) and (
            index.max() >= len(self.attention_rows)
            or (self.attention_rows[index] != positions).any()
        ):
            raise ValueError(f"{self.name}/{method}: attention was not kept for these clips")
        return self.methods[method].attention[index]


@dataclass
class EvaluationScores:
    """What ``score_test_clips`` hands to the report nodes (in memory, never re-scored)."""

    threshold_rule: str
    segment_s: float
    rotations: dict[str, RotationScores]


def heatmap_positions(y_true: np.ndarray, ytids: np.ndarray, n_clips: int) -> np.ndarray:
    """The heat-map clips: the most-labelled first (their attention is the telling one)."""
    return np.lexsort((np.asarray(ytids), -np.asarray(y_true).sum(axis=1)))[:n_clips]


def check_provenance(
    checkpoints: Mapping[str, Checkpoint], table: ClipTable, label_embeddings: pd.DataFrame
) -> None:
    """Refuse to score a model on segments or label vectors made differently from its own."""
    labels = label_encoder_spec(label_embeddings)
    for name, checkpoint in checkpoints.items():
        audio = checkpoint.embedder.differences(table.embedder)
        if audio:
            raise ValueError(
                f"model {name!r} was trained on segment embeddings made differently from "
                f"segment_embeddings now ({audio}: trained vs now); re-run `train`"
            )
        trained, now = checkpoint.label_encoder.to_dict(), labels.to_dict()
        text = {k: (v, now[k]) for k, v in trained.items() if v != now[k]}
        if text:
            raise ValueError(
                f"model {name!r} was trained on label embeddings of another encoder than "
                f"label_embeddings now ({text}: trained vs now); re-run `train` (or embed_labels "
                "with the training encoder) before evaluating"
            )


def score_rotation(
    table: ClipTable,
    checkpoints: Mapping[str, Checkpoint],
    model_splits: pd.DataFrame,
    label_embeddings: pd.DataFrame,
    config: EvaluateConfig,
    attention_for: np.ndarray | None = None,
) -> RotationScores:
    """Score one rotation's test clips with each checkpoint (``method -> Checkpoint``) once.

    ``attention_for`` (bool per test clip, in model_splits order; None: every clip) says whose
    attention is kept. The zero-rule's class frequencies come from the test fold's non-test clips.
    """
    first = next(iter(checkpoints.values()))
    rotation, classes = first.rotation["name"], first.test_classes
    for method, checkpoint in checkpoints.items():
        if checkpoint.test_classes != classes or checkpoint.rotation != first.rotation:
            raise ValueError(f"rotation {rotation!r}: its checkpoints disagree ({method})")
    test_clips = table.role(model_splits, rotation, "test")
    if test_clips.empty:
        raise ValueError(
            f"rotation {rotation!r} has no test clips in model_splits (or none with segment "
            "embeddings); re-run the train pipeline"
        )
    y_true = multi_hot(test_clips["labels"], classes)
    embeddings = label_matrix(label_embeddings, classes)
    rows = test_clips["row"].to_numpy()
    test_set = make_clip_set(table.segments, table.n_valid, rows, y_true, embeddings)
    keep = np.ones(len(test_clips), bool) if attention_for is None else np.asarray(attention_for)
    reference = pd.concat(
        [
            table.role(model_splits, rotation, r)
            for r in ("supervised_train", "supervised_validation")
        ]
    )
    zr_scores, zr_predictions, k = zero_rule(
        multi_hot(reference["labels"], classes), len(test_clips)
    )
    methods = {"zero_rule": MethodScores(zr_scores, zr_predictions, k=k)}
    rule = config.threshold
    for method, checkpoint in checkpoints.items():
        model = TemporalAttentionModel.from_checkpoint(checkpoint).to(table.device)
        if model.config.semantic_dim != embeddings.shape[1]:
            raise ValueError(
                f"model {rotation}/{method} expects {model.config.semantic_dim}-d label "
                f"embeddings, label_embeddings has {embeddings.shape[1]}-d; re-run train"
            )
        scored = score_clips(
            model, test_set, batch_size=config.batch_size, with_attention=True, attention_for=keep
        )
        value = checkpoint.threshold if rule.rule == "tuned" else float(rule.fixed)
        methods[method] = MethodScores(
            scores=scored["scores"],
            predictions=apply_threshold_rule(
                scored["scores"], rule.rule, threshold=value, k=int(rule.top_k)
            ),
            threshold=None if rule.rule == "top_k" else float(value),
            k=int(rule.top_k) if rule.rule == "top_k" else None,
            gamma=checkpoint.gamma,
            attention=scored["attention"],
        )
    logger.info(
        "%s: scored %d test clips x %d classes with %s",
        rotation,
        len(test_clips),
        len(classes),
        ", ".join(methods),
    )
    return RotationScores(
        name=rotation,
        folds=dict(first.rotation),
        classes=list(classes),
        clips=test_clips,
        y_true=y_true,
        valid=table.valid_mask(test_clips),
        n_reference_clips=len(reference),
        methods=methods,
        attention_rows=np.flatnonzero(keep),
    )


def score_rotations(
    table: ClipTable,
    trained_models: Mapping[str, Checkpoint],
    model_splits: pd.DataFrame,
    label_embeddings: pd.DataFrame,
    config: EvaluateConfig,
    strong_labels: pd.DataFrame | None = None,
) -> EvaluationScores:
    """:func:`score_rotation` for every rotation of ``trained_models``.

    With ``strong_labels``, attention is kept for the test clips that have one and for the
    heat-map clips; without, for every test clip.
    """
    if not trained_models:
        raise ValueError("trained_models is empty: run `kedro run --pipeline=train` first")
    check_provenance(trained_models, table, label_embeddings)
    by_rotation: dict[str, dict[str, Checkpoint]] = {}
    for checkpoint in trained_models.values():
        by_rotation.setdefault(checkpoint.rotation["name"], {})[checkpoint.method] = checkpoint
    heatmap_rotation = config.heatmaps.rotation or next(iter(by_rotation))
    labelled = None if strong_labels is None else set(strong_labels["clip"].astype(str))
    rotations = {}
    for rotation, checkpoints in by_rotation.items():
        keep = None
        if labelled is not None:
            test_clips = table.role(model_splits, rotation, "test")
            keep = test_clips["ytid"].astype(str).isin(labelled).to_numpy().copy()
            if rotation == heatmap_rotation:
                classes = next(iter(checkpoints.values())).test_classes
                y_true = multi_hot(test_clips["labels"], classes)
                ytids = test_clips["ytid"].to_numpy()
                keep[heatmap_positions(y_true, ytids, config.heatmaps.n_clips)] = True
        rotations[rotation] = score_rotation(
            table, checkpoints, model_splits, label_embeddings, config, keep
        )
    return EvaluationScores(config.threshold.rule, table.embedder.segment_s, rotations)


def prediction_table(scores: EvaluationScores) -> pd.DataFrame:
    """One row per (rotation, method, test clip): true labels and predicted mids."""
    tables = []
    for rotation, scored in scores.rotations.items():
        for method, result in scored.methods.items():
            predicted = [
                [scored.classes[j] for j in np.flatnonzero(row)] for row in result.predictions
            ]
            tables.append(
                pd.DataFrame(
                    {
                        "rotation": rotation,
                        "method": method,
                        "ytid": scored.clips["ytid"].to_numpy(),
                        "start_s": scored.clips["start_s"].to_numpy(),
                        "labels": [list(v) for v in scored.clips["labels"]],
                        "predicted": predicted,
                    }
                )
            )
    return pd.concat(tables, ignore_index=True)


def heatmap_clips(
    scores: EvaluationScores, texts: Mapping[str, str], config: HeatmapConfig
) -> list[dict[str, Any]]:
    """The attention panels of the heat-map figure (``report.figures.attention_heatmaps``)."""
    rotation = config.rotation or next(iter(scores.rotations))
    if rotation not in scores.rotations or config.method not in scores.rotations[rotation].methods:
        logger.warning("heat maps: no %s model of rotation %s was scored", config.method, rotation)
        return []
    scored = scores.rotations[rotation]
    order = heatmap_positions(scored.y_true, scored.clips["ytid"].to_numpy(), config.n_clips)
    attention = scored.attention_of(config.method, order)
    result = scored.methods[config.method]
    names = [texts.get(mid, mid) for mid in scored.classes]
    return [
        {
            "title": f"{rotation} {config.method}: {scored.clips['ytid'].iloc[i]} "
            f"@ {scored.clips['start_s'].iloc[i]:g} s",
            "attention": attention[n],
            "scores": result.scores[i],
            "labels": scored.y_true[i],
            "class_names": names,
            "n_valid": int(scored.valid[i].sum()),
        }
        for n, i in enumerate(order)
    ]
