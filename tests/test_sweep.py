"""rvc_lab.sweep and ``rvc-lab sweep``: a study on a LocalCluster gives the serial numbers, resumes
after being killed, records a failing cell and goes on, and refuses bad studies before loading."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rvc_lab.errors import SettingsError
from rvc_lab.sweep import load_study, read_results, run_study, study_from_dict

# 4 cells of the demo voice: 2 block sizes x 2 F0 methods on a tone with exact F0 truth
STUDY_YAML = """\
name: small
voices: [demo/v2_40k]
inputs: [{tones: [complex_220]}]
grid: {block_time: [0.1, 0.25], f0_method: [pm, fcpe]}
measure: [parity, f0, cost]
seconds: 1.0
"""
N_CELLS = 4


def _cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "rvc_lab.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory, demo_assets):
    """The small study run by the CLI on a 2-worker LocalCluster, killed (SIGKILL to its whole
    process group, workers included) once 2 cells are recorded, then run again to the end."""
    d = tmp_path_factory.mktemp("sweep")
    study = d / "small.yaml"
    study.write_text(STUDY_YAML)
    out = d / "out"
    first = _cli("sweep", str(study), "-o", str(out), "--workers", "2", "--no-progress", start_new_session=True)
    deadline = time.monotonic() + 600
    while len(list((out / "cells").glob("*.json"))) < 2:
        assert first.poll() is None, f"the sweep ended before it could be interrupted:\n{first.stdout.read()}"
        assert time.monotonic() < deadline, "no cell recorded in 600 s"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    done = {p.name: p.read_bytes() for p in (out / "cells").glob("*.json")}
    results_after_kill = (out / "results.parquet").exists()
    second = _cli("sweep", str(study), "-o", str(out), "--workers", "2", "--no-progress")
    stdout, _ = second.communicate(timeout=900)
    assert second.returncode == 0, stdout
    return {"out": out, "study": study, "done_before": done, "stdout": stdout,
            "results_after_kill": results_after_kill}


def test_killed_sweep_resumes_with_only_the_missing_cells(killed_and_resumed):
    r = killed_and_resumed
    k = len(r["done_before"])
    assert 2 <= k < N_CELLS, f"{k} cells were recorded before the kill; the test needs an interrupted run"
    assert not r["results_after_kill"], "the killed run wrote a results table"
    assert f"{N_CELLS} cells, {k} from" in r["stdout"], r["stdout"]
    assert f"{N_CELLS - k} computed on a LocalCluster (2 worker(s)" in r["stdout"], r["stdout"]
    # the records of the killed run were reused untouched, and no temporary file was left
    for name, data in r["done_before"].items():
        assert (r["out"] / "cells" / name).read_bytes() == data
    assert sorted(p.suffix for p in (r["out"] / "cells").iterdir()) == [".json"] * N_CELLS


def test_results_table_is_tidy_and_f0_matches_the_tone_truth(killed_and_resumed):
    table = read_results(killed_and_resumed["out"])
    csv = pd.read_csv(killed_and_resumed["out"] / "results.csv", keep_default_na=False, na_values=["NaN", "nan", ""])
    assert list(csv.columns) == list(table.columns) and len(csv) == len(table)
    np.testing.assert_allclose(csv["value"], table["value"], rtol=1e-12)
    assert set(table["cell"]) and table["cell"].nunique() == N_CELLS
    assert {"block_time", "f0_method", "measure", "metric", "value", "cpu_model", "n_workers"} <= set(table.columns)
    assert (table["status"] == "ok").all(), table[table["status"] != "ok"]
    # the complex tone is 220 Hz throughout (rvc_lab.testsignals): both trackers must find it
    rpa = table[(table["metric"] == "raw_pitch_accuracy")]
    assert len(rpa) == N_CELLS and (rpa["value"] > 0.9).all(), rpa
    cost = table[table["measure"] == "cost"]
    assert cost["metric"].str.endswith("_ms").any() and (cost["n_workers"] == 2).all()


def test_local_cluster_gives_the_serial_numbers(killed_and_resumed, tmp_path):
    serial = run_study(load_study(killed_and_resumed["study"]), tmp_path / "serial", serial=True, progress=False)
    assert serial.computed == N_CELLS and serial.n_workers == 1
    cluster = read_results(killed_and_resumed["out"])
    key = ["cell", "measure", "metric"]
    a = cluster[cluster["measure"] != "cost"].set_index(key)["value"].sort_index()
    b = serial.table[serial.table["measure"] != "cost"].set_index(key)["value"].sort_index()
    assert list(a.index) == list(b.index)
    # exactly equal: same code, same threads per cell, same machine
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())


def test_parameter_effects_are_marginal_means_by_hand():
    from rvc_lab import plots
    from rvc_lab.sweep.effects import parameter_effects

    # a 2 x 2 grid, one metric; an error row and a not-computed row that must be left out
    base = {"study": "s", "voice": "v", "input": "tone:a", "measure": "parity", "metric": "m", "status": "ok",
            "reason": "", "cpu_model": "", "n_workers": 1, "threads": 1}
    rows = [{**base, "cell": f"c{i}", "block_time": bt, "f0_method": fm, "value": v}
            for i, (bt, fm, v) in enumerate([(0.1, "pm", 1.0), (0.1, "fcpe", 2.0), (0.25, "pm", 3.0),
                                             (0.25, "fcpe", 7.0)])]
    rows.append({**base, "cell": "c4", "block_time": 0.25, "f0_method": "pm", "value": float("nan"),
                 "status": "error", "reason": "boom"})
    rows.append({**base, "cell": "c0", "metric": "other", "block_time": 0.1, "f0_method": "pm",
                 "value": float("nan"), "status": "not computed", "reason": "no truth"})
    cols = ["study", "cell", "voice", "input", "block_time", "f0_method", "measure", "metric", "value", "status",
            "reason", "cpu_model", "n_workers", "threads"]
    effects = parameter_effects(pd.DataFrame(rows, columns=cols), n_resamples=200)
    got = {(r.parameter, r.value): (r.mean, r.n) for r in effects.itertuples()}
    assert got == {("block_time", 0.1): (1.5, 2), ("block_time", 0.25): (5.0, 2),
                   ("f0_method", "pm"): (2.0, 2), ("f0_method", "fcpe"): (4.5, 2)}
    # the interval holds the mean and stays within the cells' values
    assert ((effects.ci_low <= effects["mean"]) & (effects["mean"] <= effects.ci_high)).all()
    assert effects.set_index(["parameter", "value"]).loc[("block_time", 0.25), "ci_high"] <= 7.0
    fig = plots.plot_sweep_effects(effects, "m")
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 2
    with pytest.raises(ValueError, match="not a sweep results table"):
        parameter_effects(pd.DataFrame({"value": [1.0]}))


def test_f0_method_has_no_effect_on_content_features(killed_and_resumed):
    """HuBERT never sees the F0 track: the content-feature divergence must be the same for pm and fcpe."""
    from rvc_lab.sweep.effects import parameter_effects

    effects = parameter_effects(read_results(killed_and_resumed["out"]), ["features_rel_l2", "f0_cents_mae"])
    feat = effects[(effects.metric == "features_rel_l2") & (effects.parameter == "f0_method")]
    assert len(feat) == 2 and feat["mean"].iloc[0] == feat["mean"].iloc[1] and feat["mean"].iloc[0] > 0
    # while the block size does change it (a different HuBERT window per block)
    blocks = effects[(effects.metric == "features_rel_l2") & (effects.parameter == "block_time")]
    assert blocks["mean"].nunique() == 2


def _cheap_study(**over):
    raw = {"name": "cheap", "inputs": [{"tones": ["sine_440", "complex_220"]}], "grid": {"f0_method": ["pm"]},
           "measure": ["f0", "cost"], "seconds": 0.5}
    raw.update(over)
    return study_from_dict(raw)


def test_a_failing_measurement_is_recorded_and_the_rest_runs(tmp_path, monkeypatch):
    from rvc_lab.sweep import measures

    real = measures.MEASURES["f0"]

    def broken_on_sine_440(cell, *args):
        if cell.input.ref == "sine_440":
            raise RuntimeError("deliberate fault")
        return real(cell, *args)

    monkeypatch.setitem(measures.MEASURES, "f0", broken_on_sine_440)
    res = run_study(_cheap_study(), tmp_path, serial=True, progress=False)
    assert (res.cells, res.computed, res.failed) == (2, 2, 1)
    t = res.table
    bad = t[(t["input"] == "tone:sine_440") & (t["measure"] == "f0")]
    assert list(bad["status"]) == ["error"] and "RuntimeError: deliberate fault" in bad["reason"].iloc[0]
    # the same cell's cost and the other cell ran
    assert (t[(t["input"] == "tone:sine_440") & (t["measure"] == "cost")]["status"] == "ok").all()
    good = t[(t["input"] == "tone:complex_220") & (t["metric"] == "raw_pitch_accuracy")]
    assert good["value"].iloc[0] > 0.9
    # the error is cached: a plain rerun computes nothing, --retry-errors computes that cell again
    monkeypatch.setitem(measures.MEASURES, "f0", real)
    assert run_study(_cheap_study(), tmp_path, serial=True, progress=False).computed == 0
    again = run_study(_cheap_study(), tmp_path, serial=True, progress=False, retry_errors=True)
    assert (again.computed, again.failed) == (1, 0)
    # a different setting is a different cell
    assert run_study(_cheap_study(grid={"f0_method": ["pm"], "pitch": [12.0]}), tmp_path, serial=True,
                     progress=False).computed == 2


@pytest.mark.parametrize("raw, message", [
    ({"grid": {"block_tme": [0.1]}}, "setting 'block_tme' unknown"),
    ({"grid": {"block_time": [0.1, 0.1]}}, "lists a value twice"),
    ({"grid": {"block_time": ["fast"]}}, "is not a float"),
    ({"grid": {"f0_method": ["rmvpe"]}, "voices": []}, "rmvpe needs an rmvpe.pt"),
    ({"grid": {"f0_method": ["yin"]}}, "yin"),
    ({"grid": {"block_time": [0.1]}, "settings": {"block_time": 0.2}}, "both fixed in settings and swept"),
    ({"voices": ["demo/v3"]}, "not a demo voice"),
    ({"voices": [{"model": "missing.pth", "hubert": "h.pt"}]}, "does not exist"),
    ({"inputs": [{"tones": ["no_such_tone"]}]}, "unknown"),
    ({"inputs": []}, "no inputs"),
    ({"measure": ["parity"], "voices": []}, "needs voices"),
    ({"measure": ["mos"]}, "measure ['mos'] unknown"),
    ({"seconds": -1}, "positive number"),
    ({"threads_per_cell": 0}, "whole number"),
    ({"backend": "onnx"}, "unknown key(s) backend"),
    ({"grid": {"backend": ["tensorrt"]}, "voices": ["demo/v2_40k"], "measure": ["parity"]}, "tensorrt"),
    ({"grid": {"block_time": [0.013]}, "voices": ["demo/v2_40k"], "measure": ["parity"]}, "block"),
])
def test_bad_studies_are_refused_before_anything_loads(raw, message, tmp_path):
    base = {"inputs": ["speech"], "grid": {"f0_method": ["pm"]}, "measure": ["f0"]}
    base.update(raw)
    with pytest.raises(SettingsError) as err:
        study_from_dict(base, base_dir=tmp_path)
    assert message in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_bad_options_and_files_without_writing(tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text("name: x\ninputs: [speech]\ngrid: {f0_method: [pm]}\nmeasure: [f0]\n")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("grid: {f0_method: [pm\n")
    a_file = tmp_path / "taken"
    a_file.write_text("keep me")
    cases = [
        ([str(tmp_path / "nope.yaml"), "-o", str(tmp_path / "o")], "does not exist"),
        ([str(bad_yaml), "-o", str(tmp_path / "o")], "cannot be parsed"),
        ([str(study), "-o", str(a_file)], "is a file"),
        ([str(study), "-o", str(tmp_path / "o"), "--serial", "--workers", "2"], "--serial"),
        ([str(study), "-o", str(tmp_path / "o"), "--workers", "0"], "--workers 0"),
        ([str(study), "-o", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:9"], "cannot reach"),
    ]
    for args, message in cases:
        proc = _cli("sweep", *args)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 2 and message in out, (args, out)
    assert a_file.read_text() == "keep me"
    assert not (tmp_path / "o" / "cells").exists() or not list((tmp_path / "o" / "cells").iterdir())


def test_demo_study_is_the_documented_2x2x2():
    study = load_study(Path(__file__).resolve().parents[1] / "studies" / "demo.yaml")
    assert [len(v) for v in study.grid.values()] == [2, 2, 2]
    assert [v.name for v in study.voices] == ["demo/v2_40k"]
    assert set(study.measure) == {"parity", "f0", "cost"}
    assert len(study.cells()) == 8 * len(study.inputs)


def test_study_files_are_yaml_or_json_and_never_build_objects(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({"inputs": ["speech"], "grid": {"f0_method": ["pm"]},
                                                 "measure": ["f0"]}))
    assert load_study(tmp_path / "s.json").name == "s"
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(SettingsError, match="cannot be parsed"):
        load_study(evil)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
