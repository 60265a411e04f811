"""Audio reading, preparation, resampling kernels, int16 conversion and atomic writing.

Independent truths: raw int16 samples read with the standard-library ``wave`` module, librosa's
and torchaudio's own resampling functions called with explicit parameters, FFT peak frequencies
of pure tones, hand-computed int16 values of upstream's output formula.
"""
from __future__ import annotations

import logging
import os
import wave

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from rvc_lab.audio import (
    StreamResampler,
    float_to_int16_upstream,
    load_audio,
    normalize_peak,
    prepare_input,
    resample_offline,
    to_16k_offline,
    write_wav_atomic,
)
from rvc_lab.errors import InvalidAudioError


def sine(freq: float, sr: int, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


def peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * sr / len(x))


def info_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and r.name == "rvc_lab.audio"]


# ----------------------------------------------------------------------------- reading
@pytest.mark.parity
def test_pcm16_reads_as_int16_over_32768(parity_dir):
    path = parity_dir / "inputs" / "synth_16k.wav"
    with wave.open(str(path)) as w:
        raw = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        rate = w.getframerate()
    x, sr = load_audio(path)
    assert sr == rate == 16000 and x.dtype == np.float32 and x.shape == (72000,)
    np.testing.assert_array_equal(x, raw.astype(np.float32) / 32768)


def test_stereo_is_mixed_to_channel_mean(tmp_path, caplog):
    left, right = sine(220, 22050), sine(330, 22050, amp=0.25)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], 1), 22050, subtype="FLOAT")
    with caplog.at_level(logging.INFO, logger="rvc_lab.audio"):
        x, sr = load_audio(path)
    assert sr == 22050 and x.ndim == 1 and x.dtype == np.float32
    np.testing.assert_array_equal(x, (left + right) / np.float32(2))
    lines = info_lines(caplog)
    assert len(lines) == 1 and "2 channels" in lines[0] and "stereo.wav" in lines[0]


def test_mono_file_logs_nothing(tmp_path, caplog):
    path = tmp_path / "mono.wav"
    sf.write(path, sine(200, 16000), 16000)
    with caplog.at_level(logging.INFO, logger="rvc_lab.audio"):
        x, sr = load_audio(path)
        prepare_input(x, sr)
    assert info_lines(caplog) == []


def test_mp3_loads(tmp_path):
    if "MP3" not in sf.available_formats():
        pytest.fail("this libsndfile has no MP3 support; the MP3 path is part of the contract")
    path = tmp_path / "tone.mp3"
    sf.write(path, sine(440, 16000), 16000, format="MP3")
    x, sr = load_audio(path)
    assert sr == 16000 and x.ndim == 1 and abs(peak_hz(x, sr) - 440) < 2


@pytest.mark.parametrize(
    "name, make, problem",
    [
        ("missing.wav", None, "not found"),
        ("notes.wav", lambda p: p.write_text("definitely not audio\n" * 20), "not a readable audio file"),
        ("zero.wav", lambda p: p.write_bytes(b""), "empty"),
        ("silent_empty.wav", lambda p: sf.write(p, np.zeros(0, np.float32), 16000), "no audio samples"),
        ("nan.wav", lambda p: sf.write(p, np.array([0.1, np.nan, 0.2, np.inf], np.float32), 16000, subtype="FLOAT"),
         "NaN/Inf"),
    ],
)
def test_invalid_audio_names_file_and_problem(tmp_path, name, make, problem):
    path = tmp_path / name
    if make:
        make(path)
    with pytest.raises(InvalidAudioError) as err:
        load_audio(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_directory_is_not_audio(tmp_path):
    with pytest.raises(InvalidAudioError, match="directory"):
        load_audio(tmp_path)


# ----------------------------------------------------------------------------- preparation
def test_8khz_input_is_resampled_to_16k(tmp_path, caplog):
    path = tmp_path / "phone.wav"
    sf.write(path, sine(500, 8000, seconds=1.5), 8000)
    x, sr = load_audio(path)
    with caplog.at_level(logging.INFO, logger="rvc_lab.audio"):
        y = prepare_input(x, sr)
    assert sr == 8000 and y.dtype == np.float32 and len(y) == 2 * len(x)
    np.testing.assert_array_equal(y, librosa.resample(x, orig_sr=8000, target_sr=16000, res_type="soxr_hq"))
    assert abs(peak_hz(y, 16000) - 500) < 1
    assert np.sqrt(np.mean(y[2000:-2000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=2e-3)
    lines = info_lines(caplog)
    assert len(lines) == 1 and "8000 Hz -> 16000 Hz" in lines[0]


def test_16k_input_is_passed_through():
    x = sine(300, 16000)
    np.testing.assert_array_equal(to_16k_offline(x, 16000), x)
    np.testing.assert_array_equal(prepare_input(x, 16000), x)


def test_loud_input_is_normalised_like_upstream(caplog):
    x = sine(300, 16000, amp=1.7)
    with caplog.at_level(logging.INFO, logger="rvc_lab.audio"):
        y = prepare_input(x, 16000)
    # upstream (numpy 1.26): audio /= (np.abs(audio).max() / 0.95)  -> float64 scalar, float32 array
    expected = x.copy()
    expected /= np.float32(float(np.abs(x).max()) / 0.95)
    np.testing.assert_array_equal(y, expected)
    assert np.abs(y).max() == pytest.approx(0.95, abs=1e-6)
    assert len(info_lines(caplog)) == 1 and "scaled down" in info_lines(caplog)[0]
    quiet = sine(300, 16000, amp=0.9)
    np.testing.assert_array_equal(normalize_peak(quiet), quiet)


def test_resample_offline_is_librosa_soxr_hq():
    x = sine(1000, 40000, seconds=0.5)
    y = resample_offline(x, 40000, 44100)
    np.testing.assert_array_equal(y, librosa.resample(x, orig_sr=40000, target_sr=44100, res_type="soxr_hq"))
    assert y.dtype == np.float32 and len(y) == 22050
    assert abs(peak_hz(y, 44100) - 1000) < 3


def test_stream_resampler_is_torchaudio_with_upstream_defaults():
    import torchaudio.functional as AF

    x = torch.from_numpy(sine(440, 48000, seconds=0.25))
    r = StreamResampler(48000, 16000)
    y = r(x)
    expected = AF.resample(x, 48000, 16000, lowpass_filter_width=6, rolloff=0.99, resampling_method="sinc_interp_hann")
    torch.testing.assert_close(y, expected, rtol=0, atol=0)
    assert y.shape == (4000,) and abs(peak_hz(y.numpy(), 16000) - 440) < 5
    # model rate -> device rate, batched [1, N] as upstream calls it
    z = StreamResampler(40000, 48000)(torch.from_numpy(sine(300, 40000, seconds=0.1))[None])
    assert z.shape == (1, 4800)
    same = torch.randn(100)
    assert torch.equal(StreamResampler(16000, 16000)(same), same)


# ----------------------------------------------------------------------------- output
def test_float_to_int16_hand_computed_values():
    # quiet: scale 32768, truncation toward zero
    x = np.array([0.5, -0.5, 0.25, 1e-5, -1e-5, 0.3, -0.3, 0.99], np.float32)
    got = float_to_int16_upstream(x)
    assert got.dtype == np.int16
    np.testing.assert_array_equal(got, [16384, -16384, 8192, 0, 0, 9830, -9830, 32440])
    # loud: m = 2/0.99, scale = 32768 * 0.99 / 2 = 16220.16
    y = np.array([2.0, -1.0, 0.3, -2.0], np.float32)
    np.testing.assert_array_equal(float_to_int16_upstream(y), [32440, -16220, 4866, -32440])


def test_float_to_int16_quiet_input_truncates_toward_zero():
    # peak 0.25 / 0.99 < 1: the scale stays 32768; astype(int16) truncates toward zero, so
    # 3.1e-5 * 32768 = 1.016 -> 1 and -1.016 -> -1 (floor would give -2), 0.25 -> 8192 exactly
    y = np.array([0.25, -0.25, 3.1e-5, -3.1e-5, 0.0], np.float32)
    np.testing.assert_array_equal(float_to_int16_upstream(y), [8192, -8192, 1, -1, 0])
    with pytest.raises(InvalidAudioError):
        float_to_int16_upstream(np.array([0.1, np.nan], np.float32))


@pytest.mark.parity
def test_parity_out_wav_respects_the_int16_formula_bounds(parity_dir):
    """out.wav of the offline golden: int16 from upstream's formula, so |x| <= 0.99 * 32768."""
    y, sr = sf.read(parity_dir / "cases" / "offline_v2_40k_rmvpe_synth__zero" / "out.wav", dtype="int16")
    assert sr == 40000 and len(y) == 179200
    assert np.abs(y.astype(np.int32)).max() <= int(0.99 * 32768)
    # writing it back through our writer keeps every sample
    back = float_to_int16_upstream(y.astype(np.float32) / 32768)
    np.testing.assert_array_equal(back, y)


def test_write_wav_roundtrip(tmp_path):
    ints = (np.random.default_rng(1).integers(-32768, 32767, 1000)).astype(np.int16)
    p = write_wav_atomic(tmp_path / "sub" / "a.wav", ints, 40000)
    back, sr = sf.read(p, dtype="int16")
    assert sr == 40000
    np.testing.assert_array_equal(back, ints)
    floats = np.random.default_rng(2).uniform(-1, 1, (500, 2)).astype(np.float32)
    write_wav_atomic(tmp_path / "b.wav", floats, 48000, subtype="FLOAT")
    back, sr = sf.read(tmp_path / "b.wav", dtype="float32")
    np.testing.assert_array_equal(back, floats)
    assert sf.info(tmp_path / "b.wav").subtype == "FLOAT"
    assert sorted(os.listdir(tmp_path)) == ["b.wav", "sub"]


def test_write_wav_failure_leaves_nothing_half_written(tmp_path, monkeypatch):
    dest = tmp_path / "out.wav"
    original = np.zeros(100, np.int16)
    write_wav_atomic(dest, original, 16000)
    before = dest.read_bytes()

    real_write = sf.write

    def write_then_die(file, data, *args, **kwargs):
        real_write(file, data[: len(data) // 2], *args, **kwargs)  # some bytes reach the temp file
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(sf, "write", write_then_die)
    with pytest.raises(OSError, match="disk full"):
        write_wav_atomic(dest, np.ones(1000, np.int16), 16000)
    with pytest.raises(OSError, match="disk full"):
        write_wav_atomic(tmp_path / "new.wav", np.ones(1000, np.int16), 16000)
    assert sorted(os.listdir(tmp_path)) == ["out.wav"]  # no temp file, no new.wav
    assert dest.read_bytes() == before  # the old file is intact

    monkeypatch.setattr(sf, "write", real_write)
    with pytest.raises(InvalidAudioError):
        write_wav_atomic(tmp_path / "nan.wav", np.array([0.0, np.nan], np.float32), 16000, subtype="FLOAT")
    with pytest.raises(ValueError):
        write_wav_atomic(tmp_path / "x.wav", original, 16000, subtype="MP3")
    assert sorted(os.listdir(tmp_path)) == ["out.wav"]
