"""Offline conversion on rvc_lab's demo assets: every F0 method, odd but valid audio, bad input.

Numbers against upstream are in test_conversion_parity.py; here the truths are the contract
(lengths, rates, int16), the input's own properties (silence stays silence) and the errors.
"""
from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf

from rvc_lab import cli
from rvc_lab.convert.models import ConverterModels
from rvc_lab.convert.offline import OfflineSettings, convert_offline
from rvc_lab.errors import InvalidAudioError, SettingsError
from rvc_lab.f0 import METHODS


@pytest.fixture(scope="module")
def v2_models(demo_paths):
    p = demo_paths
    return ConverterModels.load(p["demo_v2_40k_f0"], hubert=p["hubert"], index=p["demo_v2_40k_f0_index"], rmvpe=p["rmvpe"])


def _expected_len(n16k: int, tgt_sr: int) -> int:
    # padded by 1 s each side, 10 ms frames, then 1 s of padding removed at the model rate
    n_pad = n16k + 2 * 16000
    frames = min(n_pad // 160, 2 * ((n_pad - 400) // 320 + 1))
    return frames * tgt_sr // 100 - 2 * tgt_sr


def test_every_f0_method_converts(v2_models, demo_paths):
    x, sr = sf.read(demo_paths["tone_16k"], dtype="float32")
    x = x[: sr]  # 1 s keeps crepe (full) affordable
    for method in METHODS:
        res = convert_offline(v2_models, x, OfflineSettings(f0_method=method, pitch=2, noise=False))
        assert res.sr == 40000
        assert res.audio.dtype == np.int16 and res.audio.shape == (_expected_len(x.size, 40000),), method
        assert np.abs(res.audio).max() > 100, f"{method}: output is silent"


def test_cli_convert_with_index_resample_and_seed(demo_paths, tmp_path):
    p = demo_paths
    out = tmp_path / "out.wav"
    args = ["convert", str(p["tone_48k"]), "-o", str(out), "--model", str(p["demo_v2_40k_f0"]), "--hubert", str(p["hubert"]),
            "--index", str(p["demo_v2_40k_f0_index"]), "--f0-method", "fcpe", "--resample-sr", "48000", "--seed", "7"]
    assert cli.main(args) == 0
    y, sr = sf.read(out, dtype="int16")
    assert sr == 48000 and y.size > 0.9 * 2 * 48000
    out2 = tmp_path / "out2.wav"
    assert cli.main(args[:3] + [str(out2)] + args[4:]) == 0
    assert np.array_equal(sf.read(out2, dtype="int16")[0], y), "same seed must give the same output"


def test_no_f0_and_v1_voices_convert(demo_paths):
    p = demo_paths
    x, _ = sf.read(p["tone_16k"], dtype="float32")
    for name, sr in (("demo_v2_32k_nof0", 32000), ("demo_v1_48k_f0", 48000)):
        m = ConverterModels.load(p[name], hubert=p["hubert"], index=p[f"{name}_index"])
        res = convert_offline(m, x, OfflineSettings(f0_method="pm", noise=False))
        assert res.sr == sr and res.audio.shape == (_expected_len(x.size, sr),)


def test_silence_converts_to_silence(v2_models, caplog):
    with caplog.at_level(logging.INFO):
        res = convert_offline(v2_models, np.zeros(16000, np.float32), OfflineSettings(f0_method="pm", rms_mix_rate=1.0))
    assert not np.any(res.audio)
    assert any("silence" in r.message for r in caplog.records)


def test_stereo_8k_loud_input_is_mixed_resampled_normalized(demo_paths, tmp_path, caplog):
    p = demo_paths
    x, _ = sf.read(p["tone_16k"], dtype="float32")
    import librosa

    x8 = librosa.resample(x, orig_sr=16000, target_sr=8000)
    stereo = np.stack([x8 * 3.0, x8 * 1.0], axis=1)  # mean peak ~2x full scale: normalised
    src = tmp_path / "stereo8k.wav"
    sf.write(src, stereo, 8000, subtype="FLOAT")
    out = tmp_path / "o.wav"
    with caplog.at_level(logging.INFO):
        assert cli.main(["convert", str(src), "-o", str(out), "--model", str(p["demo_v2_40k_f0"]),
                         "--hubert", str(p["hubert"]), "--f0-method", "pm", "--no-noise"]) == 0
    text = " ".join(r.message for r in caplog.records).lower()
    # one log line each: the mix-down, the resampling, and upstream's peak rule (peak > 0.95 -> x / (peak / 0.95))
    assert "mixed down to mono" in text and "resampled input 8000 hz -> 16000 hz" in text
    assert "above 0.95: scaled down by" in text
    assert sf.info(out).samplerate == 40000


def _bad(tmp_path, demo_paths, capsys, input_path, **over):
    p = demo_paths
    out = tmp_path / "bad_out.wav"
    args = {"--model": str(p["demo_v2_40k_f0"]), "--hubert": str(p["hubert"]), "--f0-method": "pm"}
    args.update(over)
    argv = ["convert", str(input_path), "-o", str(out)] + [t for kv in args.items() for t in kv] + ["--no-noise"]
    try:
        rc = cli.main(argv)
    except SystemExit as exc:  # argparse's own refusals (an unknown --f0-method choice)
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert not out.exists(), "nothing may be written at the output path on error"
    return err


def test_bad_inputs_give_specific_errors(tmp_path, demo_paths, capsys):
    p = demo_paths
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    assert "empty" in _bad(tmp_path, p, capsys, empty).lower()
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    assert "nan" in _bad(tmp_path, p, capsys, nan).lower()
    notaudio = tmp_path / "notes.wav"
    notaudio.write_text("this is not audio\n")
    assert "notes.wav" in _bad(tmp_path, p, capsys, notaudio)
    good = p["tone_16k"]
    assert "missing.pth" in _bad(tmp_path, p, capsys, good, **{"--model": str(tmp_path / "missing.pth")})
    trunc = tmp_path / "trunc.pth"
    trunc.write_bytes(p["demo_v2_40k_f0"].read_bytes()[: 1 << 20])
    assert "trunc.pth" in _bad(tmp_path, p, capsys, good, **{"--model": str(trunc)})
    err = _bad(tmp_path, p, capsys, good, **{"--index": str(p["demo_v1_48k_f0_index"])})
    assert "v1" in err and "v2" in err
    assert "--f0-method: invalid choice: 'yin'" in _bad(tmp_path, p, capsys, good, **{"--f0-method": "yin"})
    assert "needs --rmvpe" in _bad(tmp_path, p, capsys, good, **{"--f0-method": "rmvpe"})


def test_stream_resamples_a_file_whose_rate_is_not_a_multiple_of_100(tmp_path, demo_paths, caplog):
    # espeak-ng writes 22050 Hz: a file is not a device, so it is resampled to --stream-sr
    import librosa

    p = demo_paths
    x, _ = sf.read(p["tone_16k"], dtype="float32")
    src = tmp_path / "tone22050.wav"
    sf.write(src, librosa.resample(x[:16000], orig_sr=16000, target_sr=22050), 22050, subtype="FLOAT")
    out = tmp_path / "o.wav"
    with caplog.at_level(logging.INFO):
        assert cli.main(["stream", str(src), "-o", str(out), "--model", str(p["demo_v2_40k_f0"]),
                         "--hubert", str(p["hubert"]), "--f0-method", "pm", "--no-noise", "--block-time", "0.1",
                         "--extra-time", "0.3", "--stream-sr", "16000"]) == 0
    assert "resampled to 16000 hz to stream" in " ".join(r.message for r in caplog.records).lower()
    y, sr = sf.read(out)
    assert sr == 16000 and y.size >= 16000  # 1 s of input, whole blocks of output


def test_impossible_settings_are_refused(v2_models):
    x = np.zeros(16000, np.float32)
    for bad in (dict(index_rate=1.5), dict(protect=0.7), dict(rms_mix_rate=-0.1), dict(sid=500), dict(resample_sr=-1)):
        with pytest.raises(SettingsError):
            convert_offline(v2_models, x, OfflineSettings(**bad))
    with pytest.raises(InvalidAudioError):
        convert_offline(v2_models, np.zeros(100, np.float32), OfflineSettings())


def test_info_summarises_each_demo_voice(demo_paths, capsys):
    for name, sr in (("demo_v2_40k_f0", 40000), ("demo_v1_48k_f0", 48000), ("demo_v2_32k_nof0", 32000)):
        assert cli.main(["info", str(demo_paths[name])]) == 0
        out = capsys.readouterr().out
        assert str(sr) in out and ("v2" in out if "v2" in name else "v1" in out)


# ------------------------------------------------------------------------- long-input chunking
def _long_with_gaps(seconds: float, gaps_s: list[tuple[float, float]]) -> np.ndarray:
    """A 16 kHz harmonic tone with a little noise (never exactly silent) and digital silence in ``gaps_s``."""
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    x = 0.3 * np.sin(2 * np.pi * 150 * t) + 0.1 * np.sin(2 * np.pi * 300 * t)
    x += 1e-3 * np.random.default_rng(1).standard_normal(n)
    for a, b in gaps_s:
        x[int(a * 16000) : int(b * 16000)] = 0.0
    return x.astype(np.float32)


def test_long_input_is_cut_inside_its_silent_gaps_by_upstreams_rules():
    # upstream Pipeline.pipeline (x_query 6, x_center 38, x_max 41 on CPU/fp32): every 38 s, the
    # point within +-6 s where the sum of |x| over a centred 10 ms window (160 samples) is least.
    # Inside a silent gap [a, b) that sum is 0 from a + 80 samples on, so the first minimum (numpy's
    # argmin, upstream's np.where(...)[0][0]) is exactly a + 80.  Search windows: 38 +- 6 s and
    # 76 +- 6 s; the gap at 20 s lies outside both and must not be chosen.
    from rvc_lab.convert.offline import quiet_cut_points

    gaps = [(20.0, 20.5), (40.25, 40.6), (75.1, 75.3)]
    x = _long_with_gaps(90.0, gaps)
    cuts = quiet_cut_points(x, OfflineSettings())
    assert cuts == [int(40.25 * 16000) + 80, int(75.1 * 16000) + 80]
    for cut, (a, b) in zip(cuts, gaps[1:]):
        assert a * 16000 <= cut - 80 and cut + 80 <= b * 16000  # the whole window is silent


def test_inputs_up_to_x_max_are_not_cut():
    # upstream cuts when the input padded by 80 samples each side exceeds x_max = 41 s
    from rvc_lab.convert.offline import quiet_cut_points

    limit = 41 * 16000 - 160
    assert quiet_cut_points(_long_with_gaps(limit / 16000, []), OfflineSettings()) == []
    x = _long_with_gaps(41.0, [(36.0, 36.2)])[: limit + 1]
    assert quiet_cut_points(x, OfflineSettings()) == [36 * 16000 + 80]


def test_chunked_conversion_equals_its_chunks_converted_one_by_one(demo_paths):
    # Upstream's chunk rules at a smaller scale (x_query 1, x_center 4, x_max 5 s; the same code
    # path as 6/38/41 s at a fifth of the cost) on a 7 s input whose silence 1.9-4.2 s holds the
    # cut: the 3-5 s search window is silent from its first sample, so the cut is at 3.0 s.  Each
    # chunk is converted with 1 s of real context each side (x_pad); here that context is silence,
    # which is also what reflect padding gives when each piece is converted on its own.  So the
    # long output must equal piece 0 (seed N) followed by piece 1 (seed N + 1): the seed contract.
    # The no-F0 voice has no whole-signal F0 interpolation to couple the pieces.
    from rvc_lab.convert.offline import quiet_cut_points

    models = ConverterModels.load(demo_paths["demo_v2_32k_nof0"], hubert=demo_paths["hubert"])
    x = _long_with_gaps(7.0, [(1.9, 4.2)])
    small = dict(x_query=1, x_center=4, x_max=5, rms_mix_rate=1.0, noise=True)
    assert quiet_cut_points(x, OfflineSettings(**small)) == [48000]
    whole = convert_offline(models, x, OfflineSettings(**small, seed=5)).audio
    pieces = [convert_offline(models, x[: 48000 + 160], OfflineSettings(**small, seed=5)).audio,
              convert_offline(models, x[48000:], OfflineSettings(**small, seed=6)).audio]
    # padded lengths 80160 and 96000: HuBERT frames (n - 400) // 320 + 1 = 250, 299 -> 500, 598
    # 10 ms frames, less 2 x 100 of padding, x 320 samples at 32 kHz
    assert [p.size for p in pieces] == [300 * 320, 398 * 320] and whole.size == 698 * 320
    # measured: at most 1 LSB apart on 0.01 % of the samples (int16 rounding of last-bit float
    # differences; the output's RMS is 173 LSB, so that is 6e-5 rel. L2); chunk 1 seeded 5
    # instead of 6 differs by up to 222 LSB
    for got, want in ((whole[: 300 * 320], pieces[0]), (whole[300 * 320 :], pieces[1])):
        assert np.abs(got.astype(np.int32) - want).max() <= 1
