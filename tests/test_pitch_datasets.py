"""Pitch-dataset readers (rvc_lab.pitch_datasets) and ``f0-bench --dataset`` on tiny synthetic
datasets written here in each layout: harmonic tones of known F0, then silence."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from rvc_lab.errors import SettingsError
from rvc_lab.f0bench import dataset_summary, main_f0_bench, run_dataset_bench
from rvc_lab.pitch_datasets import DatasetItem, dataset_items, read_item_audio, read_reference

VOICED_S, TOTAL_S = 0.6, 1.0


def harmonic(f0: float, sr: int, seconds: float = TOTAL_S, voiced_s: float = VOICED_S) -> np.ndarray:
    """Five harmonics (1/k amplitudes) of ``f0`` for ``voiced_s``, silence to ``seconds``."""
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
    return (0.3 * x * (t < voiced_s)).astype(np.float32)


def truth(times: np.ndarray, f0: float) -> np.ndarray:
    return np.where(times < VOICED_S, f0, 0.0)


def write_mir1k(root, f0=220.0):
    (root / "Wavfile").mkdir(parents=True)
    (root / "PitchLabel").mkdir()
    voice, accompaniment = harmonic(f0, 16000), harmonic(500.0, 16000, voiced_s=TOTAL_S) * 2
    sf.write(root / "Wavfile" / "abjones_1_01.wav", np.stack([accompaniment, voice], axis=1), 16000)
    times = (np.arange(49) + 1) * 0.02  # 40 ms frames at a 20 ms hop, frame i at (i + 1) * 20 ms
    midi = np.where(times < VOICED_S, 69 + 12 * np.log2(f0 / 440.0), 0.0)
    np.savetxt(root / "PitchLabel" / "abjones_1_01.pv", midi, fmt="%.6f")
    sf.write(root / "Wavfile" / "no_label.wav", np.stack([voice, voice], axis=1), 16000)  # left out


def write_mdb(root, f0=330.0):
    (root / "audio_stem").mkdir(parents=True)
    (root / "annotation_stem").mkdir()
    sf.write(root / "audio_stem" / "AClassicEducation_NightOwl_STEM_08.RESYN.wav", harmonic(f0, 44100), 44100)
    times = np.arange(int(TOTAL_S * 44100 / 128)) * 128 / 44100
    np.savetxt(root / "annotation_stem" / "AClassicEducation_NightOwl_STEM_08.RESYN.csv",
               np.stack([times, truth(times, f0)], axis=1), delimiter=",", fmt="%.6f")


def write_ptdb(root, f0=180.0):
    for sub in ("MIC/F01", "REF/F01", "LAR/F01"):
        (root / "FEMALE" / sub).mkdir(parents=True)
    sf.write(root / "FEMALE" / "MIC" / "F01" / "mic_F01_sa1.wav", harmonic(f0, 48000), 48000)
    times = 0.016 + np.arange(98) * 0.01
    f = truth(times, f0)
    cols = np.stack([f, (f > 0).astype(float), np.full_like(f, 1000.0), np.full_like(f, 0.9)], axis=1)
    np.savetxt(root / "FEMALE" / "REF" / "F01" / "ref_F01_sa1.f0", cols, fmt="%.4f")


def write_csv(root, f0=260.0):
    root.mkdir(parents=True)
    sf.write(root / "take1.wav", harmonic(f0, 22050), 22050)  # not whole 10 ms frames: resampled
    times = np.arange(0, TOTAL_S, 0.005)
    np.savetxt(root / "take1.csv", np.stack([times, truth(times, f0)], axis=1), delimiter=",", fmt="%.6f",
               header="time_s,f0_hz", comments="")


WRITERS = {"mir1k": (write_mir1k, 220.0, 0.02), "mdb-stem-synth": (write_mdb, 330.0, 0.0),
           "ptdb-tug": (write_ptdb, 180.0, 0.016), "csv": (write_csv, 260.0, 0.0)}


@pytest.mark.parametrize("layout", list(WRITERS))
def test_reader_gives_the_written_truth(layout, tmp_path):
    write, f0, first_time = WRITERS[layout]
    write(tmp_path / layout)
    items = dataset_items(tmp_path / layout, layout)
    assert len(items) == 1  # MIR-1K's unlabelled file is left out
    ref = read_reference(items[0])
    assert ref.times[0] == pytest.approx(first_time, abs=1e-6)
    np.testing.assert_allclose(ref.f0_hz, truth(ref.times, f0), atol=1e-3)
    assert np.array_equal(ref.voiced, ref.f0_hz > 0)
    audio, sr = read_item_audio(items[0])
    assert audio.ndim == 1 and audio.shape[0] == int(TOTAL_S * sr)
    if layout == "mir1k":  # the right channel (the voice), not the louder accompaniment
        np.testing.assert_allclose(audio, harmonic(220.0, 16000), atol=1 / 32768)  # 16-bit PCM


@pytest.mark.parametrize("layout", list(WRITERS))
def test_f0_bench_dataset_scores_known_tones(layout, tmp_path, capsys):
    write, _, _ = WRITERS[layout]
    write(tmp_path / layout)
    out_csv = tmp_path / "per_utterance.csv"
    code = main_f0_bench(["--dataset", str(tmp_path / layout), "--layout", layout, "--methods", "pm", "harvest",
                          "--serial", "--sweep-out", str(tmp_path / "sweep"), "-o", str(out_csv)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "mean [95 % bootstrap interval]" in printed and out_csv.exists()
    results = run_dataset_bench(tmp_path / layout, layout, methods=["pm", "harvest"], serial=True,
                                out=tmp_path / "sweep", progress=False)  # all cached now
    summary = dataset_summary(results)
    assert list(summary.index) == ["pm", "harvest"] and (summary["ok"] == 1).all()
    # a clean harmonic tone on the reference grid: both trackers within 50 cents almost everywhere
    assert (summary["raw_pitch_accuracy"] > 0.9).all(), summary
    assert (summary["voicing_recall"] > 0.85).all(), summary
    assert (summary["ms_per_s"] > 0).all()


def test_bootstrap_interval_by_hand():
    from rvc_lab.metrics.stats import bootstrap_mean_ci

    mean, lo, hi = bootstrap_mean_ci([0.0, 1.0] * 50, n_resamples=2000)
    # mean 0.5; the sd of a mean of 100 fair coin flips is 0.05, so the 95 % interval is ~0.5 +- 0.098
    assert mean == 0.5 and lo == pytest.approx(0.402, abs=0.02) and hi == pytest.approx(0.598, abs=0.02)
    assert bootstrap_mean_ci([np.nan, 3.0]) == (3.0, 3.0, 3.0)


def test_bad_datasets_are_refused(tmp_path):
    with pytest.raises(SettingsError, match="layout 'timit' unknown"):
        dataset_items(tmp_path, "timit")
    with pytest.raises(SettingsError, match="no audio file with its reference"):
        dataset_items(tmp_path, "mir1k")
    write_mir1k(tmp_path / "m")
    mono = tmp_path / "m" / "Wavfile" / "abjones_1_01.wav"
    sf.write(mono, harmonic(220.0, 16000), 16000)
    with pytest.raises(SettingsError, match="stereo"):
        read_item_audio(DatasetItem("x", str(mono), "", "mir1k"))
    bad_ref = tmp_path / "r.csv"
    bad_ref.write_text("time_s,f0_hz\n0.1,200\n0.05,200\n")
    with pytest.raises(SettingsError, match="do not increase"):
        read_reference(DatasetItem("x", "", str(bad_ref), "csv"))
    with pytest.raises(SettingsError, match="--dataset and --layout go together"):
        main_f0_bench(["--dataset", str(tmp_path)])
    with pytest.raises(SettingsError, match="--workers 0: give 1 or more"):
        main_f0_bench(["--dataset", str(tmp_path / "m"), "--layout", "mir1k", "--workers", "0"])
