"""A trained checkpoint as a portable folder: ``model.safetensors`` + ``config.json``, no pickle.

``trained_models.pt`` lives inside one project's ``data/`` tree and is read with ``torch.load``.
To hand a model to a colleague, serve it or register it, one checkpoint is written as:

- ``model.safetensors``: the network's tensors (a JSON header + raw bytes: loading it runs no code);
- ``config.json``: everything else of :meth:`Checkpoint.to_dict` (model config, tuned threshold,
  class lists, the :class:`EmbedderSpec` and :class:`LabelEncoderSpec` it was trained with), the
  export format and its version, the package version that wrote it, and the sha256 of the tensor
  file. Non-finite floats (an untuned ``validation_micro_f1``) are written as Python's ``json``
  writes them (``NaN``).

Loading is strict: an unknown key, a tensor file that is not the one the config names, tensors
that do not fit the model config, or provenance that contradicts itself (label vectors of another
width than the model was built for) is refused with a message naming what is wrong.

:func:`resolve_model_source` accepts such a folder, or an MLflow ``models:/name/version`` or
``runs:/run_id/path`` URI of a model logged by :mod:`zeroshot_audio.inference.mlflow_model`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

import zeroshot_audio
from zeroshot_audio.audio.vggish_weights import file_sha256
from zeroshot_audio.contracts.checkpoint import Checkpoint
from zeroshot_audio.inference import predictor

EXPORT_FORMAT = "zeroshot-audio/checkpoint"
EXPORT_VERSION = 1
TENSORS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CONFIG_KEYS = ("format", "export_version", "package_version", "tensors_sha256", "checkpoint")
MLFLOW_URI_SCHEMES = ("models:/", "runs:/")


def export_checkpoint(checkpoint: Checkpoint, out_dir: str | Path) -> Path:
    """Write ``checkpoint`` to ``out_dir`` (created; must hold no earlier export) and return it."""
    out = Path(out_dir)
    if (out / CONFIG_FILE).exists() or (out / TENSORS_FILE).exists():
        raise FileExistsError(f"{out} already holds an exported model; choose an empty folder")
    predictor.load_model(checkpoint, where="checkpoint to export")
    out.mkdir(parents=True, exist_ok=True)
    fields = checkpoint.to_dict()
    tensors = {
        name: torch.as_tensor(value).detach().cpu().contiguous().clone()
        for name, value in fields.pop("state_dict").items()
    }
    save_file(tensors, out / TENSORS_FILE, metadata={"format": EXPORT_FORMAT})
    config = {
        "format": EXPORT_FORMAT,
        "export_version": EXPORT_VERSION,
        "package_version": zeroshot_audio.__version__,
        "tensors_sha256": file_sha256(out / TENSORS_FILE),
        "checkpoint": fields,
    }
    text = json.dumps(config, indent=2, sort_keys=True)
    (out / CONFIG_FILE).write_text(text + "\n", encoding="utf-8")
    return out


def load_exported(path: str | Path) -> Checkpoint:
    """The :class:`Checkpoint` of an exported folder (or its ``config.json``); see module doc."""
    folder = Path(path)
    if folder.is_file() and folder.name == CONFIG_FILE:
        folder = folder.parent
    config_file, tensors_file = folder / CONFIG_FILE, folder / TENSORS_FILE
    for needed in (config_file, tensors_file):
        if not needed.is_file():
            raise FileNotFoundError(
                f"{folder} is not an exported zeroshot-audio model: {needed.name} is missing "
                "(make one with `zeroshot-audio export`)"
            )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{config_file}: not valid JSON: {error}") from error
    if not isinstance(config, Mapping):
        raise ValueError(f"{config_file}: expected a JSON object, got {type(config).__name__}")
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    missing = [key for key in CONFIG_KEYS if key not in config]
    if unknown or missing:
        raise ValueError(
            f"{config_file}: unknown key(s) {unknown}, missing key(s) {missing}; "
            f"expected exactly {list(CONFIG_KEYS)}"
        )
    if config["format"] != EXPORT_FORMAT or config["export_version"] != EXPORT_VERSION:
        raise ValueError(
            f"{config_file}: format {config['format']!r} version {config['export_version']!r} "
            f"is not {EXPORT_FORMAT!r} version {EXPORT_VERSION} (package "
            f"{config['package_version']!r} wrote it; this is {zeroshot_audio.__version__})"
        )
    actual = file_sha256(tensors_file)
    if actual != config["tensors_sha256"]:
        raise ValueError(
            f"{tensors_file} has sha256 {actual} but {config_file} names "
            f"{config['tensors_sha256']}: the weights are not the ones this config was written "
            "with (a file was replaced or corrupted); export the model again"
        )
    fields = config["checkpoint"]
    if not isinstance(fields, Mapping) or "state_dict" in fields:
        raise ValueError(f"{config_file}: 'checkpoint' must be an object without 'state_dict'")
    try:
        checkpoint = Checkpoint.from_dict({**fields, "state_dict": load_file(tensors_file)})
    except ValueError as error:
        raise ValueError(f"{config_file}: {error}") from error
    predictor.load_model(checkpoint, where=str(folder))
    return checkpoint


def find_exported(root: str | Path) -> Path:
    """The one exported folder under ``root`` (``root`` itself, or e.g. an MLflow model's
    ``artifacts/checkpoint``)."""
    root = Path(root)
    if (root / CONFIG_FILE).is_file() and (root / TENSORS_FILE).is_file():
        return root
    found = sorted(p.parent for p in root.rglob(TENSORS_FILE) if (p.parent / CONFIG_FILE).is_file())
    if len(found) != 1:
        raise FileNotFoundError(
            f"{root}: expected one exported model ({TENSORS_FILE} + {CONFIG_FILE}), found "
            f"{len(found)}: {[str(p) for p in found]}"
        )
    return found[0]


def resolve_model_source(uri_or_path: str | Path, dst_dir: str | Path | None = None) -> Checkpoint:
    """A checkpoint from an exported folder or an MLflow ``models:/`` / ``runs:/`` URI.

    An MLflow URI is downloaded (``mlflow.artifacts.download_artifacts``, with the tracking URI
    of the environment, e.g. ``MLFLOW_TRACKING_URI=sqlite:///mlflow.db``) into ``dst_dir`` or a
    temporary folder, and its exported checkpoint loaded.
    """
    source = str(uri_or_path)
    if not source.startswith(MLFLOW_URI_SCHEMES):
        path = Path(source).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"--model {source!r}: no such folder, and not an MLflow URI "
                f"(expected {' or '.join(s + '...' for s in MLFLOW_URI_SCHEMES)})"
            )
        return load_exported(find_exported(path))
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        if dst_dir is not None:
            local = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(dst_dir))
            return load_exported(find_exported(local))
        with tempfile.TemporaryDirectory(prefix="zeroshot-model-") as tmp:
            local = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tmp)
            return load_exported(find_exported(local))
    except MlflowException as error:
        raise ValueError(
            f"{source}: {error.message} (MLflow tracking URI {mlflow.get_tracking_uri()!r}; set "
            "MLFLOW_TRACKING_URI to the store that holds the model, e.g. sqlite:///mlflow.db)"
        ) from error


def select_checkpoint(trained_models: Mapping[str, Any], name: str = "auto") -> Checkpoint:
    """``trained_models[name]``, or for ``auto`` the rule of ``predict``
    (:func:`.predictor.select_checkpoint`: the temporal-attention checkpoint with the best
    validation micro-F1, never chosen on the test fold), except that only a temporal-attention
    model is shared: without one, ``auto`` is an error. Entries may be :class:`Checkpoint`
    objects or their ``to_dict`` form."""
    checkpoints = predictor.as_checkpoints(trained_models)
    if name == "auto" and not any(c.method == "temporal_attention" for c in checkpoints.values()):
        raise ValueError(f"no temporal_attention checkpoint among {sorted(checkpoints)}")
    return predictor.select_checkpoint(checkpoints, name)[1]


def describe(checkpoint: Checkpoint) -> dict[str, Any]:
    """A short, JSON-able summary (for tags, logs and the CLI)."""
    return {
        "name": checkpoint.name,
        "method": checkpoint.method,
        "threshold_rule": checkpoint.threshold_rule,
        "threshold": checkpoint.threshold,
        "validation_micro_f1": checkpoint.validation_micro_f1,
        "vggish_weights": checkpoint.embedder.weights,
        "vggish_fingerprint": checkpoint.embedder.weights_fingerprint,
        "label_encoder": checkpoint.label_encoder.model_name_or_path,
    }
