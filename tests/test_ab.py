"""rvc_lab.ab / rvc-lab ab: A/B studies against independent truths.

Cheap by design (CI is near its budget): three studies of one or two ~0.6 s inputs on the demo
voice, offline, sharing one model load; the statistics are checked on hand-made tables.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from rvc_lab.ab import parse_spec, run_ab, write_ab
from rvc_lab.ab.stats import paired_wilcoxon, summarize
from rvc_lab.errors import SettingsError
from rvc_lab.testsignals import harmonic_complex

SECONDS = 0.6
F0 = 200.0  # Hz, the tone's exact F0
DEMO = "model=demo/v2_40k f0_method=fcpe"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("ab_inputs")
    sf.write(d / "tone.wav", harmonic_complex(F0, 16000, SECONDS).audio, 16000)
    (d / "broken.wav").write_bytes(b"RIFF not audio")
    return d


@pytest.fixture(scope="module")
def cache():
    return {}


@pytest.fixture(scope="module")
def octave(inputs, cache, demo_assets):
    """B = A transposed +12 semitones and resampled to 32 kHz; the tone is its own target voice."""
    return run_ab(DEMO, f"{DEMO} pitch=12 resample_sr=32000", [inputs], target_voice=[inputs / "tone.wav"],
                  models_cache=cache)


def _value(result, metric, col):
    row = result.per_input[result.per_input["metric"] == metric]
    assert len(row) == 1, metric
    return float(row[col].iloc[0])


def test_pitch_shift_is_an_octave_and_kept(octave):
    a_hz, b_hz = _value(octave, "f0_median_hz", "a"), _value(octave, "f0_median_hz", "b")
    assert a_hz == pytest.approx(F0, rel=0.03)
    assert b_hz == pytest.approx(2 * a_hz, rel=0.03)  # one octave up
    # against the input's F0 after each spec's own shift: small in both
    assert _value(octave, "f0_cents_error", "a") < 30
    assert _value(octave, "f0_cents_error", "b") < 30
    assert _value(octave, "voicing_agreement", "a") > 0.5 and _value(octave, "voicing_agreement", "b") > 0.5


def test_unreadable_listed_rest_run_rates_said(octave):
    assert [p.endswith("broken.wav") for p, _ in octave.unreadable] == [True]
    assert list(octave.outputs) == ["tone"]
    assert octave.outputs["tone"]["A"][1] == 40000 and octave.outputs["tone"]["B"][1] == 32000
    assert sum("resampled to 40000 Hz" in n for n in octave.notes) == 1


def test_small_n_not_computed_with_reason_and_random_weights_said(octave):
    s = octave.summary.set_index("metric")
    assert np.isnan(s.loc["f0_median_hz", "p_value"])
    assert s.loc["f0_median_hz", "test"] == "not computed: n=1 < 6 paired inputs"
    for m in ("similarity_target", "dnsmos_overall", "dnsmos_p808"):
        assert np.isfinite(s.loc[m, "a_mean"]), m  # computed (packages present: strict in CI)
        assert "measure nothing" in s.loc[m, "note"]
    assert s.loc["mcd_db", "note"] == ""
    assert not octave.skipped


def test_written_files(octave, tmp_path):
    out = write_ab(octave, tmp_path / "out")
    per = pd.read_csv(out / "per_input.csv")
    assert set(per["metric"]) >= {"mcd_db", "f0_corr", "similarity_ab", "ms_per_s"}
    pair = per[per["kind"] == "pairwise"]
    assert pair["a"].isna().all() and pair["b"].isna().all() and pair["diff"].notna().all()
    summ = pd.read_csv(out / "summary.csv")
    assert list(summ.columns[:3]) == ["metric", "group", "kind"]
    for c in ("a_mean", "a_ci_low", "a_ci_high", "b_mean", "b_ci_low", "b_ci_high", "diff_mean", "diff_ci_low",
              "diff_ci_high", "p_value"):
        assert c in summ.columns
    j = json.loads((out / "summary.json").read_text())
    assert j["synthetic_weights"] is True and j["unreadable"][0]["path"].endswith("broken.wav")
    page = (out / "index.html").read_text()
    assert page.count("<audio") == 2 and "measure nothing about a voice" in page and "<img" in page
    assert sorted(p.name for p in (out / "audio").iterdir()) == ["tone_A.wav", "tone_B.wav"]


def test_a_against_a(inputs, cache, demo_assets):
    r = run_ab(DEMO, DEMO, [inputs / "tone.wav"], models_cache=cache)
    v = {m: _value(r, m, "diff") for m in ("mcd_db", "snr_db", "similarity_ab", "lsd_db")}
    assert v["mcd_db"] == 0.0 and v["lsd_db"] == 0.0 and v["snr_db"] == np.inf
    assert v["similarity_ab"] == pytest.approx(1.0, abs=1e-6)
    assert r.skipped["similarity_target"].startswith("not computed: no --target-voice")
    s = r.summary.set_index("metric")
    assert s.loc["similarity_target", "test"] == "not computed" and np.isnan(s.loc["similarity_target", "a_mean"])
    assert (r.per_input.query("kind == 'per_spec' and metric != 'ms_per_s'")["diff"] == 0).all()


def test_merged_random_adapter_changes_the_output(inputs, cache, demo_paths, tmp_path):
    from rvc_lab.files.lora import write_random_adapter
    from rvc_lab.files.voice import load_voice

    adapter = write_random_adapter(tmp_path / "a.pt", load_voice(demo_paths["demo_v2_40k_f0"]), rank=8, seed=0)
    r = run_ab(DEMO, f"{DEMO} lora={adapter}", [inputs / "tone.wav"], models_cache=cache)
    assert _value(r, "mcd_db", "diff") > 0.1
    assert np.isfinite(_value(r, "snr_db", "diff"))


def test_wilcoxon_hand_calculation_and_zero_differences():
    a = np.zeros(6)
    b = np.arange(1.0, 7.0)  # six positive differences: W- = 0, exact two-sided p = 2 / 2**6
    p, test = paired_wilcoxon(a, b)
    assert test == "wilcoxon" and p == pytest.approx(2 / 64)
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=9), rng.normal(size=9) + 0.5
    from scipy.stats import wilcoxon

    assert paired_wilcoxon(a, b)[0] == pytest.approx(wilcoxon(b - a).pvalue)
    assert paired_wilcoxon(a, a) == (pytest.approx(np.nan, nan_ok=True), "not computed: every difference is zero")
    per = pd.DataFrame({"input": list("abcdef"), "metric": "f0_corr", "group": "content", "kind": "per_spec",
                        "a": 0.5, "b": 0.5, "diff": 0.0})
    row = summarize(per, {}).set_index("metric").loc["f0_corr"]
    assert row["test"] == "not computed: every difference is zero" and row["n"] == 6
    assert (row["a_mean"], row["a_ci_low"], row["a_ci_high"]) == (0.5, 0.5, 0.5)


@pytest.mark.parametrize("spec, match", [
    ("model=demo/v2_40k colour=red", "unknown key 'colour'"),
    ("model=demo/v2_40k pitch=abc", "invalid float"),
    ("model=demo/v2_40k f0_method=yin", "invalid choice"),
    ("model=demo/v2_40k index_rate=2", "index_rate=2.0 is outside"),
    ("model=demo/v2_40k block_time=0.1", "--mode stream key"),
    ("model=/no/such.pth hubert=/no/h.pt", "no such file"),
    ("model=demo/v9", "not a demo voice"),
    ("pitch", "not key=value"),
    ("model=demo/v2_40k lora=/no/adapter.pt", "--lora /no/adapter.pt: no such file"),
])
def test_bad_specs_refused_before_loading(spec, match, monkeypatch):
    from rvc_lab.convert.models import ConverterModels

    monkeypatch.setattr(ConverterModels, "load", classmethod(lambda *a, **k: pytest.fail("models loaded")))
    with pytest.raises(SettingsError, match=match):
        run_ab(spec, DEMO, ["/nonexistent"])


def test_adapter_for_another_voice_names_the_layer(demo_paths, tmp_path):
    from rvc_lab.files.lora import write_random_adapter
    from rvc_lab.files.voice import load_voice

    adapter = write_random_adapter(tmp_path / "a48.pt", load_voice(demo_paths["demo_v1_48k_f0"]), rank=4)
    # a 48k decoder has a fifth upsampling layer: the first that does not fit
    with pytest.raises(SettingsError, match=r"layer dec\.ups\.4: .*made for a v1 48000 Hz"):
        parse_spec(f"model=demo/v2_40k lora={adapter}", "B")


def test_empty_input_set(tmp_path):
    with pytest.raises(SettingsError, match="empty input set"):
        run_ab(DEMO, DEMO, [tmp_path])


def test_cli_refuses_a_bad_spec_with_exit_2(inputs, tmp_path, capsys):
    from rvc_lab.cli import main

    rc = main(["ab", "--a", "model=demo/v2_40k colour=red", "--b", DEMO, "--inputs", str(inputs),
               "-o", str(tmp_path / "out")])
    assert rc == 2 and "unknown key 'colour'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_json_spec_and_noise(tmp_path, demo_assets):
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"model": "demo/v2_40k", "f0_method": "fcpe", "pitch": 12, "index_rate": 0.3}))
    b = parse_spec(str(path), "B")
    assert (b.settings.pitch, b.settings.index_rate, b.settings.noise, b.settings.seed) == (12.0, 0.3, False, None)
    assert b.demo == "demo/v2_40k" and b.args.index and b.args.hubert  # the demo voice brings its files
    seeded = parse_spec("model=demo/v2_40k f0_method=fcpe seed=3", "A", mode="stream")
    assert (seeded.settings.noise, seeded.settings.seed, type(seeded.settings).__name__) == (True, 3, "StreamSettings")
