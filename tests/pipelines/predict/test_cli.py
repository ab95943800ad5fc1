"""``zeroshot-audio predict``: bad usage in-process; the real command in a copy of the project."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from kedro.io import Version
from kedro_datasets.pandas import ParquetDataset

from tests.pipelines.predict.conftest import OTHER_LABELS, TARGET_LABEL, typed_checkpoint
from tests.test_kedro_run import make_project_copy
from zeroshot_audio.cli import cli
from zeroshot_audio.datasets.torch_model import TorchModelDataset


def test_an_empty_label_list_is_a_usage_error(audio_dir):
    result = CliRunner().invoke(cli, ["predict", str(audio_dir), "--labels", " ", ""])
    assert result.exit_code == 2
    assert "no labels given" in " ".join(result.output.split())


def test_no_audio_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["predict", str(tmp_path / "nothing.wav"), "--labels", "dog"])
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "nothing.wav: no such file or folder" in output
    assert "no audio file to tag" in output


def test_run_is_kedros_run_command():
    from kedro.framework.cli.project import run

    assert cli.commands["run"] is run


def zeroshot_audio(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "zeroshot_audio.cli", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_the_command_tags_files_and_reports_a_bad_one_and_a_missing_model(planted, tmp_path):
    project = make_project_copy(tmp_path)
    (project / "clips").mkdir()
    (project / "clips" / "street.wav").write_bytes(planted["file"].read_bytes())
    (project / "clips" / "broken.flac").write_text("not audio")
    args = [
        "predict",
        "clips",
        "--labels",
        TARGET_LABEL,
        *OTHER_LABELS,
        "--params",
        "featurize.weights.download=false",  # offline: do not even try
    ]

    before = zeroshot_audio(project, *args)
    assert before.returncode == 1
    message = " ".join(before.stderr.split())
    assert "no trained model yet" in message and "kedro run" in message

    TorchModelDataset(
        filepath=str(project / "data/06_models/trained_models.pt"), version=Version(None, None)
    ).save({"rot0/temporal_attention": typed_checkpoint(planted["checkpoint"])})
    ParquetDataset(
        filepath=str(project / "data/04_feature/label_embeddings.parquet"),
        version=Version(None, None),
    ).save(
        pd.DataFrame(
            {"mid": ["/m/09x0r"], "text": ["Speech"], "embedding": [np.zeros(3, np.float32)]}
        )
    )

    after = zeroshot_audio(project, *args)
    assert after.returncode == 1, after.stdout[-3000:] + after.stderr[-3000:]  # one file failed
    out = " ".join(after.stdout.split())
    assert f"{TARGET_LABEL}" in out and "8.0-12.0, 23.0-26.0" in out
    assert "files not tagged" in out and "broken.flac" in out and "decode_error" in out
    assert "model rot0/temporal_attention" in out and "VGGish weights random" in out
    events = sorted((project / "data/07_model_output/sound_events.csv").glob("*/sound_events.csv"))
    assert len(events) == 1
    table = pd.read_csv(events[0])
    assert table[["onset_s", "offset_s"]].to_numpy().tolist() == [[8.0, 12.0], [23.0, 26.0]]
