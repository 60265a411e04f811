"""Report figures that must stay readable: the F0 heat map's colour scale, coinciding sweep lines.

Truths: hand-made tables (one octave-error outlier among errors of a few cents; two sweep
groups with identical values), read back from the returned figures' images and lines.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from rvc_lab.plots import plot_f0_accuracy, plot_parity_sweep


def _bench(values: dict) -> pd.DataFrame:
    rows = [{"method": m, "signal": s, "status": "ok", "cents_mae": v, "raw_pitch_accuracy": 0.9}
            for (m, s), v in values.items()]
    return pd.DataFrame(rows)


def _cents_heatmap(values: dict):
    fig = plot_f0_accuracy(_bench(values), "cents_mae", "mean |error| in cents")
    ax, cbar_ax = fig.axes[0], fig.axes[1]
    return ax.images[0], cbar_ax.get_ylabel()


def test_cents_heatmap_scale_is_clipped_so_an_outlier_does_not_flatten_the_rest():
    values = {("pm", "sine"): 3.0, ("pm", "glide"): 40.0, ("harvest", "sine"): 1940.0, ("harvest", "glide"): 12.0}
    im, label = _cents_heatmap(values)
    assert im.get_clim() == (0.0, 100.0)
    assert "clipped at 100 cents" in label
    # 3 and 40 cents sit 37 % of the scale apart (at an unclipped 0-1940 scale: 1.9 %)
    assert im.norm(40.0) - im.norm(3.0) > 0.3
    assert im.norm(1940.0) > 1.0  # drawn in the over colour, its value printed in the cell
    assert {t.get_text() for t in im.axes.texts} == {"1940", "12.00", "3.00", "40.00"}


def test_cents_heatmap_without_outliers_says_nothing_is_clipped():
    im, label = _cents_heatmap({("pm", "sine"): 3.0, ("pm", "glide"): 40.0})
    assert im.get_clim() == (0.0, 100.0) and "clipped" not in label


def test_accuracy_heatmap_keeps_its_unit_scale():
    fig = plot_f0_accuracy(_bench({("pm", "sine"): 3.0, ("pm", "glide"): 40.0}), "raw_pitch_accuracy")
    assert fig.axes[0].images[0].get_clim() == (0.0, 1.0)


def test_parity_sweep_shows_both_of_two_equal_lines():
    extra = [0.5, 1.0, 2.5]
    sweep = pd.DataFrame({"extra_time": extra * 2, "block_time": [0.1] * 3 + [0.25] * 3,
                          "output_mcd_db": [1.0, 0.5, 0.2] * 2, "f0_cents_mae": [4.0, 2.0, 1.0] * 2})
    fig = plot_parity_sweep(sweep)
    for ax in fig.axes:
        lines = ax.get_lines()
        if not ax.get_visible() or not lines:
            continue
        first, second = lines
        np.testing.assert_array_equal(first.get_ydata(), second.get_ydata())  # they coincide
        assert first.get_linestyle() != second.get_linestyle()
        assert first.get_marker() != second.get_marker()
        # the later line is on top with the smaller marker: the earlier one still shows around it
        assert second.get_zorder() > first.get_zorder() and second.get_markersize() < first.get_markersize()
    legend = fig.axes[0].get_legend()
    assert "overlap" in legend.get_title().get_text()
    assert [t.get_text() for t in legend.get_texts()] == ["block time 0.1 s", "block time 0.25 s"]
