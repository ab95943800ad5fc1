"""The evaluation protocol: which clips and classes each rotation and method trains, tunes and is
tested on. Shared by the ``train`` and ``evaluate`` stages so that both read one definition.

Per rotation (roles of the K class-disjoint folds from the parameters):
- zero-shot methods (temporal attention, uniform) train on the training folds' clips and classes
  and are validated (checkpoint, threshold) on the validation fold's clips and classes;
- every clip of the test fold is a ``test`` clip, scored by every method against the test
  fold's classes, so the table compares like with like on all of them;
- the supervised upper bound (which must learn the test classes, hence from test-fold clips) is
  cross-fitted (``model.crossfit``): the test fold is split, seeded and stratified by label, into
  K parts; model k trains on ``supervised_train`` and early-stops on ``supervised_validation``
  clips drawn from the other K - 1 parts and scores the clips of part k. Every test clip is thus
  scored once by a supervised model that never saw it;
- the zero-rule is cross-fitted the same way: a clip of part k gets the classes most frequent on
  the other parts. (The training folds cannot serve: folds are class-disjoint and a clip keeps
  only its own fold's labels, so no training clip carries a test class.)

``model_splits`` holds one row per (rotation, role, clip) with ``part``: for a ``test`` clip the
cross-fit part that scores it, for a ``supervised_*`` row the part whose model uses it, -1 for
the zero-shot methods' ``train``/``validation`` clips.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from zeroshot_audio.model.crossfit import cross_fit_folds

ZERO_SHOT_METHODS = ("temporal_attention", "uniform")
TRAINED_METHODS = ("temporal_attention", "uniform", "supervised")
METHODS = ("zero_rule", "uniform", "temporal_attention", "supervised")  # the table's row order
METHOD_TITLES = {
    "zero_rule": "Zero-rule baseline",
    "uniform": "Zero-shot, uniform aggregation",
    "temporal_attention": "Zero-shot, temporal attention",
    "supervised": "Supervised, temporal attention (upper bound)",
}
ROLES = ("train", "validation", "test", "supervised_train", "supervised_validation")
NO_PART = -1  # the ``part`` of rows outside the cross-fitting
# Stage-specific stream of the shared seed, so this split never moves when another stage changes.
_SPLIT_STREAM = 5


@dataclass(frozen=True)
class Rotation:
    name: str
    train: tuple[int, ...]
    validation: int
    test: int

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Rotation:
        train = values["train"]
        train = tuple(int(f) for f in (train if isinstance(train, Sequence) else [train]))
        rotation = cls(str(values["name"]), train, int(values["validation"]), int(values["test"]))
        if len({*rotation.train, rotation.validation, rotation.test}) != len(rotation.train) + 2:
            raise ValueError(
                f"rotation {rotation.name!r}: train, validation and test folds overlap"
            )
        return rotation

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "train": list(self.train),
            "validation": self.validation,
            "test": self.test,
        }

    def class_folds_of(self, method: str, stage: str) -> list[int]:
        """Folds whose classes ``method`` uses to ``stage`` in {train, validation, test}."""
        if method == "supervised" or stage == "test":
            return [self.test]
        return list(self.train) if stage == "train" else [self.validation]

    @staticmethod
    def roles_of(method: str) -> tuple[str, str]:
        """(training role, validation role) of a trained method's clips."""
        if method == "supervised":
            return "supervised_train", "supervised_validation"
        return "train", "validation"


def parse_rotations(folds: Mapping[str, Any]) -> list[Rotation]:
    rotations = [Rotation.from_dict(r) for r in folds["rotations"]]
    names = [r.name for r in rotations]
    if len(set(names)) != len(names):
        raise ValueError(f"rotation names must be unique, got {names}")
    return rotations


def segment_index(ytid: np.ndarray, start_s: np.ndarray) -> pd.DataFrame:
    """(ytid, start_s) -> row of the segment table."""
    index = pd.DataFrame({"ytid": ytid.astype(str), "start_s": start_s.astype(np.float64)})
    index["row"] = np.arange(len(index), dtype=np.int64)
    duplicated = index.duplicated(["ytid", "start_s"])
    if duplicated.any():
        first = index[duplicated].iloc[0]
        raise ValueError(
            f"segment_embeddings has {int(duplicated.sum())} duplicate (ytid, start_s) rows, e.g. "
            f"({first.ytid}, {first.start_s})"
        )
    return index


def attach_rows(clip_folds: pd.DataFrame, index: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clips with their segment-table row, and the clips that have no embeddings (left out)."""
    clips = clip_folds[["ytid", "start_s", "fold", "labels"]].copy()
    clips["ytid"] = clips["ytid"].astype(str)
    clips["start_s"] = clips["start_s"].astype(np.float64)
    merged = clips.merge(index, on=["ytid", "start_s"], how="left")
    missing = merged["row"].isna()
    kept = merged[~missing].copy()
    kept["row"] = kept["row"].astype(np.int64)
    return kept.reset_index(drop=True), merged.loc[missing, ["ytid", "start_s", "fold"]]


def assign_roles(
    clips: pd.DataFrame,
    rotations: Sequence[Rotation],
    *,
    k: int,
    validation_fraction: float,
    seed: int,
) -> pd.DataFrame:
    """One row per (rotation, role, clip, part); the cross-fit parts are seeded per rotation.

    Every test-fold clip gets a ``test`` row (its scoring part) and, for each of the other K - 1
    parts' models, a ``supervised_train`` or ``supervised_validation`` row.
    """
    ordered = clips.sort_values(["ytid", "start_s"], kind="stable").reset_index(drop=True)
    parts = []
    for r, rotation in enumerate(rotations):
        for fold, role in [(f, "train") for f in rotation.train] + [
            (rotation.validation, "validation")
        ]:
            part = ordered.loc[ordered["fold"] == fold, ["ytid", "start_s"]].copy()
            parts.append(part.assign(role=role, rotation=rotation.name, part=NO_PART))
        test_fold = ordered.loc[ordered["fold"] == rotation.test].reset_index(drop=True)
        if test_fold.empty:
            continue
        ids = [f"{y}@{s!r}" for y, s in zip(test_fold["ytid"], test_fold["start_s"], strict=True)]
        position = {clip: i for i, clip in enumerate(ids)}
        seed_r = int(np.random.SeedSequence([seed, _SPLIT_STREAM, r]).generate_state(1)[0])
        try:
            folds = cross_fit_folds(
                ids,
                labels=[list(v) for v in test_fold["labels"]],
                k=k,
                validation_fraction=validation_fraction,
                seed=seed_r,
            )
        except ValueError as error:
            raise ValueError(
                f"rotation {rotation.name!r} (test fold {rotation.test}): {error}"
            ) from error
        for fold in folds:
            for role, members in (
                ("test", fold.scored),
                ("supervised_train", fold.inner_train),
                ("supervised_validation", fold.inner_validation),
            ):
                rows = test_fold.loc[[position[c] for c in members], ["ytid", "start_s"]]
                parts.append(rows.assign(role=role, rotation=rotation.name, part=fold.index))
    columns = ["rotation", "role", "ytid", "start_s", "part"]
    if not parts:
        return pd.DataFrame(columns=columns)
    out = pd.concat(parts, ignore_index=True)[columns]
    out["part"] = out["part"].astype(np.int64)
    return out


def fold_classes(class_folds: pd.DataFrame, folds: Sequence[int]) -> list[str]:
    """The classes of some folds, in a fixed (sorted mid) order."""
    return sorted(class_folds.loc[class_folds["fold"].isin(list(folds)), "mid"].astype(str))


def label_matrix(label_embeddings: pd.DataFrame, mids: Sequence[str]) -> np.ndarray:
    """[C, E] float32 label embeddings of ``mids`` in that order; a missing mid is an error."""
    table = label_embeddings.drop_duplicates("mid").set_index("mid")
    missing = [m for m in mids if m not in table.index]
    if missing:
        raise ValueError(
            f"label_embeddings has no row for {len(missing)} selected classes, e.g. {missing[:5]}; "
            "re-run the embed_labels pipeline on the current class folds"
        )
    return np.stack([np.asarray(v, dtype=np.float32) for v in table.loc[list(mids), "embedding"]])


def label_texts(label_embeddings: pd.DataFrame) -> dict[str, str]:
    return dict(zip(label_embeddings["mid"].astype(str), label_embeddings["text"].astype(str)))


def multi_hot(labels: pd.Series, classes: Sequence[str]) -> np.ndarray:
    """[N, C] bool from lists of mids; mids outside ``classes`` are ignored."""
    column = {mid: j for j, mid in enumerate(classes)}
    targets = np.zeros((len(labels), len(classes)), dtype=bool)
    exploded = labels.reset_index(drop=True).explode()
    cols = exploded.map(column)
    keep = cols.notna().to_numpy()
    targets[exploded.index.to_numpy()[keep], cols.to_numpy()[keep].astype(np.int64)] = True
    return targets


def split_clips(
    clips: pd.DataFrame,
    model_splits: pd.DataFrame,
    rotation: str,
    role: str,
    part: int | None = None,
) -> pd.DataFrame:
    """The clips (with row, labels and ``part``) of one rotation and role (and cross-fit part,
    when given), in model_splits order."""
    if "part" not in model_splits.columns:
        raise ValueError(
            "model_splits has no 'part' column: it was written before cross-fitting; re-run the "
            "train pipeline (kedro run --pipeline=train)"
        )
    mask = (model_splits["rotation"] == rotation) & (model_splits["role"] == role)
    if part is not None:
        mask &= model_splits["part"] == part
    wanted = model_splits.loc[mask, ["ytid", "start_s", "part"]]
    return wanted.merge(clips, on=["ytid", "start_s"], how="inner").reset_index(drop=True)
