"""``experiment.protocol``: rotations, clip rows, class lists and role assignment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zeroshot_audio.experiment.protocol import (
    Rotation,
    assign_roles,
    attach_rows,
    label_matrix,
    multi_hot,
    parse_rotations,
    segment_index,
    split_clips,
)


def test_rotations_are_checked_for_overlap_and_unique_names():
    rotation = Rotation.from_dict({"name": "r", "train": 0, "validation": 1, "test": 2})
    assert rotation.train == (0,) and rotation.class_folds_of("uniform", "validation") == [1]
    assert rotation.class_folds_of("supervised", "train") == [2]
    assert Rotation.roles_of("supervised") == ("supervised_train", "supervised_validation")
    with pytest.raises(ValueError, match="overlap"):
        Rotation.from_dict({"name": "r", "train": [0, 1], "validation": 1, "test": 2})
    same = {"name": "r", "train": [0], "validation": 1, "test": 2}
    with pytest.raises(ValueError, match="unique"):
        parse_rotations({"rotations": [same, same]})


def test_clips_find_their_rows_and_duplicates_in_the_table_are_refused():
    index = segment_index(np.array(["a", "b"]), np.array([0.0, 10.0]))
    clips = pd.DataFrame({"ytid": ["b", "c"], "start_s": [10.0, 0.0], "fold": [0, 1],
                          "labels": [["/m/x"], ["/m/y"]]})  # fmt: skip
    kept, missing = attach_rows(clips, index)
    assert kept["row"].tolist() == [1] and missing["ytid"].tolist() == ["c"]
    with pytest.raises(ValueError, match=r"duplicate \(ytid, start_s\).*\(a, 0.0\)"):
        segment_index(np.array(["a", "a"]), np.array([0.0, 0.0]))


def test_targets_and_label_vectors_follow_the_class_order():
    targets = multi_hot(pd.Series([["/m/b", "/m/z"], []]), ["/m/a", "/m/b"])
    np.testing.assert_array_equal(targets, [[False, True], [False, False]])  # /m/z ignored
    labels = pd.DataFrame({"mid": ["/m/a", "/m/b"], "embedding": [[1.0, 0.0], [0.0, 1.0]]})
    np.testing.assert_array_equal(label_matrix(labels, ["/m/b", "/m/a"]), [[0, 1], [1, 0]])
    with pytest.raises(ValueError, match=r"no row for 1 selected classes.*/m/q"):
        label_matrix(labels, ["/m/q"])


def test_cross_fitting_needs_enough_test_fold_clips_and_names_the_rotation():
    clips = pd.DataFrame({"ytid": ["a", "b"], "start_s": [0.0, 0.0], "fold": [2, 2],
                          "labels": [["/m/x"], ["/m/y"]]})  # fmt: skip
    rotation = [Rotation("r", (0,), 1, 2)]
    with pytest.raises(ValueError, match=r"rotation 'r' \(test fold 2\).*too few"):
        assign_roles(clips, rotation, k=3, validation_fraction=0.2, seed=0)


def test_split_clips_filters_by_part_and_refuses_an_old_model_splits():
    clips = pd.DataFrame({"ytid": ["a", "b"], "start_s": [0.0, 0.0], "fold": [2, 2],
                          "labels": [[], []], "row": [0, 1]})  # fmt: skip
    splits = pd.DataFrame({"rotation": "r", "role": "test", "ytid": ["a", "b"],
                           "start_s": [0.0, 0.0], "part": [0, 1]})  # fmt: skip
    assert split_clips(clips, splits, "r", "test", 1)["ytid"].tolist() == ["b"]
    assert split_clips(clips, splits, "r", "test")["ytid"].tolist() == ["a", "b"]
    with pytest.raises(ValueError, match="re-run the train pipeline"):
        split_clips(clips, splits.drop(columns="part"), "r", "test")
