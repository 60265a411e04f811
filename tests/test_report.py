"""``rvc-lab report --quick`` builds a self-contained page that a real browser renders cleanly.

The page is opened in headless Debian chromium through selenium and chromedriver: it must load,
every image must decode (naturalWidth > 0), and the console must hold no error.  Chromium is a
Debian package (``scripts/system-packages.sh`` installs it); without it the browser test skips.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from rvc_lab.plan import Plan

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory, demo_assets):
    from rvc_lab.cli import main

    out = tmp_path_factory.mktemp("report")
    assert main(["report", "--quick", "-o", str(out)]) == 0
    return out


def test_report_files_and_content(report_dir):
    page = (report_dir / "index.html").read_text(encoding="utf-8")
    for name in ("f0_bench.csv", "parity_sweep.csv", "parity_stages.csv", "latency_trace.csv", "scaling.csv",
                 "scaling_fit.csv", "backends.csv", "sweep_results.csv", "sweep_effects.csv", "index_study.csv",
                 "report.json"):
        assert (report_dir / name).stat().st_size > 0, name
    assert not list(report_dir.glob(".*.tmp")), "temporary files left behind"
    # self-contained: every src/href is inline data or an in-page anchor
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", page)
    assert refs and all(r.startswith(("data:", "#")) for r in refs), [r[:40] for r in refs if not r.startswith(("data:", "#"))]
    assert "<link rel='stylesheet'" not in page and "@import" not in page and "<script" not in page
    images = re.findall(r'<img src="data:image/png;base64,', page)
    assert len(images) >= 8
    # the sections, and the plain statement about random weights
    for heading in ("F0 accuracy on test tones", "Streaming vs offline", "Latency per stage",
                    "Cost against extra time and block time", "Backends: torch eager, TorchScript, ONNX Runtime",
                    "Effect of each swept setting", "Metric tables", "Environment"):
        assert heading in page
    assert "synthetic (seeded random numbers), not trained" in page
    summary = json.loads((report_dir / "report.json").read_text())
    assert summary["synthetic_weights"] is True and summary["quick"] is True
    assert summary["environment"]["torch"] and summary["environment"]["cpu_count"] >= 1


def test_report_tables_hold_measurements(report_dir):
    import pandas as pd

    from tests.tolerances import UPSTREAM_REL_L2

    backends = pd.read_csv(report_dir / "backends.csv", index_col="backend")
    assert list(backends.index) == ["torch", "onnx"]  # the quick plan exports to ONNX only
    assert backends.loc["onnx", "rel_l2_vs_torch"] <= UPSTREAM_REL_L2 and backends["sola_offsets_equal"].all()

    bench = pd.read_csv(report_dir / "f0_bench.csv")
    ok = bench[bench.status == "ok"]
    assert set(ok.method) == {"pm", "dio", "fcpe"}
    # a 440 Hz sine is tracked by pm and fcpe within 50 cents on nearly every frame
    sine = ok[(ok.signal == "sine_440") & ok.method.isin(["pm", "fcpe"])]
    assert (sine.raw_pitch_accuracy > 0.9).all()
    sweep = pd.read_csv(report_dir / "parity_sweep.csv")
    assert sorted(sweep.extra_time) == sorted(Plan.for_run(quick=True).parity_extra_times)  # the grid it was given
    assert np.isfinite(sweep.features_rel_l2).all()
    trace = pd.read_csv(report_dir / "latency_trace.csv")
    assert (trace.total > 0).all() and (trace.generator > 0).all()
    assert (trace[["content_features", "f0", "generator"]].sum(axis=1) <= trace.total + 1e-6).all()
    # cost scaling: both precisions over the quick grid, ring = extra + crossfade + search + block
    scaling = pd.read_csv(report_dir / "scaling.csv")
    assert set(scaling.precision) == {"fp32", "bf16"} and len(scaling) == 6
    np.testing.assert_allclose(scaling.context_s, scaling.extra_time + scaling.crossfade_time + 0.01
                               + scaling.block_time, atol=1e-9)
    assert (scaling.median_ms > 0).all()
    # The timings move with the machine's load (on a busy machine even the order of two cells can flip),
    # so the fit is checked against the cells it was made from: 3 cells, 3 coefficients -> an exact solve.
    fit = pd.read_csv(report_dir / "scaling_fit.csv", index_col="precision")
    assert list(fit.n) == [3, 3]
    for precision, cells in scaling.groupby("precision"):
        c = fit.loc[precision]
        np.testing.assert_allclose(c.fixed_ms + c.ms_per_context_s * cells.context_s
                                   + c.ms_per_decoded_s * cells.decoded_s, cells.median_ms, rtol=1e-6)
    # the report's own sweep: F0 methods on a 220 Hz complex tone (exact F0 truth)
    effects = pd.read_csv(report_dir / "sweep_effects.csv")
    by_method = effects[effects.parameter == "f0_method"].set_index(["metric", "value"])["mean"]
    assert by_method["raw_pitch_accuracy"].gt(0.9).all() and set(by_method["raw_pitch_accuracy"].index) == {"fcpe", "pm"}
    # HuBERT never sees F0: the content-feature divergence is the same for either method
    assert by_method[("features_rel_l2", "fcpe")] == by_method[("features_rel_l2", "pm")] > 0


def _browser(profile_dir: Path):
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("chromium/chromedriver not installed (scripts/system-packages.sh installs them)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile_dir}", "--window-size=1200,2400"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))


def test_report_index_compression_section(report_dir):
    """The demo voice's index (600 x 768) studied in quick mode: a table of real figures, RSS and
    conversions left out (and the page says so)."""
    import html

    import pandas as pd

    page = (report_dir / "index.html").read_text(encoding="utf-8")
    assert "<h2 id='index'>Index compression</h2>" in page and "href='#index'" in page
    assert "not measured (quick settings)" in page and "resident memory" in page
    df = pd.read_csv(report_dir / "index_study.csv").set_index("variant")
    assert {"ivf_flat", "flat_exact", "flat_exact_torch", "ivf_pq96x8", "ivf_pq96x8+flat_blend", "hnsw32",
            "hnsw32_ef256"} <= set(df.index)
    assert (df["ntotal"] == 600).all() and (df["dim"] == 768).all()
    assert df.loc["flat_exact", "recall_at_8"] == 1.0 and df.loc["flat_exact", "blend_rel_l2_vs_exact"] == 0.0
    assert 0 < df.loc["ivf_flat", "recall_at_8"] < 1 and df.loc["ivf_flat", "blend_rel_l2_vs_exact"] > 0
    assert df.loc["ivf_pq384x4", "size_ratio_vs_flat"] > 4  # 4-bit codes, even with codebooks this small
    assert df.loc["ivf_pq96x8", "blend_rel_l2_vs_exact"] > df.loc["ivf_pq96x8+flat_blend", "blend_rel_l2_vs_exact"]
    assert (df["search_ms_per_block"] > 0).all() and df["rss_bytes"].isna().all()
    assert "conversion_snr_db" not in df.columns
    # the page shows these figures (3 significant digits)
    for v in ("ivf_flat", "ivf_pq96x8"):
        assert f"<td>{html.escape(v)}</td>" in page
        assert f"<td class='num'>{df.loc[v, 'blend_rel_l2_vs_exact']:.3g}</td>" in page
    summary = json.loads((report_dir / "report.json").read_text())
    assert summary["timings_s"]["index compression"] < 30


def test_report_renders_in_chromium(report_dir, tmp_path):
    driver = _browser(tmp_path / "chromium-profile")
    try:
        driver.set_page_load_timeout(60)
        driver.get((report_dir / "index.html").resolve().as_uri())
        assert driver.execute_script("return document.readyState") == "complete"
        assert driver.title == "rvc_lab report"
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt]);")
        assert len(images) >= 8
        broken = [alt for complete, w, h, alt in images if not (complete and w > 0 and h > 0)]
        assert not broken, f"images that did not decode: {broken}"
        audio = driver.execute_script("return document.querySelectorAll('audio').length")
        assert audio == 3
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        assert not errors, errors
        shot = tmp_path / "report.png"
        assert driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    from PIL import Image

    with Image.open(shot) as im:
        pixels = np.asarray(im.convert("L"), dtype=float)
    assert pixels.shape[0] >= 1000 and pixels.std() > 10, "screenshot looks blank"


def test_report_voice_flags_need_hubert(tmp_path, capsys):
    from rvc_lab.cli import main

    assert main(["report", "-o", str(tmp_path), "--model", "voice.pth"]) == 2
    assert "--hubert" in capsys.readouterr().err
