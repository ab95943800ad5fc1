"""Known third-party noise, dropped by exact message so that `kedro run` reads as the run's story.

Two kinds, both outside this project's control and harmless:

- deprecation warnings that Kedro, kedro-mlflow and MLflow raise on every start (Kedro 1.7 and
  kedro-mlflow still call OmegaConf's ``register_new_resolver``; MLflow asks kedro-mlflow's model
  wrapper for type hints). They are ignored by message, category and origin, never wholesale: a
  new warning still shows.
- Kedro's per-node echo lines ("Completed node: X", "Completed 3 out of 16 tasks" after each
  "Running node: X") and two start-up notes, so that a run logs one line per node.

``settings.py`` calls :func:`quiet_known_noise` on import, which Kedro does before it loads its
plugins or builds the config loader (Kedro refuses project code in ``conf/logging.yml``, so the
filters cannot be declared there). ``conf/logging.yml`` hides the per-dataset load/save lines.
"""

from __future__ import annotations

import importlib
import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

# (category, message regex as ``warnings.filterwarnings`` matches it, module regex)
KNOWN_WARNINGS: tuple[tuple[type[Warning], str, str], ...] = (
    (UserWarning, r"register_new_resolver\(\) is deprecated", r"kedro(_mlflow)?\."),
    # MLflow attributes these two to its caller (our model-logging code), so any module matches.
    (UserWarning, r"(\x1b\[[\d;]*m)?Add type hints to the `predict` method", r""),
    # The tagger's input is audio file paths: an input example would make MLflow run VGGish on a
    # file at logging time, for a signature that is already explicit (inference/mlflow_model.py).
    (UserWarning, r"(\x1b\[[\d;]*m)?An input example was not provided", r""),
)
# Regexes matched at the start of a log message.
QUIET_LOG_MESSAGES = (
    r"Completed node: ",
    r"Completed \d+ out of \d+ tasks$",
    r"No typed parameter requirements found",
    r"Using synchronous mode for loading and saving data",
)
# The loggers that write them (a runner logs under its own module's name).
NOISY_LOGGERS = (
    "kedro.runner.sequential_runner",
    "kedro.runner.parallel_runner",
    "kedro.runner.thread_runner",
    "kedro.validation.parameter_validator",
    "py.warnings",
)


class KnownNoiseFilter(logging.Filter):
    """Drops the known warnings (if they reach logging anyway) and Kedro's per-node echo lines."""

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self._warnings = [re.compile(message) for _, message, _ in KNOWN_WARNINGS]
        self._quiet = re.compile("|".join(f"(?:{m})" for m in QUIET_LOG_MESSAGES))

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.name == "py.warnings":
            return not any(pattern.search(message) for pattern in self._warnings)
        return self._quiet.match(message) is None


def ignore_known_warnings() -> None:
    for category, message, module in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)


@contextmanager
def filters_enforced() -> Iterator[None]:
    """Let the process's warning filters judge warnings raised under a local filter reset.

    MLflow wraps the code that inspects a ``PythonModel`` (class creation, ``log_model``) in
    ``filter_user_warnings_once``, which puts a "once" filter ahead of every filter installed
    here, so its type-hint advice would print in spite of them. The block's warnings are
    recorded instead and re-issued once the block's own filters are gone.
    """
    with warnings.catch_warnings(record=True) as caught:
        yield
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


# Modules that define a PythonModel subclass at import time, i.e. raise MLflow's advice then.
_PYTHON_MODEL_MODULES = ("kedro_mlflow.mlflow.kedro_pipeline_model",)


def quiet_known_noise() -> None:
    """Install the warning filters and the log filter (idempotent)."""
    ignore_known_warnings()
    with filters_enforced():
        for module in _PYTHON_MODEL_MODULES:
            importlib.import_module(module)
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, KnownNoiseFilter) for f in logger.filters):
            logger.addFilter(KnownNoiseFilter())


def logs_to_stderr() -> None:
    """Move every root log handler that writes to stdout onto stderr (idempotent).

    Results own stdout (``zeroshot-audio predict ... > results.txt``). In a project,
    ``conf/logging.yml`` already logs to stderr; outside one (``predict --model DIR``) Kedro's
    default logging is a rich handler on stdout, which would mix log lines into the tables.
    """
    import sys

    for handler in logging.getLogger().handlers:
        console = getattr(handler, "console", None)  # rich.logging.RichHandler
        if console is not None and console.file is sys.stdout:
            console.file = sys.stderr
        elif isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)
