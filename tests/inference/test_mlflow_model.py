"""The tagger as an MLflow Model: logged, registered, loaded and served with the project's numbers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from tests.inference.checkpoints import (
    LABELS,
    audio_file,
    make_checkpoint,
    project_scores,
    temp_store,
)
from zeroshot_audio.audio.embed import ProvenanceError
from zeroshot_audio.contracts.checkpoint import Checkpoint
from zeroshot_audio.contracts.segment_table import EmbedderSpec
from zeroshot_audio.inference.export import resolve_model_source
from zeroshot_audio.inference.mlflow_model import (
    REGISTERED_MODEL_NAME,
    TaggerSettings,
    _predict_files,
    log_tagger,
    parse_request,
)


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    """A fresh SQLite tracking store with one registered tagger (version 1)."""
    tmp = tmp_path_factory.mktemp("mlflow")
    previous = mlflow.get_tracking_uri()
    uri = temp_store(tmp, "sharing-test")
    checkpoint = make_checkpoint()
    version = log_tagger(checkpoint, metrics={"evaluate/rot0/temporal_attention/micro_f1": 0.31})
    yield {"uri": uri, "tmp": tmp, "version": version, "checkpoint": checkpoint}
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="session")
def expected():
    """The in-project predictor's file scores for the committed clip and LABELS."""
    return project_scores(make_checkpoint(), [audio_file()], LABELS)


def test_registered_with_its_metrics(store):
    version = store["version"]
    assert version.name == REGISTERED_MODEL_NAME and str(version.version) == "1"
    assert version.tags["evaluate/rot0/temporal_attention/micro_f1"] == "0.31"
    assert version.tags["checkpoint.name"] == "rot0/temporal_attention"
    assert version.tags["checkpoint.vggish_weights"] == "random"
    run = mlflow.get_run(version.run_id)
    assert run.data.metrics["evaluate/rot0/temporal_attention/micro_f1"] == pytest.approx(0.31)


def test_log_load_predict_gives_the_project_predictors_scores(store, expected):
    model = mlflow.pyfunc.load_model(f"models:/{REGISTERED_MODEL_NAME}/1")
    request = pd.DataFrame({"audio": [audio_file()], "labels": [LABELS]})
    answer = model.predict(request)
    assert answer["label"].tolist() == LABELS
    np.testing.assert_array_equal(answer["score"], expected["score"])  # identical, not close
    assert answer["tagged"].tolist() == expected["predicted"].tolist()
    assert (answer["error"] == "").all()
    for events in answer["events"]:
        assert all(0 <= a < b <= 10.5 for a, b in json.loads(events))
    # a ;-separated string is the same request
    again = model.predict(pd.DataFrame({"audio": [audio_file()], "labels": [";".join(LABELS)]}))
    np.testing.assert_array_equal(again["score"], answer["score"])


def test_the_model_holds_no_pickle(store):
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{REGISTERED_MODEL_NAME}/1"))
    names = {p.name for p in local.rglob("*") if p.is_file()}
    assert "model.safetensors" in names and "MLmodel" in names
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".pt", ".pth"))]


def test_resolve_model_source_reads_the_registered_model(store):
    loaded = resolve_model_source(f"models:/{REGISTERED_MODEL_NAME}/1")
    assert isinstance(loaded, Checkpoint)
    assert loaded.threshold == store["checkpoint"].threshold
    runs_uri = f"runs:/{store['version'].run_id}/tagger"
    assert resolve_model_source(runs_uri).name == "rot0/temporal_attention"
    with pytest.raises(ValueError, match="version=9"):
        resolve_model_source(f"models:/{REGISTERED_MODEL_NAME}/9")


def _with_embedder(checkpoint: Checkpoint, **changes) -> Checkpoint:
    embedder = EmbedderSpec.from_dict({**checkpoint.embedder.to_dict(), **changes})
    return Checkpoint.from_dict({**checkpoint.to_dict(), "embedder": embedder})


def test_features_from_other_vggish_weights_are_refused(tmp_path):
    other = tmp_path / "vggish-other.pth"
    other.write_bytes(b"some other network")
    trained_on = _with_embedder(
        make_checkpoint(), weights="official", weights_fingerprint="ab" * 32
    )
    with pytest.raises(ProvenanceError, match="OFFICIAL VGGish weights.*expected abab"):
        _predict_files(
            trained_on, [audio_file()], LABELS, TaggerSettings(),
            weights_files={"vggish_network": str(other)},
        )  # fmt: skip
    unknown_seed = _with_embedder(make_checkpoint(), weights_fingerprint="random:xavier")
    with pytest.raises(ProvenanceError, match="seed is not recorded"):
        _predict_files(unknown_seed, [audio_file()], LABELS, TaggerSettings())
    external = _with_embedder(make_checkpoint(), source="external")
    with pytest.raises(ProvenanceError, match="features brought from outside"):
        _predict_files(external, [audio_file()], LABELS, TaggerSettings())


def test_bad_requests_name_the_row():
    with pytest.raises(ValueError, match="labels"):
        parse_request(pd.DataFrame({"audio": ["a.wav"]}))
    with pytest.raises(ValueError, match="row 1"):
        parse_request(pd.DataFrame({"audio": ["a.wav", "b.wav"], "labels": ["dog", " ; "]}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_mlflow_models_serve_answers_on_loopback(store, expected):
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": store["uri"]}
    bin_dir = Path(sys.executable).parent  # mlflow and uvicorn of this environment
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    src = str(Path(__file__).resolve().parents[2] / "src")  # this checkout's package
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    log = open(store["tmp"] / "serve.log", "wb")
    server = subprocess.Popen(
        [
            str(bin_dir / "mlflow"),
            "models",
            "serve",
            "-m",
            f"models:/{REGISTERED_MODEL_NAME}/1",
            "--env-manager",
            "local",
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
        ],  # fmt: skip
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (store["tmp"] / "serve.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, "the server did not answer /ping within 120 s"
            time.sleep(1)
        body = {
            "dataframe_split": {"columns": ["audio", "labels"], "data": [[audio_file(), LABELS]]}
        }
        request = urllib.request.Request(
            f"{base}/invocations",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = pd.DataFrame(json.loads(response.read())["predictions"])
        assert answer["label"].tolist() == LABELS
        # JSON carries float64 exactly (repr round-trips), so the served scores are identical too
        np.testing.assert_array_equal(answer["score"], expected["score"])
        assert answer["tagged"].tolist() == expected["predicted"].tolist()
    finally:
        _stop(server)
        log.close()


def _stop(server: subprocess.Popen) -> None:
    """Stop the server and the workers it started (its own process group)."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    except ProcessLookupError:
        pass  # it already exited
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def test_the_served_rules_are_the_projects_predict_parameters_and_a_typo_fails():
    """The registered model decides as `zeroshot-audio predict` does, from the same strict parse."""
    import yaml

    repo = Path(__file__).resolve().parents[2]
    params = yaml.safe_load((repo / "conf/base/parameters_predict.yml").read_text())["predict"]
    params = {**params, "threshold": {"rule": "top_k", "top_k": 3}, "hop_s": 0.5}
    settings = TaggerSettings.from_predict_params(params)
    assert (settings.threshold_rule, settings.top_k, settings.hop_s) == ("top_k", 3, 0.5)
    assert settings.localisation["rule"] == params["localisation"]["rule"]
    with pytest.raises(ValueError, match="thresold"):
        TaggerSettings.from_predict_params({**params, "thresold": {"rule": "fixed"}})
    with pytest.raises(ValueError, match="file_score"):
        TaggerSettings.from_predict_params({**params, "file_score": "median"})
