"""The environments' catalogs: the audioset env writes only under its own data root.

conf/audioset repeats every written dataset of conf/base with its path moved under the env's
`data_root`, so a base run never loads an audioset version (and the reverse). These tests keep the
copies honest: a dataset added or changed in base without its audioset twin fails here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kedro.framework.project import pipelines, settings
from kedro.framework.startup import bootstrap_project

from tests.conftest import REPO_ROOT

# Deliberate differences of the audioset copies from base (everything else must be equal).
ALLOWED_DIFFERENCES = {"segment_embeddings": {"save_args"}}


def _catalog(env: str, runtime_params: dict[str, Any] | None = None) -> dict[str, Any]:
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(REPO_ROOT / settings.CONF_SOURCE),
        env=env,
        runtime_params=runtime_params or {},
        **settings.CONFIG_LOADER_ARGS,
    )
    return loader["catalog"]


@pytest.fixture(scope="module")
def written() -> set[str]:
    """Every dataset some pipeline writes."""
    bootstrap_project(REPO_ROOT)
    return set().union(*(p.outputs() | p.all_outputs() for p in pipelines.values()))


def _written_files(catalog: dict[str, Any], written: set[str]) -> dict[str, str]:
    return {
        name: cfg["filepath"]
        for name, cfg in catalog.items()
        if name in written and "filepath" in cfg
    }


def test_every_written_path_of_the_audioset_env_is_under_its_data_root(written) -> None:
    base = _written_files(_catalog("base"), written)
    audioset = _written_files(_catalog("audioset"), written)
    assert set(audioset) == set(base) and len(base) >= 20
    for name, path in audioset.items():
        assert Path(path).parts[:2] == ("data", "audioset"), (name, path)
        assert path != base[name]
    moved = _written_files(_catalog("audioset", {"data_root": "/scratch/zsa"}), written)
    assert all(p.startswith("/scratch/zsa/") for p in moved.values()), moved
    # The base env ignores the audioset data root.
    assert _written_files(_catalog("base", {"data_root": "/scratch/zsa"}), written) == base


def test_audioset_copies_of_base_entries_differ_only_in_their_path(written) -> None:
    base, audioset = _catalog("base"), _catalog("audioset")
    for name in _written_files(base, written):
        allowed = {"filepath"} | ALLOWED_DIFFERENCES.get(name, set())
        keys = set(base[name]) | set(audioset[name])
        drift = {k for k in keys - allowed if base[name].get(k) != audioset[name].get(k)}
        assert not drift, f"conf/audioset entry {name!r} drifted from conf/base in {sorted(drift)}"


def test_audioset_inputs_come_from_the_audioset_root() -> None:
    catalog = _catalog("audioset", {"audioset_root": "/mnt/as"})
    files = catalog["audioset_segment_files"]
    assert set(files["filepaths"]) == {"balanced", "eval", "unbalanced"}
    assert all(p.startswith("/mnt/as/") for p in files["filepaths"].values())
    assert files["optional"] == ["unbalanced"]
    assert catalog["audioset_class_index"]["filepath"] == "/mnt/as/class_labels_indices.csv"
    assert catalog["strong_labels"]["dataset"]["filepaths"] == [
        "/mnt/as/audioset_train_strong.tsv",
        "/mnt/as/audioset_eval_strong.tsv",
    ]
    default = _catalog("audioset")["audioset_ontology"]["filepath"]
    assert default == "data/01_raw/audioset/ontology.json"


def test_audioset_featurize_paths_follow_the_roots() -> None:
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(REPO_ROOT / settings.CONF_SOURCE),
        env="audioset",
        runtime_params={"audioset_root": "/mnt/as", "data_root": "/scratch/zsa"},
        **settings.CONFIG_LOADER_ARGS,
    )
    featurize = loader["parameters"]["featurize"]
    assert featurize["audio_root"] == "/mnt/as/audio"
    assert featurize["work_dir"] == "/scratch/zsa/04_feature/featurize_work"
