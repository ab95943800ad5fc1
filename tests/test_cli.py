"""``zeroshot-audio predict``: bad usage in-process; the real command in a copy of the project."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from kedro.io import Version
from kedro_datasets.pandas import ParquetDataset
from kedro_datasets.pickle import PickleDataset
from rich.console import Console

from tests.inference import planted as fixtures
from tests.inference.checkpoints import LABELS, audio_file, make_checkpoint, project_scores
from tests.inference.planted import OTHER_LABELS, TARGET_LABEL
from tests.kedro_project import make_project_copy
from zeroshot_audio.audio import vggish
from zeroshot_audio.cli import cli, print_results, spread_labels
from zeroshot_audio.contracts.checkpoint import Checkpoint
from zeroshot_audio.contracts.segment_table import EmbedderSpec
from zeroshot_audio.inference.export import export_checkpoint

# The planted model and real audio of tests/inference (fixtures used below).
sounds, audio_dir, featurize_config, embedder, text_encoder, planted = (
    fixtures.sounds,
    fixtures.audio_dir,
    fixtures.featurize_config,
    fixtures.embedder,
    fixtures.text_encoder,
    fixtures.planted,
)


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


def test_labels_take_every_word_up_to_an_option_or_the_double_dash():
    assert spread_labels(["a.wav", "--labels", "dog", "a siren", "--top-k", "2"]) == [
        "a.wav", "--labels", "dog", "--labels", "a siren", "--top-k", "2",
    ]  # fmt: skip
    assert spread_labels(["-l", "dog", "--", "-odd.wav", "--labels"]) == [
        "--labels", "dog", "--", "-odd.wav", "--labels",
    ]  # fmt: skip


def test_the_documented_double_dash_form_reaches_the_audio(tmp_path):
    """`--labels TEXT... -- AUDIO...`, with a file name starting with a dash: parsed as audio
    (here it does not exist, so the command stops at the cheap check, naming it)."""
    result = CliRunner().invoke(
        cli, ["predict", "--labels", "dog", "siren", "--", str(tmp_path / "-odd [1].wav")]
    )
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert "-odd [1].wav: the pattern matches no file" in output  # brackets shown, not markup
    assert "no audio file to tag" in output


def test_tables_print_names_with_markup_characters_as_they_are():
    predictions = pd.DataFrame(
        {
            "file": ["[bold]x[/bold].wav"],
            "label": ["[abc]"],
            "text": ["[abc]"],
            "score": [0.9],
            "predicted": [True],
            "duration_s": [4.0],
            "n_windows": [1],
        }
    )
    events = pd.DataFrame(
        {"file": ["[bold]x[/bold].wav"], "label": ["[abc]"], "onset_s": [1.0], "offset_s": [2.0]}
    )
    report = {
        "threshold": {"rule": "tuned", "value": 0.5, "top_k": None},
        "failures": [{"file": "[red]y.wav", "reason": "decode_error", "detail": "[x]"}],
        "labels": [{"label": "[abc]", "seen_in_training": True}],
        "model": "rot0/temporal_attention",
        "method": "temporal_attention",
        "vggish_weights": "official",
        "n_files_tagged": 1,
        "n_files_failed": 1,
        "n_events": 1,
    }
    console = Console(record=True, width=200)
    print_results(console, predictions, events, report, {})
    text = console.export_text()
    for shown in (
        "[bold]x[/bold].wav",
        "[abc]",
        "[red]y.wav",
        "1.0-2.0",
        "Seen in training: [abc]",
    ):
        assert shown in text


def test_predict_with_an_exported_model_prints_the_project_predictors_scores(tmp_path):
    checkpoint = make_checkpoint(threshold=0.1)
    folder = export_checkpoint(checkpoint, tmp_path / "shared model")
    result = CliRunner().invoke(
        cli, ["predict", audio_file(), "--model", str(folder), "--labels", *LABELS]
    )
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.replace("│", " ").split())
    expected = project_scores(checkpoint, [audio_file()], LABELS)
    for row in expected.itertuples(index=False):
        assert f"{row.label} {row.score:.3f}" in shown
    assert "model rot0/temporal_attention (temporal_attention), threshold tuned 0.1" in shown


def test_a_model_of_other_vggish_weights_is_refused_naming_both(tmp_path):
    """Features made with other VGGish weights: the model records the sha256 of its network
    file; this machine's file (a valid tensor file, not pinned) has another."""
    theirs = "ab" * 32
    spec = EmbedderSpec.from_dict(
        {
            **make_checkpoint().embedder.to_dict(),
            "weights": "official",
            "weights_fingerprint": theirs,
        }
    )
    trained_on = Checkpoint.from_dict({**make_checkpoint().to_dict(), "embedder": spec})
    folder = export_checkpoint(trained_on, tmp_path / "model")
    ours = tmp_path / "my-vggish.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, ours)
    params = f"featurize.weights.path={ours},featurize.weights.sha256=null,featurize.weights.download=false"
    result = CliRunner().invoke(
        cli,
        ["predict", audio_file(), "--model", str(folder), "--params", params, "--labels", "dog"],
    )
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "VGGish weights here differ from those the model was trained on" in message
    assert theirs in message and vggish.file_sha256(ours) in message
    assert "rot0/temporal_attention" not in message.split("error:")[0]  # nothing tagged first


def test_export_names_an_unknown_model_uri_and_a_folder_outside_a_project(tmp_path):
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")  # an empty store
    try:
        unknown = CliRunner().invoke(
            cli, ["export", "models:/zeroshot_audio_tagger/7", "--out", str(tmp_path / "a")]
        )
    finally:
        mlflow.set_tracking_uri(previous)
    assert unknown.exit_code == 1
    assert "models:/zeroshot_audio_tagger/7" in " ".join(unknown.output.split())
    outside = CliRunner().invoke(
        cli, ["export", "auto", "--out", str(tmp_path / "b"), "--project", str(tmp_path)]
    )
    assert outside.exit_code == 1
    assert "is not in a Kedro project" in " ".join(outside.output.split())
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


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


def _tables(stdout: str) -> str:
    """The per-file tables and the failures, up to the summary line."""
    return stdout.split("\nmodel ", maxsplit=1)[0]


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

    # trained_models as its loaded form (dict[str, Checkpoint]); its file format is the train
    # stage's and is tested there.
    (project / "conf/local/catalog_trained_models.yml").write_text(
        "trained_models:\n  type: pickle.PickleDataset\n"
        "  filepath: data/06_models/trained_models.pkl\n  versioned: true\n"
    )
    PickleDataset(
        filepath=str(project / "data/06_models/trained_models.pkl"), version=Version(None, None)
    ).save({"rot0/temporal_attention": planted["checkpoint"]})
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
    # results on stdout, Kedro's log lines on stderr
    assert " - INFO - " not in after.stdout and "kedro" not in after.stdout.lower()
    assert " - INFO - " in after.stderr and "Running node: tag_audio_files" in after.stderr
    # the same model exported and loaded with --model DIR: the same tables, without Kedro
    assert zeroshot_audio(project, "export", "auto", "--out", "shared").returncode == 0
    assert {p.name for p in (project / "shared").iterdir()} == {"config.json", "model.safetensors"}
    shared = zeroshot_audio(project, *args, "--model", "shared")
    assert shared.returncode == 1, shared.stdout[-3000:] + shared.stderr[-3000:]
    assert _tables(shared.stdout) == _tables(after.stdout)
    assert "Running node" not in shared.stderr
    events = sorted((project / "data/07_model_output/sound_events.csv").glob("*/sound_events.csv"))
    assert len(events) == 1
    table = pd.read_csv(events[0])
    assert table[["onset_s", "offset_s"]].to_numpy().tolist() == [[8.0, 12.0], [23.0, 26.0]]

    # --no-figures, the documented `--labels ... -- AUDIO` form and a file name with a leading
    # dash and brackets: tagged, exit 0, an empty figures version, the MLflow run not failed.
    odd = project / "clips" / "-street [1].wav"
    odd.write_bytes(planted["file"].read_bytes())
    quiet = zeroshot_audio(
        project,
        "predict",
        "--no-figures",
        "--params",
        "featurize.weights.download=false",
        "--labels",
        TARGET_LABEL,
        "--",
        str(odd.relative_to(project)),
    )
    assert quiet.returncode == 0, quiet.stdout[-3000:] + quiet.stderr[-3000:]
    shown = " ".join(quiet.stdout.split())
    assert "-street [1].wav" in shown and "8.0-12.0, 23.0-26.0" in shown
    assert "prediction_figures" not in shown  # nothing drawn, so no path printed
    from tests.kedro_project import mlflow_runs

    runs = mlflow_runs(project)
    assert runs["status"].iloc[0] == "FINISHED"
