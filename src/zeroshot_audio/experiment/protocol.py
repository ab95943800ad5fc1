"""The evaluation protocol: which clips and classes each rotation and method trains, tunes and is
tested on. Shared by the ``train`` and ``evaluate`` stages so that both read one definition.

Per rotation (roles of the K class-disjoint folds from the parameters):
- zero-shot methods (temporal attention, uniform) train on the training folds' clips and classes
  and are validated (checkpoint, threshold) on the validation fold's clips and classes;
- the test fold's clips are split at clip level, seeded, into ``supervised_train``,
  ``supervised_validation`` and ``test``. The supervised upper bound trains and validates on the
  first two, with the test fold's classes;
- every method, zero-rule included, is scored on the same ``test`` clips against the test fold's
  classes, so the table compares like with like. The zero-rule's class frequencies come from the
  test fold's non-test clips, so no method sees a test label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

ZERO_SHOT_METHODS = ("temporal_attention", "uniform")
TRAINED_METHODS = ("temporal_attention", "uniform", "supervised")
METHODS = ("zero_rule", "uniform", "temporal_attention", "supervised")  # the table's row order
METHOD_TITLES = {
    "zero_rule": "Zero-rule baseline",
    "uniform": "Zero-shot, uniform aggregation",
    "temporal_attention": "Zero-shot, temporal attention",
    "supervised": "Supervised, temporal attention (upper bound)",
}
ROLES = ("train", "validation", "supervised_train", "supervised_validation", "test")
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
    test_fraction: float,
    validation_fraction: float,
    seed: int,
) -> pd.DataFrame:
    """One row per (rotation, clip) with its role; the supervised/test split is seeded per rotation."""
    if not (0 < test_fraction < 1 and 0 < validation_fraction < 1):
        raise ValueError("supervised split fractions must lie in (0, 1)")
    if test_fraction + validation_fraction >= 1:
        raise ValueError("test + validation fractions must leave clips for supervised training")
    ordered = clips.sort_values(["ytid", "start_s"], kind="stable").reset_index(drop=True)
    parts = []
    for r, rotation in enumerate(rotations):
        for fold, role in [(f, "train") for f in rotation.train] + [
            (rotation.validation, "validation")
        ]:
            part = ordered.loc[ordered["fold"] == fold, ["ytid", "start_s"]].copy()
            part["role"] = role
            parts.append(part.assign(rotation=rotation.name))
        test_fold = ordered.loc[ordered["fold"] == rotation.test, ["ytid", "start_s"]].copy()
        rng = np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_STREAM, r]))
        order = rng.permutation(len(test_fold))
        n_test = round(test_fraction * len(test_fold))
        n_validation = round(validation_fraction * len(test_fold))
        roles = np.empty(len(test_fold), dtype=object)
        roles[order[:n_test]] = "test"
        roles[order[n_test : n_test + n_validation]] = "supervised_validation"
        roles[order[n_test + n_validation :]] = "supervised_train"
        test_fold["role"] = roles
        parts.append(test_fold.assign(rotation=rotation.name))
    columns = ["rotation", "role", "ytid", "start_s"]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]


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
    clips: pd.DataFrame, model_splits: pd.DataFrame, rotation: str, role: str
) -> pd.DataFrame:
    """The clips (with row and labels) of one rotation and role, in model_splits order."""
    wanted = model_splits.loc[
        (model_splits["rotation"] == rotation) & (model_splits["role"] == role),
        ["ytid", "start_s"],
    ]
    return wanted.merge(clips, on=["ytid", "start_s"], how="inner").reset_index(drop=True)
