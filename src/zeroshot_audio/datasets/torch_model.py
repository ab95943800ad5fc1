"""``TorchModelDataset``: a versioned file of named, typed checkpoints (``trained_models``).

The data is a mapping ``name -> Checkpoint`` (``contracts.checkpoint``; name
``<rotation>/<method>``). On disk it is ``{name: Checkpoint.to_dict()}`` written with
``torch.save`` and read back with ``torch.load(weights_only=True)``: only tensors and plain Python
values, never pickled code, so a checkpoint from anywhere is safe to open. One file holds every
rotation and method of a training run, so ``evaluate`` and ``predict`` load one consistent set. A
foreign, corrupt or older-format file is a ``DatasetError`` that names the file and says what to do.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from copy import deepcopy
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
import pandas as pd
import torch
from kedro.io.core import (
    AbstractVersionedDataset,
    DatasetError,
    Version,
    get_filepath_str,
    get_protocol_and_path,
)
from kedro_datasets._typing import TablePreview

from zeroshot_audio.contracts.checkpoint import Checkpoint
from zeroshot_audio.storage import write_atomically

Checkpoints = dict[str, Checkpoint]
_PREVIEW_FIELDS = ("method", "threshold", "validation_micro_f1", "best_epoch", "n_train_clips")


class TorchModelDataset(AbstractVersionedDataset[Checkpoints, Checkpoints]):
    """Named checkpoints in one ``torch.save`` file; versioned like any Kedro file dataset.

    Example catalog entry::

        trained_models:
          type: zeroshot_audio.datasets.torch_model.TorchModelDataset
          filepath: data/06_models/trained_models.pt
          versioned: true
    """

    def __init__(
        self,
        *,
        filepath: str | os.PathLike,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        _fs_args = deepcopy(fs_args) or {}
        protocol, path = get_protocol_and_path(str(filepath), version)
        if protocol == "file":
            _fs_args.setdefault("auto_mkdir", True)
        self._protocol = protocol
        self._fs = fsspec.filesystem(protocol, **(deepcopy(credentials) or {}), **_fs_args)
        self.metadata = metadata
        super().__init__(
            filepath=PurePosixPath(path),
            version=version,
            exists_function=self._fs.exists,
            glob_function=self._fs.glob,
        )

    def load(self) -> Checkpoints:
        load_path = get_filepath_str(self._get_load_path(), self._protocol)
        with self._fs.open(load_path, mode="rb") as f:
            buffer = io.BytesIO(f.read())
        try:
            data = torch.load(buffer, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises several types for foreign or corrupt files
            raise DatasetError(
                f"{load_path} is not a checkpoint file written by TorchModelDataset: {error}"
            ) from error
        return _checkpoints(data, load_path)

    def save(self, data: Checkpoints) -> None:
        save_path = get_filepath_str(self._get_save_path(), self._protocol)
        if not isinstance(data, Mapping):
            raise DatasetError(
                f"{save_path}: expected a mapping name -> Checkpoint, got {type(data)}"
            )
        for name, entry in data.items():
            if not isinstance(entry, Checkpoint):
                raise DatasetError(
                    f"{save_path}: trained_models[{name!r}] is a {type(entry).__name__}, not a "
                    "Checkpoint (zeroshot_audio.contracts.checkpoint)"
                )
        buffer = io.BytesIO()
        torch.save({name: entry.to_dict() for name, entry in data.items()}, buffer)
        if self._protocol == "file":  # temp + fsync + rename: a kill never leaves half a file
            write_atomically(Path(save_path), lambda tmp: tmp.write_bytes(buffer.getvalue()))
        else:
            with self._fs.open(save_path, mode="wb") as f:
                f.write(buffer.getvalue())
        self._invalidate_cache()

    def _exists(self) -> bool:
        try:
            load_path = get_filepath_str(self._get_load_path(), self._protocol)
        except DatasetError:
            return False
        return self._fs.exists(load_path)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol, "version": self._version}

    def _release(self) -> None:
        super()._release()
        self._invalidate_cache()

    def _invalidate_cache(self) -> None:
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))

    def preview(self) -> TablePreview:
        """A table for kedro-viz: one row per checkpoint with its key facts and parameter count."""
        data = self.load.__wrapped__(self)  # type: ignore[attr-defined]
        return summarise_checkpoints(data).to_dict(orient="split")


def summarise_checkpoints(data: Mapping[str, Checkpoint]) -> pd.DataFrame:
    """One row per checkpoint: name, rotation, the key facts, gamma, config and parameter count."""
    rows = []
    for name, checkpoint in data.items():
        row: dict[str, Any] = {"name": name, "rotation": checkpoint.rotation["name"]}
        row.update({k: getattr(checkpoint, k) for k in _PREVIEW_FIELDS})
        row["n_classes"] = len(checkpoint.train_classes)
        row["embedder"] = checkpoint.embedder.source
        row["label_encoder"] = checkpoint.label_encoder.model_name_or_path or (
            checkpoint.label_encoder.source
        )
        row["n_parameters"] = int(sum(t.numel() for t in checkpoint.state_dict.values()))
        row.update({f"config.{k}": v for k, v in checkpoint.model_config.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def _checkpoints(data: Any, where: str) -> Checkpoints:
    """The stored plain dicts as Checkpoints; anything else is a DatasetError naming ``where``."""
    if not isinstance(data, Mapping):
        raise DatasetError(f"{where}: expected a mapping name -> checkpoint, got {type(data)}")
    out: Checkpoints = {}
    for name, entry in data.items():
        if not isinstance(entry, Mapping):
            raise DatasetError(f"{where}: checkpoint {name!r} is a {type(entry).__name__}")
        if "config" in entry and "model_config" not in entry:
            raise DatasetError(
                f"{where}: checkpoint {name!r} has the untyped format of an older zeroshot-audio "
                "(a 'config' key, no provenance); retrain: kedro run --pipeline=train"
            )
        try:
            out[str(name)] = Checkpoint.from_dict(entry)
        except (ValueError, TypeError) as error:
            raise DatasetError(f"{where}: checkpoint {name!r}: {error}") from error
    return out
