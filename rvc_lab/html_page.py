"""Pieces of the self-contained HTML pages (the report, the A/B page): style, tables, images, audio.

Everything is inline (CSS, base64 PNG and WAV), so a page is one file that opens anywhere.
"""
from __future__ import annotations

import base64
import html
import io

import numpy as np
import pandas as pd
import soundfile as sf

from rvc_lab.audio import limit_peak
from rvc_lab.plots import figure_to_data_uri

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1rem; }
h1 { font-size: 1.7rem; } h2 { border-bottom: 2px solid #ddd; padding-bottom: .2rem; margin-top: 2.2rem; }
table { border-collapse: collapse; font-size: .82rem; margin: .6rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; display: block; margin: .6rem 0; border: 1px solid #eee; }
.warn { background: #fff4e5; border-left: 5px solid #f0a020; padding: .7rem 1rem; margin: 1rem 0; }
.note { color: #555; font-size: .9rem; }
.clips { display: flex; gap: 1.5rem; flex-wrap: wrap; } .clips div { font-size: .85rem; }
nav ul { columns: 2; } code { background: #f4f4f4; padding: 0 .2rem; }
.scroll { overflow-x: auto; max-width: 100%; }
"""


def table(df: pd.DataFrame, index: bool = False, digits: int = 4) -> str:
    """A DataFrame as an HTML table: numbers right-aligned to ``digits`` significant digits,
    NaN as "–", infinities as "∞"; text escaped."""
    def fmt(v):
        if isinstance(v, (float, np.floating)):
            if not np.isfinite(v):
                return "–" if np.isnan(v) else ("∞" if v > 0 else "−∞")
            return f"{v:.{digits}g}" if abs(v) < 1e4 else f"{v:.0f}"
        return html.escape(str(v))

    cols = list(df.columns)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in ([df.index.name or ""] if index else []) + cols)
    rows = []
    for idx, r in df.iterrows():
        cells = ([f"<td>{html.escape(str(idx))}</td>"] if index else []) + [
            f"<td class='num'>{fmt(r[c])}</td>" if isinstance(r[c], (int, float, np.integer, np.floating))
            and not isinstance(r[c], bool) else f"<td>{fmt(r[c])}</td>" for c in cols]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            "</div>")


def key_values(items) -> str:
    """Two-column table of (name, value) pairs, values as text."""
    return table(pd.DataFrame([(str(k), str(v)) for k, v in items], columns=["item", "value"]))


def img(fig, alt: str) -> str:
    """A matplotlib figure as an ``<img>`` with an embedded base64 PNG."""
    uri = figure_to_data_uri(fig)
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def wav_data_uri(audio: np.ndarray, sr: int, max_seconds: float = 8.0) -> str:
    """float32 mono ``audio`` at ``sr`` Hz as a ``data:audio/wav`` URI: the first ``max_seconds``,
    peak-limited to 0.99, 16-bit PCM."""

    x, _ = limit_peak(np.asarray(audio, dtype=np.float32)[: int(max_seconds * sr)], 0.99)
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
