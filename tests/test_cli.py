"""The ``rvc-lab`` commands a new user meets first: f0, info --json, demo-assets, reference make|compare.

Truths: a written 440 Hz harmonic tone (its F0 is 440 Hz by construction), the raw fields of the
voice ``.pth`` read with ``torch.load`` (not through rvc_lab's parser), the analytic F0 contour of
the demo tone (:func:`rvc_lab.files.synthetic.tone`: 140 -> 240 Hz over 2 s, 3 Hz vibrato at
5 Hz), the seed contract (same seed, same tensors) and deliberate perturbations of a case.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from rvc_lab import cli
from rvc_lab.reference import fingerprint

SR_TAGS = {"32k": 32000, "40k": 40000, "48k": 48000}


def _cents(f, ref):
    return 1200 * np.log2(np.asarray(f, dtype=np.float64) / ref)


def _harmonic_tone(f0: float, sr: int, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * k * f0 * t + 0.4 * k) / k for k in range(1, 6))
    return (0.4 * x / np.abs(x).max()).astype(np.float32)


# ----------------------------------------------------------------------------------- f0
@pytest.mark.parametrize("pitch, expected_hz", [(0.0, 440.0), (12.0, 880.0)])
def test_f0_command_reads_a_440_hz_tone(tmp_path, pitch, expected_hz):
    src, csv = tmp_path / "a440.wav", tmp_path / "f0.csv"
    sf.write(src, _harmonic_tone(440.0, 44100, 1.0), 44100, subtype="FLOAT")
    assert cli.main(["f0", str(src), "-o", str(csv), "--f0-method", "pm", "--pitch", str(pitch)]) == 0
    df = pd.read_csv(csv)
    assert list(df.columns) == ["time_s", "f0_hz", "voiced"]
    np.testing.assert_allclose(np.diff(df.time_s), 0.01, atol=1e-9)  # 10 ms hop
    assert df.shape[0] == 16000 // 160 + 1  # 1 s at 16 kHz: N // 160 + 1 frames
    inner = df[(df.time_s > 0.1) & (df.time_s < 0.9)]
    assert inner.voiced.all() and (inner.f0_hz > 0).all()
    assert np.abs(_cents(inner.f0_hz, expected_hz)).max() < 5.0
    assert (df.voiced == (df.f0_hz > 0)).all()


def test_f0_command_refuses_an_unknown_method(tmp_path, capsys):
    src = tmp_path / "a.wav"
    sf.write(src, _harmonic_tone(440.0, 16000, 0.2), 16000)
    with pytest.raises(SystemExit) as exc:
        cli.main(["f0", str(src), "-o", str(tmp_path / "f0.csv"), "--f0-method", "yin"])
    assert exc.value.code == 2 and "invalid choice: 'yin'" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- info
@pytest.mark.parametrize("name", ["demo_v2_40k_f0", "demo_v2_32k_nof0"])
def test_info_json_matches_the_raw_voice_file(demo_paths, capsys, name):
    raw = torch.load(demo_paths[name], map_location="cpu", weights_only=True)
    assert cli.main(["info", "--json", str(demo_paths[name])]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["version"] == raw["version"]
    assert info["sr_tag"] == raw["sr"] and info["sample_rate"] == SR_TAGS[raw["sr"]]
    assert info["f0"] is bool(raw["f0"])
    assert list(info["config"].values()) == list(raw["config"])
    assert raw["config"][-1] == SR_TAGS[raw["sr"]] == info["config"]["sampling_rate"]  # upstream: last item


# ----------------------------------------------------------------------------------- demo-assets
def test_demo_assets_command_is_reproducible_from_its_seed(demo_paths, tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo-assets", str(out), "--seed", "0"]) == 0
    listed = dict(line.split(maxsplit=1) for line in capsys.readouterr().out.splitlines())
    assert set(listed) == set(demo_paths)
    assert all(str(out) in p and (out / p[len(str(out)) + 1:]).is_file() for p in listed.values())
    # the same seed gives the same tensors as the session's assets (written by another call)
    for name in ("demo_v2_40k_f0", "hubert"):
        assert fingerprint(listed[name]) == fingerprint(demo_paths[name]), name
    assert sf.read(listed["tone_16k"])[1] == 16000 and sf.read(listed["tone_48k"])[1] == 48000


# ----------------------------------------------------------------------------------- reference
def test_reference_help_lists_make_and_compare_options(capsys):
    for action, options in (("make", ("--input", "--kind", "--demo-seed", "--params", "--description")),
                            ("compare", ("case_dir", "wav", "--stages")), ("upstream", ("outdir", "--parity-dir"))):
        with pytest.raises(SystemExit) as exc:
            cli.main(["reference", action, "--help"])
        assert exc.value.code == 0
        text = capsys.readouterr().out
        assert f"rvc-lab reference {action}" in text and all(o in text for o in options), text


@pytest.mark.parametrize("params, message", [
    ("{f0_method: pm}", "--params is not valid JSON"),
    ('["pm"]', "--params must be a JSON object"),
    ('{"f0_methd": "pm"}', "no field(s) 'f0_methd'"),
    ('{"index_rate": 3}', "index_rate=3 is outside"),
])
def test_reference_make_bad_params_is_a_settings_error(tmp_path, capsys, params, message):
    code = cli.main(["reference", "make", str(tmp_path / "case"), "--input", str(tmp_path / "in.wav"),
                     "--demo-seed", "0", "--params", params])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err
    assert err.startswith("rvc-lab reference: error:")
    assert not (tmp_path / "case").exists()


def _demo_tone_f0(t: np.ndarray, seconds: float = 2.0) -> np.ndarray:
    """The demo tone's analytic F0 (rvc_lab.files.synthetic.tone's docstring)."""
    return 140.0 + 100.0 * t / seconds + 3.0 * np.sin(2 * np.pi * 5.0 * t)


@pytest.fixture(scope="module")
def made_case(demo_paths, tmp_path_factory):
    """A case made by ``rvc-lab reference make`` on the first 0.6 s of the demo tone (pm, no noise)."""
    tmp = tmp_path_factory.mktemp("refcase")
    x, sr = sf.read(demo_paths["tone_16k"], dtype="float32")
    src = tmp / "tone.wav"
    sf.write(src, x[: int(0.6 * sr)], sr, subtype="PCM_16")
    params = {"f0_method": "pm", "noise": False, "index_rate": 0.5}
    code = cli.main(["reference", "make", str(tmp / "case"), "--input", str(src), "--demo-seed", "0",
                     "--params", json.dumps(params), "--description", "test case"])
    assert code == 0
    return tmp / "case", params


def test_reference_make_writes_a_case_whose_f0_is_the_tone(made_case):
    case_dir, params = made_case
    case = json.loads((case_dir / "case.json").read_text())
    assert case["kind"] == "offline" and case["params"] == params and case["description"] == "test case"
    assert case["assets"] == {"source": "demo", "seed": 0, "model": "demo_v2_40k_f0", "index": "demo_v2_40k_f0_index"}
    assert "produced by rvc_lab" in case["truth"] and "not an upstream golden" in case["truth"]
    y, sr = sf.read(case_dir / "expected.wav", dtype="int16")
    # 9600 samples + 2 x 16000 padding: HuBERT gives (41600 - 400) // 320 + 1 = 129 frames -> 258
    # 10 ms frames x 400 samples at 40 kHz, less 2 x 40000 of padding
    assert sr == 40000 == case["output_sr"] and y.size == 258 * 400 - 80000
    with np.load(case_dir / "stages.npz") as z:
        f0 = z["f0_hz"]
    # f0 is on the 10 ms grid of the input reflect-padded by 1 s (x_pad): frame k is t = k/100 - 1
    t = np.arange(f0.size) / 100 - 1.0
    inner = (t > 0.1) & (t < 0.5)
    assert np.abs(_cents(f0[inner], _demo_tone_f0(t[inner]))).max() < 15.0


def test_reference_compare_passes_the_expected_output_and_names_a_perturbed_stage(made_case, tmp_path, capsys):
    case_dir, _ = made_case
    assert cli.main(["reference", "compare", str(case_dir), str(case_dir / "expected.wav")]) == 0
    assert "FAIL" not in capsys.readouterr().out

    with np.load(case_dir / "stages.npz") as z:
        stages = {k: z[k] for k in z.files}
    stages["f0_hz"] = stages["f0_hz"] * 2 ** (1 / 12)  # a port that shifts the pitch a semitone
    np.savez(tmp_path / "port.npz", **stages)
    code = cli.main(["reference", "compare", str(case_dir), str(case_dir / "expected.wav"),
                     "--stages", str(tmp_path / "port.npz")])
    assert code == 1 and "first divergent stage: f0_hz" in capsys.readouterr().out

    y, sr = sf.read(case_dir / "expected.wav", dtype="float32")
    sf.write(tmp_path / "quiet.wav", 0.9 * y, sr, subtype="FLOAT")  # -0.9 dB
    assert cli.main(["reference", "compare", str(case_dir), str(tmp_path / "quiet.wav")]) == 1
    table = capsys.readouterr().out
    assert any(line.split()[0] == "gain_db" and line.split()[-1] == "FAIL" for line in table.splitlines()[1:])

