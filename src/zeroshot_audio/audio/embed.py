"""VGGish embedding shared by ``featurize`` and ``predict``: one batching loop, one EmbedderSpec.

Both stages turn sequences of 0.96-s examples (a clip's valid segments, a predict window's) into
``[T, 128]`` rows. :class:`SegmentBatcher` gathers the examples of many rows into forward passes of
about ``batch_size`` examples (a 10-s clip alone would leave the network a batch of 10) and writes
each row back, zeros past its valid segments.

The :class:`~zeroshot_audio.contracts.segment_table.EmbedderSpec` is the record of how rows were
made. ``featurize`` writes it (:func:`vggish_spec`, :func:`released_spec`) into the segment table;
``train`` copies it into the checkpoint; ``predict`` rebuilds the very same embedder from it
(:func:`embedder_for_spec`) and refuses, naming the difference, when it cannot.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from zeroshot_audio.audio import vggish
from zeroshot_audio.audio.io import SegmentLayout
from zeroshot_audio.audio.precision import PinnedStaging
from zeroshot_audio.contracts.segment_table import EMBEDDING_SIZE, EmbedderSpec

Embedder = Callable[[torch.Tensor], torch.Tensor]

#: Sources of segment vectors that this project can reproduce on new audio.
REPRODUCIBLE_SOURCES = ("vggish", "released")
_RANDOM_FINGERPRINT = re.compile(r"^random:he-normal:(-?\d+)(?::(.+))?$")


class ProvenanceError(ValueError):
    """A checkpoint's inputs cannot be reproduced here; the message says what differs and what
    to do."""


class SegmentBatcher:
    """Rows of segment embeddings from example windows, batched across rows.

    ``add(examples)`` (``[n_valid, example_samples]``) reserves a ``[n_segments, width]`` row and
    runs the network once at least ``batch_size`` examples wait; ``finish()`` runs the rest and
    returns ``[rows, n_segments, width]``. A batch is always whole rows, so the same rows in the
    same order give bit-identical vectors whatever else is embedded.
    """

    def __init__(
        self,
        embedder: Embedder,
        n_segments: int,
        batch_size: int,
        *,
        device: torch.device | str | None = None,
        width: int = EMBEDDING_SIZE,
    ) -> None:
        if device is None and isinstance(embedder, torch.nn.Module):
            device = next(embedder.parameters()).device
        self.embedder = embedder
        self.device = torch.device(device or "cpu")
        self.n_segments = n_segments
        self.batch_size = batch_size
        self.width = width
        self.dtype = np.uint8 if getattr(embedder, "output_dtype", "") == "uint8" else np.float32
        self.rows: list[np.ndarray] = []
        self._batch: list[np.ndarray] = []
        self._targets: list[tuple[int, int]] = []  # (row, number of examples)
        self._pending = 0
        self._staging = PinnedStaging(self.device)

    def add(self, examples: np.ndarray) -> int:
        """Queue one row's examples; returns the row's index."""
        self.rows.append(np.zeros((self.n_segments, self.width), dtype=self.dtype))
        row = len(self.rows) - 1
        if len(examples):
            self._batch.append(examples)
            self._targets.append((row, len(examples)))
            self._pending += len(examples)
        if self._pending >= self.batch_size:
            self.flush()
        return row

    def flush(self) -> None:
        if not self._batch:
            return
        examples = self._staging.to_device(np.concatenate(self._batch))
        with torch.inference_mode():
            vectors = self.embedder(examples).cpu().numpy()
        offset = 0
        for row, count in self._targets:
            self.rows[row][:count] = vectors[offset : offset + count]
            offset += count
        self._batch.clear()
        self._targets.clear()
        self._pending = 0

    def finish(self) -> np.ndarray:
        self.flush()
        if not self.rows:
            return np.zeros((0, self.n_segments, self.width), dtype=self.dtype)
        return np.stack(self.rows)


# --------------------------------------------------------------------------------------------
# EmbedderSpec: written by featurize, reproduced by predict
# --------------------------------------------------------------------------------------------


def vggish_spec(
    layout: SegmentLayout,
    postprocess: str,
    final_relu: bool,
    weights: vggish.LoadedWeights,
    precision: str = "fp32",
) -> EmbedderSpec:
    """What ``featurize`` records for embeddings it computed with VGGish (``precision``: the
    resolved mode, never ``auto``)."""
    return EmbedderSpec(
        source="vggish",
        n_segments=layout.n_segments,
        segment_s=layout.segment_s,
        width=EMBEDDING_SIZE,
        postprocess=postprocess,
        final_relu=final_relu,
        weights=weights.source,
        weights_fingerprint=weights.fingerprint,
        precision=precision,
        min_coverage=layout.min_coverage,
    )


def released_spec(n_segments: int) -> EmbedderSpec:
    """AudioSet's released embeddings: Google's TF VGGish with the official weights and PCA, 8-bit,
    no final ReLU (the released PCA whitens the un-rectified embedding). Their weights file hash
    is unknown (``weights_fingerprint`` empty): predict reproduces them with the official port."""
    return EmbedderSpec(
        source="released",
        n_segments=n_segments,
        segment_s=1.0,
        width=EMBEDDING_SIZE,
        postprocess="quantized",
        final_relu=False,
        weights="official",
        weights_fingerprint="",
        precision="fp32",
        min_coverage=1.0,
    )


def check_reproducible(spec: EmbedderSpec) -> None:
    """Refuse a spec that no VGGish set-up here can reproduce (before loading anything)."""
    if spec.source not in REPRODUCIBLE_SOURCES:
        raise ProvenanceError(
            f"the model was trained on segment embeddings of source {spec.source!r} (features "
            "brought from outside), which predict cannot compute from audio. Predict needs a "
            "model trained on this project's VGGish features (featurize.source: audio) or on "
            "AudioSet's released embeddings; retrain on those, or embed your audio with your own "
            "tool and score the vectors with the model directly."
        )
    if spec.width != EMBEDDING_SIZE or spec.postprocess not in vggish.POSTPROCESS_MODES:
        raise ProvenanceError(
            f"the model's segment embeddings ({spec.width} values, postprocess "
            f"{spec.postprocess!r}) are not VGGish's ({EMBEDDING_SIZE} values, one of "
            f"{vggish.POSTPROCESS_MODES}); retrain on featurize's embeddings"
        )
    if spec.weights not in ("official", "random"):
        raise ProvenanceError(f"unknown VGGish weights {spec.weights!r} in the embedder spec")


def weights_for_spec(
    spec: EmbedderSpec, location: vggish.WeightsSpec
) -> tuple[vggish.LoadedWeights, int]:
    """The weights (and seed) that made ``spec``'s embeddings, found through ``location`` (where
    this machine keeps the VGGish files: ``featurize.weights``). Raises :class:`ProvenanceError`
    when they are not at hand or are not the same file."""
    check_reproducible(spec)
    need_pca = spec.postprocess != "none"
    seed = 0
    if spec.weights == "official":
        try:
            loaded = vggish.resolve_weights(replace(location, allow_random=False), seed, need_pca)
        except vggish.WeightsUnavailableError as err:
            raise ProvenanceError(
                "the model was trained on embeddings of the OFFICIAL VGGish weights"
                f"{' and PCA' if need_pca else ''}, which are not available here, so new audio "
                f"cannot be embedded like its training clips (random weights are refused). {err}"
            ) from err
    else:
        match = _RANDOM_FINGERPRINT.match(spec.weights_fingerprint)
        if match is None:
            raise ProvenanceError(
                f"the model was trained on a random VGGish whose seed is not recorded "
                f"(weights_fingerprint={spec.weights_fingerprint!r}); retrain to predict with it"
            )
        seed, pca_part = int(match.group(1)), match.group(2)
        if not need_pca:
            loaded = vggish.LoadedWeights(None, None, "random", "unused", spec.weights_fingerprint)
        elif pca_part == "identity-pca":
            identity = (torch.eye(EMBEDDING_SIZE), torch.zeros(EMBEDDING_SIZE, 1))
            loaded = vggish.LoadedWeights(
                None, identity, "random", "identity", spec.weights_fingerprint
            )
        else:  # a random network with the released PCA: the PCA file must be the same
            network_absent = replace(location, path=None, url=None, allow_random=True)
            loaded = vggish.resolve_weights(network_absent, seed, need_pca)
    if spec.weights_fingerprint and loaded.fingerprint != spec.weights_fingerprint:
        raise ProvenanceError(
            "the VGGish weights here differ from those the model was trained on: recorded "
            f"fingerprint {spec.weights_fingerprint!r}, this machine's files give "
            f"{loaded.fingerprint!r}. Point featurize.weights.path / pca_path at the files the "
            "model was trained with, or retrain."
        )
    return loaded, seed


def embedder_for_spec(
    spec: EmbedderSpec,
    location: vggish.WeightsSpec,
    device: torch.device | str = "cpu",
    channels_last: bool = True,
    precision: str = "fp32",
) -> tuple[vggish.VGGishEmbedder, vggish.LoadedWeights]:
    """The VGGish embedder that reproduces ``spec`` (layout aside), and the weights it runs.
    ``precision`` (resolved, see audio/precision.py) is the caller's: the spec's is informational,
    any mode that meets the error bound reproduces the stored bytes."""
    weights, seed = weights_for_spec(spec, location)
    embedder = vggish.build_embedder(
        weights,
        seed=seed,
        final_relu=spec.final_relu,
        postprocess=spec.postprocess,
        device=device,
        channels_last=channels_last,
        precision=precision,
    )
    return embedder, weights


def layout_for_spec(spec: EmbedderSpec, min_sound_s: float = 0.1) -> SegmentLayout:
    """The segment layout the embeddings of ``spec`` were cut with."""
    return SegmentLayout(
        n_segments=spec.n_segments,
        segment_s=spec.segment_s,
        min_coverage=spec.min_coverage,
        min_sound_s=min_sound_s,
    )
