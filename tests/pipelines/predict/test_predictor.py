"""``zeroshot_audio.predict`` on real audio: windows, free-text labels, time stamps, bad input."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tests.pipelines.predict.conftest import OTHER_LABELS, SR, TARGET_LABEL, TONE_SPANS
from zeroshot_audio.audio import io as audio_io
from zeroshot_audio.audio.featurize import ClipSpec, embed_clips
from zeroshot_audio.model.localisation import LocalisationRule
from zeroshot_audio.predict import (
    UNEXPECTED_ERROR,
    ModelNotTrainedError,
    PredictConfig,
    Predictor,
    ThresholdConfig,
    featurize_config_for_model,
    list_audio_files,
    parse_labels,
    predict_files,
    resolve_labels,
    select_checkpoint,
    tag_and_localise,
)


@pytest.fixture(scope="module")
def predictor(planted, featurize_config, embedder, text_encoder) -> Predictor:
    return Predictor(
        planted["checkpoint"],
        featurize_config,
        name="rot0/temporal_attention",
        device="cpu",
        embedder=embedder,
        text_encoder=text_encoder,
    )


def config(audio, labels, **changes) -> PredictConfig:
    return replace(
        PredictConfig(audio=tuple(str(a) for a in audio), labels=tuple(labels)), **changes
    )


def test_a_35_s_file_becomes_four_windows_embedded_exactly_like_featurize_clips(
    predictor, planted, featurize_config, embedder
):
    windows = predictor.windows(planted["file"])
    assert windows.duration_s == pytest.approx(35.0)
    assert windows.window_start_s.tolist() == [0.0, 10.0, 20.0, 30.0]
    assert windows.n_valid.tolist() == [10, 10, 10, 5]  # the 5-s tail is masked, not padded
    assert not windows.embeddings[3, 5:].any()

    # featurize on the same file cut into [0,10), [10,20), [20,30), [30,40) gives the same vectors:
    # predict sees new audio exactly as the model saw its training clips.
    spans = [ClipSpec("w", s, s + 10.0, str(planted["file"])) for s in (0.0, 10.0, 20.0, 30.0)]
    full = replace(featurize_config, file_is_full_recording=True)
    ok, n_valid, embeddings, failures = embed_clips(spans, embedder, full)
    assert not failures and n_valid.tolist() == [10, 10, 10, 5]
    np.testing.assert_allclose(windows.embeddings, embeddings, rtol=1e-4, atol=1e-3)


@pytest.fixture(scope="module")
def labels() -> pd.DataFrame:
    return resolve_labels([TARGET_LABEL, *OTHER_LABELS])


@pytest.fixture(scope="module")
def result(predictor, planted, labels):
    return predict_files(
        predictor, [str(planted["file"])], labels, config([planted["file"]], labels["label"])
    )


@pytest.fixture(scope="module")
def scored(predictor, planted, labels):
    windows = predictor.windows(planted["file"])
    scores, attention = predictor.score(windows, predictor.encode_labels(labels))
    return windows, scores, attention


def test_free_text_labels_tag_and_time_stamp_the_sound_in_a_35_s_file(result, labels, planted):
    assert labels["mid"].isna().all()  # all free text, none a training class
    assert not result.failures
    predictions = result.predictions.set_index("label")
    assert len(predictions) == 4 and (predictions["file"] == str(planted["file"])).all()
    assert predictions.loc[TARGET_LABEL, "predicted"]
    assert predictions.loc[TARGET_LABEL, "rank"] == 1
    assert not predictions.loc[list(OTHER_LABELS), "predicted"].any()
    assert predictions["threshold"].eq(0.5).all() and predictions["n_windows"].eq(4).all()

    events = result.events
    target = events[events["label"] == TARGET_LABEL]
    # One event across the window boundary at 10 s (merged), one inside the third window.
    assert list(zip(target["onset_s"], target["offset_s"], strict=True)) == list(TONE_SPANS)
    assert set(events["label"]) == {TARGET_LABEL}

    segments = result.segments
    assert len(segments) == 35 * 4  # every valid segment x every label
    mine = segments[segments["label"] == TARGET_LABEL]
    assert mine.loc[mine["active"], "segment_start_s"].tolist() == [
        8.0, 9.0, 10.0, 11.0, 23.0, 24.0, 25.0,
    ]  # fmt: skip
    assert mine.groupby("window")["window_predicted"].first().tolist() == [True, True, True, False]
    assert mine["segment_end_s"].max() == pytest.approx(35.0)


def test_scores_are_the_model_scores_of_each_window_and_the_file_takes_the_max(scored, result):
    windows, scores, attention = scored
    assert scores.shape == (4, 4) and attention.shape == (4, 10, 4)
    np.testing.assert_allclose(attention.sum(axis=1), 1.0, atol=1e-5)
    assert not attention[3, 5:].any()  # padding gets no attention
    np.testing.assert_allclose(result.predictions["score"], scores.max(axis=0), rtol=1e-5)
    mean = _tag(scored, ThresholdConfig(), 0.5, file_score="mean")
    np.testing.assert_allclose(mean.file_scores, scores.mean(axis=0), rtol=1e-6)


def _tag(scored, threshold, value, **kwargs):
    windows, scores, attention = scored
    return tag_and_localise(
        windows,
        scores,
        attention,
        threshold=threshold,
        threshold_value=value,
        localisation=LocalisationRule(),
        segment_s=1.0,
        **kwargs,
    )


def test_top_k_and_fixed_threshold_rules(scored):
    top2 = _tag(scored, ThresholdConfig(rule="top_k", top_k=2), None)
    assert top2.file_tags.sum() == 2 and (top2.window_tags.sum(axis=1) == 2).all()
    nothing = _tag(scored, ThresholdConfig(rule="fixed", fixed=50.0), 50.0)
    assert not nothing.file_tags.any() and not any(nothing.events)
    everything = _tag(scored, ThresholdConfig(rule="fixed", fixed=-50.0), -50.0)
    assert everything.file_tags.all() and everything.window_tags.all()


def test_overlapping_windows_share_one_segment_grid(predictor, planted):
    labels = resolve_labels([TARGET_LABEL])
    result = predict_files(
        predictor,
        [str(planted["file"])],
        labels,
        config([planted["file"]], labels["label"], hop_s=5.0),
    )
    assert result.predictions["n_windows"].iloc[0] == 7  # 0, 5, ..., 30
    spans = list(zip(result.events["onset_s"], result.events["offset_s"], strict=True))
    assert spans == list(TONE_SPANS)
    with pytest.raises(ValueError, match="multiple of the segment"):
        predictor.hop_samples(2.5 + 0.25)


def test_a_bad_file_is_reported_and_the_others_are_tagged(predictor, planted, tmp_path):
    (tmp_path / "not_audio.wav").write_text("this is not a RIFF file")
    (tmp_path / "empty.flac").write_bytes(b"")
    sf.write(tmp_path / "too_short.wav", np.zeros(SR // 2, np.float32), SR)
    nan = np.zeros(SR * 2, np.float32)
    nan[100] = np.nan
    sf.write(tmp_path / "nan.wav", nan, SR, subtype="FLOAT")
    files = [
        str(tmp_path / "not_audio.wav"),
        str(planted["file"]),
        str(tmp_path / "empty.flac"),
        str(tmp_path / "too_short.wav"),
        str(tmp_path / "nan.wav"),
    ]
    labels = resolve_labels([TARGET_LABEL])
    result = predict_files(predictor, files, labels, config(files, labels["label"]))
    reasons = {f.file.rsplit("/", 1)[-1]: f.reason for f in result.failures}
    assert reasons == {
        "not_audio.wav": audio_io.DECODE_ERROR,
        "empty.flac": audio_io.ZERO_LENGTH,
        "too_short.wav": audio_io.TOO_SHORT,
        "nan.wav": audio_io.NON_FINITE,
    }
    assert result.predictions["file"].unique().tolist() == [str(planted["file"])]
    assert len(result.events) == 2


def test_folders_files_and_globs_are_listed_and_missing_ones_reported(audio_dir, tmp_path):
    (tmp_path / "notes.txt").write_text("not audio")
    files, failures = list_audio_files(
        [str(audio_dir), str(tmp_path / "missing.wav"), str(audio_dir / "*.wav"), str(tmp_path)]
    )
    names = [f.rsplit("/", 1)[-1] for f in files]
    assert names == ["background_only.flac", "street_35s.wav", "tone_only.flac"]  # no duplicates
    assert [(f.file.rsplit("/", 1)[-1], f.reason) for f in failures] == [
        ("missing.wav", "missing_file"),
        (tmp_path.name, "missing_file"),  # a folder without audio
    ]
    assert len(list_audio_files([str(audio_dir)], max_files=1)[0]) == 1


def test_labels_free_text_and_mids():
    table = pd.DataFrame({"mid": ["/m/07cx4", "/m/0342h"], "text": ["Telephone", "Guitar"]})
    labels = resolve_labels(["a siren far away", "/m/07cx4", "a siren far away"], table)
    assert labels.to_dict("records") == [
        {"label": "a siren far away", "mid": None, "text": "a siren far away"},
        {"label": "/m/07cx4", "mid": "/m/07cx4", "text": "Telephone"},
    ]
    with pytest.raises(ValueError, match=r"unknown AudioSet mid.*/m/0zzzz"):
        resolve_labels(["/m/0zzzz"], table)
    assert parse_labels("dog barking; siren ;;") == ["dog barking", "siren"]
    for empty in ([], "", " ; ", None):
        with pytest.raises(ValueError, match="no labels given"):
            parse_labels(empty)


def test_params_are_typed_and_checked():
    cfg = PredictConfig.from_params(
        {
            "audio": "a.wav;b",
            "labels": ["x"],
            "threshold": {"rule": "top_k", "top_k": 3},
            "localisation": {"rule": "mass"},
        }
    )
    assert (
        cfg.audio == ("a.wav", "b") and cfg.threshold.top_k == 3 and cfg.localisation.value == 0.8
    )
    with pytest.raises(ValueError, match=r"unknown parameter.*treshold"):
        PredictConfig.from_params({"audio": "a", "labels": "x", "treshold": {}})
    with pytest.raises(ValueError, match="no labels given"):
        PredictConfig.from_params({"audio": "a", "labels": []})
    with pytest.raises(ValueError, match="threshold rule"):
        PredictConfig.from_params({"audio": "a", "labels": "x", "threshold": {"rule": "best"}})


def test_model_selection(planted):
    good = {**planted["checkpoint"], "validation_micro_f1": 0.6}
    models = {
        "rot0/temporal_attention": planted["checkpoint"],
        "rot1/temporal_attention": good,
        "rot1/uniform": {**good, "method": "uniform", "validation_micro_f1": 0.9},
    }
    assert select_checkpoint(models)[0] == "rot1/temporal_attention"
    assert select_checkpoint(models, "rot1/uniform")[0] == "rot1/uniform"
    with pytest.raises(ValueError, match="available"):
        select_checkpoint(models, "rot9/temporal_attention")
    with pytest.raises(ModelNotTrainedError, match="kedro run"):
        select_checkpoint({})


def test_a_model_trained_on_other_embeddings_is_refused(planted, featurize_config):
    quantised = {**planted["checkpoint"], "segment_dtype": "uint8"}
    with pytest.raises(ValueError, match="trained on uint8"):
        Predictor(quantised, featurize_config, device="cpu")


def test_an_unexpected_crash_on_one_file_does_not_stop_the_next(
    planted, featurize_config, embedder, text_encoder, audio_dir
):
    calls = []

    def flaky(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("device lost")
        return embedder(batch)

    predictor = Predictor(
        planted["checkpoint"],
        featurize_config,
        device="cpu",
        embedder=flaky,
        text_encoder=text_encoder,
    )
    tone = str(audio_dir / "tone_only.flac")
    labels = resolve_labels([TARGET_LABEL])
    result = predict_files(predictor, [tone, tone], labels, config([tone], labels["label"]))
    assert [(f.reason, f.detail) for f in result.failures] == [
        (UNEXPECTED_ERROR, "RuntimeError: device lost")
    ]
    assert len(result.predictions) == 1 and result.predictions["predicted"].item()
    assert len(result.events) and result.events["offset_s"].max() <= 4.0


def test_models_trained_on_the_audioset_release_embed_new_audio_like_the_release():
    from tests.pipelines.predict.conftest import FEATURIZE_PARAMS

    released = {
        **FEATURIZE_PARAMS,
        "source": "released_embeddings",
        "released_embeddings_glob": "x/*.tfrecord",
    }
    config = featurize_config_for_model(released, seed=1, device="cpu")
    assert config.postprocess == "quantized" and config.output_dtype == "uint8"
    assert config.weights.allow_random is False  # random VGGish can never imitate the release
    assert (
        featurize_config_for_model(FEATURIZE_PARAMS, seed=1, device="cpu").output_dtype == "float32"
    )


def test_the_label_encoder_comes_from_the_checkpoint_else_from_the_parameters(
    planted, featurize_config
):
    from tests.pipelines.predict.conftest import ENCODER
    from zeroshot_audio.text import EncoderConfig

    recorded = Predictor(
        planted["checkpoint"], featurize_config, device="cpu", encoder_fallback={"x": 1}
    )
    assert recorded.encoder_config == ENCODER
    # A full `kedro run` hands `params:embed_labels.encoder` over as the EncoderConfig dataclass
    # (the embed_labels node type-hints it); a predict-only run as a dict. Both work.
    legacy = {k: v for k, v in planted["checkpoint"].items() if k != "label_encoder"}
    for fallback in (EncoderConfig.from_dict(ENCODER), dict(ENCODER)):
        predictor = Predictor(legacy, featurize_config, device="cpu", encoder_fallback=fallback)
        assert predictor.encoder_config["model_name_or_path"] == ENCODER["model_name_or_path"]
