"""Each swept parameter's effect on each metric, from a sweep's tidy results table.

A sweep's table (:func:`rvc_lab.sweep.read_results`) has one row per cell and metric. The effect of
one parameter is the metric's mean over every cell that shares one value of that parameter (the
other parameters and the inputs averaged over: a marginal mean, as in a main-effects plot), with a
bootstrap interval over those cells.  Pure pandas: plotting lives in :mod:`rvc_lab.plots`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from rvc_lab.metrics.stats import bootstrap_mean_ci
from rvc_lab.sweep.runner import RESULT_COLUMNS

#: Columns of :func:`parameter_effects`.
EFFECT_COLUMNS = ("measure", "metric", "parameter", "value", "mean", "ci_low", "ci_high", "n")


def setting_columns(table: pd.DataFrame) -> list[str]:
    """The settings columns of a results table (those between ``input`` and ``measure``)."""
    cols = list(table.columns)
    return cols[cols.index("input") + 1:cols.index("measure")]


def swept_parameters(table: pd.DataFrame) -> list[str]:
    """Settings that take more than one value in ``table`` (plus ``voice``/``input`` when they do)."""
    candidates = ["voice", "input", *setting_columns(table)]
    return [c for c in candidates if table[c].astype(str).nunique() > 1]


def parameter_effects(table: pd.DataFrame, metrics: list[str] | None = None, *,
                      parameters: list[str] | None = None, n_resamples: int = 1000) -> pd.DataFrame:
    """Marginal mean of each metric at each value of each swept parameter.

    Parameters
    ----------
    table : pandas.DataFrame
        A sweep's results (columns :data:`rvc_lab.sweep.RESULT_COLUMNS` plus the settings).
    metrics : list of str, optional
        Metric names to keep (default: every metric with at least one ``ok`` value).
    parameters : list of str, optional
        Parameters to split by (default: :func:`swept_parameters`).
    n_resamples : int
        Bootstrap resamples of the interval (seed 0, 95 %).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`EFFECT_COLUMNS`; one row per metric, parameter and value. Rows whose status
        is not ``ok`` (not computed, error) are left out; ``n`` counts the cells behind the mean.
    """
    missing = [c for c in RESULT_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"not a sweep results table: no column {missing[0]!r}")
    ok = table[(table["status"] == "ok") & np.isfinite(table["value"].astype(float))]
    if metrics is not None:
        ok = ok[ok["metric"].isin(metrics)]
    params = swept_parameters(table) if parameters is None else list(parameters)
    rows = []
    for (measure, metric), group in ok.groupby(["measure", "metric"], sort=False):
        for param in params:
            # str keys: a setting may hold None (left at its default) next to numbers
            for value, cells in group.groupby(group[param].astype(str), sort=False):
                mean, low, high = bootstrap_mean_ci(cells["value"].to_numpy(float), n_resamples=n_resamples)
                rows.append({"measure": measure, "metric": metric, "parameter": param,
                             "value": cells[param].iloc[0], "mean": mean, "ci_low": low, "ci_high": high,
                             "n": len(cells)})
    return pd.DataFrame(rows, columns=list(EFFECT_COLUMNS))
