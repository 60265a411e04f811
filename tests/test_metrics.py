"""rvc_lab.metrics against independent truths: mir_eval, the mel-cepstral-distance package,
per-frame transcriptions of the formulas, and signals built with a known answer."""
from __future__ import annotations

import math

import mel_cepstral_distance as mcd_package
import mir_eval
import numpy as np
import pytest
import scipy.signal
import scipy.stats

from rvc_lab.metrics import (
    DB_SCALE,
    MCDConfig,
    align_signals,
    apply_delay,
    compare_audio,
    compare_stages,
    dtw_path,
    estimate_delay,
    f0_metrics,
    log_spectral_distance,
    max_abs_error,
    mcd,
    mcd_from_cepstra,
    mcd_per_frame,
    mel_cepstrum,
    rel_l2,
    si_sdr_db,
    snr_db,
    spectral_convergence,
)
from rvc_lab.metrics.f0 import MIR_EVAL_KEYS
from rvc_lab.testsignals import add_noise_at_snr, glide, harmonic_complex

SR = 16000


def _noise(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n)


# ---------------------------------------------------------------------------------------------
# F0 metrics
# ---------------------------------------------------------------------------------------------


def _random_tracks(seed: int, n: int = 600):
    """A reference with voiced/unvoiced frames and an estimate with every kind of error."""
    rng = np.random.default_rng(seed)
    ref = np.where(rng.random(n) < 0.7, 80.0 * 2.0 ** (3.0 * rng.random(n)), 0.0)
    est = ref * 2.0 ** (rng.normal(0.0, 0.05, n))  # mostly within / near 50 cents
    est[rng.random(n) < 0.1] *= 2.0  # octave up
    est[rng.random(n) < 0.05] *= 0.5  # octave down
    est[rng.random(n) < 0.05] *= 1.5  # fifth: gross but not octave
    est[rng.random(n) < 0.1] = 0.0  # voicing misses
    false_alarms = (ref == 0) & (rng.random(n) < 0.3)
    est[false_alarms] = 150.0
    return ref, est


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_melody_metrics_equal_mir_eval(seed):
    ref, est = _random_tracks(seed)
    times = np.arange(ref.size) * 0.01
    ours = f0_metrics(ref, est)
    theirs = mir_eval.melody.evaluate(times, ref, times, est)
    for key, mir_key in MIR_EVAL_KEYS.items():
        assert ours[key] == pytest.approx(theirs[mir_key], abs=1e-12), key


def test_melody_metrics_with_explicit_voicing_equal_mir_eval():
    ref, est = _random_tracks(5)
    rng = np.random.default_rng(7)
    est_voiced = (est > 0) & (rng.random(est.size) < 0.8)  # pitch kept where called unvoiced
    times = np.arange(ref.size) * 0.01
    ours = f0_metrics(ref, est, est_voiced=est_voiced)
    theirs = mir_eval.melody.evaluate(times, ref, times, est, est_voicing=est_voiced.astype(float))
    for key, mir_key in MIR_EVAL_KEYS.items():
        assert ours[key] == pytest.approx(theirs[mir_key], abs=1e-12), key


def test_pitch_error_metrics_equal_per_frame_transcription():
    ref, est = _random_tracks(3)
    ours = f0_metrics(ref, est)
    both = [i for i in range(ref.size) if ref[i] > 0 and est[i] > 0]
    cents = [1200.0 * math.log2(est[i] / ref[i]) for i in both]
    gross = sum(1 for i in both if abs(est[i] / ref[i] - 1.0) > 0.2)
    octave = sum(1 for c in cents if round(abs(c) / 1200.0) >= 1 and abs(abs(c) - 1200.0 * round(abs(c) / 1200.0)) < 50.0)
    assert ours["n_both_voiced"] == len(both)
    assert ours["gross_pitch_error"] == pytest.approx(gross / len(both), abs=1e-12)
    assert ours["octave_error_rate"] == pytest.approx(octave / len(both), abs=1e-12)
    assert ours["cents_mae"] == pytest.approx(sum(abs(c) for c in cents) / len(both), rel=1e-12)
    r, _ = scipy.stats.pearsonr(ref[both], est[both])
    assert ours["f0_corr"] == pytest.approx(r, abs=1e-12)


def test_f0_metrics_known_cases():
    ref = np.array([0.0, 100.0, 200.0, 300.0, 0.0])
    perfect = f0_metrics(ref, ref)
    assert perfect["raw_pitch_accuracy"] == 1.0 and perfect["overall_accuracy"] == 1.0
    assert perfect["voicing_false_alarm"] == 0.0 and perfect["cents_mae"] == 0.0
    assert perfect["f0_corr"] == pytest.approx(1.0)
    octave = f0_metrics(ref, 2.0 * ref)
    assert octave["raw_pitch_accuracy"] == 0.0 and octave["raw_chroma_accuracy"] == 1.0
    assert octave["octave_error_rate"] == 1.0 and octave["gross_pitch_error"] == 1.0
    assert octave["cents_mae"] == pytest.approx(1200.0)


def test_f0_metrics_undefined_denominators_are_nan_not_mir_eval_placeholders():
    ref = np.full(50, 220.0)  # no unvoiced frame: false-alarm rate has no denominator
    times = np.arange(50) * 0.01
    ours = f0_metrics(ref, ref)
    assert math.isnan(ours["voicing_false_alarm"])
    assert mir_eval.melody.evaluate(times, ref, times, ref)["Voicing False Alarm"] == 0  # its placeholder
    assert math.isnan(ours["f0_corr"])  # constant tone: correlation undefined
    silent = f0_metrics(np.zeros(50), np.zeros(50))
    assert math.isnan(silent["voicing_recall"]) and silent["overall_accuracy"] == 1.0


def test_f0_metrics_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        f0_metrics(np.ones(10), np.ones(11))


# ---------------------------------------------------------------------------------------------
# MCD
# ---------------------------------------------------------------------------------------------


def _naive_mcd(ca, cb, first: int, scale: float) -> float:
    """Kubichek's formula written out frame by frame (aligned, equal-length inputs)."""
    total = 0.0
    for t in range(len(ca)):
        squared = 0.0
        for d in range(first, len(ca[t])):
            squared += (ca[t][d] - cb[t][d]) ** 2
        total += scale * math.sqrt(squared)
    return total / len(ca)


@pytest.mark.parametrize("include_c0", [False, True])
@pytest.mark.parametrize("scale", ["db", "unit"])
def test_mcd_formula_matches_per_frame_transcription(include_c0, scale):
    rng = np.random.default_rng(11)
    ca = rng.normal(size=(80, 25))
    cb = ca + rng.normal(0.0, 0.2, size=ca.shape)
    factor = 10.0 / math.log(10.0) * math.sqrt(2.0) if scale == "db" else 1.0
    expected = _naive_mcd(ca.tolist(), cb.tolist(), 0 if include_c0 else 1, factor)
    assert mcd_from_cepstra(ca, cb, include_c0=include_c0, scale=scale) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("alignment", ["pad", "dtw"])
@pytest.mark.parametrize("include_c0", [False, True])
def test_mcd_matches_mel_cepstral_distance_package(alignment, include_c0):
    rng = np.random.default_rng(21)
    ca = rng.normal(size=(70, 25))
    cb = np.repeat(ca, 2, axis=0)[::3] + rng.normal(0.0, 0.3, size=(47, 25))  # different length and timing
    ours = mcd_from_cepstra(ca, cb, include_c0=include_c0, scale="unit", alignment=alignment)
    # The package takes (coefficients, frames); s = first coefficient used, D = one past the last.
    # dtw_radius=None makes fastdtw run an exact, unconstrained DTW.
    theirs, _penalty = mcd_package.compare_mfccs(
        ca.T, cb.T, s=0 if include_c0 else 1, D=25, aligning=alignment, dtw_radius=None
    )
    assert ours == pytest.approx(theirs, abs=1e-6)
    assert mcd_from_cepstra(ca, cb, include_c0, "db", alignment) == pytest.approx(DB_SCALE * theirs, abs=1e-6)


def test_mcd_without_alignment_matches_package_on_equal_lengths():
    rng = np.random.default_rng(22)
    ca, cb = rng.normal(size=(60, 25)), rng.normal(size=(60, 25))
    theirs, _ = mcd_package.compare_mfccs(ca.T, cb.T, s=1, D=25, aligning="pad")
    assert mcd_from_cepstra(ca, cb, scale="unit", alignment="none") == pytest.approx(theirs, abs=1e-6)


def test_db_scale_constant():
    assert DB_SCALE == pytest.approx(10.0 * math.sqrt(2.0) / math.log(10.0), rel=1e-15)


def test_dtw_undoes_a_known_time_warp():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(40, 24))
    idx = np.sort(np.concatenate([np.arange(40), rng.integers(0, 40, 15)]))  # repeat some frames
    b = a[idx]
    ia, ib = dtw_path(a, b)
    assert np.all(np.diff(ia) >= 0) and np.all(np.diff(ib) >= 0)
    assert (ia[0], ib[0], ia[-1], ib[-1]) == (0, 0, 39, len(b) - 1)
    assert np.array_equal(a[ia], b[ib])  # every pair on the path is the same frame
    assert mcd_from_cepstra(a, b, include_c0=True, alignment="dtw") == 0.0
    assert mcd_from_cepstra(a, b, include_c0=True, alignment="none") > 0.0


def test_pad_alignment_uses_zero_frames():
    a = np.ones((5, 3))
    b = np.ones((3, 3))
    per_frame = mcd_per_frame(a, b, include_c0=True, scale="unit", alignment="pad")
    assert per_frame.tolist() == pytest.approx([0, 0, 0, math.sqrt(3), math.sqrt(3)])


@pytest.mark.parametrize("source", ["sptk", "world", "mfcc"])
def test_mcd_of_identical_signals_is_zero(source):
    x = glide(120.0, 300.0, sr=SR, seconds=0.5).audio.astype(np.float64) + 0.01 * _noise(8000, 1)
    assert mcd(x, x.copy(), SR, MCDConfig(source=source)) == 0.0


def test_sptk_mcep_gain_moves_only_c0_by_ln_gain():
    # Mel-cepstra are natural-log: scaling a signal by g adds ln g to c0 and nothing else
    # (the relative periodogram floor keeps that exact).
    x = harmonic_complex(180.0, sr=SR, seconds=0.4).audio.astype(np.float64)
    x = x + 0.001 * _noise(x.size, 4)
    c1 = mel_cepstrum(x, SR)
    c2 = mel_cepstrum(3.0 * x, SR)
    np.testing.assert_allclose(c2[:, 0] - c1[:, 0], math.log(3.0), atol=1e-9)
    np.testing.assert_allclose(c2[:, 1:], c1[:, 1:], atol=1e-9)
    assert mcd(3.0 * x, x, SR) == pytest.approx(0.0, abs=1e-7)
    with_c0 = MCDConfig(include_c0=True, scale="unit")
    assert mcd(3.0 * x, x, SR, with_c0) == pytest.approx(math.log(3.0), abs=1e-7)


def test_mfcc_gain_moves_c0_by_sqrt_bands_times_log_power_gain():
    # Orthonormal DCT-II of a constant offset L over n_mels bands is L*sqrt(n_mels) in c0.
    x = _noise(SR // 2, 5)
    config = MCDConfig(source="mfcc", include_c0=True, scale="unit", n_mels=40)
    c1 = mel_cepstrum(x, SR, config)
    c2 = mel_cepstrum(2.0 * x, SR, config)
    np.testing.assert_allclose(c2[:, 0] - c1[:, 0], math.sqrt(40) * math.log(4.0), rtol=1e-9)
    np.testing.assert_allclose(c2[:, 1:], c1[:, 1:], atol=1e-8)
    assert mcd(2.0 * x, x, SR, config) == pytest.approx(math.sqrt(40) * math.log(4.0), rel=1e-9)


def test_mel_cepstrum_shapes_and_rates():
    x = _noise(48000, 6)
    frame, hop = 1024, 240  # 25 ms = 1200 samples -> nearest power of two; 5 ms hop
    for source in ("sptk", "mfcc"):
        c = mel_cepstrum(x, 48000, MCDConfig(source=source, order=20))
        assert c.shape == (1 + (48000 - frame) // hop, 21)  # frames fully inside the signal
        assert np.all(np.isfinite(c))
    c = mel_cepstrum(x, 48000, MCDConfig(source="world", order=20))
    assert c.shape == (201, 21)  # WORLD: frames centred at 0, 5, ..., 1000 ms
    assert np.all(np.isfinite(c))


def test_mcd_handles_digital_silence():
    x = np.zeros(4000)
    assert mcd(x, x, SR) == 0.0


# ---------------------------------------------------------------------------------------------
# Waveform and spectral distances
# ---------------------------------------------------------------------------------------------


def test_snr_of_noise_added_at_known_snr():
    clean = harmonic_complex(220.0, sr=SR, seconds=0.5).audio.astype(np.float64)
    for target in (30.0, 10.0, 0.0, -5.0):
        noisy = add_noise_at_snr(clean, target, seed=2)
        assert snr_db(noisy, clean) == pytest.approx(target, abs=1e-9)
        assert rel_l2(noisy, clean) == pytest.approx(10.0 ** (-target / 20.0), rel=1e-9)


def test_si_sdr_known_decomposition():
    rng = np.random.default_rng(8)
    ref = rng.standard_normal(5000)
    noise = rng.standard_normal(5000)
    noise -= (noise @ ref) / (ref @ ref) * ref  # orthogonal to ref
    est = 0.3 * ref + noise
    expected = 10.0 * math.log10((0.3**2) * (ref @ ref) / (noise @ noise))
    assert si_sdr_db(est, ref) == pytest.approx(expected, abs=1e-9)
    assert si_sdr_db(7.0 * est, ref) == pytest.approx(expected, abs=1e-9)  # scale invariant
    assert si_sdr_db(2.0 * ref, ref) == math.inf
    # zero_mean: a DC offset changes nothing once removed
    assert si_sdr_db(est + 5.0, ref + 1.0, zero_mean=True) == pytest.approx(
        si_sdr_db(est - est.mean(), ref - ref.mean()), abs=1e-9
    )


def test_max_abs_and_rel_l2_definitions():
    a = np.array([1.0, -2.0, 3.0])
    e = np.array([1.0, 0.0, 2.0])
    assert max_abs_error(a, e) == 2.0
    assert rel_l2(a, e) == pytest.approx(math.sqrt(5.0) / math.sqrt(5.0))
    assert rel_l2(e, e) == 0.0
    with pytest.raises(ValueError):
        rel_l2(a, e[:2])


@pytest.mark.parametrize("gain", [0.5, 2.0, 1.0])
def test_spectral_distances_of_a_pure_gain(gain):
    e = harmonic_complex(200.0, sr=SR, seconds=0.5).audio.astype(np.float64) + 0.01 * _noise(8000, 9)
    a = gain * e
    assert spectral_convergence(a, e) == pytest.approx(abs(1.0 - gain), abs=1e-12)
    assert log_spectral_distance(a, e) == pytest.approx(abs(20.0 * math.log10(gain)), abs=1e-4)


def test_spectral_convergence_matches_scipy_stft():
    rng = np.random.default_rng(10)
    e = rng.standard_normal(8192)
    a = e + 0.3 * rng.standard_normal(8192)
    # scipy's STFT with a periodic Hann window, no padding, frames fully inside: the same frames
    _, _, za = scipy.signal.stft(a, nperseg=1024, noverlap=768, window="hann", boundary=None, padded=False)
    _, _, ze = scipy.signal.stft(e, nperseg=1024, noverlap=768, window="hann", boundary=None, padded=False)
    sa, se = np.abs(za), np.abs(ze)  # scipy's scaling is common to both and cancels in the ratio
    expected = np.linalg.norm(se - sa) / np.linalg.norm(se)
    assert spectral_convergence(a, e, 1024, 256) == pytest.approx(expected, rel=1e-9)
    lsd_expected = np.mean(np.sqrt(np.mean((10 * np.log10(se**2) - 10 * np.log10(sa**2)) ** 2, axis=0)))
    assert log_spectral_distance(a, e, 1024, 256, power_floor=0.0) == pytest.approx(lsd_expected, rel=1e-9)


# ---------------------------------------------------------------------------------------------
# Delay and alignment
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("delay", [0, 1, 37, 1234, -5, -800])
def test_estimate_delay_recovers_known_shift(delay):
    x = _noise(6000, 12)
    y = apply_delay(x, delay) + 0.05 * _noise(6000, 13)
    assert estimate_delay(y, x) == delay
    a, e = align_signals(y, x, delay)
    assert a.size == e.size == 6000 - abs(delay)
    assert snr_db(a, e) > 20.0


def test_estimate_delay_subsample():
    x = _noise(4096, 14)
    # Fractional delay by a linear phase in the frequency domain (circular, exact band-limited shift).
    true_delay = 10.3
    freqs = np.fft.rfftfreq(x.size)
    y = np.fft.irfft(np.fft.rfft(x) * np.exp(-2j * np.pi * freqs * true_delay), n=x.size)
    assert estimate_delay(y, x) == 10
    assert estimate_delay(y, x, subsample=True) == pytest.approx(true_delay, abs=0.15)


def test_estimate_delay_respects_search_range():
    x = harmonic_complex(100.0, sr=SR, seconds=0.3).audio.astype(np.float64)  # period 160 samples
    y = apply_delay(x, 40)
    assert estimate_delay(y, x, max_delay=100) == 40


def test_apply_delay_and_align_conventions():
    x = np.arange(1.0, 6.0)
    assert apply_delay(x, 2).tolist() == [0, 0, 1, 2, 3]
    assert apply_delay(x, -2).tolist() == [3, 4, 5, 0, 0]
    a, e = align_signals(apply_delay(x, 2, length=7), x, 2)
    assert a.tolist() == e.tolist() == [1, 2, 3, 4, 5]


# ---------------------------------------------------------------------------------------------
# compare_audio / compare_stages
# ---------------------------------------------------------------------------------------------


def test_compare_audio_delayed_noisy_copy():
    expected = glide(150.0, 300.0, sr=SR, seconds=1.0).audio.astype(np.float64)
    noisy = add_noise_at_snr(expected, 30.0, seed=3)
    actual = np.concatenate([np.zeros(123), noisy, np.zeros(50)])
    result = compare_audio(actual, expected, SR)
    assert result["delay_samples"] == 123
    assert result["delay_ms"] == pytest.approx(123 / 16.0)
    assert result["n_compared"] == expected.size
    assert result["snr_db"] == pytest.approx(30.0, abs=1e-9)
    assert result["rel_l2"] == pytest.approx(10 ** (-1.5), rel=1e-9)
    assert result["si_sdr_db"] == pytest.approx(si_sdr_db(noisy, expected), abs=1e-12)
    assert result["max_abs"] == pytest.approx(np.max(np.abs(noisy - expected)), rel=1e-12)
    assert result["f0_raw_pitch_accuracy"] > 0.9 and result["f0_corr"] > 0.99


def test_compare_audio_identical_and_gain():
    expected = glide(150.0, 300.0, sr=SR, seconds=0.6).audio.astype(np.float64)
    same = compare_audio(expected.copy(), expected, SR, f0_method=None)
    assert same["delay_samples"] == 0 and same["max_abs"] == 0.0 and same["snr_db"] == math.inf
    assert same["mcd_db"] == 0.0 and same["spectral_convergence"] == 0.0
    half = compare_audio(0.5 * expected, expected, SR, f0_method=None)
    assert half["spectral_convergence"] == pytest.approx(0.5, abs=1e-12)
    assert half["si_sdr_db"] == math.inf
    assert half["mcd_db"] == pytest.approx(0.0, abs=1e-6)  # c0 excluded: gain is invisible
    assert math.isnan(half["f0_corr"])
    no_mcd = compare_audio(0.5 * expected, expected, SR, f0_method=None, mcd_config=None)
    assert math.isnan(no_mcd["mcd_db"]) and no_mcd["snr_db"] == half["snr_db"]


def test_compare_audio_without_overlap_gives_nan():
    result = compare_audio(np.ones(10), np.ones(10), SR, align=False, f0_method=None)
    assert result["rel_l2"] == 0.0
    empty = compare_audio(np.zeros(0), np.ones(10), SR, f0_method=None)
    assert empty["n_compared"] == 0 and math.isnan(empty["snr_db"])


def test_compare_stages_finds_first_divergence():
    rng = np.random.default_rng(0)
    expected = {
        "audio16k": rng.normal(size=1600).astype(np.float32),
        "feats": rng.normal(size=(1, 4, 8)).astype(np.float32),
        "pitch": rng.integers(1, 255, size=10).astype(np.int32),
        "pitchf": rng.uniform(100, 300, size=10),
        "audio_out": rng.normal(size=4000).astype(np.float32),
    }
    actual = {k: v.copy() for k, v in expected.items()}
    actual["feats"] = actual["feats"][0] * (1 + 1e-6)  # squeezed shape, tiny error: ok
    actual["pitch"][3] += 1  # one coarse pitch code off: the first real divergence
    actual["pitchf"] = actual["pitchf"] * 1.01
    del actual["audio_out"]
    actual["debug"] = np.zeros(3)
    df = compare_stages(actual, expected, rtol=1e-4)
    assert df["stage"].tolist() == ["audio16k", "feats", "pitch", "pitchf", "audio_out", "debug"]
    assert df["status"].tolist() == ["ok", "ok", "diverged", "diverged", "missing", "extra"]
    assert df.attrs["first_diverging_stage"] == "pitch"
    assert df["first_divergence"].tolist() == [False, False, True, False, False, False]
    row = df.set_index("stage").loc["pitch"]
    a = actual["pitch"].astype(np.float64)
    e = expected["pitch"].astype(np.float64)
    assert row["rel_l2"] == pytest.approx(np.linalg.norm(a - e) / np.linalg.norm(e))
    assert row["max_abs"] == 1.0 and row["frac_unequal"] == pytest.approx(0.1)
    assert df.set_index("stage").loc["pitchf", "rel_l2"] == pytest.approx(0.01)


def test_compare_stages_order_tolerances_shape_and_nan():
    expected = {"a": np.ones(4), "b": np.ones(4), "c": np.ones(4)}
    actual = {"a": np.ones(5), "b": np.array([1, 1, 1, np.nan]), "c": np.ones(4) * 1.001}
    df = compare_stages(actual, expected, order=["c", "b", "a"], tolerances={"c": 1e-2})
    assert df["stage"].tolist() == ["c", "b", "a"]
    assert df["status"].tolist() == ["ok", "diverged", "shape"]
    assert df.attrs["first_diverging_stage"] == "b"
    clean = compare_stages(expected, expected)
    assert clean.attrs["first_diverging_stage"] is None and (clean["status"] == "ok").all()
