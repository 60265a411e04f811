"""Matplotlib figures shared by the notebooks and the HTML report.

Every function takes plain results (DataFrames from :mod:`rvc_lab.f0bench`,
:mod:`rvc_lab.parity`, :mod:`rvc_lab.instrument`) and returns a new :class:`matplotlib.figure.Figure`
built with the object API (no pyplot state, so figures can be made from threads and in headless
runs); :func:`figure_to_png` turns one into PNG bytes for embedding.  Times are in milliseconds,
F0 in Hz, durations in seconds.
"""
from __future__ import annotations

import base64
import io

import numpy as np

from rvc_lab.instrument import STAGES
from rvc_lab.metrics.align import align_signals

#: Colours of the chain's stages (also the stacking order of the latency plots).
STAGE_COLOURS = {
    "noise_reduce": "#8c564b",
    "input_resample": "#7f7f7f",
    "content_features": "#1f77b4",
    "retrieval": "#17becf",
    "f0": "#2ca02c",
    "generator": "#d62728",
    "output_resample": "#bcbd22",
    "rms_mix": "#9467bd",
    "sola_crossfade": "#ff7f0e",
}


def _figure(width: float = 8.0, height: float = 4.0, nrows: int = 1, ncols: int = 1, **kw):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def figure_to_png(fig, dpi: int = 110) -> bytes:
    """PNG bytes of a figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def figure_to_data_uri(fig, dpi: int = 110) -> str:
    """``data:image/png;base64,...`` of a figure, for self-contained HTML."""
    return "data:image/png;base64," + base64.b64encode(figure_to_png(fig, dpi)).decode("ascii")


# ----------------------------------------------------------------------------- F0 accuracy
def plot_f0_accuracy(results, metric: str = "raw_pitch_accuracy", title: str | None = None):
    """Heat map of one F0 metric, methods x test signals (from :func:`rvc_lab.f0bench.run_f0_bench`).

    Cells that did not run (skipped/error) are grey and marked with a dash.
    """
    ok = results[results["status"] == "ok"]
    methods = list(dict.fromkeys(results["method"]))
    signals = list(dict.fromkeys(results["signal"]))
    table = ok.pivot_table(index="method", columns="signal", values=metric, aggfunc="mean")
    table = table.reindex(index=methods, columns=signals)
    values = table.to_numpy(dtype=float)
    fig, axes = _figure(max(6.0, 0.55 * len(signals) + 2.5), 0.45 * len(methods) + 2.2)
    ax = axes[0, 0]
    higher_better = metric in UNIT_SCORES + ("f0_corr",)
    cmap = "viridis" if higher_better else "viridis_r"
    vmin, vmax, clip_note = heatmap_limits(values, metric)
    masked = np.ma.masked_invalid(values)
    import matplotlib

    cm = matplotlib.colormaps[cmap].with_extremes(bad="#dddddd")
    im = ax.imshow(masked, cmap=cm, vmin=vmin, vmax=vmax, aspect="auto")
    norm = im.norm
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            if np.isfinite(v):
                r, g_, b, _ = cm(norm(v))
                dark = 0.299 * r + 0.587 * g_ + 0.114 * b < 0.5  # text colour by the cell's luminance
                ax.text(j, i, f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
            else:
                ax.text(j, i, "–", ha="center", va="center", fontsize=7, color="black")
    ax.set_xticks(range(len(signals)), signals, rotation=50, ha="right", fontsize=8)
    ax.set_yticks(range(len(methods)), methods, fontsize=9)
    ax.set_title(title or f"{metric.replace('_', ' ')} per method and test signal")
    cbar = fig.colorbar(im, ax=ax, shrink=0.8, extend="max" if clip_note else "neither")
    cbar.set_label(metric.replace("_", " ") + (f"\n({clip_note})" if clip_note else ""), fontsize=8)
    return fig


#: Fixed colour scales (lo, hi, unit) of error metrics of the F0 heat map: one octave error
#: (1200 cents and more) must not make every other cell the same colour.
ERROR_SCALES = {"cents_mae": (0.0, 100.0, "cents")}
#: Metrics in [0, 1] where higher is better (colour scale 0..1).
UNIT_SCORES = ("raw_pitch_accuracy", "raw_chroma_accuracy", "overall_accuracy", "voicing_recall")


def heatmap_limits(values: np.ndarray, metric: str) -> tuple[float, float, str]:
    """Colour limits of the F0 heat map, and the note saying where the scale is clipped.

    Parameters
    ----------
    values : np.ndarray
        The cells (NaN: did not run).
    metric : str

    Returns
    -------
    vmin, vmax : float
        Scores in [0, 1] (:data:`UNIT_SCORES`): 0..1.  Metrics of :data:`ERROR_SCALES`: their fixed
        range.  Other error metrics: the finite range, its top clipped to the 95th percentile when
        the largest cell lies further above that percentile than the percentile above the smallest.
        ``f0_corr``: the finite range.
    note : str
        Empty when no cell lies beyond the scale, else e.g. ``"colour clipped at 100 cents; cells
        show the value"``.
    """
    finite = values[np.isfinite(values)]
    if metric in UNIT_SCORES or not finite.size:
        return 0.0, 1.0, ""
    lo, hi = float(finite.min()), float(finite.max())
    if metric in ERROR_SCALES:
        fixed_lo, fixed_hi, unit = ERROR_SCALES[metric]
        note = f"colour clipped at {fixed_hi:g} {unit}; cells show the value" if hi > fixed_hi else ""
        return fixed_lo, fixed_hi, note
    p95 = float(np.percentile(finite, 95))
    if metric != "f0_corr" and hi - p95 > p95 - lo > 0:
        return lo, p95, f"colour clipped at the 95th percentile, {p95:.3g}; cells show the value"
    return lo, (hi if hi > lo else lo + 1.0), ""


def plot_f0_tracks(times: np.ndarray, truth_hz: np.ndarray, estimates: dict, title: str = ""):
    """Estimated vs true F0 over time (unvoiced frames, F0 = 0, are not drawn).

    Parameters
    ----------
    times : np.ndarray
        Frame instants (s), shape (T,).
    truth_hz : np.ndarray
        True F0 (Hz, 0 = unvoiced), shape (T,).
    estimates : dict[str, np.ndarray]
        Method -> estimated F0 (Hz), each of shape (T,).
    """
    fig, axes = _figure(8.0, 3.6)
    ax = axes[0, 0]
    t = np.asarray(times, dtype=float)
    truth = np.where(np.asarray(truth_hz) > 0, truth_hz, np.nan)
    ax.plot(t, truth, color="black", lw=3, alpha=0.35, label="truth")
    for name, f0 in estimates.items():
        f0 = np.asarray(f0, dtype=float)
        n = min(len(f0), len(t))
        ax.plot(t[:n], np.where(f0[:n] > 0, f0[:n], np.nan), lw=1.2, label=name)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("F0 (Hz)")
    finite = truth[np.isfinite(truth)]
    if finite.size and finite.max() / max(finite.min(), 1) > 3:
        from matplotlib.ticker import LogLocator, ScalarFormatter

        ax.set_yscale("log")  # a sweep over octaves reads best on a log axis, labelled in plain Hz
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(ScalarFormatter() if finite.max() / finite.min() < 10 else "")
    ax.set_title(title or "estimated vs true F0")
    ax.legend(fontsize=8, ncol=4, loc="best")
    ax.grid(alpha=0.3)
    return fig


def plot_f0_speed(summary):
    """Bar chart of milliseconds per second of audio per method (:func:`rvc_lab.f0bench.bench_summary`)."""
    fig, axes = _figure(6.0, 3.0)
    ax = axes[0, 0]
    s = summary.dropna(subset=["ms_per_s"])
    ax.barh(list(s.index), s["ms_per_s"], color="#1f77b4")
    ax.set_xscale("log")
    ax.set_xlabel("ms of computation per second of audio (log)")
    ax.invert_yaxis()
    ax.grid(alpha=0.3, axis="x")
    ax.set_title("F0 method cost on this machine")
    return fig


# ----------------------------------------------------------------------------- parity
PARITY_PANELS = (
    ("features_rel_l2", "content features: rel. L2", False),
    ("f0_cents_mae", "F0 input: mean |error| (cents)", False),
    ("generator_spectral_convergence", "generator: spectral convergence", False),
    ("output_mcd_db", "output: MCD (dB)", False),
    ("output_snr_db", "output: SNR (dB)", True),
    ("output_f0_corr", "output: F0 correlation", True),
)


#: Line styles and markers of lines that may coincide, in drawing order
OVERLAP_LINESTYLES = ("-", "--", ":", "-.")
OVERLAP_MARKERS = ("o", "s", "^", "D", "v", "x")


def overlap_style(i: int) -> dict:
    """``Axes.plot`` keywords of the ``i``-th of several lines that may lie on top of each other.

    Each later line is drawn above the earlier ones with a smaller marker and another dash
    pattern, so two lines at equal values show both: the earlier marker rings the later one and
    the dashes let the earlier line through.
    """
    return {"linestyle": OVERLAP_LINESTYLES[i % len(OVERLAP_LINESTYLES)],
            "marker": OVERLAP_MARKERS[i % len(OVERLAP_MARKERS)],
            "markersize": max(9.0 - 3.5 * i, 3.0), "markerfacecolor": "none" if i == 0 else None,
            "markeredgewidth": 1.5, "zorder": 2 + i}


def plot_parity_sweep(sweep, x: str = "extra_time", panels=PARITY_PANELS):
    """Streaming-vs-offline divergence against ``x`` (one line per other setting).

    Parameters
    ----------
    sweep : pandas.DataFrame
        :func:`rvc_lab.parity.parity_sweep` output.
    x : {"extra_time", "block_time"}
    """
    other = "block_time" if x == "extra_time" else "extra_time"
    panels = [p for p in panels if p[0] in sweep]
    ncols = 3
    nrows = max(1, int(np.ceil(len(panels) / ncols)))
    fig, axes = _figure(10.0, 2.8 * nrows, nrows, ncols)
    for ax, (col, label, higher_better) in zip(axes.flat, panels):
        for i, (val, grp) in enumerate(sweep.groupby(other, sort=True)):
            g = grp.sort_values(x)
            ax.plot(g[x], g[col], label=f"{other.replace('_', ' ')} {val:g} s", **overlap_style(i))
        ax.set_title(label + (" ↑" if higher_better else " ↓"), fontsize=9)
        ax.set_xlabel(f"{x.replace('_', ' ')} (s)")
        ax.grid(alpha=0.3)
        vals = sweep[col].to_numpy(dtype=float)
        vals = vals[np.isfinite(vals)]
        if vals.size:
            lo, hi = float(vals.min()), float(vals.max())
            if not higher_better and lo >= 0:
                ax.set_ylim(0, hi * 1.15 if hi > 0 else 1.0)  # error figures from zero: no magnified noise
            else:
                span = max(hi - lo, 0.05 * max(abs(lo), abs(hi)), 1e-3)
                mid = 0.5 * (lo + hi)
                ax.set_ylim(mid - 0.75 * span, mid + 0.75 * span)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7, title="equal values overlap:\nmarkers nest, dashes differ", title_fontsize=6)
    fig.suptitle("streaming vs offline: divergence per stage (arrows: better direction)", fontsize=10)
    return fig


def plot_parity_blocks(result):
    """Per-block divergence of one :class:`rvc_lab.parity.ParityResult` (features, F0, generator)."""
    b = result.blocks
    fig, axes = _figure(9.0, 5.2, 3, 1, sharex=True)
    items = (("feat_rel_l2", "features rel. L2", "#1f77b4"), ("f0_cents_mae", "F0 |error| (cents)", "#2ca02c"),
             ("gen_rel_l2", "generator rel. L2", "#d62728"))
    for ax, (col, label, colour) in zip(axes[:, 0], items):
        bt = result.settings.block_time
        ax.bar(b["t_end_s"] - bt, b[col], width=0.9 * bt, color=colour, align="edge")  # bar spans its block
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    axes[-1, 0].set_xlabel("input time (s); one bar per block")
    s = result.settings
    fig.suptitle(f"per block: block {s.block_time:g} s, extra {s.extra_time:g} s, {s.f0_method}", fontsize=10)
    return fig


def plot_parity_waveforms(result, seconds: float | None = None):
    """Input, offline output and delay-aligned streamed output (stream rate), plus their difference."""
    sr = result.sr
    a, e = align_signals(result.stream_audio, result.offline_audio, result.delay_samples)
    n = a.shape[0] if seconds is None else min(a.shape[0], int(seconds * sr))
    t = np.arange(n) / sr
    x = result.input_audio[:n]
    fig, axes = _figure(9.0, 5.0, 3, 1, sharex=True)
    axes[0, 0].plot(np.arange(x.shape[0]) / sr, x, lw=0.5, color="#555555")
    axes[0, 0].set_ylabel("input", fontsize=8)
    axes[1, 0].plot(t, e[:n], lw=0.5, label="offline", color="#1f77b4")
    axes[1, 0].plot(t, a[:n], lw=0.5, label="streamed (aligned)", color="#d62728", alpha=0.7)
    axes[1, 0].legend(fontsize=7, loc="upper right")
    axes[1, 0].set_ylabel("outputs", fontsize=8)
    axes[2, 0].plot(t, a[:n] - e[:n], lw=0.5, color="#444444")
    axes[2, 0].set_ylabel("difference", fontsize=8)
    axes[2, 0].set_xlabel("time (s)")
    for ax in axes[:, 0]:
        ax.grid(alpha=0.3)
    fig.suptitle(f"outputs at {sr} Hz, stream delay {1000 * result.delay_samples / sr:.1f} ms removed "
                 "(DC and < 20 Hz removed)", fontsize=10)
    return fig


# ----------------------------------------------------------------------------- latency
def _stage_columns(trace):
    return [s for s in STAGES if s in trace and float(np.asarray(trace[s]).sum()) > 0]


def _block_ms(trace, block_ms):
    if block_ms is not None:
        return float(block_ms)
    return float(np.asarray(trace["block_ms"])[0]) if "block_ms" in trace else None


def plot_stage_breakdown(traces: dict, block_ms: float | None = None, statistic: str = "median"):
    """Stacked per-stage bars (ms per block), one bar per trace, with the block-time budget line.

    Parameters
    ----------
    traces : dict[str, pandas.DataFrame]
        Label -> :meth:`rvc_lab.instrument.StageTimer.to_frame` trace (or a single trace).
    block_ms : float, optional
        Budget line; read from the first trace's ``block_ms`` when omitted.  Each trace's own
        budget is drawn as a tick on its bar when they differ.
    statistic : {"median", "mean", "p95"}
        Per-stage statistic over blocks.
    """
    import pandas as pd

    if isinstance(traces, pd.DataFrame):
        traces = {"trace": traces}
    labels = list(traces)
    fig, axes = _figure(max(5.0, 1.3 * len(labels) + 3.5), 4.2)
    ax = axes[0, 0]
    stages = []
    for tr in traces.values():
        stages += [s for s in _stage_columns(tr) if s not in stages]
    stages = [s for s in STAGES if s in stages]
    bottoms = np.zeros(len(labels))
    for s in stages:
        vals = []
        for tr in traces.values():
            col = np.asarray(tr[s], dtype=float) if s in tr else np.zeros(1)
            vals.append(float({"median": np.median, "mean": np.mean}.get(statistic, lambda v: np.percentile(v, 95))(col)))
        ax.bar(labels, vals, bottom=bottoms, color=STAGE_COLOURS.get(s, None), label=s)
        bottoms += np.array(vals)
    budgets = [_block_ms(tr, None) for tr in traces.values()]
    if block_ms is None:
        block_ms = budgets[0]
    if block_ms is not None and len(set(budgets)) <= 1:
        ax.axhline(block_ms, color="black", ls="--", lw=1.2, label=f"block time {block_ms:.0f} ms")
    else:
        for i, b in enumerate(budgets):
            if b is not None:
                ax.hlines(b, i - 0.45, i + 0.45, color="black", ls="--", lw=1.2,
                          label="block time (per bar)" if i == 0 else None)
    ax.set_ylabel(f"{statistic} ms per block")
    ax.set_title("where a block's time goes (stacked by stage)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(alpha=0.3, axis="y")
    if len(labels) > 3 or (len(labels) > 1 and max(len(str(lb)) for lb in labels) > 14):
        ax.tick_params(axis="x", labelrotation=20)
        for t in ax.get_xticklabels():
            t.set_horizontalalignment("right")
    return fig


def plot_block_timeline(trace, block_ms: float | None = None):
    """Per-block stacked stage times with the block-time budget; overrunning blocks marked."""
    block_ms = _block_ms(trace, block_ms)
    stages = _stage_columns(trace)
    fig, axes = _figure(9.0, 3.8)
    ax = axes[0, 0]
    idx = np.asarray(trace["block"]) if "block" in trace else np.arange(len(trace))
    bottom = np.zeros(len(trace))
    for s in stages:
        v = np.asarray(trace[s], dtype=float)
        ax.bar(idx, v, bottom=bottom, color=STAGE_COLOURS.get(s), width=0.85, label=s)
        bottom += v
    total = np.asarray(trace["total"], dtype=float)
    ax.plot(idx, total, color="black", lw=0.8, marker=".", ms=3, label="total (wall)")
    if block_ms is not None:
        ax.axhline(block_ms, color="black", ls="--", lw=1.2, label=f"block time {block_ms:.0f} ms")
        over = total > block_ms
        if over.any():
            ax.scatter(idx[over], total[over], color="red", zorder=5, s=18, label=f"overrun ({int(over.sum())})")
    ax.set_xlabel("block")
    ax.set_ylabel("ms")
    ax.set_title("per-block timeline")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(alpha=0.3, axis="y")
    return fig


def plot_load_histogram(trace, block_ms: float | None = None):
    """Histogram of the load (compute time / block time) per block; > 1 means an overrun."""
    block_ms = _block_ms(trace, block_ms)
    total = np.asarray(trace["total"], dtype=float)
    load = total / block_ms if block_ms else total
    fig, axes = _figure(6.0, 3.2)
    ax = axes[0, 0]
    bins = min(30, max(5, len(load) // 2))
    ax.hist(load, bins=bins, color="#1f77b4", alpha=0.85)
    if block_ms:
        ax.axvline(1.0, color="black", ls="--", lw=1.2, label="real-time limit (load 1)")
        ax.axvline(float(np.percentile(load, 95)), color="#d62728", lw=1.0, label="p95")
        ax.set_xlabel("load = compute time / block time")
        ax.legend(fontsize=7)
    else:
        ax.set_xlabel("ms per block")
    ax.set_ylabel("blocks")
    ax.set_title("load per block")
    ax.grid(alpha=0.3)
    return fig


def plot_sweep_effects(effects, metric: str, title: str | None = None):
    """One metric's marginal mean against each swept parameter (a main-effects plot).

    Parameters
    ----------
    effects : pandas.DataFrame
        :func:`rvc_lab.sweep.effects.parameter_effects` output.
    metric : str
        The metric to draw (one row of panels, one panel per parameter); error bars are the
        bootstrap interval over the cells that share the parameter's value.
    """
    rows = effects[effects["metric"] == metric]
    if rows.empty:
        raise ValueError(f"no ok values of metric {metric!r} in the sweep")
    params = list(dict.fromkeys(rows["parameter"]))
    fig, axes = _figure(max(3.0 * len(params), 4.0), 2.8, 1, len(params), sharey=True)
    for ax, param in zip(axes.flat, params):
        g = rows[rows["parameter"] == param]
        numeric = all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in g["value"])
        g = g.sort_values("value") if numeric else g
        x = g["value"].to_numpy(float) if numeric else np.arange(len(g))
        err = np.vstack([g["mean"] - g["ci_low"], g["ci_high"] - g["mean"]]).clip(min=0)
        ax.errorbar(x, g["mean"], yerr=err, marker="o", capsize=3)
        if not numeric:
            ax.set_xticks(x, [str(v) for v in g["value"]])
        ax.set_xlabel(param.replace("_", " "))
        ax.grid(alpha=0.3)
    axes.flat[0].set_ylabel(metric.replace("_", " "))
    fig.suptitle(title or f"{metric}: mean over the other parameters (bars: 95 % bootstrap interval)",
                 fontsize=10)
    return fig


# ----------------------------------------------------------------------------- A/B studies
def plot_ab_paired(per_input, metrics=None, synthetic: bool = False):
    """Paired A/B values per input: one panel per per-spec metric, a line joining each input's A and B.

    Parameters
    ----------
    per_input : DataFrame
        :attr:`rvc_lab.ab.ABResult.per_input` (``input, metric, kind, a, b``).
    metrics : list of str, optional
        Panels (default: every per-spec metric with a value).
    synthetic : bool
        Random-weight voices: the voice and quality panels are titled as measuring nothing.
    """
    sub = per_input[per_input["kind"] == "per_spec"]
    metrics = metrics or [m for m in dict.fromkeys(sub["metric"]) if np.isfinite(sub.loc[sub.metric == m, ["a", "b"]]
                                                                               .to_numpy(float)).any()]
    ncols = min(4, max(1, len(metrics)))
    nrows = max(1, -(-len(metrics) // ncols))
    fig, axes = _figure(3.0 * ncols, 2.6 * nrows, nrows, ncols)
    for ax in axes.ravel()[len(metrics):]:
        ax.set_visible(False)
    for ax, m in zip(axes.ravel(), metrics):
        d = sub[sub["metric"] == m]
        for _, r in d.iterrows():
            ax.plot([0, 1], [r["a"], r["b"]], "o-", color="#7f7f7f", alpha=0.6, lw=1)
        ax.boxplot([d["a"].dropna(), d["b"].dropna()], positions=[0, 1], widths=0.3)
        ax.set_xticks([0, 1], ["A", "B"])
        group = d["group"].iloc[0] if "group" in d and len(d) else ""
        title = m + (" (random weights: no meaning)" if synthetic and group in ("voice", "quality") else "")
        ax.set_title(title, fontsize=8)
        ax.grid(True, alpha=0.3)
    return fig
