"""notebooks/results.ipynb runs headless on a project where `kedro run` has written its datasets.

Needs nbclient, nbformat and ipykernel (the ``notebook`` extra); skipped when they are missing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO_ROOT
from tests.kedro_project import latest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

pytestmark = pytest.mark.slow

NOTEBOOK = REPO_ROOT / "notebooks" / "results.ipynb"
METHODS = ("zero_rule", "uniform", "temporal_attention", "supervised")
METRICS = ("micro_f1", "macro_f1", "map")


@pytest.fixture(scope="module")
def project(full_run_project, tmp_path_factory) -> Path:
    project = tmp_path_factory.mktemp("notebook") / "project"
    shutil.copytree(full_run_project, project, symlinks=True)
    (project / "notebooks").mkdir()
    shutil.copy(NOTEBOOK, project / "notebooks" / NOTEBOOK.name)
    return project


def execute(project: Path):
    """Runs every cell in a fresh kernel from the notebook's folder, as `jupyter lab` would."""
    notebook = nbformat.read(project / "notebooks" / NOTEBOOK.name, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(project / "notebooks")}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    return notebook


def outputs(notebook, mime: str) -> list[str]:
    return [
        "".join(output.get("data", {}).get(mime, ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if mime in output.get("data", {})
    ]


def test_notebook_is_committed_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert not [c for c in notebook.cells if c.cell_type == "code" and c.get("outputs")]


def test_notebook_plots_the_folds_the_split_wrote(project):
    notebook = execute(project)
    clip_folds = pd.read_parquet(latest(project, "03_primary/clip_folds.parquet"))
    tables = "\n".join(outputs(notebook, "text/html"))
    for n_clips in clip_folds["fold"].value_counts():
        assert f"<td>{n_clips}</td>" in tables, f"{n_clips} clips of a fold not shown"
    assert len(outputs(notebook, "image/png")) == 2  # the folds, and the run's evaluation
    assert "No `evaluation_report` yet" not in json.dumps(notebook.cells[-1]["outputs"])


def test_notebook_plots_an_evaluation_report_when_there_is_one(project):
    """A report in the shape `evaluate` writes (``summary[method][metric]`` = mean, std), planted
    as the newest version so that the values shown are known."""
    summary = {
        method: {
            metric: {"mean": 0.1 * (i + 1) + 0.01 * j, "std": 0.01, "n_rotations": 3}
            for j, metric in enumerate(METRICS)
        }
        for i, method in enumerate(METHODS)
    }
    folder = project / "data" / "08_reporting" / "evaluation_report.json"
    version = folder / "2999-01-01T00.00.00.000Z"
    version.mkdir(parents=True)
    (version / "evaluation_report.json").write_text(json.dumps({"summary": summary}))
    try:
        notebook = execute(project)
    finally:
        shutil.rmtree(version)
    assert len(outputs(notebook, "image/png")) == 2
    shown = "\n".join(outputs(notebook, "text/html"))
    assert all(method in shown for method in METHODS)
    assert "<td>0.4 ± 0.01</td>" in shown and "<td>0.12 ± 0.01</td>" in shown
