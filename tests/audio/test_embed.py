"""``audio.embed``: the batching shared by featurize and predict, and the EmbedderSpec round trip
(what featurize records is what predict rebuilds)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from tests.audio.sounds import mixed_clip
from zeroshot_audio.audio import embed, vggish
from zeroshot_audio.audio.io import SegmentLayout
from zeroshot_audio.contracts.segment_table import EmbedderSpec

NOWHERE = vggish.WeightsSpec(path="/nonexistent/vggish.pth", download=False, allow_random=True)


@pytest.fixture(scope="module")
def random_vggish() -> tuple[vggish.VGGishEmbedder, vggish.LoadedWeights]:
    weights = vggish.resolve_weights(NOWHERE, seed=7, need_pca=False)
    return vggish.build_embedder(weights, seed=7, device="cpu"), weights


def examples(seconds: float, seed: int) -> np.ndarray:
    """The example windows of a clip of ``seconds`` (one per whole second)."""
    wave = mixed_clip(seconds, seed=seed)
    n = int(seconds)
    return np.stack([wave[i * 16_000 : i * 16_000 + 15_600] for i in range(n)])


def test_rows_batched_across_clips_equal_rows_embedded_alone(random_vggish):
    embedder, _ = random_vggish
    clips = [
        examples(3.0, 1),
        examples(1.0, 2),
        np.zeros((0, 15_600), np.float32),
        examples(2.0, 3),
    ]
    batcher = embed.SegmentBatcher(embedder, n_segments=4, batch_size=3)
    for clip in clips:
        batcher.add(clip)
    rows = batcher.finish()
    assert rows.shape == (4, 4, 128) and rows.dtype == np.float32
    for i, clip in enumerate(clips):
        alone = embed.SegmentBatcher(embedder, n_segments=4, batch_size=64)
        alone.add(clip)
        np.testing.assert_allclose(rows[i], alone.finish()[0], rtol=1e-4, atol=1e-4)
        assert not rows[i, len(clip) :].any()  # zeros past the valid segments
    with torch.inference_mode():
        direct = embedder(torch.from_numpy(clips[0].copy())).numpy()
    np.testing.assert_allclose(rows[0, :3], direct, rtol=1e-4, atol=1e-4)
    empty = embed.SegmentBatcher(embedder, n_segments=4, batch_size=3).finish()
    assert empty.shape == (0, 4, 128)


def test_what_featurize_records_predict_rebuilds(random_vggish):
    embedder, weights = random_vggish
    layout = SegmentLayout(n_segments=10)
    spec = embed.vggish_spec(layout, "none", final_relu=True, weights=weights)
    assert spec == EmbedderSpec(
        source="vggish",
        postprocess="none",
        final_relu=True,
        weights="random",
        weights_fingerprint="random:he-normal:7",
    )
    # predict, with today's weights location (no file) and no seed of its own:
    rebuilt, loaded = embed.embedder_for_spec(spec, vggish.WeightsSpec(download=False))
    assert loaded.fingerprint == weights.fingerprint and rebuilt.network.final_relu
    batch = torch.from_numpy(examples(2.0, 4).copy())
    with torch.inference_mode():
        relu_free = embedder(batch)
        np.testing.assert_allclose(
            rebuilt(batch).numpy(), relu_free.clamp(min=0).numpy(), rtol=1e-5, atol=1e-5
        )
    assert embed.layout_for_spec(spec, min_sound_s=0.2) == SegmentLayout(min_sound_s=0.2)


def test_an_identity_pca_spec_is_rebuilt_without_any_file():
    spec = EmbedderSpec(
        postprocess="pca", weights="random", weights_fingerprint="random:he-normal:3:identity-pca"
    )
    weights, seed = embed.weights_for_spec(spec, vggish.WeightsSpec(download=False))
    assert seed == 3 and weights.pca_source == "identity"
    assert torch.equal(weights.pca[0], torch.eye(128))


def test_released_embeddings_need_the_official_weights():
    spec = embed.released_spec(10)
    assert (spec.source, spec.postprocess, spec.final_relu, spec.weights) == (
        "released", "quantized", False, "official",
    )  # fmt: skip
    with pytest.raises(embed.ProvenanceError, match="OFFICIAL VGGish weights and PCA"):
        embed.weights_for_spec(spec, replace(NOWHERE, allow_random=True))


def test_features_from_elsewhere_cannot_be_reproduced():
    with pytest.raises(embed.ProvenanceError, match="'external'"):
        embed.check_reproducible(EmbedderSpec(source="external", width=64))
