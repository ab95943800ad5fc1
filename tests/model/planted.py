"""Synthetic clips with planted structure, shared by the model and pipeline tests.

Each class c has a label embedding e_c and an acoustic prototype W e_c + noise (one fixed linear map
W for all classes, so what is learnt on some classes transfers to others). A clip has T segments;
each of its classes is active in one or two known segments (different classes in different
segments) holding that prototype plus noise; the other valid segments are loud background noise,
and the clip is padded with garbage after its valid segments. Features are float32 or AudioSet-style
uint8 quantised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEGMENT_DIM = 128
PROTOTYPE_NORM = 4.0


@dataclass
class PlantedData:
    label_embeddings: np.ndarray  # [K, E]
    class_fold: np.ndarray  # [K]
    segments: np.ndarray  # [N, T, segment_dim]
    n_valid: np.ndarray  # [N]
    clip_fold: np.ndarray  # [N]
    targets: np.ndarray  # [N, K] bool
    active: np.ndarray  # [N, T, K] bool: class k sounds in segment t of clip n

    def clips_of(self, folds: list[int]) -> np.ndarray:
        return np.flatnonzero(np.isin(self.clip_fold, folds))

    def classes_of(self, folds: list[int]) -> np.ndarray:
        return np.flatnonzero(np.isin(self.class_fold, folds))


def make_planted(
    *,
    n_folds: int = 3,
    classes_per_fold: int = 8,
    clips_per_fold: int = 240,
    n_segments: int = 10,
    min_valid: int = 7,
    semantic_dim: int = 32,
    segment_noise: float = 0.25,
    background_scale: float = 1.2,
    max_labels: int = 2,
    quantised: bool = False,
    seed: int = 0,
    segment_dim: int = SEGMENT_DIM,
) -> PlantedData:
    """``segment_dim`` is the width of a segment vector (VGGish's 128 by default; any works)."""
    rng = np.random.default_rng(seed)
    n_classes = n_folds * classes_per_fold
    label_embeddings = rng.normal(size=(n_classes, semantic_dim)).astype(np.float32)
    label_embeddings /= np.linalg.norm(label_embeddings, axis=1, keepdims=True)
    linear_map = rng.normal(size=(segment_dim, semantic_dim)) / np.sqrt(semantic_dim)
    prototypes = label_embeddings @ linear_map.T
    prototypes += 0.1 * rng.normal(size=prototypes.shape)
    # Unit-norm prototypes times PROTOTYPE_NORM: per-dimension values stay well inside AudioSet's
    # [-2, 2] quantisation range.
    prototypes *= PROTOTYPE_NORM / np.linalg.norm(prototypes, axis=1, keepdims=True)
    class_fold = np.repeat(np.arange(n_folds), classes_per_fold)

    n_clips = n_folds * clips_per_fold
    clip_fold = np.repeat(np.arange(n_folds), clips_per_fold)
    n_valid = rng.integers(min_valid, n_segments + 1, size=n_clips)
    # Background: isotropic noise whose norm is background_scale x a prototype's norm.
    background_std = background_scale * PROTOTYPE_NORM / np.sqrt(segment_dim)
    segments = rng.normal(scale=background_std, size=(n_clips, n_segments, segment_dim))
    targets = np.zeros((n_clips, n_classes), dtype=bool)
    active = np.zeros((n_clips, n_segments, n_classes), dtype=bool)
    for i in range(n_clips):
        fold_classes = np.flatnonzero(class_fold == clip_fold[i])
        n_labels = rng.integers(1, max_labels + 1)
        chosen = rng.choice(fold_classes, size=n_labels, replace=False)
        free = list(rng.permutation(n_valid[i]))
        for c in chosen:
            length = int(rng.integers(1, 3))
            for t in free[:length]:
                noise = rng.normal(scale=segment_noise * background_std, size=segment_dim)
                segments[i, t] = prototypes[c] + noise
                active[i, t, c] = True
            free = free[length:]
            targets[i, c] = True
        segments[i, n_valid[i] :] = rng.normal(
            scale=50.0, size=(n_segments - n_valid[i], segment_dim)
        )

    if quantised:
        segments = np.clip(np.round((segments + 2.0) * 255.0 / 4.0), 0, 255).astype(np.uint8)
    else:
        segments = segments.astype(np.float32)
    return PlantedData(
        label_embeddings=label_embeddings,
        class_fold=class_fold,
        segments=segments,
        n_valid=n_valid,
        clip_fold=clip_fold,
        targets=targets,
        active=active,
    )
