"""``inference.tagging`` on real audio: tags, time stamps, window scores, bad and short files."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tests.inference.planted import OTHER_LABELS, SR, TARGET_LABEL, TONE, TONE_SPANS, read, tiled
from zeroshot_audio.audio import io as audio_io
from zeroshot_audio.inference import PredictConfig, ThresholdConfig, predict_files, resolve_labels
from zeroshot_audio.inference.tagging import tag_and_localise
from zeroshot_audio.model.localisation import LocalisationRule


def config(audio, labels, **changes) -> PredictConfig:
    return replace(
        PredictConfig(audio=tuple(str(a) for a in audio), labels=tuple(labels)), **changes
    )


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
    assert (segments["coverage"] == 1.0).all()  # nothing padded in a 35-s file
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
        predictor.windows(planted["file"], hop_s=2.75)


def test_a_bad_file_is_reported_and_the_others_are_tagged(predictor, planted, tmp_path):
    (tmp_path / "not_audio.wav").write_text("this is not a RIFF file")
    (tmp_path / "empty.flac").write_bytes(b"")
    sf.write(tmp_path / "too_short.wav", np.zeros(SR // 20, np.float32), SR)  # 0.05 s
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


def test_a_sound_shorter_than_one_example_is_padded_and_stays_honest(predictor, tmp_path):
    """A 0.4-s beep: one zero-padded segment, its real coverage recorded, its event 0-0.4 s."""
    beep = tmp_path / "beep.wav"
    sf.write(beep, 0.8 * tiled(read(TONE), 0.4), SR)
    blip = tmp_path / "blip.wav"
    sf.write(blip, 0.8 * tiled(read(TONE), 0.05), SR)  # below min_sound_s = 0.1 s
    files = [str(beep), str(blip)]
    labels = resolve_labels([TARGET_LABEL, *OTHER_LABELS])
    result = predict_files(predictor, files, labels, config(files, labels["label"]))

    assert [(f.file, f.reason) for f in result.failures] == [(str(blip), audio_io.TOO_SHORT)]
    assert "min_sound_s" in result.failures[0].detail
    assert np.isfinite(result.predictions["score"]).all()
    predictions = result.predictions.set_index("label")
    assert predictions.loc[TARGET_LABEL, "predicted"] and predictions["n_windows"].eq(1).all()
    segments = result.segments
    assert len(segments) == len(labels)  # one segment x every label
    assert segments["coverage"].iloc[0] == pytest.approx(0.4 * SR / 15_600, abs=1e-3)
    assert segments["segment_end_s"].iloc[0] == pytest.approx(0.4)
    events = result.events
    assert events["label"].tolist() == [TARGET_LABEL]
    assert (events["onset_s"].item(), events["offset_s"].item()) == (0.0, pytest.approx(0.4))
