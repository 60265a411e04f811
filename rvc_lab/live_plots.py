"""Figures of live sessions: a latency measurement's bursts, a soak over time.

Same conventions as :mod:`rvc_lab.plots`: each function takes results and returns a new
:class:`matplotlib.figure.Figure` (object API, no pyplot state); times in milliseconds.
"""
from __future__ import annotations

import numpy as np

from rvc_lab.plots import _figure


def plot_latency_probe(measurement, max_bursts: int = 4):
    """Played bursts, what came back on the input, and the output, around the first bursts.

    Parameters
    ----------
    measurement : rvc_lab.live_session.LatencyMeasurement

    Returns
    -------
    matplotlib.figure.Figure
        One column per burst: the probe signal, the captured input and the played output on a
        common time axis (ms after the burst was played), with the measured delays marked.
    """
    m = measurement
    tr = m.train
    sr = tr.sr
    k_n = min(max_bursts, tr.n_bursts)
    found = m.round_trip.delays[np.isfinite(m.round_trip.delays)]  # samples; NaN: burst not found
    span = int(1.3 * max(found.max() if found.size else 0.0, m.budget["formula_s"] * sr)) + tr.length
    fig, axes = _figure(3.2 * k_n, 5.5, 3, k_n, sharex=True)
    rows = (("played burst", tr.signal, None), ("captured (device loop)", m.captured, m.device_loop),
            ("output (round trip)", m.played, m.round_trip))
    for k in range(k_n):
        a = int(tr.onsets[k])
        t = 1000.0 * np.arange(span) / sr
        for r, (label, x, est) in enumerate(rows):
            ax = axes[r, k]
            seg = np.zeros(span, dtype=np.float32)
            piece = x[a : a + span]
            seg[: piece.shape[0]] = piece
            ax.plot(t, seg, lw=0.5)
            if est is not None and np.isfinite(est.delays[k]):
                ax.axvline(est.delays_ms[k], color="C3", lw=1)
                ax.set_title(f"{label}: {est.delays_ms[k]:.1f} ms", fontsize=8)
            elif est is not None:
                ax.set_title(f"{label}: not found", fontsize=8)
            else:
                ax.set_title(f"{label} {k}", fontsize=8)
            if r == 2:
                ax.set_xlabel("ms after the burst was played")
    fig.suptitle(f"{m.round_trip.method}: measured {m.round_trip.measured_ms:.1f} ms, formula {m.formula_ms:.1f} ms",
                 fontsize=9)
    return fig


def plot_soak(table, title: str = ""):
    """Memory, measured latency against the formula, late blocks and load over a soak.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`rvc_lab.live_session.soak`.
    """
    t = table.t_s / 60.0
    fig, axes = _figure(8, 9, 4, 1, sharex=True)
    ax = axes[:, 0]
    ax[0].plot(t, table.anon_mb, ".-", label="anonymous (what a leak grows)")
    ax[0].plot(t, table.rss_mb, ".-", alpha=0.5, label="VmRSS (with mapped libraries)")
    ax[0].set_ylabel("memory (MiB)")
    ax[0].legend(loc="best", fontsize=8)
    ax[1].plot(t, table.latency_ms, ".", label="measured round trip")
    ax[1].plot(t, table.formula_ms, "-", label="formula")
    ax[1].set_ylabel("latency (ms)")
    ax[1].legend(loc="best", fontsize=8)
    ax[2].step(t, table.late_blocks, where="post", label="late")
    ax[2].step(t, table.skipped_inputs + table.dropped_inputs, where="post", label="skipped + dropped inputs")
    ax[2].set_ylabel("blocks (cumulative)")
    ax[2].legend(loc="best", fontsize=8)
    ax[3].plot(t, table.load_p50, ".-", label="p50")
    ax[3].plot(t, table.load_p95, ".-", label="p95")
    if "machine_load_1min" in table:
        import os

        ax[3].plot(t, table.machine_load_1min / (os.cpu_count() or 1), color="0.6", lw=0.8,
                   label="machine load average / cores (other processes)")
    ax[3].axhline(0.85, color="k", lw=0.8, ls="--")
    ax[3].set_ylabel("load (compute / block)")
    ax[3].set_xlabel("minutes")
    ax[3].legend(loc="best", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
