"""Thin node: texts from the class table, vectors from the text encoder, plus a report."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from zeroshot_audio.contracts.label_table import LabelEncoderSpec, with_encoder_spec
from zeroshot_audio.text import LabelEmbeddingConfig, TextEncoder, build_label_texts

logger = logging.getLogger(__name__)


def embed_labels(
    audioset_classes: pd.DataFrame, params: dict[str, Any], device: str = "auto"
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Embed every class of `audioset_classes` (`mid`, `display_name`, ...) once, the model
    loaded once. `params` (`embed_labels`) is validated into a `LabelEmbeddingConfig` here: as a
    typed node parameter, Kedro would hand the stages that read `params:embed_labels.encoder` a
    dataclass instead of a mapping. `device`: `auto` = CUDA when present.

    Returns:
        `label_embeddings` (`mid`, `text`, `embedding` float32; its `LabelEncoderSpec` in `attrs`,
        kept by the Parquet file) and `embed_labels_report` (with `mlflow_tags`/`mlflow_metrics`).
    """
    if not isinstance(params, LabelEmbeddingConfig):
        params = LabelEmbeddingConfig.from_dict(dict(params))
    text_source, config = params.text_source, params.encoder

    texts = build_label_texts(audioset_classes, text_source)
    t0 = time.perf_counter()
    encoder = TextEncoder(config, device=device)
    load_seconds = time.perf_counter() - t0
    n_truncated = int((encoder.token_lengths(texts["text"]) > encoder.max_length).sum())
    t1 = time.perf_counter()
    vectors = encoder.encode(texts["text"].tolist(), progress=True)
    encode_seconds = time.perf_counter() - t1

    # provenance travels with the data: train copies it into every checkpoint
    label_embeddings = with_encoder_spec(
        texts.assign(embedding=list(vectors)), _spec(config, text_source, encoder.dim)
    )
    seconds = (load_seconds, encode_seconds)
    report = _report(encoder, config, text_source, vectors, n_truncated, *seconds)
    logger.info(
        "Embedded %d labels with %s (%s pooling, dim %d) in %.2f s",
        len(label_embeddings),
        encoder.source.model_id,
        config.pooling,
        encoder.dim,
        encode_seconds,
    )
    return label_embeddings, report


def _spec(config: Any, text_source: str, dimension: int) -> LabelEncoderSpec:
    """What made the vectors: enough for predict to embed new label texts the same way."""
    return LabelEncoderSpec(
        source="text_encoder",
        model_name_or_path=config.model_name_or_path,
        revision=config.revision,
        pooling=config.pooling,
        normalize=config.normalize,
        max_length=config.max_length,
        text_source=text_source,
        dimension=dimension,
    )


def _report(
    encoder: TextEncoder,
    config: Any,
    text_source: str,
    vectors: np.ndarray,
    n_truncated: int,
    load_seconds: float,
    encode_seconds: float,
) -> dict[str, Any]:
    """``embed_labels_report``: the model, its settings, timing; MLflow tags and metrics."""
    norms = np.linalg.norm(vectors, axis=1) if len(vectors) else np.zeros(0)
    report: dict[str, Any] = {
        "model_id": encoder.source.model_id,
        "model_source": encoder.source.kind,
        "model_revision": encoder.source.revision,
        "model_path": str(encoder.source.path),
        "architecture": type(encoder.model).__name__,
        "dimension": encoder.dim,
        "pooling": config.pooling,
        "normalize": config.normalize,
        "max_length": encoder.max_length,
        "text_source": text_source,
        "device": str(encoder.device),
        "n_classes": len(vectors),
        "n_truncated": n_truncated,
        "load_seconds": round(load_seconds, 3),
        "encode_seconds": round(encode_seconds, 3),
        "labels_per_second": round(len(vectors) / max(encode_seconds, 1e-9), 1),
        "norm_min": float(norms.min()) if len(norms) else None,
        "norm_max": float(norms.max()) if len(norms) else None,
        "mlflow_tags": {
            "label_model": encoder.source.model_id,
            "label_model_revision": str(encoder.source.revision),
            "label_pooling": config.pooling,
            "label_text_source": text_source,
            "label_normalize": str(config.normalize).lower(),
        },
        "mlflow_metrics": {
            "embed_labels/dimension": encoder.dim,
            "embed_labels/classes": len(vectors),
            "embed_labels/truncated_texts": n_truncated,
            "embed_labels/encode_seconds": round(encode_seconds, 3),
        },
    }
    return report
