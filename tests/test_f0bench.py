"""f0-bench: its scores must be what mir_eval says about the same arrays, and its table must
show what the tone suite is for (a skipped rmvpe, harvest's blindness to pure sines)."""
from __future__ import annotations

import math

import mir_eval
import numpy as np
import pandas as pd
import pytest

from rvc_lab.f0 import F0Estimator
from rvc_lab.f0bench import RESULT_COLUMNS, bench_summary, main_f0_bench, run_f0_bench
from rvc_lab.metrics.f0 import MIR_EVAL_KEYS
from rvc_lab.testsignals import tone_suite

SIGNALS = ["sine_110", "complex_220", "vibrato_300", "gaps_200", "complex_1090"]


@pytest.fixture(scope="module")
def small_suite():
    return tone_suite(16000, 0.5, names=SIGNALS)


@pytest.fixture(scope="module")
def fast_results(small_suite):
    return run_f0_bench(methods=["pm", "dio", "harvest", "rmvpe"], suite=small_suite)


def test_table_shape_and_statuses(fast_results, small_suite):
    assert list(fast_results.columns) == list(RESULT_COLUMNS)
    assert len(fast_results) == 4 * len(small_suite)
    ran = fast_results[fast_results["method"] != "rmvpe"]
    assert (ran["status"] == "ok").all()
    assert (ran["ms_per_s"] > 0).all()
    rmvpe = fast_results[fast_results["method"] == "rmvpe"]
    assert (rmvpe["status"] == "skipped").all()
    assert rmvpe["reason"].str.contains("--rmvpe").all()
    assert rmvpe["raw_pitch_accuracy"].isna().all()


@pytest.mark.parametrize("method", ["pm", "dio", "harvest"])
def test_scores_equal_mir_eval_on_independently_recomputed_tracks(fast_results, small_suite, method):
    estimator = F0Estimator(method)
    rows = fast_results[fast_results["method"] == method].set_index("signal")
    for case in small_suite:
        est = estimator.track(case.audio)
        assert est.shape == case.f0_hz.shape
        scores = mir_eval.melody.evaluate(case.times, case.f0_hz, case.times, est)
        row = rows.loc[case.name]
        for key, mir_key in MIR_EVAL_KEYS.items():
            ours = row[key]
            if math.isnan(ours):
                # only where mir_eval's value is a placeholder for an empty denominator
                assert key == "voicing_false_alarm" and case.voiced.all()
                continue
            assert ours == pytest.approx(scores[mir_key], abs=1e-12), (method, case.name, key)
        both = (case.f0_hz > 0) & (est > 0)
        if both.any():
            cents = np.abs(1200 * np.log2(est[both] / case.f0_hz[both]))
            assert row["cents_mae"] == pytest.approx(cents.mean(), rel=1e-12)


def test_suite_shows_harvest_missing_pure_sines(fast_results):
    harvest = fast_results[fast_results["method"] == "harvest"].set_index("signal")
    assert harvest.loc["sine_110", "voicing_recall"] < 0.5  # no harmonics: WORLD's harvest hears no voice
    assert harvest.loc["complex_220", "voicing_recall"] > 0.9


def test_known_trackers_give_known_scores(small_suite):
    # Trackers that know the truth (looked up by the audio itself) have known scores.
    lookup = {case.audio.tobytes(): case.f0_hz for case in small_suite}
    results = run_f0_bench(
        methods=[],
        suite=small_suite,
        trackers={
            "oracle": lambda x: lookup[np.asarray(x).tobytes()].copy(),
            "octave_up": lambda x: 2.0 * lookup[np.asarray(x).tobytes()],
            "wrong_length": lambda x: np.zeros(3),
        },
        warmup=False,
    )
    oracle = results[results["method"] == "oracle"]
    assert (oracle["status"] == "ok").all() and len(oracle) == len(small_suite)
    for col in ("voicing_recall", "raw_pitch_accuracy", "raw_chroma_accuracy", "overall_accuracy"):
        assert (oracle[col] == 1.0).all()
    assert (oracle["cents_mae"] == 0.0).all() and (oracle["gross_pitch_error"] == 0.0).all()
    up = results[results["method"] == "octave_up"]
    assert (up["raw_pitch_accuracy"] == 0.0).all() and (up["raw_chroma_accuracy"] == 1.0).all()
    assert (up["octave_error_rate"] == 1.0).all()
    np.testing.assert_allclose(up["cents_mae"], 1200.0)
    wrong = results[results["method"] == "wrong_length"]
    assert (wrong["status"] == "error").all() and wrong["reason"].str.contains("frames").all()


def test_unknown_method_is_an_error_row_not_a_crash(small_suite):
    results = run_f0_bench(methods=["nope", "pm"], suite=small_suite[:1])
    assert results.set_index("method").loc["nope", "status"] == "error"
    assert results.set_index("method").loc["pm", "status"] == "ok"


def test_rejects_signals_at_other_rates():
    with pytest.raises(ValueError, match="16000"):
        run_f0_bench(methods=["pm"], suite=tone_suite(44100, 0.2, names=["complex_220"]))


def test_summary_means(fast_results):
    summary = bench_summary(fast_results)
    assert list(summary.index) == ["pm", "dio", "harvest", "rmvpe"]
    pm = fast_results[fast_results["method"] == "pm"]
    assert summary.loc["pm", "ok"] == len(pm)
    assert summary.loc["pm", "raw_pitch_accuracy"] == pytest.approx(pm["raw_pitch_accuracy"].mean())
    assert summary.loc["rmvpe", "ok"] == 0


def test_crepe_tiny_and_fcpe_run(small_suite):
    results = run_f0_bench(methods=["crepe-tiny", "fcpe"], suite=small_suite[1:2])
    assert (results["status"] == "ok").all(), results[["method", "reason"]]
    for method in ("crepe-tiny", "fcpe"):
        est = F0Estimator(method).track(small_suite[1].audio)
        row = results.set_index("method").loc[method]
        scores = mir_eval.melody.evaluate(small_suite[1].times, small_suite[1].f0_hz, small_suite[1].times, est)
        assert row["raw_pitch_accuracy"] == pytest.approx(scores["Raw Pitch Accuracy"], abs=1e-12)


@pytest.mark.parity
def test_rmvpe_runs_when_given_a_model(parity_files):
    rmvpe_path = parity_files.rmvpe
    suite = tone_suite(16000, 0.3, names=["complex_220"])
    results = run_f0_bench(methods=["rmvpe"], rmvpe_path=str(rmvpe_path), suite=suite)
    assert results["status"].tolist() == ["ok"], results["reason"].tolist()
    est = F0Estimator("rmvpe", rmvpe_path=rmvpe_path).track(suite[0].audio)
    scores = mir_eval.melody.evaluate(suite[0].times, suite[0].f0_hz, suite[0].times, est)
    for key, mir_key in MIR_EVAL_KEYS.items():
        value = results.iloc[0][key]
        if not math.isnan(value):
            assert value == pytest.approx(scores[mir_key], abs=1e-12)


def test_cli_writes_csv_and_lists_skips(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    status = main_f0_bench(
        ["-o", str(out), "--methods", "pm", "rmvpe", "--seconds", "0.3", "--signals", "complex_220", "gaps_200"]
    )
    assert status == 0
    table = pd.read_csv(out)
    assert list(table.columns) == list(RESULT_COLUMNS)
    assert sorted(zip(table["method"], table["signal"])) == sorted(
        (m, s) for m in ("pm", "rmvpe") for s in ("complex_220", "gaps_200")
    )
    printed = capsys.readouterr().out
    assert "rmvpe: skipped" in printed and "pm" in printed
