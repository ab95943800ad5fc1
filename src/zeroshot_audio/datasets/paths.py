"""Where a catalog dataset's file is: the one place that reaches into Kedro's dataset internals.

Kedro has no public accessor for the path of a version of a versioned dataset (the CLI prints it,
the MLflow hook logs the file). Both call :func:`dataset_path`, so a Kedro upgrade that renames the
private attributes breaks one function, not three call sites.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractVersionedDataset


def dataset_path(dataset: Any, version: str | None = None) -> Path | None:
    """The local path of ``dataset``: for a versioned dataset the path of ``version`` (default:
    the version it saves in this run), else its file path; None when it has no file path."""
    try:
        if isinstance(dataset, AbstractVersionedDataset) and dataset._version is not None:
            return Path(str(dataset._get_versioned_path(version or dataset.resolve_save_version())))
        filepath = getattr(dataset, "_filepath", None)
    except AttributeError:
        return None
    return None if filepath is None else Path(str(filepath))
