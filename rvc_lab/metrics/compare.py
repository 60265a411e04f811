"""Whole-output and per-stage comparisons used by reference checks.

:func:`compare_audio` measures how far an output waveform is from an expected one (after
removing the delay a streaming run adds); :func:`compare_stages` walks the chain's intermediate
arrays in order and names the first stage that departs from its golden vector, which is where a
parity bug starts.
"""
from __future__ import annotations

import logging
import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from rvc_lab.metrics.align import align_signals, estimate_delay
from rvc_lab.metrics.f0 import f0_metrics
from rvc_lab.metrics.mcd import MCDConfig, mcd
from rvc_lab.metrics.spectral import (
    gain_db,
    log_spectral_distance,
    max_abs_error,
    rel_l2,
    si_sdr_db,
    snr_db,
    spectral_convergence,
)

logger = logging.getLogger(__name__)

__all__ = ["compare_audio", "compare_stages", "track_f0"]

_F0_KEYS = (
    "voicing_recall",
    "voicing_false_alarm",
    "raw_pitch_accuracy",
    "gross_pitch_error",
    "cents_mae",
    "f0_corr",
)


def track_f0(x: np.ndarray, sr: int, method: str = "harvest") -> np.ndarray:
    """F0 of a signal with WORLD (pyworld), 10 ms frames, 50-1100 Hz, Hz (0 = unvoiced).

    An analysis tool independent of the conversion chain's own F0 code, used to compare two
    outputs' melodies.

    Parameters
    ----------
    x : np.ndarray, shape (N,)
        Mono samples.
    sr : int
        Sample rate, Hz.
    method : {"harvest", "dio"}
        WORLD estimator (dio is refined with StoneMask).

    Returns
    -------
    np.ndarray, shape (floor(1000 N / sr / 10) + 1,), float64
    """
    import pyworld

    x = np.ascontiguousarray(x, dtype=np.float64)
    if method == "harvest":
        f0, _ = pyworld.harvest(x, sr, f0_floor=50.0, f0_ceil=1100.0, frame_period=10.0)
    elif method == "dio":
        f0, t = pyworld.dio(x, sr, f0_floor=50.0, f0_ceil=1100.0, frame_period=10.0)
        f0 = pyworld.stonemask(x, f0, t, sr)
    else:
        raise ValueError(f"unknown F0 method {method!r} for comparisons (harvest, dio)")
    return f0


def _stft_geometry(sr: int) -> tuple[int, int]:
    """~40 ms frames rounded up to a power of two, 75 % overlap."""
    n_fft = 1 << (int(math.ceil(0.04 * sr)) - 1).bit_length()
    return n_fft, n_fft // 4


def compare_audio(
    actual: np.ndarray,
    expected: np.ndarray,
    sr: int,
    align: bool = True,
    max_delay_s: float | None = None,
    f0_method: str | None = "harvest",
    mcd_config: MCDConfig | None = MCDConfig(),
) -> dict[str, float]:
    """Distances between an output and the expected output of the same conversion.

    Parameters
    ----------
    actual, expected : np.ndarray, shape (N,) and (M,)
        Mono waveforms at ``sr``; lengths may differ.
    sr : int
        Sample rate, Hz.
    align : bool
        Estimate ``actual``'s delay by cross-correlation and compare the overlap after removing
        it (what a streaming output needs).  Without it the first ``min(N, M)`` samples are
        compared as they are.
    max_delay_s : float, optional
        Largest delay searched, seconds (either direction); default: any.
    f0_method : {"harvest", "dio"} or None
        WORLD estimator for the melody comparison (:func:`track_f0`); None skips it (F0 keys NaN).
    mcd_config : MCDConfig or None
        Conventions of the MCD figure (default: SPTK mcep, order 24, c0 excluded, dB, no DTW);
        None skips it (``mcd_db`` NaN; SPTK analysis costs about 1 ms per 5 ms frame at 40 kHz).

    Returns
    -------
    dict
        ``sr``; ``len_actual``, ``len_expected``, ``n_compared`` (samples);
        ``delay_samples`` (positive: actual is late), ``delay_ms``;
        ``max_abs``, ``rel_l2``, ``snr_db``, ``si_sdr_db``, ``gain_db`` (level of actual over expected,
        20 log10 of the RMS ratio);
        ``spectral_convergence``, ``log_spectral_distance_db`` (base-10 dB), ``mcd_db``;
        melody of ``actual`` against ``expected`` (reference): ``f0_voicing_recall``,
        ``f0_voicing_false_alarm``, ``f0_raw_pitch_accuracy``, ``f0_gross_pitch_error``,
        ``f0_cents_mae``, ``f0_corr`` (see :func:`rvc_lab.metrics.f0.f0_metrics`).
        Figures without data (nothing overlaps, no voiced frame) are NaN.
    """
    a = np.asarray(actual, dtype=np.float64).ravel()
    e = np.asarray(expected, dtype=np.float64).ravel()
    if align:
        max_delay = None if max_delay_s is None else int(round(max_delay_s * sr))
        delay = int(estimate_delay(a, e, max_delay=max_delay))
    else:
        delay = 0
    a_al, e_al = align_signals(a, e, delay)
    n = a_al.size
    out: dict[str, float] = {
        "sr": int(sr),
        "len_actual": int(a.size),
        "len_expected": int(e.size),
        "delay_samples": delay,
        "delay_ms": 1000.0 * delay / sr,
        "n_compared": int(n),
    }
    nan = float("nan")
    if n == 0:
        logger.warning("compare_audio: no overlap after a delay of %d samples", delay)
        for key in ("max_abs", "rel_l2", "snr_db", "si_sdr_db", "gain_db", "spectral_convergence",
                    "log_spectral_distance_db", "mcd_db"):
            out[key] = nan
        for key in _F0_KEYS:
            out[key if key.startswith("f0_") else f"f0_{key}"] = nan
        return out
    n_fft, hop = _stft_geometry(sr)
    out["max_abs"] = max_abs_error(a_al, e_al)
    out["rel_l2"] = rel_l2(a_al, e_al)
    out["snr_db"] = snr_db(a_al, e_al)
    out["si_sdr_db"] = si_sdr_db(a_al, e_al)
    out["gain_db"] = gain_db(a_al, e_al)
    out["spectral_convergence"] = spectral_convergence(a_al, e_al, n_fft, hop)
    out["log_spectral_distance_db"] = log_spectral_distance(a_al, e_al, n_fft, hop)
    out["mcd_db"] = mcd(a_al, e_al, sr, mcd_config) if mcd_config is not None else nan
    if f0_method is not None:
        f0_metric_values = f0_metrics(track_f0(e_al, sr, f0_method), track_f0(a_al, sr, f0_method))
    else:
        f0_metric_values = {}
    for key in _F0_KEYS:
        out[key if key.startswith("f0_") else f"f0_{key}"] = f0_metric_values.get(key, nan)
    return out


def compare_stages(
    actual: Mapping[str, np.ndarray],
    expected: Mapping[str, np.ndarray],
    order: Sequence[str] | None = None,
    rtol: float = 1e-4,
    tolerances: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Per-stage differences of intermediate arrays and the first stage that diverges.

    Parameters
    ----------
    actual, expected : mapping of stage name -> array
        Intermediate values of one conversion (e.g. ``stages.npz``); any shapes/dtypes.
        Arrays whose shapes differ only by size-1 axes are compared after squeezing.
    order : sequence of str, optional
        Chain order of the stages (default: ``expected``'s key order, then stages only in
        ``actual``).
    rtol : float
        Largest relative L2 error a stage may have and still be "ok".
    tolerances : mapping of stage name -> float, optional
        Per-stage override of ``rtol``.

    Returns
    -------
    pandas.DataFrame
        One row per stage, in chain order, columns: ``stage``, ``status`` (``ok``,
        ``diverged``, ``shape`` (shapes differ), ``missing`` (no actual value), ``extra``
        (no expected value)), ``shape_actual``, ``shape_expected``, ``max_abs``, ``rel_l2``,
        ``frac_unequal`` (fraction of elements not exactly equal), ``tolerance``,
        ``first_divergence`` (True on the first ``diverged``/``shape`` row).
        ``df.attrs["first_diverging_stage"]`` holds that stage's name, or None.
    """
    tolerances = dict(tolerances or {})
    if order is None:
        order = list(expected) + [k for k in actual if k not in expected]
    else:
        order = list(order) + [k for k in list(expected) + list(actual) if k not in order]
        order = list(dict.fromkeys(order))
    rows = []
    first = None
    for stage in order:
        tol = float(tolerances.get(stage, rtol))
        row = {"stage": stage, "status": "", "shape_actual": None, "shape_expected": None,
               "max_abs": np.nan, "rel_l2": np.nan, "frac_unequal": np.nan, "tolerance": tol,
               "first_divergence": False}
        has_a, has_e = stage in actual, stage in expected
        a = np.asarray(actual[stage]) if has_a else None
        e = np.asarray(expected[stage]) if has_e else None
        row["shape_actual"] = tuple(a.shape) if has_a else None
        row["shape_expected"] = tuple(e.shape) if has_e else None
        if not has_a:
            row["status"] = "missing"
        elif not has_e:
            row["status"] = "extra"
        else:
            if a.shape != e.shape and np.squeeze(a).shape == np.squeeze(e).shape:
                a, e = np.squeeze(a), np.squeeze(e)
            if a.shape != e.shape:
                row["status"] = "shape"
            else:
                a64 = a.astype(np.float64)
                e64 = e.astype(np.float64)
                row["max_abs"] = max_abs_error(a64, e64) if a.size else 0.0
                row["rel_l2"] = rel_l2(a64, e64)
                row["frac_unequal"] = float(np.mean(a != e)) if a.size else 0.0
                # NaN in either side fails the comparison (NaN <= tol is False).
                row["status"] = "ok" if row["rel_l2"] <= tol and np.all(np.isfinite(a64)) else "diverged"
            if row["status"] in ("diverged", "shape") and first is None:
                first = stage
                row["first_divergence"] = True
        rows.append(row)
    df = pd.DataFrame(rows, columns=["stage", "status", "shape_actual", "shape_expected", "max_abs",
                                     "rel_l2", "frac_unequal", "tolerance", "first_divergence"])
    df.attrs["first_diverging_stage"] = first
    return df
