"""The committed test fixtures: small, real, and what CI makes of the full-data tier.

``tests/fixtures/`` must stay small (a fresh clone carries it) and be real excerpts of
``../shared`` (checked byte for byte in the full-data tier by rebuilding them). The full-data
tier is left out on a clone without ``../shared`` and fails where ``ZEROSHOT_REQUIRE_FULL_DATA=1``
cannot find the data.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures import FIXTURES, REPO_ROOT, SOUNDS

SIZE_LIMIT_BYTES = 5_000_000
# A full-data test of this module (cheap to import), run in a child pytest with the shared data
# made unreachable.
FULL_DATA_TEST = "tests/test_fixtures.py::test_fixtures_are_excerpts_of_the_shared_data"


def test_fixtures_fit_the_size_budget() -> None:
    total = sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file())
    assert total < SIZE_LIMIT_BYTES, f"tests/fixtures holds {total / 1e6:.2f} MB"


def test_sound_manifest_lists_exactly_the_committed_events() -> None:
    with (SOUNDS / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["file"] for r in rows} == {str(p.relative_to(SOUNDS)) for p in SOUNDS.rglob("*.flac")}
    assert all(r["license"] and r["mids"] for r in rows)


def test_fixtures_are_excerpts_of_the_shared_data(full_audioset_dir: Path, tmp_path: Path) -> None:
    shared = full_audioset_dir.parents[1]
    subprocess.run(
        [sys.executable, str(FIXTURES / "make_fixtures.py"), f"--shared={shared}",
         f"--out={tmp_path}"],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    rebuilt = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = {p.relative_to(FIXTURES) for p in FIXTURES.rglob("*") if p.is_file()}
    assert set(rebuilt) <= committed
    for relative in rebuilt:
        assert (tmp_path / relative).read_bytes() == (FIXTURES / relative).read_bytes(), relative


def _child_pytest(require: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ZEROSHOT_AUDIO_SHARED": "/nonexistent/shared"}
    env["ZEROSHOT_REQUIRE_FULL_DATA"] = require
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", FULL_DATA_TEST],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_full_data_tests_are_left_out_on_a_clone_and_fail_where_required() -> None:
    on_a_clone = _child_pytest(require="")
    assert on_a_clone.returncode == 5, on_a_clone.stdout[-2000:]  # 5: no test ran
    assert "1 deselected" in on_a_clone.stdout
    assert "full_data: 1 tests not run: no shared data at /nonexistent/shared" in on_a_clone.stdout
    in_ci = _child_pytest(require="1")
    assert in_ci.returncode == 1, in_ci.stdout[-2000:]
    assert "full_data test skipped although ZEROSHOT_REQUIRE_FULL_DATA=1" in in_ci.stdout
    assert "the AudioSet metadata not found in /nonexistent/shared" in in_ci.stdout
    last = in_ci.stdout.splitlines()[-1]  # a skip in setup is reported as an error
    assert ("1 error" in last or "1 failed" in last) and "skipped" not in last
