"""StreamingConverter behaviour: block contract, live settings, bad blocks, trace, geometry.

Sample-for-sample agreement with upstream is in test_conversion_parity.py.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rvc_lab.convert.models import ConverterModels
from rvc_lab.convert.streaming import (
    StreamGeometry,
    StreamingConverter,
    StreamSettings,
    stream_block_count,
    stream_file,
)
from rvc_lab.errors import InvalidAudioError, SettingsError
from rvc_lab.instrument import STAGES, StageTimer, summarize_trace

SR = 48000
FAST = dict(block_time=0.1, crossfade_time=0.04, extra_time=0.3, f0_method="pm", noise=False)


@pytest.fixture(scope="module")
def models(demo_paths):
    p = demo_paths
    return ConverterModels.load(p["demo_v2_40k_f0"], hubert=p["hubert"], index=p["demo_v2_40k_f0_index"])


def _tone(n: int, f0: float = 180.0) -> np.ndarray:
    t = np.arange(n) / SR
    return (0.3 * sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))).astype(np.float32)


def test_geometry_matches_upstream_rounding():
    # the two parity cases' derived sizes (../shared/parity/README.md)
    g = StreamGeometry.from_settings(StreamSettings(block_time=0.25, crossfade_time=0.05, extra_time=2.5), 48000)
    assert (g.block_frame, g.block_frame_16k, g.crossfade_frame, g.sola_buffer_frame, g.extra_frame) == (12000, 4000, 2400, 1920, 120000)
    assert (g.skip_head, g.return_length, g.input_frame) == (250, 30, 134880)
    g = StreamGeometry.from_settings(StreamSettings(block_time=0.2, crossfade_time=0.08, extra_time=1.5), 48000)
    assert (g.crossfade_frame, g.sola_buffer_frame, g.skip_head, g.return_length) == (3840, 1920, 150, 25)
    assert stream_block_count(216000, StreamGeometry.from_settings(StreamSettings(), 48000)) == 20
    # block 0.123 s rounds to whole 10 ms frames
    assert StreamGeometry.from_settings(StreamSettings(block_time=0.123, crossfade_time=0.05), 44100).block_frame == 12 * 441


def test_blocks_keep_their_length_and_trace_has_every_stage(models):
    timer = StageTimer()
    conv = StreamingConverter(models, StreamSettings(index_rate=0.5, rms_mix_rate=0.5, **FAST), SR, timer=timer)
    bf = conv.geometry.block_frame
    x = _tone(6 * bf)
    outs = [conv.process_block(x[i * bf : (i + 1) * bf]) for i in range(6)]
    assert all(o.shape == (bf,) and o.dtype == np.float32 for o in outs)
    assert np.abs(outs[-1]).max() > 1e-3
    df = timer.to_frame()
    assert list(df.block) == list(range(6))
    for s in ("input_resample", "content_features", "retrieval", "f0", "generator", "output_resample", "rms_mix", "sola_crossfade"):
        assert (df[s] > 0).all(), s
    assert (df.total >= df[list(STAGES)].sum(axis=1)).all()
    assert df.sola_offset.between(0, conv.geometry.sola_search_frame).all()
    summary = summarize_trace(df)
    # an overrun is a block whose total time exceeds the block (100 ms)
    assert summary["blocks"] == 6 and summary["overruns"] == int((df.total > 100.0).sum())
    assert summary["load_p50"] == pytest.approx(np.median(df.total) / 100.0)


def test_disabled_timer_records_nothing():
    timer = StageTimer(enabled=False)
    timer.start_block(block=0)
    assert timer.stage("f0") is timer.stage("generator")  # one shared null context: no clock read
    timer.end_block()
    assert timer.rows == []


def test_stereo_block_is_mixed_down(models):
    a = StreamingConverter(models, StreamSettings(**FAST), SR)
    b = StreamingConverter(models, StreamSettings(**FAST), SR)
    bf = a.geometry.block_frame
    x = _tone(bf)
    for _ in range(2):
        ya = a.process_block(np.stack([x * 1.5, x * 0.5], axis=1))
        yb = b.process_block(x)
    np.testing.assert_allclose(ya, yb, atol=1e-6)


def test_wrong_block_length_is_refused(models):
    conv = StreamingConverter(models, StreamSettings(**FAST), SR)
    with pytest.raises(InvalidAudioError, match="4800"):
        conv.process_block(np.zeros(4799, np.float32))


def test_nonfinite_block_gives_silence_and_stream_continues(models):
    timer = StageTimer()
    conv = StreamingConverter(models, StreamSettings(**FAST), SR, timer=timer)
    bf = conv.geometry.block_frame
    x = _tone(4 * bf)
    conv.process_block(x[:bf])
    bad = x[bf : 2 * bf].copy()
    bad[100] = np.nan
    bad[200] = np.inf
    assert not np.any(conv.process_block(bad))
    y = conv.process_block(x[2 * bf : 3 * bf])
    assert np.all(np.isfinite(y)) and np.abs(y).max() > 0
    df = timer.to_frame()
    assert list(df.nonfinite) == [False, True, False] and conv.nonfinite_blocks == 1


@pytest.mark.parametrize("bad", [dict(block_time=-0.1), dict(block_time=0.1, crossfade_time=0.2), dict(extra_time=-1),
                                 dict(index_rate=2.0), dict(f0_method="yin"), dict(output_rate="device")])
def test_impossible_settings_fail_before_the_stream_starts(models, bad):
    with pytest.raises(SettingsError):
        StreamingConverter(models, StreamSettings(**{**FAST, **bad}), SR)


def test_live_settings_apply_at_next_block(models):
    conv = StreamingConverter(models, StreamSettings(**FAST), SR, record=True)
    bf = conv.geometry.block_frame
    x = _tone(6 * bf)
    for i in range(3):
        conv.process_block(x[i * bf : (i + 1) * bf])
    conv.update(pitch=12.0)
    conv.process_block(x[3 * bf : 4 * bf])
    before, after = conv.records[2]["pitchf"], conv.records[3]["pitchf"]
    new = conv.geometry.block_frame_16k // 160  # frames that entered the cache with this block
    np.testing.assert_allclose(after[-new:-4], 2 * before[-new:-4], rtol=0.02)
    with pytest.raises(SettingsError):
        conv.update(block_time=0.2)
    conv.update(f0_method="dio", formant=2.0, index_rate=0.8, threshold=-40.0)
    assert conv.process_block(x[4 * bf : 5 * bf]).shape == (bf,)



def _pitch_records(models, x: np.ndarray, methods: list[str]) -> list[dict]:
    """Records of a stream whose block ``i`` runs with F0 method ``methods[i]`` (changed by ``update``)."""
    conv = StreamingConverter(models, StreamSettings(**{**FAST, "f0_method": methods[0]}), SR, record=True)
    bf = conv.geometry.block_frame
    for i, method in enumerate(methods):
        if method != conv.settings.f0_method:
            conv.update(f0_method=method)
        conv.process_block(x[i * bf : (i + 1) * bf])
    return conv.records


def test_f0_method_change_mid_stream_follows_the_new_method_from_the_next_block(models):
    # Truths: two separate streams, one with pm throughout and one with dio throughout, on the
    # same input.  Block i writes the F0 of its analysis window (block_frame_16k + 800 = 2400
    # samples -> 2400 // 160 + 1 = 16 frames, less the 3 first and the last: 12) into the newest
    # frames of the pitch cache, which moves by 1600 / 160 = 10 frames per block.  So j blocks after
    # the change the newest 12 + 10 j frames are dio's and everything older is pm's.
    n, k = 4, 2  # 12 blocks in all (~0.7 s each on 2 idle cores)
    x = _tone(n * StreamGeometry.from_settings(StreamSettings(**FAST), SR).block_frame, f0=210.0)
    pm = _pitch_records(models, x, ["pm"] * n)
    dio = _pitch_records(models, x, ["dio"] * n)
    mixed = _pitch_records(models, x, ["pm"] * k + ["dio"] * (n - k))
    for i in range(k):  # before the change: exactly the pm stream, output included
        for key in ("pitch", "pitchf", "feats", "infer_out"):
            np.testing.assert_array_equal(mixed[i][key], pm[i][key], err_msg=f"block {i} {key}")
    for j, i in enumerate(range(k, n)):
        new = 12 + 10 * j
        assert not np.array_equal(dio[i]["pitchf"][-new:], pm[i]["pitchf"][-new:]), "pm and dio must differ here"
        for key in ("pitch", "pitchf"):
            np.testing.assert_array_equal(mixed[i][key][-new:], dio[i][key][-new:], err_msg=f"block {i} {key}")
            np.testing.assert_array_equal(mixed[i][key][:-new], pm[i][key][:-new], err_msg=f"block {i} {key}")
        assert not np.array_equal(mixed[i]["infer_out"], pm[i]["infer_out"])

def test_formant_shift_decodes_more_frames_and_resamples_back(models):
    conv = StreamingConverter(models, StreamSettings(formant=3.0, **FAST), SR, record=True)
    bf = conv.geometry.block_frame
    conv.process_block(_tone(bf))
    g = conv.geometry
    assert conv.records[0]["infer_out"].shape == (g.return_length * 40000 // 100,)


def test_output_rate_model_streams_at_the_voice_rate(models):
    x = _tone(SR // 2)
    out, sr, conv = stream_file(models, x, SR, StreamSettings(output_rate="model", **FAST))
    assert sr == 40000 and conv.resampler_out is None
    assert out.shape[0] == stream_block_count(math.ceil(x.size * 40000 / SR), conv.geometry) * conv.geometry.block_frame


def test_silence_gate_zeroes_quiet_input(models):
    conv = StreamingConverter(models, StreamSettings(threshold=-30.0, rms_mix_rate=0.0, **{**FAST, "noise": False}), SR)
    bf = conv.geometry.block_frame
    quiet = (_tone(bf) * 1e-3).astype(np.float32)  # about -60 dB: below the gate
    for _ in range(3):
        y = conv.process_block(quiet)
    assert not torch.any(conv.input_wav[-bf:]).item()
    assert np.abs(y).max() < 1e-6


def test_input_noise_reduction_attenuates_stationary_noise(models):
    # Spectral gating with prop_decrease 0.9 scales gated bins by 1 - 0.9 (-20 dB); on white noise
    # (its own noise reference) most bins are gated, a few above mean + 1.5 std pass, and the mask
    # is smoothed: the block loses 10-20 dB.  A weaker strength (0.5: at most -6 dB) fails.
    conv = StreamingConverter(models, StreamSettings(input_noise_reduce=True, **FAST), SR)
    bf = conv.geometry.block_frame
    noise = 0.1 * np.random.default_rng(0).standard_normal(6 * bf).astype(np.float32)
    for i in range(6):
        y = conv.process_block(noise[i * bf : (i + 1) * bf])
        assert np.all(np.isfinite(y)) and y.shape == (bf,)
    raw = conv.input_wav[-bf:].numpy().astype(np.float64)
    gated = conv.input_wav_denoise[-bf:].numpy().astype(np.float64)
    drop_db = 10 * np.log10(np.sum(raw**2) / np.sum(gated**2))
    assert 10.0 <= drop_db <= 20.5, drop_db


def test_output_noise_reduction_changes_only_what_it_gates(models):
    settings = dict(FAST, rms_mix_rate=1.0)
    plain = StreamingConverter(models, StreamSettings(**settings), SR)
    gated = StreamingConverter(models, StreamSettings(output_noise_reduce=True, **settings), SR)
    bf = plain.geometry.block_frame
    x = _tone(4 * bf)
    a = np.concatenate([plain.process_block(x[i * bf : (i + 1) * bf]) for i in range(4)])
    b = np.concatenate([gated.process_block(x[i * bf : (i + 1) * bf]) for i in range(4)])
    # the gate only removes energy (mask <= 1 per bin): the output is quieter, never louder
    assert np.sum(b[bf:] ** 2) < np.sum(a[bf:] ** 2)


def test_phase_vocoder_changes_only_the_crossfade_region(models):
    # The phase-vocoder join replaces the sin^2 crossfade of the first sola_buffer_frame samples of
    # each block; the SOLA offset and the rest of the block are the same audio.
    plain = StreamingConverter(models, StreamSettings(**FAST), SR)
    pv = StreamingConverter(models, StreamSettings(phase_vocoder=True, **FAST), SR)
    g = plain.geometry
    bf, cf = g.block_frame, g.sola_buffer_frame
    x = _tone(4 * bf)
    for i in range(4):
        a = plain.process_block(x[i * bf : (i + 1) * bf])
        b = pv.process_block(x[i * bf : (i + 1) * bf])
        np.testing.assert_array_equal(a[cf:], b[cf:])
        if i > 0:  # the first block joins onto silence
            assert np.abs(a[:cf] - b[:cf]).max() > 1e-4


@pytest.mark.parametrize("formant, expected_rl2", [(0.0, 15), (2.0, 17), (-3.0, 13)])
def test_formant_shift_return_length2_by_hand(models, monkeypatch, formant, expected_rl2):
    # block 0.1 s, crossfade 0.04 s, SOLA search 0.01 s at 48 kHz (480 samples a 10 ms frame):
    # return_length = (4800 + 1920 + 480) / 480 = 15 frames; upstream stretches the generator's
    # output to return_length2 = ceil(15 * 2^(formant/12)): +2 -> ceil(16.84) = 17, -3 -> ceil(12.61) = 13
    from rvc_lab.convert import stages

    seen = []
    real = stages.run_generator

    def spy(*args, **kwargs):
        seen.append((kwargs["return_length"], kwargs["return_length2"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(stages, "run_generator", spy)
    conv = StreamingConverter(models, StreamSettings(formant=formant, **FAST), SR)
    bf = conv.geometry.block_frame
    x = _tone(2 * bf)
    ys = [conv.process_block(x[i * bf : (i + 1) * bf]) for i in range(2)]
    assert seen == [(15, expected_rl2)] * 2
    assert all(y.shape == (bf,) for y in ys)
