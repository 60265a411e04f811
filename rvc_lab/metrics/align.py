"""Delay estimation and alignment of two recordings of (nearly) the same signal.

A streaming converter's output is late by its algorithmic latency, and an offline chain may
shift by a few samples: every comparison of waveforms first estimates that delay by
cross-correlation and then compares only the overlapping part.

Sign convention used throughout: a **positive delay d means ``actual`` is late**, i.e.
``actual[n] ~ expected[n - d]``.
"""
from __future__ import annotations

import numpy as np
import scipy.signal

__all__ = ["estimate_delay", "align_signals", "apply_delay"]


def _as_1d_float(x: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{what} must be 1-D (mono samples), got shape {a.shape}")
    return a


def estimate_delay(
    actual: np.ndarray,
    expected: np.ndarray,
    max_delay: int | None = None,
    min_delay: int | None = None,
    subsample: bool = False,
) -> float | int:
    """Delay of ``actual`` relative to ``expected`` from the peak of their cross-correlation.

    Parameters
    ----------
    actual, expected : np.ndarray, shape (N,) and (M,)
        Mono signals at the same sample rate (any rate; the result is in samples).
    max_delay : int, optional
        Largest lag considered, in samples (default: any lag the two lengths allow).  Restricting
        it matters for periodic signals, whose correlation peaks once per period.
    min_delay : int, optional
        Smallest (most negative) lag considered, in samples (default ``-max_delay``, or any).
    subsample : bool
        Refine the integer peak with a parabola through the peak and its two neighbours and
        return a float (fractional samples).

    Returns
    -------
    int or float
        Delay d in samples; ``actual[n] ~ expected[n - d]`` (positive: ``actual`` is late).
        0 when either signal is all zeros.

    Notes
    -----
    The raw (unnormalised) cross-correlation ``c[k] = sum_n actual[n + k] * expected[n]`` is
    maximised over lags k; the signed maximum is used, so a polarity-inverted output is not
    mistaken for an aligned one (its SNR then shows the inversion).
    """
    a = _as_1d_float(actual, "actual")
    e = _as_1d_float(expected, "expected")
    if a.size == 0 or e.size == 0 or not np.any(a) or not np.any(e):
        return 0.0 if subsample else 0
    corr = scipy.signal.correlate(a, e, mode="full", method="fft")
    lags = scipy.signal.correlation_lags(a.size, e.size, mode="full")
    lo = -np.inf if min_delay is None else min_delay
    if min_delay is None and max_delay is not None:
        lo = -max_delay
    hi = np.inf if max_delay is None else max_delay
    allowed = (lags >= lo) & (lags <= hi)
    if not np.any(allowed):
        raise ValueError(f"no lag in [{lo}, {hi}] fits signals of lengths {a.size} and {e.size}")
    idx_allowed = np.flatnonzero(allowed)
    best = idx_allowed[np.argmax(corr[allowed])]
    delay = int(lags[best])
    if not subsample:
        return delay
    if best == 0 or best == corr.size - 1:
        return float(delay)
    y0, y1, y2 = corr[best - 1], corr[best], corr[best + 1]
    denom = y0 - 2.0 * y1 + y2
    # Parabola vertex; denom < 0 at a true maximum.  A flat top gives no refinement.
    frac = 0.5 * (y0 - y2) / denom if denom < 0 else 0.0
    return float(delay + frac)


def align_signals(actual: np.ndarray, expected: np.ndarray, delay: int) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping parts of two signals once ``actual``'s delay is removed.

    Parameters
    ----------
    actual, expected : np.ndarray, shape (N,) and (M,)
        Mono signals, same sample rate.
    delay : int
        Delay of ``actual`` in samples (see :func:`estimate_delay`): ``actual[n] ~ expected[n - delay]``.

    Returns
    -------
    (np.ndarray, np.ndarray)
        ``(a, e)`` of equal length L = the overlap, with ``a[i] ~ e[i]``; dtype as given.
    """
    a = np.asarray(actual)
    e = np.asarray(expected)
    d = int(delay)
    if d >= 0:
        a = a[d:]
    else:
        e = e[-d:]
    n = max(0, min(a.shape[0], e.shape[0]))
    return a[:n], e[:n]


def apply_delay(x: np.ndarray, delay: int, length: int | None = None) -> np.ndarray:
    """Shift a signal later by ``delay`` samples (earlier when negative), zero-filling.

    Parameters
    ----------
    x : np.ndarray, shape (N,)
    delay : int
        Samples; ``y[n] = x[n - delay]`` where defined, 0 elsewhere.
    length : int, optional
        Output length (default N).

    Returns
    -------
    np.ndarray, shape (length,), dtype of ``x``.
    """
    x = np.asarray(x)
    n = x.shape[0] if length is None else int(length)
    y = np.zeros(n, dtype=x.dtype)
    d = int(delay)
    src_start = max(0, -d)
    dst_start = max(0, d)
    count = min(x.shape[0] - src_start, n - dst_start)
    if count > 0:
        y[dst_start : dst_start + count] = x[src_start : src_start + count]
    return y
