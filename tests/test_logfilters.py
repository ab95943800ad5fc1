"""Known third-party noise is dropped by exact message; anything else still shows."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings

import pytest

from zeroshot_audio.logfilters import KnownNoiseFilter, filters_enforced, quiet_known_noise

RESOLVER = (
    "register_new_resolver() is deprecated and will be removed in a future release.\n"
    "Use register_resolver() instead."
)
TYPE_HINTS = "\x1b[33mAdd type hints to the `predict` method to enable data validation\x1b[0m"


def _raised(message: str, category: type[Warning], module: str) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_known_noise()
        warnings.warn_explicit(message, category, f"{module}.py", 1, module=module)
    return [str(w.message) for w in caught]


@pytest.mark.parametrize(
    ("message", "module"),
    [
        (RESOLVER, "kedro.config.omegaconf_config"),
        (RESOLVER, "kedro_mlflow.framework.hooks.mlflow_hook"),
        (TYPE_HINTS, "mlflow.pyfunc.utils.data_validation"),
    ],
)
def test_the_known_third_party_warnings_are_ignored(message, module):
    assert _raised(message, UserWarning, module) == []


@pytest.mark.parametrize(
    ("message", "category", "module"),
    [
        (RESOLVER, UserWarning, "zeroshot_audio.config"),  # ours: never hidden
        ("something new is deprecated", UserWarning, "kedro.config.omegaconf_config"),
        (RESOLVER, DeprecationWarning, "kedro.config.omegaconf_config"),
    ],
)
def test_other_warnings_still_show(message, category, module):
    assert _raised(message, category, module) == [message]


def _record(name: str, message: str, *args) -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, "x.py", 1, message, args, None)


def test_one_line_per_node_and_no_known_warning_in_the_log():
    keep = KnownNoiseFilter().filter
    runner = "kedro.runner.sequential_runner"
    assert keep(_record(runner, "Running node: %s", "train_models"))
    assert keep(_record("kedro.runner.runner", "Pipeline execution completed successfully"))
    assert not keep(_record(runner, "Completed node: %s", "train.train_models"))
    assert not keep(_record(runner, "Completed %d out of %d tasks", 3, 16))
    assert not keep(_record(runner, "Using synchronous mode for loading and saving data. Use..."))
    assert not keep(_record("py.warnings", f"/x/omegaconf_config.py:644: UserWarning: {RESOLVER}"))
    assert keep(_record("py.warnings", "/x/y.py:1: UserWarning: a warning nobody knows"))


def test_the_filter_is_installed_once_on_the_noisy_loggers():
    quiet_known_noise()
    quiet_known_noise()
    filters = logging.getLogger("kedro.runner.sequential_runner").filters
    assert sum(isinstance(f, KnownNoiseFilter) for f in filters) == 1


def test_mlflow_type_hint_advice_is_silenced_although_mlflow_resets_the_filters():
    """MLflow raises it under its own "once" filter when a PythonModel subclass is created."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_known_noise()
        with filters_enforced():
            with warnings.catch_warnings():  # what mlflow's filter_user_warnings_once does
                warnings.simplefilter("once", category=UserWarning)
                warnings.warn(TYPE_HINTS, UserWarning)
                warnings.warn("a new warning", UserWarning)
    assert [str(w.message) for w in caught] == ["a new warning"]


def test_starting_the_project_prints_no_known_warning():
    """The settings module loads kedro-mlflow's model wrapper, whose class MLflow inspects."""
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    code = "import zeroshot_audio.settings, kedro_mlflow.mlflow.kedro_pipeline_model"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Add type hints" not in done.stderr
