"""Audio in: decoding, downmix, resampling, cut/pad, segment validity, every failure kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.audio.sounds import SR, mixed_clip, read_sound
from zeroshot_audio.audio import io as audio_io

LAYOUT = audio_io.SegmentLayout(n_segments=10, segment_s=1.0, example_samples=15_600)


def _chirp(sr: int, seconds: float, f0: float = 100.0, f1: float = 7000.0) -> np.ndarray:
    """Linear sine sweep sampled at ``sr``: band-limited below f1, so its ideal resampling is
    the same formula sampled at the new rate."""
    t = np.arange(round(seconds * sr)) / sr
    k = (f1 - f0) / seconds
    return (0.5 * np.sin(2 * np.pi * (f0 * t + 0.5 * k * t**2))).astype(np.float64)


@pytest.mark.parametrize("orig_sr", [44_100, 48_000, 22_050, 8_000])
def test_resampling_matches_an_ideal_band_limited_sweep(orig_sr: int) -> None:
    top = min(7000.0, 0.45 * orig_sr)  # stay inside the pass band of both rates
    seconds = 2.0
    out = audio_io.resample(_chirp(orig_sr, seconds, f1=top).astype(np.float32), orig_sr)
    ideal = _chirp(SR, seconds, f1=top)
    assert len(out) == len(ideal)
    edge = SR // 20  # the filter's start-up at the file edges
    err = out[edge:-edge] - ideal[edge:-edge]
    snr_db = 10 * np.log10(np.mean(ideal[edge:-edge] ** 2) / np.mean(err**2))
    assert snr_db > 60, f"{orig_sr} Hz -> 16 kHz: SNR {snr_db:.1f} dB"


def test_decode_downmixes_and_resamples_a_real_stereo_file(tmp_path: Path) -> None:
    voice = read_sound("espeak_ng/female_01.flac")
    tone = read_sound("sox/sine_440hz.flac")
    n = min(len(voice), len(tone))
    stereo = np.stack([voice[:n], 0.5 * tone[:n]], axis=1)
    # Written at 48 kHz (upsampled with the same resampler): decoding must bring it back.
    up = np.stack([audio_io.resample(stereo[:, c].copy(), SR, 48_000) for c in range(2)], axis=1)
    path = tmp_path / "stereo48k.wav"
    sf.write(path, up, 48_000, subtype="FLOAT")
    clip = audio_io.load_clip(path, 0.0, 10.0, LAYOUT)
    assert clip.n_real_samples == n
    expected = 0.5 * (voice[:n] + 0.5 * tone[:n])
    # Only the band above the filters' roll-off (7.58 kHz) may be lost on the round trip.
    err = clip.waveform[800 : n - 800] - expected[800 : n - 800]
    snr_db = 10 * np.log10(np.mean(expected[800 : n - 800] ** 2) / np.mean(err**2))
    assert snr_db > 30, snr_db


def test_short_clip_is_zero_padded_and_masked() -> None:
    wave = mixed_clip(2.6, seed=1)
    clip = audio_io.ClipAudio(*_fit(wave))
    # 2.6 s: examples of segments 0 and 1 end at 0.975 s and 1.975 s; segment 2's at 2.975 s.
    assert clip.n_valid_segments == 2
    assert clip.waveform.shape == (LAYOUT.total_samples,)
    assert np.all(clip.waveform[len(wave) :] == 0)
    assert clip.example_windows(LAYOUT).shape == (2, 15_600)


def _fit(wave: np.ndarray) -> tuple[np.ndarray, int, int]:
    padded, n_real = audio_io.fit_length(wave, LAYOUT.total_samples)
    return padded, n_real, LAYOUT.n_valid_segments(n_real)


def test_validity_counts_and_coverage_parameter() -> None:
    assert LAYOUT.n_valid_segments(0) == 0
    assert LAYOUT.n_valid_segments(1_599) == 0  # under min_sound_s = 0.1 s: too short
    assert LAYOUT.n_valid_segments(1_600) == 1  # a short sound: one zero-padded segment
    assert LAYOUT.n_valid_segments(15_599) == 1
    assert LAYOUT.n_valid_segments(15_600) == 1
    assert LAYOUT.n_valid_segments(16_000 + 15_600) == 2
    assert LAYOUT.n_valid_segments(10 * 16_000) == 10
    assert LAYOUT.n_valid_segments(20 * 16_000) == 10
    half = audio_io.SegmentLayout(min_coverage=0.5, min_sound_s=0.5)
    assert half.n_valid_segments(7_800) == 1 and half.n_valid_segments(7_799) == 0
    with pytest.raises(ValueError):
        audio_io.SegmentLayout(segment_s=0.5)


def test_clip_is_cut_to_its_metadata_length(tmp_path: Path) -> None:
    wave = mixed_clip(4.0, seed=2)
    path = tmp_path / "a.flac"
    sf.write(path, wave, SR)
    clip = audio_io.load_clip(path, 30.0, 32.5, LAYOUT)  # the file is the clip: 2.5 s of it
    assert clip.n_real_samples == 40_000
    assert clip.n_valid_segments == 2
    assert np.all(clip.waveform[40_000:] == 0)
    np.testing.assert_allclose(clip.waveform[:40_000], wave[:40_000], atol=1e-4)  # FLAC 16 bit


def test_full_recording_is_read_from_start_to_end(tmp_path: Path) -> None:
    wave = mixed_clip(6.0, seed=4)
    path = tmp_path / "recording.wav"
    sf.write(path, wave, SR, subtype="FLOAT")
    clip = audio_io.load_clip(path, 2.0, 5.0, LAYOUT, file_is_full_recording=True)
    assert clip.n_real_samples == 48_000
    np.testing.assert_array_equal(clip.waveform[:48_000], wave[32_000:80_000])
    # a span running past the end of the recording keeps what exists
    tail = audio_io.load_clip(path, 4.5, 14.5, LAYOUT, file_is_full_recording=True)
    assert tail.n_real_samples == 24_000 and tail.n_valid_segments == 1


def write_bad_files(folder: Path) -> dict[str, Path]:
    """One file for each failure kind, named by the reason it must be reported with."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    files[audio_io.MISSING_FILE] = folder / "missing_file.flac"
    files[audio_io.DECODE_ERROR] = folder / "decode_error.flac"
    files[audio_io.DECODE_ERROR].write_bytes(b"fLaC" + bytes(range(256)) * 8)  # corrupt
    files[audio_io.ZERO_LENGTH] = folder / "zero_length.wav"  # a valid header, no frames
    sf.write(files[audio_io.ZERO_LENGTH], np.zeros(0, dtype=np.float32), SR)
    (folder / "empty.flac").write_bytes(b"")  # an aborted download
    bad = mixed_clip(3.0, seed=9)
    bad[1000] = np.nan
    sf.write(folder / "non_finite.wav", bad, SR, subtype="FLOAT")
    files[audio_io.NON_FINITE] = folder / "non_finite.wav"
    files[audio_io.TOO_SHORT] = folder / "too_short.flac"
    sf.write(files[audio_io.TOO_SHORT], mixed_clip(0.05, seed=3), SR)  # below min_sound_s
    files[audio_io.UNSUPPORTED_FORMAT] = folder / "unsupported_format.m4a"
    files[audio_io.UNSUPPORTED_FORMAT].write_bytes(b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 64)
    return files


def test_every_failure_kind_is_raised_with_its_reason(tmp_path: Path) -> None:
    for reason, path in write_bad_files(tmp_path).items():
        expected = reason
        if reason == audio_io.UNSUPPORTED_FORMAT and _has_torchcodec():
            expected = audio_io.DECODE_ERROR  # FFmpeg is there and rejects the bytes instead
        with pytest.raises(audio_io.ClipFailure) as err:
            audio_io.load_clip(path, 0.0, 10.0, LAYOUT)
        assert err.value.reason == expected, err.value
        assert str(path) in str(err.value)
    with pytest.raises(audio_io.ClipFailure, match="0 bytes") as err:
        audio_io.load_clip(tmp_path / "empty.flac", 0.0, 10.0, LAYOUT)
    assert err.value.reason == audio_io.ZERO_LENGTH
    with pytest.raises(audio_io.ClipFailure, match="end_s - start_s"):
        audio_io.load_clip(tmp_path / "x.flac", 5.0, 5.0, LAYOUT)


def test_unsupported_container_says_how_to_enable_it(tmp_path: Path) -> None:
    if _has_torchcodec():
        pytest.skip("torchcodec is installed here")
    path = write_bad_files(tmp_path)[audio_io.UNSUPPORTED_FORMAT]
    with pytest.raises(audio_io.ClipFailure, match="install FFmpeg") as err:
        audio_io.decode(path)
    assert "torchcodec" in err.value.detail


def _has_torchcodec() -> bool:
    try:
        import torchcodec  # noqa: F401
    except (ImportError, OSError, RuntimeError):
        return False
    return True


def test_filename_pattern_placeholders() -> None:
    p = audio_io.format_audio_path("/a", "{ytid}_{start_ms}_{end_ms}.flac", "-0abc", 30.0, 40.0)
    assert p == str(Path("/a/-0abc_30000_40000.flac"))
    assert audio_io.format_audio_path("r", "{ytid}_{start_s}.wav", "x", 12.5, 22.5) == str(
        Path("r/x_12.500.wav")
    )
    # Audio on any fsspec URL (a Dask cluster's workers read the same bucket).
    remote = audio_io.format_audio_path("s3://bucket/clips/", "{ytid}.flac", "x", 0.0, 10.0)
    assert remote == "s3://bucket/clips/x.flac"
    with pytest.raises(ValueError, match="unknown placeholder"):
        audio_io.format_audio_path("r", "{video}.wav", "x", 0.0, 1.0)


def test_a_short_sound_is_padded_to_one_segment_with_its_real_coverage(tmp_path: Path) -> None:
    wave = mixed_clip(0.3, seed=5)
    path = tmp_path / "beep.flac"
    sf.write(path, wave, SR)
    clip = audio_io.load_clip(path, 0.0, 10.0, LAYOUT)
    assert clip.n_valid_segments == 1 and clip.n_real_samples == 4_800
    example = clip.example_windows(LAYOUT)
    assert example.shape == (1, 15_600) and not example[0, 4_800:].any()  # zeros after the sound
    assert LAYOUT.is_padded_short_sound(4_800) and not LAYOUT.is_padded_short_sound(15_600)
    coverage = LAYOUT.coverage(clip.n_real_samples)
    assert coverage[0] == pytest.approx(4_800 / 15_600) and not coverage[1:].any()
    np.testing.assert_array_equal(LAYOUT.coverage(2 * SR + 15_600), [1, 1, 1] + [0] * 7)
    with pytest.raises(audio_io.ClipFailure, match="min_sound_s") as err:
        audio_io.load_clip(path, 0.0, 0.05, LAYOUT)  # the metadata says 50 ms
    assert err.value.reason == audio_io.TOO_SHORT
