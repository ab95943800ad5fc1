"""``inference.config``: the predict parameters are typed and checked."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import REPO_ROOT
from zeroshot_audio.inference import PredictConfig, parse_labels, weights_location


def test_params_are_typed_and_checked():
    cfg = PredictConfig.from_params(
        {
            "audio": "a.wav;b",
            "labels": ["x"],
            "threshold": {"rule": "top_k", "top_k": 3},
            "localisation": {"rule": "mass"},
        }
    )
    assert cfg.audio == ("a.wav", "b") and cfg.threshold.top_k == 3
    assert cfg.localisation.value == 0.8 and cfg.min_sound_s == 0.1
    with pytest.raises(ValueError, match=r"unknown predict parameter.*treshold"):
        PredictConfig.from_params({"audio": "a", "labels": "x", "treshold": {}})
    with pytest.raises(ValueError, match=r"unknown predict.figures parameter.*enable"):
        PredictConfig.from_params({"audio": "a", "labels": "x", "figures": {"enable": False}})
    with pytest.raises(ValueError, match="no labels given"):
        PredictConfig.from_params({"audio": "a", "labels": []})
    with pytest.raises(ValueError, match="threshold rule"):
        PredictConfig.from_params({"audio": "a", "labels": "x", "threshold": {"rule": "best"}})
    with pytest.raises(ValueError, match="min_sound_s"):
        PredictConfig.from_params({"audio": "a", "labels": "x", "min_sound_s": 0})


def test_label_lists():
    assert parse_labels("dog barking; siren ;;") == ["dog barking", "siren"]
    for empty in ([], "", " ; ", None):
        with pytest.raises(ValueError, match="no labels given"):
            parse_labels(empty)


def test_the_project_parameters_are_valid():
    params = yaml.safe_load((REPO_ROOT / "conf/base/parameters_predict.yml").read_text())
    config = PredictConfig.from_params(params["predict"])
    assert config.threshold.rule == "tuned" and config.localisation.rule == "uniform_ratio"
    assert any(label.startswith("/m/") for label in config.labels)
    featurize = yaml.safe_load((REPO_ROOT / "conf/base/parameters_featurize.yml").read_text())
    assert weights_location(featurize["featurize"]).cache_dir == "data/06_models/vggish"
    with pytest.raises(ValueError, match=r"unknown featurize.weights parameter.*pth"):
        weights_location({"weights": {"pth": "x"}})
