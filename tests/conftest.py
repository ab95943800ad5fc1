"""Shared fixtures: real AudioSet metadata and sound events, committed under ``tests/fixtures/``.

The full shared data (``../shared``: the 2M-row unbalanced file, the whole sound pack) is only
reached through the ``full_audioset_dir`` / ``full_sounds_dir`` fixtures; tests using them are
marked ``full_data``. Without ``../shared`` they are left out with one summary line (a fresh
clone); a part missing makes them skip with the reason. With ``ZEROSHOT_REQUIRE_FULL_DATA=1``
(``.ci/run``) they always run and such a skip is a failure, so CI cannot silently run less.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from tests import fixtures
from tests.fixtures import REPO_ROOT, SHARED  # noqa: F401  (re-exported for the tests)

AUDIOSET_DIR = fixtures.AUDIOSET
SOUNDS_DIR = fixtures.SOUNDS
DEFAULT_DATA = REPO_ROOT / "data" / "01_raw" / "default"
FULL_DATA_FIXTURES = {"full_audioset_dir", "full_sounds_dir"}

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


_deselected_full_data: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Full-data tests are left out (not skipped) where ``../shared`` is absent and not required.

    A test that asks for the full shared data is in the tier, marked or not. On a fresh clone the
    tier is deselected with one summary line, so ``make test`` reports no skips but the browser
    tests'; where the data is present, or ``ZEROSHOT_REQUIRE_FULL_DATA=1``, every test runs.
    """
    for item in items:
        if FULL_DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.full_data)
    if fixtures.full_data_required() or fixtures.shared_data_present():
        return
    left_out = [item for item in items if item.get_closest_marker("full_data") is not None]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item.get_closest_marker("full_data") is None]
        _deselected_full_data.extend(item.nodeid for item in left_out)


def pytest_terminal_summary(terminalreporter) -> None:
    if _deselected_full_data:
        terminalreporter.write_line(
            f"full_data: {len(_deselected_full_data)} tests not run: no shared data at "
            f"{fixtures.SHARED / 'data'} (CI runs them; tests/fixtures covers the rest)",
            yellow=True,
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Where full data is required (CI), a skipped full-data test fails, saying why it skipped."""
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and fixtures.full_data_required()
        and item.get_closest_marker("full_data") is not None
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (
            f"full_data test skipped although {fixtures.REQUIRE_FULL_DATA}=1: {reason}"
        )


@pytest.fixture(scope="session")
def audioset_dir() -> Path:
    """Real AudioSet metadata: slices of the three segment files, the class index, the ontology."""
    return AUDIOSET_DIR


@pytest.fixture(scope="session")
def sounds_dir() -> Path:
    """A few dozen real sound events of the shared pack, with their manifest rows."""
    return SOUNDS_DIR


@pytest.fixture(scope="session")
def full_audioset_dir() -> Path:
    """The complete AudioSet metadata in ``../shared`` (full-data tier)."""
    return fixtures.shared_audioset()


@pytest.fixture(scope="session")
def full_sounds_dir() -> Path:
    """The complete sound pack in ``../shared`` (full-data tier)."""
    return fixtures.shared_sounds()


@pytest.fixture(scope="session")
def class_index(audioset_dir: Path) -> pd.DataFrame:
    return fixtures.class_index(audioset_dir)


@pytest.fixture(scope="session")
def ontology(audioset_dir: Path) -> list[dict]:
    return fixtures.ontology(audioset_dir)


@pytest.fixture(scope="session")
def full_run_project(tmp_path_factory) -> Path:
    """One small but complete `kedro run` on the bundled data, shared by the end-to-end tests.

    Tests must not run more pipelines in it (copy it first): several check its single MLflow run.
    """
    from tests.kedro_project import SMALL_RUN_PARAMS, kedro, make_project_copy

    if not (DEFAULT_DATA / "segments.csv").exists():
        pytest.skip("the bundled default dataset is missing")
    project = make_project_copy(tmp_path_factory.mktemp("full_run_project"))
    result = kedro(project, "run", SMALL_RUN_PARAMS, interleaved=True)
    (project / "kedro_run.log").write_text(result.stdout)  # what the user saw, in that order
    return project
