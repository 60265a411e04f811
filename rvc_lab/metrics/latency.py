"""Round-trip latency from noise bursts played through a loopback: the probe signal and its detectors.

Pure DSP on mono float arrays (any sample rate; positions and delays in samples unless a name
says ``_ms``); the live driver plays :func:`noise_bursts` and hands the recordings here.

Two detectors, for two kinds of chain:

* :func:`xcorr_delays` — the recording holds a (scaled, delayed) copy of each burst, e.g. a
  passthrough or a trained voice: each burst is located by cross-correlating its own samples
  with the part of the recording where it can arrive (sub-sample peak).
* :func:`onset_delays` — the recording is unrelated to the bursts except in *when* it is loud,
  e.g. a random-weight voice behind a silence gate: each burst is located by the half-power
  crossing of a smoothed energy envelope, compared with the same crossing on the burst itself
  (the smoothing then shifts both alike).

Every burst also gets its level over the recording's noise floor; :class:`LatencyEstimate`
combines the bursts and :meth:`LatencyEstimate.gate` decides whether they agree with a formula.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rvc_lab.metrics.align import estimate_delay

__all__ = ["BurstTrain", "LatencyEstimate", "noise_bursts", "xcorr_delays", "onset_delays", "energy_envelope",
           "latency_line"]

#: Power below which a floor counts as digital silence: a float32 LSB at full scale, squared.
SILENCE_POWER = float(np.finfo(np.float32).eps) ** 2


@dataclass(frozen=True)
class BurstTrain:
    """A probe signal: ``len(onsets)`` noise bursts separated by silence.

    Attributes
    ----------
    signal : np.ndarray
        float32 [N] at ``sr``.
    sr : int
        Sample rate (Hz).
    onsets : np.ndarray
        int64 [K]: index of each burst's first sample in ``signal``.
    length : int
        Samples per burst (fades included).
    """

    signal: np.ndarray
    sr: int
    onsets: np.ndarray
    length: int

    @property
    def n_bursts(self) -> int:
        return int(len(self.onsets))

    def burst(self, k: int) -> np.ndarray:
        """Samples of burst ``k`` (a view)."""
        return self.signal[self.onsets[k] : self.onsets[k] + self.length]


def noise_bursts(sr: int, n_bursts: int = 6, burst_s: float = 0.2, interval_s: float = 1.0, lead_s: float = 0.5,
                 tail_s: float | None = None, band_hz: tuple[float, float] = (300.0, 3400.0),
                 level_dbfs: float = -18.0, fade_s: float = 0.002, seed: int = 0) -> BurstTrain:
    """Band-limited Gaussian noise bursts, each its own random draw, with silence around them.

    Parameters
    ----------
    sr : int
        Sample rate (Hz).
    n_bursts : int
        Number of bursts (>= 1).
    burst_s : float
        Length of each burst (s), fades included.
    interval_s : float
        Onset-to-onset spacing (s); longer than ``burst_s``.  A delay is attributed to the burst
        it follows, so keep it above the largest round trip expected.
    lead_s : float
        Silence before the first burst (s).
    tail_s : float, optional
        Silence after the last burst's onset (s); default ``interval_s`` (room for its echo).
    band_hz : (float, float)
        Pass band; bins outside it are zeroed in the FFT of each draw (speech band by default,
        so every device and codec passes it).
    level_dbfs : float
        RMS of each burst in dB re full scale (-18 dBFS peaks around -6 dBFS: no clipping).
    fade_s : float
        Raised-cosine fade in and out (s): short, for a sharp onset without a click.
    seed : int
        numpy PCG64 seed; burst k uses stream ``(seed, k)``.

    Returns
    -------
    BurstTrain
    """
    if n_bursts < 1:
        raise ValueError(f"n_bursts={n_bursts}: need at least one burst")
    if not 0 < burst_s < interval_s:
        raise ValueError(f"burst_s={burst_s} must be > 0 and shorter than interval_s={interval_s}")
    lo, hi = band_hz
    if not 0 <= lo < hi <= sr / 2:
        raise ValueError(f"band {band_hz} Hz does not fit below the Nyquist rate {sr / 2:g} Hz")
    length = int(round(burst_s * sr))
    step = int(round(interval_s * sr))
    lead = int(round(lead_s * sr))
    tail = int(round((interval_s if tail_s is None else tail_s) * sr))
    onsets = lead + step * np.arange(n_bursts, dtype=np.int64)
    total = int(onsets[-1]) + max(tail, length)
    signal = np.zeros(total, dtype=np.float32)
    freqs = np.fft.rfftfreq(length, 1.0 / sr)
    keep = (freqs >= lo) & (freqs <= hi)
    n_fade = max(1, int(round(fade_s * sr)))
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n_fade) + 0.5) / n_fade)
    target = 10.0 ** (level_dbfs / 20.0)
    for k, start in enumerate(onsets):
        rng = np.random.default_rng([seed, k])
        spectrum = np.fft.rfft(rng.standard_normal(length))
        spectrum[~keep] = 0.0
        x = np.fft.irfft(spectrum, n=length)
        x[:n_fade] *= ramp
        x[-n_fade:] *= ramp[::-1]
        x *= target / np.sqrt(np.mean(x**2))
        signal[start : start + length] = x
    return BurstTrain(signal=signal, sr=int(sr), onsets=onsets, length=length)


def energy_envelope(x: np.ndarray, window: int) -> np.ndarray:
    """Mean of ``x**2`` over a centred window of ``window`` samples (float64, same length as ``x``)."""
    x = np.asarray(x, dtype=np.float64)
    w = max(1, int(window))
    c = np.concatenate(([0.0], np.cumsum(x * x)))
    n = x.shape[0]
    half = w // 2
    lo = np.clip(np.arange(n) - half, 0, n)
    hi = np.clip(np.arange(n) - half + w, 0, n)
    return (c[hi] - c[lo]) / w


def _noise_floor(recording: np.ndarray, busy: list[tuple[int, int]], frame: int) -> float:
    """Median power of ``frame``-sample frames of the recording outside the ``busy`` spans."""
    free = np.ones(recording.shape[0], dtype=bool)
    for a, b in busy:
        free[max(0, a) : max(0, b)] = False
    n = recording.shape[0] // frame
    if n == 0:
        return SILENCE_POWER
    frames_free = free[: n * frame].reshape(n, frame).all(axis=1)
    power = np.mean(recording[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1)[frames_free]
    return max(float(np.median(power)) if power.size else SILENCE_POWER, SILENCE_POWER)


@dataclass
class LatencyEstimate:
    """Per-burst delays and how well they agree.

    Attributes
    ----------
    delays : np.ndarray
        float64 [K] delay of each burst in samples (NaN when it was not found).
    snr_db : np.ndarray
        float64 [K] burst power over the noise floor in the recording (dB).
    sr : int
    method : {"xcorr", "onset"}
    min_snr_db : float
        Bursts below this level over the floor do not count as found.
    score : np.ndarray, optional
        float64 [K] normalised correlation of each burst with what was found (cross-correlation).
    min_score : float
        Cross-correlation matches below this do not count as found (a different sound).
    """

    delays: np.ndarray
    snr_db: np.ndarray
    sr: int
    method: str
    min_snr_db: float = 20.0
    score: np.ndarray | None = None
    min_score: float = 0.5

    @property
    def found(self) -> np.ndarray:
        """bool [K]: the burst came back at least ``min_snr_db`` over the floor (and, for
        cross-correlation, its normalised correlation with the burst is at least ``min_score``)."""
        ok = np.isfinite(self.delays) & (self.snr_db >= self.min_snr_db)
        if self.score is not None:
            ok &= self.score >= self.min_score
        return ok

    @property
    def n_found(self) -> int:
        return int(self.found.sum())

    @property
    def n_bursts(self) -> int:
        return int(self.delays.shape[0])

    @property
    def delays_ms(self) -> np.ndarray:
        return 1000.0 * self.delays / self.sr

    @property
    def measured_ms(self) -> float:
        """Median delay of the found bursts (ms); NaN when none was found."""
        d = self.delays_ms[self.found]
        return float(np.median(d)) if d.size else float("nan")

    @property
    def spread_ms(self) -> float:
        """Largest minus smallest delay of the found bursts (ms); NaN when none was found."""
        d = self.delays_ms[self.found]
        return float(d.max() - d.min()) if d.size else float("nan")

    def gate(self, formula_ms: float, period_ms: float, agree_ms: float, min_bursts: int = 4) -> tuple[bool, str]:
        """Does the measurement stand, and does it equal the formula?

        Passes when at least ``min_bursts`` bursts were found, they agree within ``agree_ms``
        (largest minus smallest), and their median is within ``period_ms`` of ``formula_ms``.

        Returns
        -------
        (bool, str)
            Verdict and the reason, in words.
        """
        if self.n_found < min_bursts:
            return False, (f"only {self.n_found} of {self.n_bursts} bursts came back >= {self.min_snr_db:g} dB over "
                           f"the noise floor (need {min_bursts}): is the output looped to the input?")
        if not self.spread_ms <= agree_ms:
            return False, f"the bursts disagree by {self.spread_ms:.1f} ms (allowed {agree_ms:g} ms)"
        off = self.measured_ms - formula_ms
        if not abs(off) <= period_ms:
            return False, (f"measured {self.measured_ms:.1f} ms is {off:+.1f} ms from the formula {formula_ms:.1f} ms "
                           f"(allowed one period, {period_ms:.1f} ms)")
        return True, f"measured equals the formula within one period ({off:+.1f} ms)"

    def table(self):
        """One row per burst: delay_ms, snr_db, found."""
        import pandas as pd

        df = pd.DataFrame({"burst": np.arange(self.n_bursts), "delay_ms": self.delays_ms, "snr_db": self.snr_db})
        if self.score is not None:
            df["score"] = self.score
        df["found"] = self.found
        return df


def latency_line(estimate: LatencyEstimate, formula_ms: float, period_ms: float) -> str:
    """The line QA scripts read: ``measured latency: M ms (formula F ms, period P ms, bursts N/K agree within D ms)``."""
    return (f"measured latency: {estimate.measured_ms:.1f} ms (formula {formula_ms:.1f} ms, period {period_ms:.1f} ms, "
            f"bursts {estimate.n_found}/{estimate.n_bursts} agree within {estimate.spread_ms:.1f} ms)")


def _search_span(train: BurstTrain, k: int, min_delay: int, max_delay: int, n: int) -> tuple[int, int]:
    a = int(train.onsets[k]) + int(min_delay)
    b = int(train.onsets[k]) + int(max_delay) + train.length
    return max(0, a), min(n, b)


def xcorr_delays(recording: np.ndarray, train: BurstTrain, min_delay: int, max_delay: int,
                 min_snr_db: float = 20.0) -> LatencyEstimate:
    """Delay of each burst in ``recording`` by cross-correlation with the burst itself.

    Parameters
    ----------
    recording : np.ndarray
        float [M], same rate and time origin as ``train.signal`` (index 0 = the probe's first sample).
    train : BurstTrain
    min_delay, max_delay : int
        Range of delays searched (samples); keep ``max_delay - min_delay`` below the burst spacing.
    min_snr_db : float
        Level over the noise floor for a burst to count as found.

    Returns
    -------
    LatencyEstimate
        ``method="xcorr"``; delays with sub-sample resolution (parabolic peak); ``score`` is the
        normalised correlation at the integer peak (1 for a scaled copy).
    """
    rec = np.asarray(recording, dtype=np.float64)
    k_n = train.n_bursts
    delays = np.full(k_n, np.nan)
    power = np.zeros(k_n)
    score = np.zeros(k_n)
    busy = []
    for k in range(k_n):
        a, b = _search_span(train, k, min_delay, max_delay, rec.shape[0])
        if b - a < train.length:
            continue
        template = train.burst(k).astype(np.float64)
        lag = estimate_delay(rec[a:b], template, min_delay=0, max_delay=b - a - train.length, subsample=True)
        start = a + int(round(lag))
        seg = rec[start : start + train.length]
        delays[k] = a + lag - int(train.onsets[k])
        power[k] = float(np.mean(seg**2))
        if seg.shape[0] == train.length:
            norm = float(np.linalg.norm(seg) * np.linalg.norm(template))
            score[k] = float(np.dot(seg, template)) / norm if norm > 0 else 0.0
        busy.append((start, start + train.length))
    floor = _noise_floor(rec, busy, max(1, train.sr // 100))
    with np.errstate(divide="ignore"):
        snr = 10.0 * np.log10(np.maximum(power, 1e-300) / floor)
    snr[~np.isfinite(delays)] = -np.inf
    return LatencyEstimate(delays=delays, snr_db=snr, sr=train.sr, method="xcorr", min_snr_db=min_snr_db, score=score)


def _half_power_crossing(env: np.ndarray, start: int, stop: int, floor: float, length: int) -> tuple[float, float]:
    """Onset (fractional sample) of the loudest ``length``-long stretch of ``env[start:stop]``.

    Finds that stretch, takes its median power as the plateau, and scans forward from one burst
    length before it to the first sample above floor + (plateau - floor) / 2, interpolating
    linearly between the two samples around the crossing.  Returns (onset, plateau).
    """
    seg = env[start:stop]
    if seg.shape[0] <= length:
        return float("nan"), 0.0
    c = np.concatenate(([0.0], np.cumsum(seg)))
    best = int(np.argmax(c[length:] - c[:-length]))
    plateau = float(np.median(seg[best : best + length]))
    level = floor + 0.5 * (plateau - floor)
    scan_from = max(0, best - length)
    above = np.flatnonzero(seg[scan_from : best + length] > level)
    if above.size == 0:
        return float("nan"), plateau
    i = scan_from + int(above[0])
    if i == 0:
        return float(start), plateau
    y0, y1 = seg[i - 1], seg[i]
    frac = (level - y0) / (y1 - y0) if y1 != y0 else 0.0
    return float(start + i - 1 + frac), plateau


def onset_delays(recording: np.ndarray, train: BurstTrain, min_delay: int, max_delay: int,
                 window_s: float = 0.02, min_snr_db: float = 20.0) -> LatencyEstimate:
    """Delay of each burst by the onset of the recording's energy envelope.

    For outputs that follow the bursts in loudness only (a random-weight voice behind the
    silence gate): the onset is where a centred ``window_s`` moving average of power first
    crosses halfway (in power) from the noise floor to the burst's plateau, found the same way
    on the burst itself; the delay is the difference.  The centred window moves both crossings
    alike, and the half-power point of a symmetric rise stays where the rise is centred.

    Parameters
    ----------
    recording, train, min_delay, max_delay, min_snr_db
        As :func:`xcorr_delays`.
    window_s : float
        Length of the moving power average (s); longer smooths noise-like outputs more.

    Returns
    -------
    LatencyEstimate
        ``method="onset"``; delays with sub-sample resolution (linear interpolation).
    """
    rec = np.asarray(recording, dtype=np.float64)
    w = max(1, int(round(window_s * train.sr)))
    env = energy_envelope(rec, w)
    ref_env = energy_envelope(train.signal, w)
    k_n = train.n_bursts
    spans = [_search_span(train, k, min_delay, max_delay, rec.shape[0]) for k in range(k_n)]
    # first pass: where the bursts are, so that the floor is measured outside them
    busy = []
    for a, b in spans:
        if b - a > train.length:
            c = np.concatenate(([0.0], np.cumsum(env[a:b])))
            best = a + int(np.argmax(c[train.length:] - c[:-train.length]))
            busy.append((best - w, best + train.length + w))
    floor = _noise_floor(rec, busy, max(1, train.sr // 100))
    delays = np.full(k_n, np.nan)
    snr = np.full(k_n, -np.inf)
    for k, (a, b) in enumerate(spans):
        onset, plateau = _half_power_crossing(env, a, b, floor, train.length)
        ref_a = max(0, int(train.onsets[k]) - train.length)
        ref_onset, _ = _half_power_crossing(ref_env, ref_a, int(train.onsets[k]) + 2 * train.length, 0.0,
                                            train.length)
        if np.isfinite(onset) and np.isfinite(ref_onset):
            delays[k] = onset - ref_onset
            snr[k] = 10.0 * np.log10(max(plateau, 1e-300) / floor)
    return LatencyEstimate(delays=delays, snr_db=snr, sr=train.sr, method="onset", min_snr_db=min_snr_db)
