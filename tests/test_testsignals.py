"""Test tones: their F0 truth is checked against measurements of the audio itself
(Hilbert instantaneous frequency, spectral peaks), not against the generator's own numbers."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from rvc_lab.metrics import snr_db
from rvc_lab.testsignals import (
    SUITE_NAMES,
    add_noise_at_snr,
    frame_times,
    glide,
    harmonic_complex,
    pure_sine,
    range_sweep,
    sawtooth,
    synthesize,
    tone_suite,
    vibrato,
    with_gaps,
)


@pytest.mark.parametrize("n_samples", [16000, 16159, 16160, 8001, 1])
def test_frame_grid_matches_rvc_f0_frames_at_16k(n_samples):
    times = frame_times(n_samples, 16000)
    assert times.size == n_samples // 160 + 1
    np.testing.assert_allclose(times, np.arange(times.size) * 0.01)


@pytest.mark.parametrize("sr", [22050, 44100, 48000, 40000])
def test_frame_grid_other_rates(sr):
    n = int(0.737 * sr)
    times = frame_times(n, sr)
    assert times[-1] <= n / sr < times[-1] + 0.01


def _zero_crossing_frequency(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Frequency of a single sinusoid measured from its upward zero crossings.

    Crossing instants are found by linear interpolation between samples; one period lies
    between consecutive crossings, so ``1 / period`` is the mean frequency over it, attributed
    to the period's midpoint.  Returns (midpoint times s, frequencies Hz).
    """
    x = x.astype(np.float64)
    i = np.flatnonzero((x[:-1] < 0.0) & (x[1:] >= 0.0))
    crossings = (i + x[i] / (x[i] - x[i + 1])) / sr
    return 0.5 * (crossings[1:] + crossings[:-1]), 1.0 / np.diff(crossings)


@pytest.mark.parametrize(
    "contour",
    [
        lambda t: np.full(np.shape(t), 230.0),
        lambda t: 300.0 * 2 ** (100 / 1200 * np.sin(2 * np.pi * 5.5 * np.asarray(t))),
        lambda t: 120.0 * 4.0 ** (np.asarray(t) / 1.0),
        lambda t: 50.0 * 22.0 ** (np.asarray(t) / 1.0),
    ],
    ids=["steady", "vibrato", "glide", "sweep"],
)
@pytest.mark.parametrize("sr", [16000, 44100])
def test_truth_equals_measured_frequency_of_the_audio(contour, sr):
    audio, times, f0, voiced = synthesize(contour, sr, 1.0, partials="sine")
    t_mid, measured = _zero_crossing_frequency(audio, sr)
    inner = (times >= t_mid[0]) & (times <= t_mid[-1])
    assert voiced.all() and inner.sum() >= 90
    np.testing.assert_allclose(np.interp(times[inner], t_mid, measured), f0[inner], rtol=1e-3)


@pytest.mark.parametrize("f0", [150.0, 220.0, 1050.0])
def test_harmonic_spectra_peak_at_multiples_of_f0(f0):
    sr = 16000
    for case in (harmonic_complex(f0, sr, 1.0), sawtooth(f0, sr, 1.0)):
        spectrum = np.abs(np.fft.rfft(case.audio.astype(np.float64) * np.hanning(sr)))  # 1 Hz bins
        peaks, _ = scipy.signal.find_peaks(spectrum, height=spectrum.max() * 0.01)
        harmonics = peaks / f0
        np.testing.assert_allclose(harmonics, np.round(harmonics), atol=1e-9)
        assert int(round(harmonics[0])) == 1  # the fundamental is present
        assert peaks.max() < 0.45 * sr  # nothing near or above Nyquist
        np.testing.assert_array_equal(case.f0_hz, np.full(case.times.size, f0))


def test_pure_sine_has_one_partial():
    case = pure_sine(440.0, 16000, 1.0)
    spectrum = np.abs(np.fft.rfft(case.audio.astype(np.float64) * np.hanning(16000)))
    peaks, _ = scipy.signal.find_peaks(spectrum, height=spectrum.max() * 1e-3)
    assert peaks.tolist() == [440]


def test_harmonic_phases_are_random_and_seeded():
    a = harmonic_complex(200.0, 16000, 0.2, seed=1).audio
    b = harmonic_complex(200.0, 16000, 0.2, seed=1).audio
    c = harmonic_complex(200.0, 16000, 0.2, seed=2).audio
    saw = sawtooth(200.0, 16000, 0.2).audio
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c) and not np.allclose(a, saw)
    # same magnitude spectrum whatever the phases
    mag = lambda x: np.abs(np.fft.rfft(x.astype(np.float64)))
    assert np.corrcoef(mag(a), mag(c))[0, 1] > 0.99


def test_gaps_truth_matches_the_audio():
    sr, seconds = 16000, 1.0
    case = with_gaps(200.0, sr, seconds)
    x = case.audio.astype(np.float64)
    # silence [0.3, 0.45) s: away from the 2.5 ms half-ramps the samples are exactly zero
    assert np.all(x[int(0.3025 * sr) + 1 : int(0.4475 * sr)] == 0.0)
    # noise burst [0.7, 0.85): no 200 Hz periodicity (autocorrelation at one period is small)
    burst = x[int(0.71 * sr) : int(0.84 * sr)]
    lag = sr // 200
    assert abs(np.dot(burst[:-lag], burst[lag:]) / np.dot(burst, burst)) < 0.2
    tone = x[int(0.05 * sr) : int(0.25 * sr)]
    assert np.dot(tone[:-lag], tone[lag:]) / np.dot(tone, tone) > 0.95
    # truth: unvoiced exactly inside the two gaps, voiced elsewhere; F0 0 where unvoiced
    t = case.times
    inside_gap = ((t > 0.3 + 1e-9) & (t < 0.45 - 1e-9)) | ((t > 0.7 + 1e-9) & (t < 0.85 - 1e-9))
    np.testing.assert_array_equal(case.voiced, ~inside_gap)
    assert np.all(case.f0_hz[~case.voiced] == 0.0) and np.all(case.f0_hz[case.voiced] == 200.0)


@pytest.mark.parametrize("target", [20.0, 10.0, 0.0])
def test_noise_is_added_at_the_requested_snr(target):
    clean = harmonic_complex(220.0, 16000, 0.5).audio.astype(np.float64)
    noisy = add_noise_at_snr(clean, target, seed=4)
    assert snr_db(noisy, clean) == pytest.approx(target, abs=1e-9)


def test_noisy_suite_members_keep_their_snr():
    suite = {c.name: c for c in tone_suite(16000, 0.5, names=["noisy_220_snr10", "noisy_220_snr0"])}
    for name, target in (("noisy_220_snr10", 10.0), ("noisy_220_snr0", 0.0)):
        noisy = suite[name].audio.astype(np.float64)
        clean = harmonic_complex(220.0, 16000, 0.5).audio.astype(np.float64)
        scale = np.max(np.abs(add_noise_at_snr(clean, target, seed=2))) / max(np.max(np.abs(noisy)), 1e-12)
        restored = noisy * (scale if scale > 1.0 + 1e-6 else 1.0)  # undo the full-scale guard
        assert snr_db(restored, clean) == pytest.approx(target, abs=1e-3)  # float32 storage


def test_sweep_and_glides_span_their_ranges():
    sweep = range_sweep(50.0, 1100.0, 16000, 1.0)
    assert sweep.f0_hz[0] == pytest.approx(50.0) and sweep.f0_hz[-1] == pytest.approx(1100.0)
    assert np.all(np.diff(sweep.f0_hz) > 0)
    down = glide(400.0, 100.0, 16000, 1.0, shape="linear")
    np.testing.assert_allclose(np.diff(down.f0_hz), -3.0, atol=1e-9)  # 300 Hz per second
    vib = vibrato(300.0, 100.0, 5.5, 16000, 1.0)
    cents = 1200 * np.log2(vib.f0_hz / 300.0)
    assert cents.max() == pytest.approx(100.0, abs=1.0) and cents.min() == pytest.approx(-100.0, abs=1.0)


@pytest.mark.parametrize("sr", [16000, 44100])
def test_tone_suite_contents(sr):
    suite = tone_suite(sr=sr, seconds=0.3)
    assert [c.name for c in suite] == list(SUITE_NAMES)
    for case in suite:
        assert case.sr == sr and case.audio.dtype == np.float32 and case.audio.ndim == 1
        assert case.audio.size == round(0.3 * sr)
        assert case.times.size == case.f0_hz.size == case.voiced.size == (100 * case.audio.size) // sr + 1
        assert np.all((case.f0_hz > 0) == case.voiced)
        assert 0.0 < np.max(np.abs(case.audio)) <= 0.9
        assert np.all(np.isfinite(case.audio))
    high = [c for c in suite if c.voiced.any() and c.f0_hz[c.voiced].min() > 1040.0]
    assert {c.name for c in high} == {"sine_1050", "complex_1050", "complex_1090"}


def test_tone_suite_subset_and_determinism():
    a = tone_suite(names=["gaps_200", "complex_220"], seconds=0.2)
    assert [c.name for c in a] == ["complex_220", "gaps_200"]  # suite order
    b = tone_suite(names=["complex_220", "gaps_200"], seconds=0.2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.audio, y.audio)
    with pytest.raises(ValueError, match="unknown test signal"):
        tone_suite(names=["nope"])
