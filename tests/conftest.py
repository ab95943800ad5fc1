"""Shared fixtures: the real AudioSet metadata and sound events beside the repository."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ZEROSHOT_AUDIO_SHARED", REPO_ROOT.parent / "shared"))
AUDIOSET_DIR = SHARED / "data" / "audioset"
SOUNDS_DIR = SHARED / "data" / "sounds"
DEFAULT_DATA = REPO_ROOT / "data" / "01_raw" / "default"

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def audioset_dir() -> Path:
    if not (AUDIOSET_DIR / "balanced_train_segments.csv").exists():
        pytest.skip(f"real AudioSet metadata not found in {AUDIOSET_DIR}")
    return AUDIOSET_DIR


@pytest.fixture(scope="session")
def sounds_dir() -> Path:
    if not (SOUNDS_DIR / "manifest.csv").exists():
        pytest.skip(f"real sound events not found in {SOUNDS_DIR}")
    return SOUNDS_DIR


@pytest.fixture(scope="session")
def class_index(audioset_dir: Path) -> pd.DataFrame:
    return pd.read_csv(audioset_dir / "class_labels_indices.csv")


@pytest.fixture(scope="session")
def ontology(audioset_dir: Path) -> list[dict]:
    return json.loads((audioset_dir / "ontology.json").read_text())


@pytest.fixture(scope="session")
def full_run_project(tmp_path_factory) -> Path:
    """One small but complete `kedro run` on the bundled data, shared by the end-to-end tests.

    Tests must not run more pipelines in it (copy it first): several check its single MLflow run.
    """
    from tests.kedro_project import SMALL_RUN_PARAMS, kedro, make_project_copy

    if not (DEFAULT_DATA / "segments.csv").exists():
        pytest.skip("the bundled default dataset is missing")
    project = make_project_copy(tmp_path_factory.mktemp("full_run_project"))
    kedro(project, "run", SMALL_RUN_PARAMS)
    return project
