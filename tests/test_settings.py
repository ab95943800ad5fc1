"""Runtime parameter overrides (`kedro run --params a.b.c=v`) in every environment.

A nested override must change the one key it names and leave every sibling in place. With Kedro's
default "destructive" merge, `--env audioset --params train.fit.epochs=2` gave `train` as
`{fit: {epochs: 2}}` and the run died with KeyError 'supervised_split'.
"""

from __future__ import annotations

from typing import Any

import pytest
from kedro.framework.project import settings
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from tests.conftest import REPO_ROOT

# One nested override per stage group, at the depth a user types it on the command line.
OVERRIDES: dict[str, tuple[tuple[str, ...], Any]] = {
    "ingest": (("ingest", "mode"), "strict"),
    "split": (("split", "class_selection", "min_clips"), 3),
    "featurize": (("featurize", "executor", "max_workers"), 2),
    "embed_labels": (("embed_labels", "encoder", "batch_size"), 7),
    "train": (("train", "fit", "epochs"), 2),
    "evaluate": (("evaluate", "heatmaps", "n_clips"), 9),
    "predict": (("predict", "localisation", "value"), 0.25),
}


def _nested(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {path[-1]: value}
    for key in reversed(path[:-1]):
        out = {key: out}
    return out


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and key in out else value
    return out


def _set(params: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        params = params[key]
    params[path[-1]] = value


def _file_params(env: str) -> dict[str, Any]:
    """The parameters the env's files give, without any runtime override."""
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(REPO_ROOT / settings.CONF_SOURCE), env=env, **settings.CONFIG_LOADER_ARGS
    )
    return loader["parameters"]


@pytest.mark.parametrize("env", ["base", "audioset"])
def test_nested_runtime_overrides_keep_every_sibling_key(env: str) -> None:
    bootstrap_project(REPO_ROOT)
    runtime_params: dict[str, Any] = {}
    for path, value in OVERRIDES.values():
        runtime_params = _merge(runtime_params, _nested(path, value))
    with KedroSession.create(
        project_path=REPO_ROOT, env=env, runtime_params=runtime_params
    ) as session:
        params = session.load_context().params

    expected = _file_params(env)
    assert set(OVERRIDES) <= set(expected), "a stage group is missing from the conf files"
    for path, value in OVERRIDES.values():
        assert expected[path[0]] != {}, path
        _set(expected, path, value)
    # The overrides landed, and everything else is exactly what the conf files say.
    assert params == expected


def test_audioset_env_overrides_base_key_by_key() -> None:
    """conf/audioset changes some keys of a group; the group's other keys still come from base."""
    base, audioset = _file_params("base"), _file_params("audioset")
    assert audioset["split"]["class_selection"]["min_clips"] == 50
    assert audioset["embed_labels"]["encoder"]["model_name_or_path"] == "bert-base-uncased"
    # train and evaluate use every core at scale; their other keys are base's
    for group in ("train", "evaluate"):
        assert audioset[group]["cpu_threads"] is None and base[group]["cpu_threads"] == 1
        assert {k: v for k, v in audioset[group].items() if k != "cpu_threads"} == {
            k: v for k, v in base[group].items() if k != "cpu_threads"
        }
