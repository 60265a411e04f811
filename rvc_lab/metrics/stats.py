"""Statistics over many inputs: the mean with a bootstrap confidence interval.

The one home of resampling statistics in rvc_lab (the f0-bench over datasets and sweeps use it).
"""
from __future__ import annotations

import numpy as np

__all__ = ["bootstrap_mean_ci"]


def bootstrap_mean_ci(values, n_resamples: int = 1000, confidence: float = 0.95,
                      seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``values`` with a percentile bootstrap interval.

    Parameters
    ----------
    values : array-like, shape (n,)
        One figure per item (file, input); NaNs are left out.
    n_resamples : int
        Bootstrap resamples (items drawn with replacement, n per resample).
    confidence : float
        Interval coverage, e.g. 0.95 for the 2.5 and 97.5 percentiles of the resampled means.
    seed : int
        Seed of the resampling (numpy PCG64): the same values give the same interval.

    Returns
    -------
    mean, low, high : float
        NaN, NaN, NaN without values; with one value, the value three times.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if v.size == 1:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_resamples, v.size))].mean(axis=1)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return mean, float(low), float(high)
