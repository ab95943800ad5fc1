"""``inference.predictor``: the checkpoint alone decides how audio and labels are embedded, and a
checkpoint whose provenance cannot be reproduced here is refused with its reason."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from tests.inference.planted import EMBEDDER, FEATURIZE_PARAMS, LABEL_ENCODER, TARGET_LABEL
from zeroshot_audio.audio.featurize import ClipSpec, embed_clips
from zeroshot_audio.contracts.checkpoint import Checkpoint
from zeroshot_audio.inference import (
    ModelNotTrainedError,
    PredictConfig,
    Predictor,
    ProvenanceError,
    as_checkpoints,
    predict_files,
    resolve_labels,
    select_checkpoint,
    weights_location,
)
from zeroshot_audio.inference.inputs import UNEXPECTED_ERROR

HERE = weights_location(FEATURIZE_PARAMS)  # this machine: no official VGGish file


def test_a_35_s_file_becomes_four_windows_embedded_exactly_like_featurize_clips(
    predictor, planted, featurize_config, embedder
):
    windows = predictor.windows(planted["file"])
    assert windows.duration_s == pytest.approx(35.0)
    assert windows.window_start_s.tolist() == [0.0, 10.0, 20.0, 30.0]
    assert windows.n_valid.tolist() == [10, 10, 10, 5]  # the 5-s tail is masked, not padded
    assert not windows.embeddings[3, 5:].any()
    assert (windows.coverage[windows.valid_mask] == 1.0).all()

    # featurize on the same file cut into [0,10), [10,20), [20,30), [30,40) gives the same vectors:
    # predict sees new audio exactly as the model saw its training clips.
    spans = [ClipSpec("w", s, s + 10.0, str(planted["file"])) for s in (0.0, 10.0, 20.0, 30.0)]
    full = replace(featurize_config, file_is_full_recording=True)
    done = embed_clips(spans, embedder, full)
    assert not done.failures and done.n_valid.tolist() == [10, 10, 10, 5]
    np.testing.assert_allclose(windows.embeddings, done.embeddings, rtol=1e-4, atol=1e-3)


def test_the_checkpoints_embedder_spec_wins_over_todays_featurize_parameters(
    planted, featurize_config, text_encoder
):
    """Today's params:featurize say final_relu: false; the model was trained with the ReLU."""
    assert FEATURIZE_PARAMS.get("final_relu", False) is False
    with_relu = replace(planted["checkpoint"], embedder=replace(EMBEDDER, final_relu=True))
    predictor = Predictor(with_relu, device="cpu", weights_location=HERE, text_encoder=text_encoder)
    windows = predictor.windows(planted["file"])
    assert predictor.embedder.network.final_relu is True
    assert predictor.vggish_weights == "random"  # the recorded seed's network, rebuilt
    assert windows.embeddings.min() >= 0.0

    spans = [ClipSpec("w", s, s + 10.0, str(planted["file"])) for s in (0.0, 10.0, 20.0, 30.0)]
    trained_like = replace(featurize_config, file_is_full_recording=True, final_relu=True)
    done = embed_clips(spans, predictor.embedder, trained_like)
    np.testing.assert_allclose(windows.embeddings, done.embeddings, rtol=1e-4, atol=1e-3)
    todays = Predictor(planted["checkpoint"], device="cpu", weights_location=HERE)
    assert todays.windows(planted["file"]).embeddings.min() < 0.0  # what today's params give


def test_external_features_and_vectors_are_refused_with_what_to_do(planted):
    external = replace(planted["checkpoint"], embedder=replace(EMBEDDER, source="external"))
    with pytest.raises(ProvenanceError, match="'external'.*cannot compute.*retrain"):
        Predictor(external, device="cpu")
    mismatch = replace(planted["checkpoint"], label_encoder=replace(LABEL_ENCODER, dimension=768))
    with pytest.raises(ProvenanceError, match="768-d"):
        Predictor(mismatch, device="cpu")
    wide = replace(planted["checkpoint"], embedder=replace(EMBEDDER, width=64))
    with pytest.raises(ProvenanceError, match="64 values"):
        Predictor(wide, device="cpu")
    vectors = replace(
        planted["checkpoint"], label_encoder=replace(LABEL_ENCODER, source="external")
    )
    with pytest.raises(ProvenanceError, match="label vectors came from 'external'"):
        Predictor(vectors, device="cpu", weights_location=HERE).text_encoder  # noqa: B018


def test_a_label_encoder_that_is_not_installed_is_refused(planted):
    absent = replace(
        LABEL_ENCODER, model_name_or_path="package:zeroshot_audio_no_such_encoder_package"
    )
    checkpoint = replace(planted["checkpoint"], label_encoder=absent)
    predictor = Predictor(checkpoint, device="cpu", weights_location=HERE)
    with pytest.raises(ProvenanceError, match="not available here.*pip install"):
        predictor.encode_labels(resolve_labels([TARGET_LABEL]))


def test_official_weights_absent_or_different_are_refused(planted, tmp_path, text_encoder):
    official = replace(
        planted["checkpoint"],
        embedder=replace(EMBEDDER, weights="official", weights_fingerprint="ab" * 32),
    )
    predictor = Predictor(official, device="cpu", weights_location=HERE, text_encoder=text_encoder)
    with pytest.raises(ProvenanceError, match="OFFICIAL VGGish weights.*not available here"):
        predictor.embedder  # noqa: B018
    # ... and predict_files stops before the first file instead of failing every file.
    file = str(planted["file"])
    labels = resolve_labels([TARGET_LABEL])
    with pytest.raises(ProvenanceError):
        predict_files(
            predictor, [file], labels, PredictConfig(audio=(file,), labels=(TARGET_LABEL,))
        )

    other = tmp_path / "vggish-other.pth"
    torch.save({"not": torch.zeros(1)}, other)  # a different file where the weights should be
    elsewhere = replace(HERE, path=str(other), sha256=None)
    predictor = Predictor(official, device="cpu", weights_location=elsewhere)
    with pytest.raises(ProvenanceError, match=r"differ.*recorded fingerprint 'abab"):
        predictor.embedder  # noqa: B018


def test_a_random_vggish_without_its_seed_is_refused(planted):
    unknown = replace(EMBEDDER, weights_fingerprint="random:somehow")
    predictor = Predictor(replace(planted["checkpoint"], embedder=unknown), device="cpu")
    with pytest.raises(ProvenanceError, match="seed is not recorded"):
        predictor.embedder  # noqa: B018


def test_model_selection(planted):
    good = replace(planted["checkpoint"], validation_micro_f1=0.6)
    models = {
        "rot0/temporal_attention": planted["checkpoint"],
        "rot1/temporal_attention": good,
        "rot1/uniform": replace(good, method="uniform", validation_micro_f1=0.9),
        "rot2/temporal_attention": replace(good, validation_micro_f1=float("nan")),
    }
    assert select_checkpoint(models)[0] == "rot1/temporal_attention"
    assert select_checkpoint(models, "rot1/uniform")[0] == "rot1/uniform"
    with pytest.raises(ValueError, match="available"):
        select_checkpoint(models, "rot9/temporal_attention")
    with pytest.raises(ModelNotTrainedError, match="kedro run"):
        select_checkpoint({})


def test_trained_models_as_plain_dicts_are_converted_and_old_ones_refused(planted):
    checkpoint = planted["checkpoint"]
    converted = as_checkpoints({"a": checkpoint.to_dict(), "b": checkpoint})
    assert isinstance(converted["a"], Checkpoint) and converted["a"].embedder == EMBEDDER
    old = {"config": checkpoint.model_config, "state_dict": checkpoint.state_dict, "gamma": 0.5}
    with pytest.raises(ValueError, match=r"trained_models\['rot0/x'\].*retrain"):
        as_checkpoints({"rot0/x": old})


def test_an_unexpected_crash_on_one_file_does_not_stop_the_next(
    planted, embedder, text_encoder, audio_dir
):
    calls = []

    def flaky(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("device lost")
        return embedder(batch)

    predictor = Predictor(
        planted["checkpoint"], device="cpu", embedder=flaky, text_encoder=text_encoder
    )
    tone = str(audio_dir / "tone_only.flac")
    labels = resolve_labels([TARGET_LABEL])
    config = PredictConfig(audio=(tone,), labels=(TARGET_LABEL,))
    result = predict_files(predictor, [tone, tone], labels, config)
    assert [(f.reason, f.detail) for f in result.failures] == [
        (UNEXPECTED_ERROR, "RuntimeError: device lost")
    ]
    assert len(result.predictions) == 1 and result.predictions["predicted"].item()
    assert len(result.events) and result.events["offset_s"].max() <= 4.0


def test_predict_precision_is_the_callers_and_auto_is_exact_here(planted):
    """The checkpoint's EmbedderSpec.precision is informational: predict runs the precision it
    is given (``predict.precision``); ``auto`` resolves to fp32 on this CPU (bf16 is outside
    the byte bound)."""
    assert PredictConfig.from_params({"audio": "a", "labels": "x"}).precision == "auto"
    with pytest.raises(ValueError, match="not offered"):
        PredictConfig.from_params({"audio": "a", "labels": "x", "precision": "int8"})
    auto = Predictor(planted["checkpoint"], device="cpu", weights_location=HERE)
    assert auto.embedder.precision == "fp32"
    bf16 = Predictor(planted["checkpoint"], device="cpu", weights_location=HERE, precision="bf16")
    assert bf16.embedder.precision == "bf16"
    assert next(bf16.embedder.network.parameters()).dtype == torch.bfloat16
