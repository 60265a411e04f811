"""Reference cases: the shipped cases re-run clean, and the checker catches what it must.

The perturbation tests use a harmonic tone with known F0 as the expected output (an independent
truth) and check that each deliberate fault is flagged by the metric made for it.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rvc_lab import cli
from rvc_lab.reference import DEFAULT_TOLERANCES, audio_metrics, compare_external, judge

REPO = Path(__file__).resolve().parents[1]
CASES = REPO / "reference_cases"


def test_shipped_cases_pass(capsys):
    assert cli.main(["check", str(CASES)]) == 0
    out = capsys.readouterr().out
    n = len(list(CASES.glob("*/case.json")))
    assert n >= 4 and f"{n} of {n} cases passed" in out


def _tone(sr: int, f0: float, seconds: float = 1.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * k * f0 * t + 0.3 * k) / k for k in range(1, 8))
    return (0.3 * x / np.abs(x).max()).astype(np.float64)


def _failed(actual, expected, sr) -> set[str]:
    rows = judge(audio_metrics(actual, expected, sr), DEFAULT_TOLERANCES["audio"])
    return {r["metric"] for r in rows if not r["passed"]}


SR = 16000


def test_identical_output_passes_every_metric():
    x = _tone(SR, 220.0)
    assert _failed(x, x, SR) == set()


def test_gain_change_is_caught_by_gain():
    x = _tone(SR, 220.0)
    failed = _failed(0.9 * x, x, SR)
    assert "gain_db" in failed and "delay_samples" not in failed and "f0_cents_mae" not in failed


def test_one_sample_shift_is_caught_by_delay_only():
    x = _tone(SR, 220.0)
    shifted = np.concatenate([[0.0], x[:-1]])
    assert _failed(shifted, x, SR) == {"delay_samples"}


def test_added_noise_is_caught_by_snr():
    rng = np.random.default_rng(0)
    x = _tone(SR, 220.0)
    noise = rng.standard_normal(x.shape)
    noise *= np.sqrt(np.mean(x**2) / np.mean(noise**2)) * 10 ** (-30 / 20)  # 30 dB SNR
    failed = _failed(x + noise, x, SR)
    assert "snr_db" in failed and "delay_samples" not in failed and "f0_cents_mae" not in failed


def test_semitone_off_is_caught_by_f0():
    x = _tone(SR, 220.0)
    m = audio_metrics(_tone(SR, 220.0 * 2 ** (1 / 12)), x, SR)
    assert m["f0_cents_mae"] == pytest.approx(100, abs=10)
    assert "f0_cents_mae" in _failed(_tone(SR, 220.0 * 2 ** (1 / 12)), x, SR)


def test_compare_external_names_first_divergent_stage(tmp_path):
    case = CASES / "offline_v2_40k_pm_tone"
    with np.load(case / "stages.npz") as z:
        stages = {k: z[k] for k in z.files}
    stages["blended_features"] = stages["blended_features"] * 1.01  # a port's retrieval bug
    np.savez(tmp_path / "port_stages.npz", **stages)
    res = compare_external(case / "expected.wav", case, str(tmp_path / "port_stages.npz"))
    assert all(r["passed"] for r in res["audio_rows"])
    assert res["first_divergent_stage"] == "blended_features"


def test_compare_external_aligns_a_late_output(tmp_path):
    case = CASES / "offline_v2_40k_pm_tone"
    x, sr = sf.read(case / "expected.wav", dtype="float32")
    late = np.concatenate([np.zeros(37, np.float32), x])
    sf.write(tmp_path / "late.wav", late, sr, subtype="FLOAT")
    res = compare_external(tmp_path / "late.wav", case)
    assert res["metrics"]["delay_samples"] == 37
    assert res["metrics"]["rel_l2"] < 1e-4


def test_check_fails_on_a_tampered_case(tmp_path):
    src = CASES / "offline_v2_32k_nof0_tone"
    dst = tmp_path / "tampered"
    shutil.copytree(src, dst)
    x, sr = sf.read(dst / "expected.wav", dtype="int16")
    sf.write(dst / "expected.wav", (x.astype(np.int32) * 9 // 10).astype(np.int16), sr, subtype="PCM_16")
    assert cli.main(["check", str(dst)]) == 1


def test_case_json_is_language_neutral():
    for p in CASES.glob("*/case.json"):
        case = json.loads(p.read_text())
        assert {"kind", "params", "assets", "tolerances", "produced_by"} <= case.keys()
        with np.load(p.parent / case["stages"]) as z:
            assert all(z[k].dtype.kind in "fiu" for k in z.files)


def test_upstream_goldens_become_reference_cases_that_pass(parity_dir, parity_assets, tmp_path, capsys):
    # truth: upstream RVC's own output and stage vectors (../shared/parity), not rvc_lab's
    assert cli.main(["reference", "upstream", str(tmp_path), "--parity-dir", str(parity_dir)]) == 0
    made = sorted(p.parent.name for p in tmp_path.glob("upstream_*/case.json"))
    assert len(made) == 6 and "upstream_offline_v2_40k_rmvpe_synth__zero" in made
    for name in made:
        case = json.loads((tmp_path / name / "case.json").read_text())
        assert case["truth"].startswith("upstream golden") and case["assets"]["source"] == "parity"
        assert case["tolerances"]["audio"]["rel_l2"] == {"max": 1e-4}
    # one case re-run here (the streaming goldens run in test_conversion_parity.py already)
    capsys.readouterr()
    assert cli.main(["check", str(tmp_path / "upstream_offline_v2_40k_rmvpe_synth__zero")]) == 0
    out = capsys.readouterr().out
    assert "1 of 1 cases passed" in out
    for stage in ("f0_hz", "f0_coarse", "generator_output"):
        assert any(line.split()[1:2] == [stage] and line.split()[-1] == "PASS" for line in out.splitlines()), stage
