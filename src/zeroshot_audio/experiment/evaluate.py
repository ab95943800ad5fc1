"""Evaluation of the paper's protocol: score every test clip once per model, report many times.

:func:`score_rotation` scores every clip of one rotation's test fold with each of its checkpoints
in ONE pass that yields scores and attention, plus the zero-rule baseline. The cross-fitted
supervised models (``<rotation>/supervised/k<i>``) and the zero-rule each score only their own
part's clips (``experiment.protocol``); the parts are assembled into one method's scores. From these
:class:`RotationScores` everything else is computed without touching a model again: tag metrics
and the paper's table (``tag_report``), segment-level localisation (``experiment.localisation``),
the per-clip prediction table and the attention heat maps.

Attention is ``[n, T, C]`` per model: on a large test split only the clips that need it (those
with strong labels, the heat-map clips) keep theirs (``attention_rows``).

No Kedro here: the ``evaluate`` nodes are doorways to these functions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

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
    """When a strong-label event makes a segment true: overlap > ``min_overlap_s`` (0: any).

    ``max_clips``: at most this many test clips per rotation keep their attention ([T, C] floats
    per clip and method) for localisation: a fixed pseudo-random choice (by a hash of the clip id)
    among those with strong labels (all test clips without). null: every one. What bounds
    evaluate's memory at AudioSet scale: 300k test clips x 116 classes x 10 segments is 1.4 GB per
    method and rotation.
    """

    min_overlap_s: float = 0.0
    max_clips: int | None = 20_000
    # The DCASE metrics (model.sed_metrics; time linear in clips, PSDS the largest part) on at
    # most this many of those clips, chosen the same way; null: all.
    event_max_clips: int | None = 2_000

    def __post_init__(self) -> None:
        if self.max_clips is not None and self.max_clips < 1:
            raise ValueError(
                f"evaluate.localisation.max_clips must be >= 1 or null, got {self.max_clips}"
            )
        if self.event_max_clips is not None and self.event_max_clips < 1:
            raise ValueError(
                "evaluate.localisation.event_max_clips must be >= 1 or null, got "
                f"{self.event_max_clips}"
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> LocalisationScoring:
        return build_strict(cls, values, "evaluate.localisation")


@dataclass(frozen=True)
class BootstrapConfig:
    """Paired bootstrap of attention - uniform (``model.uncertainty``); seeded from ``seed``."""

    n_resamples: int = 1000
    confidence_level: float = 0.95
    interval_method: str = "percentile"
    # Resample at most this many test clips per rotation (a seeded subsample; null: all): the
    # cost grows with clips x classes x resamples, and at AudioSet scale a 20k-clip subsample
    # already gives intervals far narrower than the method differences (and wider, never
    # narrower, than the whole fold's would be).
    max_clips: int | None = 20_000

    def __post_init__(self) -> None:
        if self.max_clips is not None and self.max_clips < 2:
            raise ValueError(
                f"evaluate.bootstrap.max_clips must be >= 2 or null, got {self.max_clips}"
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> BootstrapConfig:
        return build_strict(cls, values, "evaluate.bootstrap")


@dataclass(frozen=True)
class EvaluateConfig:
    """The ``evaluate`` parameters; an unknown key anywhere is an error naming it."""

    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    batch_size: int = 4096
    cpu_threads: int | None = None
    std_ddof: int = 1
    heatmaps: HeatmapConfig = field(default_factory=HeatmapConfig)
    localisation: LocalisationScoring = field(default_factory=LocalisationScoring)
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    per_class_figure_k: int = 8  # best and worst classes drawn in per_class_ap_figure

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> EvaluateConfig:
        values = dict(values)
        for key, sub in (
            ("threshold", ThresholdConfig),
            ("heatmaps", HeatmapConfig),
            ("localisation", LocalisationScoring),
            ("bootstrap", BootstrapConfig),
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
    # cross-fitted methods: the part of each clip (scored by that part's model) and per-part
    # threshold (supervised) or k (zero-rule)
    parts: np.ndarray | None = None
    part_thresholds: dict[int, float] | None = None
    part_k: dict[int, int] | None = None


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
    checkpoints: Mapping[str, Sequence[Checkpoint]],
    model_splits: pd.DataFrame,
    label_embeddings: pd.DataFrame,
    config: EvaluateConfig,
    attention_for: np.ndarray | None = None,
) -> RotationScores:
    """Score one rotation's test clips (its whole test fold) with each method's checkpoints once.

    ``checkpoints``: method -> its checkpoints (one, or one per cross-fit part, each scoring only
    the clips of its part). ``attention_for`` (bool per test clip, in model_splits order; None:
    every clip) says whose attention is kept. The zero-rule is cross-fitted like the supervised
    models: a clip's classes come from the other parts' clips, never from its own labels.
    """
    every = [c for group in checkpoints.values() for c in group]
    first = every[0]
    rotation, classes = first.rotation["name"], first.test_classes
    for checkpoint in every:
        if checkpoint.test_classes != classes or checkpoint.rotation != first.rotation:
            raise ValueError(f"rotation {rotation!r}: its checkpoints disagree ({checkpoint.name})")
    test_clips = table.role(model_splits, rotation, "test")
    if test_clips.empty:
        raise ValueError(
            f"rotation {rotation!r} has no test clips in model_splits (or none with segment "
            "embeddings); re-run the train pipeline"
        )
    y_true = multi_hot(test_clips["labels"], classes)
    embeddings = label_matrix(label_embeddings, classes)
    parts = test_clips["part"].to_numpy()
    keep = np.ones(len(test_clips), bool) if attention_for is None else np.asarray(attention_for)
    methods = {"zero_rule": _zero_rule(y_true, parts)}
    for method, group in checkpoints.items():
        methods[method] = _score_method(
            table, group, test_clips, y_true, embeddings, parts, keep, config
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
        n_reference_clips=len(test_clips),
        methods=methods,
        attention_rows=np.flatnonzero(keep),
    )


def _zero_rule(y_true: np.ndarray, parts: np.ndarray) -> MethodScores:
    """The zero-rule of each part from the other parts' test clips.

    Those are exactly the clips that part's supervised model learnt from (its
    ``supervised_train`` and ``supervised_validation`` rows, ``protocol.model_splits``), so the
    labels come from the rotation's targets instead of a second lookup in the clip table.
    """
    scores = np.zeros(y_true.shape, dtype=np.float32)  # as the models' scores
    predictions = np.zeros(y_true.shape, dtype=bool)
    part_k: dict[int, int] = {}
    for part in np.unique(parts):
        rows = parts == part
        zr_scores, zr_predictions, k = zero_rule(y_true[~rows], int(rows.sum()))
        scores[rows], predictions[rows], part_k[int(part)] = zr_scores, zr_predictions, k
    k_values = set(part_k.values())
    return MethodScores(
        scores,
        predictions,
        k=k_values.pop() if len(k_values) == 1 else None,
        parts=parts,
        part_k=part_k,
    )


def _score_method(
    table: ClipTable,
    group: Sequence[Checkpoint],
    test_clips: pd.DataFrame,
    y_true: np.ndarray,
    embeddings: np.ndarray,
    parts: np.ndarray,
    keep: np.ndarray,
    config: EvaluateConfig,
) -> MethodScores:
    """One method's scores and attention on every test clip: one checkpoint scores them all, or
    each cross-fitted checkpoint scores the clips of its own part."""
    crossfit = [c for c in group if c.crossfit_part is not None]
    if crossfit and len(crossfit) != len(group):
        raise ValueError(f"{group[0].name}: cross-fitted and whole-fold checkpoints mixed")
    if crossfit:
        by_part = {c.crossfit_part: c for c in crossfit}
        unscored = sorted(set(int(p) for p in np.unique(parts)) - set(by_part))
        if unscored or len(by_part) != len(crossfit):
            raise ValueError(
                f"{group[0].rotation['name']}/{group[0].method}: test clips of part(s) {unscored} "
                f"have no cross-fitted model (models: {sorted(c.name for c in crossfit)}); "
                "re-run train"
            )
        selections = [(c, parts == c.crossfit_part) for c in crossfit]
    elif len(group) == 1:
        selections = [(group[0], np.ones(len(parts), bool))]
    else:
        raise ValueError(f"{group[0].name}: {len(group)} checkpoints of one method")
    rule = config.threshold
    n, n_classes = y_true.shape
    scores = np.zeros((n, n_classes), dtype=np.float32)
    predictions = np.zeros((n, n_classes), dtype=bool)
    attention = np.zeros((int(keep.sum()), table.n_segments, n_classes), dtype=np.float32)
    kept_position = np.cumsum(keep) - 1
    thresholds: dict[int, float] = {}
    for checkpoint, rows in selections:
        model = TemporalAttentionModel.from_checkpoint(checkpoint).to(table.device)
        if model.config.semantic_dim != embeddings.shape[1]:
            raise ValueError(
                f"model {checkpoint.name} expects {model.config.semantic_dim}-d label "
                f"embeddings, label_embeddings has {embeddings.shape[1]}-d; re-run train"
            )
        index = np.flatnonzero(rows)
        clip_set = make_clip_set(
            table.segments,
            table.n_valid,
            test_clips["row"].to_numpy()[index],
            y_true[index],
            embeddings,
        )
        scored = score_clips(
            model,
            clip_set,
            batch_size=config.batch_size,
            with_attention=True,
            attention_for=keep[index],
        )
        value = checkpoint.threshold if rule.rule == "tuned" else float(rule.fixed)
        predictions[index] = apply_threshold_rule(
            scored["scores"], rule.rule, threshold=value, k=int(rule.top_k)
        )
        if len(selections) == 1:  # every clip, in order: keep the arrays instead of a copy
            scores, attention = scored["scores"], scored["attention"]
        else:
            scores[index] = scored["scores"]
            attention[kept_position[index[keep[index]]]] = scored["attention"]
        if checkpoint.crossfit_part is not None:
            thresholds[int(checkpoint.crossfit_part)] = float(value)
    value = group[0].threshold if rule.rule == "tuned" else float(rule.fixed)
    return MethodScores(
        scores=scores,
        predictions=predictions,
        threshold=None if rule.rule == "top_k" or crossfit else float(value),
        k=int(rule.top_k) if rule.rule == "top_k" else None,
        gamma=group[0].gamma,
        attention=attention,
        parts=parts if crossfit else None,
        part_thresholds=thresholds if crossfit and rule.rule != "top_k" else None,
    )


def at_most(keep: np.ndarray, clip_ids: pd.Series, n: int | None) -> np.ndarray:
    """``keep`` with at most ``n`` True: those whose clip id hashes lowest (a fixed pseudo-random
    choice: the same clips in every run and for every method)."""
    keep = np.array(keep, dtype=bool)
    if n is None or keep.sum() <= n:
        return keep
    hashes = pd.util.hash_pandas_object(clip_ids.reset_index(drop=True), index=False).to_numpy()
    candidates = np.flatnonzero(keep)
    chosen = candidates[np.argsort(hashes[candidates], kind="stable")[:n]]
    keep[:] = False
    keep[chosen] = True
    return keep


def strong_label_clips(strong_labels: pd.DataFrame) -> pd.Index:
    """The distinct clips with a strong label, hashed once, for :func:`is_in`."""
    return pd.Index([str(clip) for clip in pd.unique(strong_labels["clip"])], dtype=object)


def is_in(clip_ids: pd.Series, clips: pd.Index) -> np.ndarray:
    """Which ``clip_ids`` are in ``clips``: a lookup in the index's hash table. (pandas' ``isin``
    on Arrow strings makes a Python scalar of every member of the set on every call: ~20 s per
    rotation against AudioSet's 2M strong-labelled clips.)"""
    return clips.get_indexer(clip_ids.astype(str).to_numpy(dtype=object)) >= 0


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
    by_rotation: dict[str, dict[str, list[Checkpoint]]] = {}
    for checkpoint in trained_models.values():
        methods = by_rotation.setdefault(checkpoint.rotation["name"], {})
        methods.setdefault(checkpoint.method, []).append(checkpoint)
    heatmap_rotation = config.heatmaps.rotation or next(iter(by_rotation))
    labelled = None if strong_labels is None else strong_label_clips(strong_labels)
    rotations = {}
    for rotation, checkpoints in by_rotation.items():
        test_clips = table.role(model_splits, rotation, "test")
        ytids = test_clips["ytid"].astype(str)
        keep = np.ones(len(test_clips), bool) if labelled is None else is_in(ytids, labelled)
        keep = at_most(keep, ytids, config.localisation.max_clips)
        if rotation == heatmap_rotation:
            classes = next(iter(checkpoints.values()))[0].test_classes
            y_true = multi_hot(test_clips["labels"], classes)
            keep[heatmap_positions(y_true, ytids.to_numpy(), config.heatmaps.n_clips)] = True
        rotations[rotation] = score_rotation(
            table, checkpoints, model_splits, label_embeddings, config, keep
        )
    return EvaluationScores(config.threshold.rule, table.embedder.segment_s, rotations)


def prediction_table(scores: EvaluationScores) -> pd.DataFrame:
    """One row per (rotation, method, test clip): true labels and predicted mids.

    Built column-wise as Arrow lists from the prediction matrices, then converted once: at
    AudioSet scale this is 3.5M rows, which built as one Python list per cell took half a minute.
    """
    tables = []
    for rotation, scored in scores.rotations.items():
        n = len(scored.clips)
        classes = pa.array(scored.classes, pa.string())
        labels = pa.array([list(v) for v in scored.clips["labels"]], pa.list_(pa.string()))
        ytid = pa.array(scored.clips["ytid"].astype(str).to_numpy(), pa.string())
        start_s = pa.array(scored.clips["start_s"].to_numpy(dtype=np.float64))
        for method, result in scored.methods.items():
            rows, columns = np.nonzero(result.predictions)
            offsets = np.zeros(n + 1, dtype=np.int32)
            np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
            predicted = pa.ListArray.from_arrays(pa.array(offsets), classes.take(columns))
            tables.append(
                pa.table(
                    {
                        "rotation": pa.repeat(pa.scalar(rotation, pa.string()), n),
                        "method": pa.repeat(pa.scalar(method, pa.string()), n),
                        "ytid": ytid,
                        "start_s": start_s,
                        "labels": labels,
                        "predicted": predicted,
                    }
                )
            )
    # Plain pandas columns (list cells as numpy arrays, as a Parquet load gives them back): a
    # pd.ArrowDtype list column is written with pandas metadata that pandas cannot read back.
    return pa.concat_tables(tables).to_pandas()


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
