"""The self-contained ``index.html`` of an A/B study: specs, summary table, paired plots, audio."""
from __future__ import annotations

import html
import time

from rvc_lab.html_page import CSS, img, table, wav_data_uri


def render_html(result) -> str:
    """One page (figures and audio inlined as data URIs) for an :class:`rvc_lab.ab.ABResult`."""
    from rvc_lab.plots import plot_ab_paired

    esc = html.escape
    parts = [f"<h1>rvc_lab A/B study</h1><p class='note'>Created {esc(time.strftime('%Y-%m-%d %H:%M:%S %Z'))}; "
             f"mode {esc(result.mode)}; F0 judged with {esc(result.f0_judge)}; {len(result.outputs)} inputs.</p>"]
    if result.synthetic:
        parts.append("<div class='warn'><b>A or B has synthetic (seeded random) weights.</b> Its output is not a "
                     "voice: speaker similarity and DNSMOS measure nothing about a voice here. Only the A-against-B "
                     "distances, the F0 kept and the cost describe the specs.</div>")
    parts.append("<h2>Specs</h2><ul>" + "".join(f"<li><b>{k}</b>: <code>{esc(s.text)}</code></li>"
                                                 for k, s in result.specs.items()) + "</ul>")
    if result.unreadable:
        parts.append("<h2>Unreadable inputs (left out)</h2><ul>" + "".join(
            f"<li><code>{esc(p)}</code>: {esc(r)}</li>" for p, r in result.unreadable) + "</ul>")
    if result.notes:
        parts.append("<ul class='note'>" + "".join(f"<li>{esc(n)}</li>" for n in result.notes) + "</ul>")
    parts.append("<h2>Summary</h2><p class='note'>Means with 95 % bootstrap intervals (1000 resamples, seed 0); "
                 "diff = B − A for per-spec metrics, the A-against-B value for pairwise ones; p: paired Wilcoxon "
                 "of B against A.</p>")
    parts.append(table(result.summary))
    if not result.per_input.empty:
        parts.append("<h2>Paired values per input</h2>")
        parts.append(img(plot_ab_paired(result.per_input, synthetic=result.synthetic), "paired A/B values"))
    parts.append("<h2>Listen</h2><table><thead><tr><th>input</th><th>A</th><th>B</th></tr></thead><tbody>")
    for name, o in result.outputs.items():
        cells = "".join(f"<td><audio controls src='{wav_data_uri(*o[k])}'></audio></td>" for k in ("A", "B"))
        parts.append(f"<tr><td>{esc(name)}</td>{cells}</tr>")
    parts.append("</tbody></table>")
    body = "\n".join(parts)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>rvc_lab A/B</title><style>{CSS}</style>"
            f"</head><body>\n{body}\n</body></html>\n")
