"""A copy of the project as a fresh clone has it, and `kedro` run in it as a user types it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd

from tests.conftest import DEFAULT_DATA, REPO_ROOT

# A quarter of the bundled clips and a few epochs keep a whole `kedro run` to a few minutes on
# 2 cores; the stages, datasets and MLflow wiring are those of the default run.
SMALL_RUN_PARAMS = "--params=featurize.max_clips=200,train.fit.epochs=4"

DATA_LAYERS = (
    "01_raw", "02_intermediate", "03_primary", "04_feature", "05_model_input", "06_models",
    "07_model_output", "08_reporting",
)  # fmt: skip


def make_project_copy(destination: Path) -> Path:
    """What a fresh clone has: pyproject, src, conf (empty conf/local) and the bundled data."""
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(REPO_ROOT / name, destination / name)
    shutil.copytree(
        REPO_ROOT / "src", destination / "src", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(
        REPO_ROOT / "conf", destination / "conf", ignore=shutil.ignore_patterns("local")
    )
    (destination / "conf" / "local").mkdir()
    for layer in DATA_LAYERS:
        (destination / "data" / layer).mkdir(parents=True)
    shutil.copytree(DEFAULT_DATA, destination / "data" / "01_raw" / "default", dirs_exist_ok=True)
    return destination


def kedro(
    project: Path, *args: str, timeout: int = 900, interleaved: bool = False
) -> subprocess.CompletedProcess:
    """Run ``kedro ARGS`` in ``project``; ``interleaved``: stderr into stdout, unbuffered, i.e.
    the order a terminal shows (``result.stderr`` is then empty)."""
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    if interleaved:
        env["PYTHONUNBUFFERED"] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "kedro", *args],
        cwd=project, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if interleaved else subprocess.PIPE,
        text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-5000:] + (result.stderr or "")[-5000:]
    return result


def latest(project: Path, relative: str) -> Path:
    """The newest version of a versioned dataset written under ``data/``."""
    folder = project / "data" / relative
    versions = sorted(p for p in folder.iterdir() if p.is_dir())
    assert versions, f"no version of {relative}"
    return versions[-1] / folder.name


def mlflow_runs(project: Path) -> pd.DataFrame:
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    return mlflow.search_runs(experiment_names=["zeroshot_audio"], order_by=["start_time DESC"])
