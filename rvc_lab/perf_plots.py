"""Figures of :mod:`rvc_lab.perf` results: cost scaling with its fitted model, per-stage cost of
streaming modes, memory over a long stream.

Same conventions as :mod:`rvc_lab.plots`: each function takes result tables and returns a new
:class:`matplotlib.figure.Figure` (object API, no pyplot state); times in milliseconds.
"""
from __future__ import annotations

import numpy as np

from rvc_lab.perf import predict_cost_ms
from rvc_lab.plots import STAGE_COLOURS, _figure


def _finish_axes(ax, ylabel: str, title: str | None = None, grid_axis: str = "both", **legend) -> None:
    """The axes set-up the figures share: y label, light grid, legend (``legend`` kwargs), optional title."""
    ax.set_ylabel(ylabel)
    ax.grid(axis=grid_axis, alpha=0.3)
    ax.legend(**legend)
    if title:
        ax.set_title(title)


_PRECISION_STYLE = {"fp32": dict(color="#1f77b4", marker="o"), "bf16": dict(color="#d62728", marker="s")}


def plot_scaling(df, fit=None, title: str | None = None):
    """Cost per block against extra_time (left) and block_time (right), measured and fitted.

    Parameters
    ----------
    df : pandas.DataFrame
        From :func:`rvc_lab.perf.scaling_table`.
    fit : pandas.DataFrame, optional
        From :func:`rvc_lab.perf.fit_cost_model`; its model is drawn as lines.

    The dashed black line is the block duration: points above it cannot run in real time.
    """
    fig, axes = _figure(11, 4.2, 1, 2)
    ax_e, ax_b = axes[0]
    for prec, d in df.groupby("precision", sort=False):
        style = _PRECISION_STYLE.get(prec, {})
        ext = d[d["sweep"].str.contains("extra")].sort_values("extra_time")
        blk = d[d["sweep"].str.contains("block")].sort_values("block_time")
        for ax, sub, xcol in ((ax_e, ext, "extra_time"), (ax_b, blk, "block_time")):
            if sub.empty:
                continue
            ax.errorbar(sub[xcol], sub["median_ms"], yerr=[np.zeros(len(sub)), sub["p95_ms"] - sub["median_ms"]],
                        linestyle="none", capsize=3, label=f"{prec} median (bar: p95)", **style)
            if fit is not None and prec in fit.index:
                xs = np.linspace(sub[xcol].min(), sub[xcol].max(), 50)
                r = sub.iloc[0]
                if xcol == "extra_time":
                    ctx = xs + r["context_s"] - r["extra_time"]
                    dec = np.full_like(xs, r["decoded_s"])
                else:  # block sweep: context and decoded length both grow with the block
                    ctx = xs + r["context_s"] - r["block_time"]
                    dec = xs + r["decoded_s"] - r["block_time"]
                ax.plot(xs, predict_cost_ms(fit, prec, ctx, dec), color=style.get("color"), alpha=0.6,
                        label=f"{prec} fit (R² {fit.loc[prec, 'r2']:.3f})")
    blk_all = df[df["sweep"].str.contains("block")]
    if not blk_all.empty:
        xs = np.linspace(blk_all["block_time"].min(), blk_all["block_time"].max(), 10)
        ax_b.plot(xs, xs * 1000, "k--", lw=1, label="real time (cost = block)")
        ax_b.set_title(f"block_time sweep (extra {blk_all['extra_time'].iloc[0]:g} s)")
    ext_all = df[df["sweep"].str.contains("extra")]
    if not ext_all.empty:
        ax_e.axhline(ext_all["block_time"].iloc[0] * 1000, color="k", ls="--", lw=1, label="real time (cost = block)")
        ax_e.set_title(f"extra_time sweep (block {ext_all['block_time'].iloc[0]:g} s)")
    ax_e.set_xlabel("extra_time (s)")
    ax_b.set_xlabel("block_time (s)")
    for ax in (ax_e, ax_b):
        _finish_axes(ax, "compute per block (ms)", fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def plot_mode_stages(table, label_col: str = "mode", title: str | None = None):
    """Stacked median stage times per mode (bars), with each mode's block p95 (black tick).

    ``table`` is :func:`rvc_lab.perf.mode_table` output (``<stage>_ms`` columns, ``p95_ms``,
    ``block_ms``); a dashed line marks the block duration.
    """
    fig, axes = _figure(max(5, 1.3 * len(table) + 2), 4.2)
    ax = axes[0][0]
    x = np.arange(len(table))
    bottom = np.zeros(len(table))
    for stage, colour in STAGE_COLOURS.items():
        col = f"{stage}_ms"
        if col not in table:
            continue
        v = table[col].fillna(0).to_numpy(float)
        if not v.any():
            continue
        ax.bar(x, v, bottom=bottom, color=colour, label=stage, width=0.6)
        bottom += v
    block_ms = float(table["block_ms"].iloc[0])
    p95 = table["p95_ms"].to_numpy(float)
    # a load spike can put a p95 far above the bars: clip the axis and print those values
    top = max(1.3 * float(bottom.max()), 1.3 * block_ms)
    shown = np.minimum(p95, top * 0.97)
    ax.scatter(x, shown, marker="_", s=400, color="k", label="block total p95", zorder=3)
    for xi, v in zip(x[p95 > top * 0.97], p95[p95 > top * 0.97]):
        ax.annotate(f"p95 {v:.0f} ms", (xi, top * 0.97), ha="center", va="top", fontsize=7)
    ax.set_ylim(0, top)
    ax.axhline(block_ms, color="k", ls="--", lw=1, label="block duration")
    ax.set_xticks(x, [str(v) for v in table[label_col]], rotation=20, ha="right", fontsize=8)
    _finish_axes(ax, "ms per block (median)", title, grid_axis="y",
                 fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def plot_memory(trace, title: str | None = None):
    """Resident memory (MiB) against stream time (minutes) from :func:`rvc_lab.perf.memory_trace`."""
    fig, axes = _figure(7, 3.5)
    ax = axes[0][0]
    minutes = trace["audio_s"] / 60
    ax.plot(minutes, trace["rss_mb"], label="RSS")
    ax.plot(minutes, trace["peak_rss_mb"], ls=":", label="peak RSS")
    ax.set_xlabel("stream time (min)")
    _finish_axes(ax, "MiB", title, fontsize=8)
    return fig
