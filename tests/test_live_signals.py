"""The latency probe's signal processing against delays built by hand (no audio device).

Each test builds a "recording" from the burst train with a delay chosen here -- whole samples
by slicing, fractional ones by a phase ramp in the FFT -- and checks that the detectors find it.
The onset detector gets what a random-weight voice behind the silence gate produces: noise
unrelated to the bursts, shaped by the delayed bursts' 40 ms RMS envelope (the loudness match
of ``rms_mix_rate`` 0), interpolated between 10 ms hops as upstream does.
"""
from __future__ import annotations

import numpy as np
import pytest

from rvc_lab.live import PassthroughConverter, latency_budget
from rvc_lab.metrics.latency import (
    LatencyEstimate,
    energy_envelope,
    latency_line,
    noise_bursts,
    onset_delays,
    xcorr_delays,
)

SR = 48000


@pytest.fixture(scope="module")
def train():
    return noise_bursts(SR, n_bursts=6, burst_s=0.2, interval_s=1.0, lead_s=0.5, seed=3)


def delayed(x: np.ndarray, delay: float, length: int) -> np.ndarray:
    """``x`` delayed by ``delay`` samples (fractional: FFT phase ramp), in ``length`` samples."""
    n = max(length, x.shape[0] + int(np.ceil(delay)) + 1)
    n = 1 << int(np.ceil(np.log2(n)))  # room for the circular shift to stay linear
    spectrum = np.fft.rfft(x, n)
    y = np.fft.irfft(spectrum * np.exp(-2j * np.pi * np.fft.rfftfreq(n) * delay), n)
    return y[:length]


def rms_mix_like(x: np.ndarray, rng: np.random.Generator, zc: int = SR // 100) -> np.ndarray:
    """Unrelated noise whose 40 ms / 10 ms-hop RMS follows that of ``x`` (upstream's loudness match)."""
    import librosa

    n = x.shape[0]
    env_x = librosa.feature.rms(y=x, frame_length=4 * zc, hop_length=zc)[0]
    noise = rng.standard_normal(n)
    env_n = librosa.feature.rms(y=noise, frame_length=4 * zc, hop_length=zc)[0]
    grid = np.linspace(0, n, env_x.shape[0])
    return noise * np.interp(np.arange(n), grid, env_x) / np.interp(np.arange(n), grid, np.maximum(env_n, 1e-3))


# ------------------------------------------------------------------------------------ bursts
def test_bursts_are_distinct_band_limited_noise_at_the_level_asked(train):
    assert train.n_bursts == 6 and train.length == int(0.2 * SR)
    assert np.array_equal(train.onsets, int(0.5 * SR) + SR * np.arange(6))
    busy = np.zeros(train.signal.shape[0], dtype=bool)
    for k in range(6):
        busy[train.onsets[k] : train.onsets[k] + train.length] = True
        x = train.burst(k).astype(np.float64)
        assert 10 * np.log10(np.mean(x**2)) == pytest.approx(-18.0, abs=0.01)
        assert np.max(np.abs(x)) < 0.8  # peaks of -18 dBFS Gaussian noise: far from clipping
        power = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(x.shape[0], 1 / SR)
        outside = power[(f < 250) | (f > 3800)].sum() / power.sum()
        assert outside < 1e-3  # only the 2 ms fades leak out of 300-3400 Hz
    assert not train.signal[~busy].any()  # silence between bursts is digital silence
    b = [train.burst(k).astype(np.float64) for k in range(6)]
    cross = max(abs(np.dot(b[i], b[j])) / np.dot(b[i], b[i]) for i in range(6) for j in range(6) if i != j)
    assert cross < 0.15  # every burst its own draw (1 with itself): one cannot be mistaken for another
    again = noise_bursts(SR, n_bursts=6, burst_s=0.2, interval_s=1.0, lead_s=0.5, seed=3)
    assert np.array_equal(again.signal, train.signal)


def test_bursts_reject_impossible_layouts():
    with pytest.raises(ValueError, match="shorter than interval"):
        noise_bursts(SR, burst_s=1.0, interval_s=0.5)
    with pytest.raises(ValueError, match="Nyquist"):
        noise_bursts(16000, band_hz=(300, 9000))
    with pytest.raises(ValueError, match="at least one"):
        noise_bursts(SR, n_bursts=0)


# ------------------------------------------------------------------------------------ xcorr
@pytest.mark.parametrize("delay", [0, 12480, 24480.37])
def test_xcorr_finds_whole_and_fractional_delays(train, delay):
    n = train.signal.shape[0] + SR
    rec = 0.5 * delayed(train.signal.astype(np.float64), delay, n)
    est = xcorr_delays(rec, train, 0, SR - train.length)
    assert est.n_found == 6
    assert np.allclose(est.delays, delay, atol=0.02), est.delays
    assert est.spread_ms < 0.001 and est.measured_ms == pytest.approx(1000 * delay / SR, abs=0.001)
    assert np.all(est.score > 0.99)  # a half-sample offset between copy and template costs < 1 %


def test_xcorr_measures_the_level_over_the_floor_and_drops_weak_or_foreign_bursts(train):
    rng = np.random.default_rng(0)
    n = train.signal.shape[0] + SR
    rec = np.zeros(n)
    rec[1000 : 1000 + train.signal.shape[0]] = train.signal
    floor_db = -18.0 - 30.0  # bursts 30 dB over the floor
    rec += 10 ** (floor_db / 20) * rng.standard_normal(n)
    est = xcorr_delays(rec, train, 0, SR - train.length)
    assert np.allclose(est.snr_db, 30.0, atol=0.5), est.snr_db
    assert est.n_found == 6 and np.allclose(est.delays, 1000, atol=0.1)
    # burst 2 comes back 10 dB over the floor only, burst 4 not at all, burst 5 is another sound
    a2, a4, a5 = (int(train.onsets[k]) + 1000 for k in (2, 4, 5))
    L = train.length
    rec[a2 : a2 + L] = 10 ** (-38 / 20) / 10 ** (-18 / 20) * train.burst(2) + rec[a2 : a2 + L] - train.burst(2)
    rec[a4 : a4 + L] -= train.burst(4)
    rec[a5 : a5 + L] += 10 ** (-18 / 20) * rng.standard_normal(L) - train.burst(5)
    est = xcorr_delays(rec, train, 0, SR - train.length)
    assert est.found.tolist() == [True, True, False, True, False, False]
    assert est.snr_db[2] == pytest.approx(10.0, abs=1.0)
    assert est.score[5] < 0.2


# ------------------------------------------------------------------------------------ onsets
def test_onsets_of_a_sharp_copy_are_sample_exact(train):
    n = train.signal.shape[0] + SR
    rec = np.zeros(n)
    rec[7321 : 7321 + train.signal.shape[0]] = 0.3 * train.signal
    est = onset_delays(rec, train, 0, SR - train.length)
    assert est.n_found == 6
    assert np.allclose(est.delays, 7321, atol=0.5), est.delays


@pytest.mark.parametrize("seed", [0, 1])
def test_onsets_find_the_delay_of_noise_that_only_follows_the_bursts_loudness(train, seed):
    """What a random-weight voice behind the silence gate outputs, delayed by a chosen amount."""
    delay = 39360  # 820 ms: the CI conversion's formula
    n = train.signal.shape[0] + SR
    shifted = np.zeros(n)
    shifted[delay : delay + train.signal.shape[0]] = train.signal
    rec = rms_mix_like(shifted, np.random.default_rng(seed))
    est = onset_delays(rec, train, 0, SR - train.length)
    assert est.n_found == 6
    errors_ms = (est.delays - delay) / SR * 1000
    # the 40 ms loudness window smears the rise symmetrically: its half-power point stays put
    assert np.all(np.abs(errors_ms) < 3.0), errors_ms
    assert est.spread_ms < 5.0


def test_energy_envelope_is_a_centred_moving_average():
    x = np.zeros(100)
    x[50] = 2.0
    env = energy_envelope(x, 10)  # env[n] = mean of x[n - 5 : n + 5] ** 2
    assert env[46:56].tolist() == [0.4] * 10 and env[:46].sum() == env[56:].sum() == 0


# ------------------------------------------------------------------------------------ verdict
def estimate(delays_ms, snr_db=60.0):
    d = np.asarray(delays_ms, dtype=float) * SR / 1000
    return LatencyEstimate(delays=d, snr_db=np.full(d.shape, snr_db), sr=SR, method="xcorr")


def test_gate_and_the_line_qa_scripts_read():
    ok = estimate([510.0, 510.5, 511.0, 510.5, 510.25])
    assert ok.gate(510.0, 10.0, 2.0) == (True, "measured equals the formula within one period (+0.5 ms)")
    assert latency_line(ok, 510.0, 10.0) == (
        "measured latency: 510.5 ms (formula 510.0 ms, period 10.0 ms, bursts 5/5 agree within 1.0 ms)")
    passed, why = estimate([510, 510, 530, 510]).gate(510.0, 10.0, 2.0)
    assert not passed and "disagree by 20.0 ms" in why
    passed, why = estimate([540, 540, 540, 540]).gate(510.0, 10.0, 2.0)
    assert not passed and "+30.0 ms from the formula" in why
    few = estimate([510, 510, np.nan, 510, 510, 510])
    few.snr_db[0] = 12.0
    assert few.n_found == 4 and few.gate(510.0, 10.0, 2.0)[0]  # four found: enough
    few.snr_db[1] = 12.0
    passed, why = few.gate(510.0, 10.0, 2.0)
    assert not passed and why.startswith("only 3 of 6 bursts")
    assert latency_line(few, 510.0, 10.0).endswith("bursts 3/6 agree within 0.0 ms)")


def test_latency_budget_counts_the_block_once():
    conv = PassthroughConverter(48000, 0.25)
    # JACK: PortAudio reports (0, block + period); the block is in it
    b = latency_budget(conv, (0.0, 0.26), 1, block_in_device_latency=True)
    assert b["formula_s"] == pytest.approx(0.26 + 0.25)
    assert b["block_s"] == 0.0 and b["chain_s"] == 0.0
    # a host whose figures lack the block: it is added once
    b = latency_budget(conv, (0.005, 0.01), 2, block_in_device_latency=False)
    assert b["formula_s"] == pytest.approx(0.005 + 0.01 + 0.25 + 0.5)
    # upstream's displayed delay: output latency + block + crossfade + 10 ms (no queue)
    assert b["upstream_displayed_s"] == pytest.approx(0.01 + 0.25)


def test_latency_budget_of_the_converter_is_crossfade_plus_search_plus_the_denoise_buffer():
    from types import SimpleNamespace

    from rvc_lab.convert.streaming import StreamGeometry, StreamSettings

    for nr, extra in ((False, 0.0), (True, 0.04)):  # input noise reduction holds back min(crossfade, 40 ms)
        s = StreamSettings(block_time=0.25, crossfade_time=0.05, extra_time=0.5, input_noise_reduce=nr)
        conv = SimpleNamespace(geometry=StreamGeometry.from_settings(s, 48000), settings=s)
        b = latency_budget(conv, (0.0, 0.26), 2, block_in_device_latency=True)
        assert b["chain_s"] == pytest.approx(0.05 + 0.01 + extra)
        assert b["formula_s"] == pytest.approx(0.26 + 0.5 + 0.06 + extra)
        assert b["upstream_displayed_s"] == pytest.approx(0.26 + 0.25 + 0.06 + extra)
