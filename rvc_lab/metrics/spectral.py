"""Waveform and spectral distances between an output (``actual``) and a reference (``expected``).

All functions take equal-length mono arrays at one sample rate (align them first with
:mod:`rvc_lab.metrics.align`), compute in float64 and return Python floats.  Decibel figures
use the base-10 logarithm (``10 log10`` of a power ratio, ``20 log10`` of an amplitude ratio).
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "max_abs_error",
    "rel_l2",
    "mean_frame_cosine",
    "snr_db",
    "si_sdr_db",
    "stft_magnitude",
    "spectral_convergence",
    "log_spectral_distance",
]


def _pair(actual: np.ndarray, expected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        raise ValueError(f"shapes differ: actual {a.shape} vs expected {e.shape} (align first)")
    return a, e


def _ratio_db(num: float, den: float) -> float:
    """10 log10(num/den) with the limits spelled out (num, den >= 0 are energies)."""
    if den == 0.0:
        return float("inf") if num > 0 else float("nan")
    if num == 0.0:
        return float("-inf")
    return float(10.0 * np.log10(num / den))


def max_abs_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| over all elements (units of the inputs); NaN for empty input."""
    a, e = _pair(actual, expected)
    return float(np.max(np.abs(a - e))) if a.size else float("nan")


def rel_l2(actual: np.ndarray, expected: np.ndarray) -> float:
    """Relative L2 error ``||actual - expected||_2 / ||expected||_2`` (dimensionless).

    Returns 0 when both are zero and +inf when only ``expected`` is zero.
    """
    a, e = _pair(actual, expected)
    num = float(np.linalg.norm((a - e).ravel()))
    den = float(np.linalg.norm(e.ravel()))
    if den == 0.0:
        return 0.0 if num == 0.0 else float("inf")
    return num / den


def mean_frame_cosine(actual: np.ndarray, expected: np.ndarray) -> float:
    """Mean over frames of the cosine similarity of two feature sequences (1 = same directions).

    Parameters
    ----------
    actual, expected : np.ndarray, shape (..., D)
        Frames along every axis but the last (e.g. content features [1, T, C]); same shape.
    """
    a, e = _pair(actual, expected)
    a, e = a.reshape(-1, a.shape[-1]), e.reshape(-1, e.shape[-1])
    cos = np.sum(a * e, axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(e, axis=1), 1e-12)
    return float(np.mean(cos))


def gain_db(actual: np.ndarray, expected: np.ndarray) -> float:
    """Level of ``actual`` relative to ``expected`` in dB: ``10 log10(sum a^2 / sum e^2)`` over the overlap."""
    a, e = _pair(actual, expected)
    return _ratio_db(float(np.sum(a * a)), float(np.sum(e * e)))


def snr_db(actual: np.ndarray, expected: np.ndarray) -> float:
    """Signal-to-noise ratio of ``actual`` against ``expected``, in dB.

    ``10 log10( sum expected^2 / sum (actual - expected)^2 )``; +inf for identical signals.
    """
    a, e = _pair(actual, expected)
    return _ratio_db(float(np.sum(e * e)), float(np.sum((a - e) ** 2)))


def si_sdr_db(actual: np.ndarray, expected: np.ndarray, zero_mean: bool = False) -> float:
    """Scale-invariant signal-to-distortion ratio (Le Roux et al., 2019), in dB.

    The reference is scaled to its least-squares fit of the estimate,
    ``target = (<actual, expected> / ||expected||^2) expected``, and
    ``SI-SDR = 10 log10( ||target||^2 / ||actual - target||^2 )``.

    Parameters
    ----------
    actual, expected : np.ndarray, shape (N,)
    zero_mean : bool
        Subtract each signal's mean first (the "SI-SNR" variant of some toolkits).

    Returns
    -------
    float
        dB; +inf when ``actual`` is an exact multiple of ``expected``; NaN when ``expected`` is
        all zeros.
    """
    a, e = _pair(actual, expected)
    if zero_mean:
        a = a - a.mean()
        e = e - e.mean()
    ee = float(np.dot(e, e))
    if ee == 0.0:
        return float("nan")
    target = (float(np.dot(a, e)) / ee) * e
    return _ratio_db(float(np.dot(target, target)), float(np.sum((a - target) ** 2)))


def stft_magnitude(x: np.ndarray, n_fft: int = 1024, hop_length: int = 256) -> np.ndarray:
    """Magnitude STFT with a periodic Hann window, frames fully inside the signal.

    Parameters
    ----------
    x : np.ndarray, shape (N,)
        Mono samples.
    n_fft : int
        Frame and FFT length in samples.
    hop_length : int
        Frame step in samples.

    Returns
    -------
    np.ndarray, shape (n_frames, n_fft // 2 + 1), float64
        ``|rfft(window * frame)|``; frame k covers samples ``[k*hop, k*hop + n_fft)``.  A signal
        shorter than ``n_fft`` is zero-padded to one frame.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"expected mono samples, got shape {x.shape}")
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    n_frames = 1 + (x.size - n_fft) // hop_length
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop_length][:n_frames]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    return np.abs(np.fft.rfft(frames * window, axis=-1))


def spectral_convergence(
    actual: np.ndarray, expected: np.ndarray, n_fft: int = 1024, hop_length: int = 256
) -> float:
    """Spectral convergence ``|| |S_e| - |S_a| ||_F / || |S_e| ||_F`` (dimensionless).

    ``S`` is :func:`stft_magnitude` of each signal; ``expected`` is the reference.  0 for
    identical magnitudes; ``|1 - g|`` when ``actual = g * expected``.
    """
    a, e = _pair(actual, expected)
    sa = stft_magnitude(a, n_fft, hop_length)
    se = stft_magnitude(e, n_fft, hop_length)
    den = float(np.linalg.norm(se))
    num = float(np.linalg.norm(se - sa))
    if den == 0.0:
        return 0.0 if num == 0.0 else float("inf")
    return num / den


def log_spectral_distance(
    actual: np.ndarray,
    expected: np.ndarray,
    n_fft: int = 1024,
    hop_length: int = 256,
    power_floor: float = 1e-10,
) -> float:
    """Log-spectral distance in dB (base-10 logarithm), averaged over frames.

    ``LSD = mean_frames sqrt( mean_bins ( 10 log10 (P_e + floor) - 10 log10 (P_a + floor) )^2 )``
    with ``P = |S|^2`` the power STFT (:func:`stft_magnitude` squared).

    Parameters
    ----------
    actual, expected : np.ndarray, shape (N,)
    n_fft, hop_length : int
        STFT frame and hop, samples.
    power_floor : float
        Added to every power value before the logarithm so silent bins do not dominate
        (absolute, in squared sample units; 1e-10 = -100 dB).

    Returns
    -------
    float
        dB; ``|20 log10 g|`` when ``actual = g * expected`` (floor negligible).
    """
    a, e = _pair(actual, expected)
    pa = stft_magnitude(a, n_fft, hop_length) ** 2
    pe = stft_magnitude(e, n_fft, hop_length) ** 2
    diff_db = 10.0 * np.log10(pe + power_floor) - 10.0 * np.log10(pa + power_floor)
    return float(np.mean(np.sqrt(np.mean(diff_db**2, axis=-1))))
