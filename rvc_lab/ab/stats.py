"""The per-input table of an A/B study -> one summary row per metric.

Means carry a 95 % percentile bootstrap interval (:func:`rvc_lab.metrics.stats.bootstrap_mean_ci`,
1000 resamples, seed 0).  Per-spec metrics get a paired two-sided Wilcoxon signed-rank test of B
against A (``scipy.stats.wilcoxon``); it is reported as not computed, with the reason, when
fewer than :data:`MIN_WILCOXON` inputs have both values or every difference is zero.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from rvc_lab.metrics.stats import bootstrap_mean_ci

MIN_WILCOXON = 6
SUMMARY_COLUMNS = ["metric", "group", "kind", "n", "a_mean", "a_ci_low", "a_ci_high", "b_mean", "b_ci_low",
                   "b_ci_high", "diff_mean", "diff_ci_low", "diff_ci_high", "p_value", "test", "note"]


def paired_wilcoxon(a, b) -> tuple[float, str]:
    """Two-sided Wilcoxon signed-rank p-value of ``b - a`` over inputs with both values.

    Returns
    -------
    p_value, test : float, str
        ``test`` is "wilcoxon" when computed, else "not computed: <reason>" (p NaN).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    d = b[ok] - a[ok]
    if d.size < MIN_WILCOXON:
        return float("nan"), f"not computed: n={d.size} < {MIN_WILCOXON} paired inputs"
    if np.all(d == 0):
        return float("nan"), "not computed: every difference is zero"
    from scipy.stats import wilcoxon

    return float(wilcoxon(b[ok], a[ok]).pvalue), "wilcoxon"


def summarize(per_input: pd.DataFrame, skipped: dict, notes: dict | None = None) -> pd.DataFrame:
    """One row per metric (columns :data:`SUMMARY_COLUMNS`).

    Parameters
    ----------
    per_input : DataFrame
        Columns ``input, metric, group, kind, a, b, diff`` (pairwise rows: value in ``diff``).
    skipped : dict
        ``{metric: reason}`` of metrics that were not computed (a row each, values NaN).
    notes : dict, optional
        ``{group: text}`` added to every row of that group (the honest-interpretation line).
    """
    from rvc_lab.ab.metrics import METRICS

    notes = notes or {}
    rows = []
    for metric, (group, kind) in METRICS.items():
        row = dict.fromkeys(SUMMARY_COLUMNS, float("nan"))
        row.update(metric=metric, group=group, kind=kind, n=0, test="", note=notes.get(group, ""))
        if metric in skipped:
            row.update(test="not computed", note="; ".join(x for x in (f"skipped: {skipped[metric]}",
                                                                         row["note"]) if x))
            rows.append(row)
            continue
        sub = per_input[per_input["metric"] == metric]
        if sub.empty:
            continue
        d = sub["diff"].to_numpy(np.float64)
        row["n"] = int(np.isfinite(d).sum()) if kind == "pairwise" else int(
            (np.isfinite(sub["a"].to_numpy(np.float64)) & np.isfinite(sub["b"].to_numpy(np.float64))).sum())
        row["diff_mean"], row["diff_ci_low"], row["diff_ci_high"] = _ci(d)
        if kind == "per_spec":
            a, b = sub["a"].to_numpy(np.float64), sub["b"].to_numpy(np.float64)
            row["a_mean"], row["a_ci_low"], row["a_ci_high"] = _ci(a)
            row["b_mean"], row["b_ci_low"], row["b_ci_high"] = _ci(b)
            row["p_value"], row["test"] = paired_wilcoxon(a, b)
        else:
            row["test"] = "none (one value per input: A against B)"
        rows.append(row)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _ci(v) -> tuple[float, float, float]:
    """Mean and 95 % bootstrap interval; +-inf values (SNR of identical outputs) kept as the mean."""
    v = np.asarray(v, np.float64)
    if v.size and np.all(np.isinf(v)) and len(set(v.tolist())) == 1:
        return float(v[0]), float(v[0]), float(v[0])  # identical outputs: SNR inf, exactly
    return bootstrap_mean_ci(v, n_resamples=1000, confidence=0.95, seed=0)
