"""F0 tracking accuracy on a common frame grid.

The five melody metrics follow ``mir_eval.melody`` (Salamon et al.'s definitions) for binary
voicing, computed here directly on two equal-length frame sequences; ``tests/test_metrics.py``
checks them against ``mir_eval.melody.evaluate``.  Four more describe pitch errors on frames
voiced in both.  Where a metric's denominator is empty (e.g. false alarms on a signal without
unvoiced frames) the value is NaN, not mir_eval's placeholder 0 or 1.

Conventions: F0 in Hz, 0 (or any value <= 0) = unvoiced; cents are ``1200 log2(f / 10 Hz)``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["hz_to_cents", "f0_metrics", "track_on_times", "F0_METRIC_NAMES", "MIR_EVAL_KEYS"]

#: Keys of :func:`f0_metrics`' result that are rates or scores (the counts are separate).
F0_METRIC_NAMES = (
    "voicing_recall",
    "voicing_false_alarm",
    "raw_pitch_accuracy",
    "raw_chroma_accuracy",
    "overall_accuracy",
    "gross_pitch_error",
    "octave_error_rate",
    "cents_mae",
    "f0_corr",
)

#: Our key -> the key ``mir_eval.melody.evaluate`` uses for the same quantity.
MIR_EVAL_KEYS = {
    "voicing_recall": "Voicing Recall",
    "voicing_false_alarm": "Voicing False Alarm",
    "raw_pitch_accuracy": "Raw Pitch Accuracy",
    "raw_chroma_accuracy": "Raw Chroma Accuracy",
    "overall_accuracy": "Overall Accuracy",
}


def hz_to_cents(f0_hz: np.ndarray, base_hz: float = 10.0) -> np.ndarray:
    """``1200 log2(f / base_hz)`` for f > 0, 0 elsewhere (mir_eval's convention, base 10 Hz)."""
    f = np.asarray(f0_hz, dtype=np.float64)
    out = np.zeros(f.shape)
    pos = f > 0
    out[pos] = 1200.0 * np.log2(f[pos] / base_hz)
    return out


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else float("nan")


def f0_metrics(
    ref_f0_hz: np.ndarray,
    est_f0_hz: np.ndarray,
    ref_voiced: np.ndarray | None = None,
    est_voiced: np.ndarray | None = None,
    cent_tolerance: float = 50.0,
    gross_error_ratio: float = 0.2,
) -> dict[str, float]:
    """Voicing and pitch accuracy of an F0 track against a reference on the same frames.

    Parameters
    ----------
    ref_f0_hz, est_f0_hz : np.ndarray, shape (T,)
        Reference and estimated F0 per frame, Hz; <= 0 means unvoiced (no pitch).
    ref_voiced, est_voiced : np.ndarray of bool, shape (T,), optional
        Explicit voicing decisions; default ``f0 > 0``.  A frame with F0 <= 0 is unvoiced even
        when flagged voiced (mir_eval does the same).  An estimate may carry a pitch in frames it
        calls unvoiced: raw pitch/chroma accuracy use that pitch, the other metrics do not.
    cent_tolerance : float
        Pitch within this many cents of the reference counts as correct (strictly less).
    gross_error_ratio : float
        Gross pitch error threshold: ``|est / ref - 1| > gross_error_ratio`` (0.2 = 20 %).

    Returns
    -------
    dict
        Rates in [0, 1] unless stated; NaN where the denominator is empty:

        - ``voicing_recall``: ref-voiced frames the estimate calls voiced / ref-voiced frames.
        - ``voicing_false_alarm``: ref-unvoiced frames called voiced / ref-unvoiced frames.
        - ``raw_pitch_accuracy``: ref-voiced frames whose estimated pitch is within
          ``cent_tolerance`` / ref-voiced frames (voicing decision ignored).
        - ``raw_chroma_accuracy``: same, with the error folded to the nearest octave.
        - ``overall_accuracy``: (voiced-in-both with correct pitch + unvoiced-in-both) / frames.
        - ``gross_pitch_error``: voiced-in-both frames with ``|est/ref - 1| > gross_error_ratio``
          / voiced-in-both frames.
        - ``octave_error_rate``: voiced-in-both frames whose error is within ``cent_tolerance``
          of a non-zero whole number of octaves / voiced-in-both frames.
        - ``cents_mae``: mean |est - ref| in cents over voiced-in-both frames.
        - ``f0_corr``: Pearson correlation of F0 in Hz over voiced-in-both frames (NaN with
          fewer than 2 frames or a constant track, e.g. a steady tone).
        - counts ``n_frames``, ``n_ref_voiced``, ``n_both_voiced``.
    """
    ref = np.asarray(ref_f0_hz, dtype=np.float64)
    est = np.asarray(est_f0_hz, dtype=np.float64)
    if ref.ndim != 1 or est.shape != ref.shape:
        raise ValueError(f"F0 tracks must be 1-D and of equal length, got {ref.shape} and {est.shape}")
    ref_has = ref > 0
    est_has = est > 0
    rv = ref_has if ref_voiced is None else (np.asarray(ref_voiced, dtype=bool) & ref_has)
    ev = est_has if est_voiced is None else (np.asarray(est_voiced, dtype=bool) & est_has)

    ref_c = hz_to_cents(ref)
    est_c = hz_to_cents(est)
    pitched = ref_has & est_has  # both carry a pitch (voicing aside), as mir_eval's nonzero_freqs
    diff = np.where(pitched, est_c - ref_c, 0.0)
    abs_diff = np.abs(diff)
    correct = pitched & (abs_diff < cent_tolerance)
    octaves = np.floor(abs_diff / 1200.0 + 0.5)
    chroma_correct = pitched & (np.abs(abs_diff - 1200.0 * octaves) < cent_tolerance)

    n = ref.size
    n_rv = int(rv.sum())
    n_ru = n - n_rv
    both = rv & ev
    n_both = int(both.sum())

    ratio = np.divide(est, ref, out=np.ones_like(ref), where=ref > 0)
    gross = both & (np.abs(ratio - 1.0) > gross_error_ratio)
    octave_err = both & (octaves >= 1) & (np.abs(abs_diff - 1200.0 * octaves) < cent_tolerance)

    if n_both >= 2 and np.std(ref[both]) > 0 and np.std(est[both]) > 0:
        corr = float(np.corrcoef(ref[both], est[both])[0, 1])
    else:
        corr = float("nan")

    return {
        "voicing_recall": _ratio(np.sum(rv & ev), n_rv),
        "voicing_false_alarm": _ratio(np.sum(~rv & ev), n_ru),
        "raw_pitch_accuracy": _ratio(np.sum(rv & correct), n_rv),
        "raw_chroma_accuracy": _ratio(np.sum(rv & chroma_correct), n_rv),
        "overall_accuracy": _ratio(np.sum(both & correct) + np.sum(~rv & ~ev), n),
        "gross_pitch_error": _ratio(np.sum(gross), n_both),
        "octave_error_rate": _ratio(np.sum(octave_err), n_both),
        "cents_mae": float(np.mean(abs_diff[both])) if n_both else float("nan"),
        "f0_corr": corr,
        "n_frames": int(n),
        "n_ref_voiced": n_rv,
        "n_both_voiced": n_both,
    }


def track_on_times(f0_hz: np.ndarray, times_s: np.ndarray, new_times_s: np.ndarray) -> np.ndarray:
    """An F0 track moved onto another time grid, as ``mir_eval.melody`` resamples an estimate.

    Used to score a 10 ms track against a reference on its own grid (a dataset's 20 ms or
    128/44100 s hop): frequencies are interpolated linearly between voiced frames, voicing is
    held from the frame at or before each new time (zeroth order), and new times past the end
    are unvoiced.

    Parameters
    ----------
    f0_hz : np.ndarray, shape (T,)
        Hz, <= 0 unvoiced.
    times_s : np.ndarray, shape (T,)
        Increasing frame times of ``f0_hz``, s.
    new_times_s : np.ndarray, shape (M,)
        Where the track is wanted, s (>= 0).

    Returns
    -------
    np.ndarray, shape (M,)
        Hz, 0 unvoiced.
    """
    import mir_eval.melody

    f0 = np.asarray(f0_hz, dtype=np.float64)
    voiced = (f0 > 0).astype(np.float64)
    freq, voicing = mir_eval.melody.resample_melody_series(
        np.asarray(times_s, dtype=np.float64), np.where(f0 > 0, f0, 0.0), voiced,
        np.asarray(new_times_s, dtype=np.float64), kind="linear")
    return np.where(voicing > 0.5, freq, 0.0)
