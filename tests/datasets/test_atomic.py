"""Crash-safe saves: a run killed between writing a dataset and renaming it into place leaves
the previous version as the one the next stage loads.

Each case saves version 1 in this process, then a child process saves version 2 with
``os.replace`` patched to announce itself and hang: the bytes are written and fsynced, the rename
has not happened. The child is killed with SIGKILL (no cleanup runs, as with the OOM killer), and a
fresh catalog must still load version 1. With kedro-datasets' own classes the child would write
straight into ``<version>/<name>`` and never call ``os.replace``: the test would fail there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
import torch
from kedro.io import DataCatalog

from tests.conftest import REPO_ROOT

matplotlib.use("Agg")

# name -> (catalog entry, data of version 1 as Python source, data of version 2 as Python source)
CASES = {
    "report": (
        {"type": "zeroshot_audio.datasets.atomic.JSONDataset", "filepath": "r.json"},
        "{'version': 1}",
        "{'version': 2, 'pad': 'x' * 100000}",
    ),
    "table": (
        {"type": "zeroshot_audio.datasets.tables.ParquetDataset", "filepath": "t.parquet"},
        "pd.DataFrame({'version': [1]})",
        "pd.DataFrame({'version': [2] * 1000})",
    ),
    "csv": (
        {"type": "zeroshot_audio.datasets.atomic.CSVDataset", "filepath": "e.csv"},
        "pd.DataFrame({'version': [1]})",
        "pd.DataFrame({'version': [2] * 1000})",
    ),
    "markdown": (
        {"type": "zeroshot_audio.datasets.tables.MarkdownDataset", "filepath": "t.md"},
        "'| version |\\n| --- |\\n| 1 |\\n'",
        "'| version |\\n| --- |\\n| 2 |\\n'",
    ),
    "figures": (
        {"type": "zeroshot_audio.datasets.atomic.MatplotlibDataset", "filepath": "figs"},
        "{'a.png': figure(1), 'b.png': figure(1)}",
        "{'a.png': figure(2), 'b.png': figure(2)}",
    ),
    "trained_models": (
        {"type": "zeroshot_audio.datasets.torch_model.TorchModelDataset", "filepath": "m.pt"},
        "models(1)",
        "models(2)",
    ),
}

PRELUDE = """
import pandas as pd, torch
from matplotlib.figure import Figure

def figure(v):
    fig = Figure(figsize=(1, 1)); fig.suptitle(f"version {v}"); fig.text(0, 0, str(v))
    return fig

def models(v):
    from zeroshot_audio.contracts.checkpoint import Checkpoint
    from zeroshot_audio.contracts.label_table import LabelEncoderSpec
    from zeroshot_audio.contracts.segment_table import EmbedderSpec

    return {"rot0/ta": Checkpoint(
        model_config={"version": v}, state_dict={"w": torch.full((256, 256), v)},
        method="ta", rotation={"name": "rot0"}, threshold=0.0, train_classes=[],
        validation_classes=[], test_classes=[], embedder=EmbedderSpec(),
        label_encoder=LabelEncoderSpec(),
    )}
"""

CHILD = """
import os, sys, time
sys.path.insert(0, {src!r}); sys.path.insert(0, {repo!r})
from kedro.io import DataCatalog, Version
{prelude}
def hang(src, dst):  # the bytes are written and fsynced; the rename never comes
    open({ready!r}, "w").write(str(src))
    time.sleep(600)
os.replace = hang
catalog = DataCatalog.from_config({{"d": {{**{entry!r}, "versioned": True}}}},
                                  save_version="2026-01-02T00.00.00.000Z")
catalog.save("d", {data})
"""


def _catalog(entry: dict, root: Path, **kwargs) -> DataCatalog:
    entry = {**entry, "filepath": str(root / entry["filepath"]), "versioned": True}
    return DataCatalog.from_config({"d": entry}, **kwargs)


def _version_of(name: str, loaded) -> int:
    if name in ("report",):
        return loaded["version"]
    if name in ("table", "csv"):
        return int(loaded["version"].iat[0])
    if name == "markdown":
        return int(loaded.strip().splitlines()[-1].strip("| "))
    if name == "trained_models":
        return loaded["rot0/ta"].model_config["version"]
    raise AssertionError(name)


@pytest.mark.parametrize("name", list(CASES))
def test_a_save_killed_before_its_rename_leaves_the_previous_version_loaded(tmp_path, name):
    entry, first, second = CASES[name]
    namespace: dict = {"pd": pd, "torch": torch}
    exec(PRELUDE, namespace)  # noqa: S102 - the same builders the child uses
    _catalog(entry, tmp_path, save_version="2026-01-01T00.00.00.000Z").save(
        "d",
        eval(first, namespace),  # noqa: S307
    )
    ready = tmp_path / "ready"
    child_entry = {**entry, "filepath": str(tmp_path / entry["filepath"])}
    script = CHILD.format(
        src=str(REPO_ROOT / "src"), repo=str(REPO_ROOT), prelude=PRELUDE,
        ready=str(ready), entry=child_entry, data=second,
    )  # fmt: skip
    env = {**os.environ, "MPLBACKEND": "Agg", "KEDRO_DISABLE_TELEMETRY": "1"}
    child = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), f"the save never reached its rename: {child.stderr.read()!r}"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
        child.stderr.close()

    staged = Path(ready.read_text())
    assert staged.exists() and staged.name.startswith(".")  # written in full, never renamed
    assert staged.parent.name == "2026-01-02T00.00.00.000Z"
    # what the next stage gets: a fresh catalog resolving the latest version
    catalog = _catalog(entry, tmp_path)
    if name == "figures":
        folder = Path(catalog["d"]._get_load_path())
        assert folder.parent.name == "2026-01-01T00.00.00.000Z"
        assert sorted(p.name for p in folder.iterdir()) == ["a.png", "b.png"]
        return
    assert _version_of(name, catalog.load("d")) == 1
    # and a later save (a rerun) becomes the latest as usual
    _catalog(entry, tmp_path, save_version="2026-01-03T00.00.00.000Z").save(
        "d",
        eval(second, namespace),  # noqa: S307
    )
    assert _version_of(name, _catalog(entry, tmp_path).load("d")) == 2


def test_a_failed_save_leaves_no_temp_file_and_no_version(tmp_path):
    catalog = _catalog(
        {"type": "zeroshot_audio.datasets.atomic.JSONDataset", "filepath": "r.json"},
        tmp_path,
        save_version="2026-01-01T00.00.00.000Z",
    )
    with pytest.raises(Exception, match="not JSON serializable"):
        catalog.save("d", {"x": object()})
    leftovers = [p.name for p in (tmp_path / "r.json").rglob("*") if p.is_file()]
    assert leftovers == []
    assert not catalog.exists("d")


def test_unversioned_figure_folder_is_replaced_whole(tmp_path):
    from matplotlib.figure import Figure

    from zeroshot_audio.datasets.atomic import MatplotlibDataset

    dataset = MatplotlibDataset(filepath=str(tmp_path / "figs"))
    dataset.save({"a.png": Figure(), "b.png": Figure()})
    dataset.save({"c.png": Figure()})
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["c.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["figs"]  # nothing hidden left beside it


def test_atomic_json_report_content_is_what_kedro_datasets_writes(tmp_path):
    from kedro_datasets.json import JSONDataset as Plain

    from zeroshot_audio.datasets.atomic import JSONDataset

    data = {"a": [1, 2], "b": "é"}
    JSONDataset(filepath=str(tmp_path / "a.json"), save_args={"indent": 2}).save(data)
    Plain(filepath=str(tmp_path / "p.json"), save_args={"indent": 2}).save(data)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "p.json").read_bytes()
    assert json.loads((tmp_path / "a.json").read_text()) == data
