"""Streaming vs offline (rvc_lab.parity) on the seeded demo voice and offline speech.

The offline chain sees the whole input; the streaming chain sees ``extra_time`` of past audio
per block.  With more past context the streaming content features must come closer to the
offline ones, measured on the features the generator actually decodes, against the offline
features at the same input time.  Block 0.2 s and extra times of whole 20 ms frames keep the two
HuBERT frame grids aligned, so the comparison is frame for frame.
"""
from __future__ import annotations

import numpy as np
import pytest

from rvc_lab.parity import STAGE_ORDER, parity_stream_settings, parity_sweep, stream_vs_offline

SR = 16000
BLOCK = 0.2
SHORT, LONG = 0.1, 1.0


@pytest.fixture(scope="module")
def models(demo_assets):
    from rvc_lab.convert.models import ConverterModels

    return ConverterModels.load(demo_assets / "weights/demo_v2_40k_f0.pth",
                                hubert=demo_assets / "hubert/hubert_base.pt")


@pytest.fixture(scope="module")
def speech():
    from rvc_lab.speech import speech_input

    sp = speech_input(max_seconds=1.6, sr=SR)
    return sp.audio


@pytest.fixture(scope="module")
def sweep(models, speech):
    return parity_sweep(models, speech, SR, parity_stream_settings(f0_method="pm", block_time=BLOCK),
                        extra_times=(SHORT, LONG), keep_results=True)


def _late_blocks_rel_l2(result, ring_s: float) -> float:
    """Pooled rel. L2 of the blocks whose longest ring lies inside the input (no zero history)."""
    b = result.blocks
    late = b[(b["t_end_s"] - ring_s >= 0) & b["feat_rel_l2"].notna()]
    assert len(late) >= 2, "input too short for blocks with full context"
    return float(np.sqrt(np.mean(late["feat_rel_l2"].to_numpy() ** 2)))


def test_feature_divergence_shrinks_with_extra_time(sweep):
    short, long = sweep.attrs["results"]
    assert short.settings.extra_time == SHORT and long.settings.extra_time == LONG
    assert short.grid_offset_ms == 0 and long.grid_offset_ms == 0
    # whole run: closer to offline, in distance and in direction
    assert long.stage_value("content_features", "rel_l2") < short.stage_value("content_features", "rel_l2")
    assert long.stage_value("content_features", "cosine") > short.stage_value("content_features", "cosine")
    # where both rings hold only real input, the difference is context alone: clearly smaller
    ring_long = LONG + 0.05 + 0.01 + BLOCK
    assert _late_blocks_rel_l2(long, ring_long) < 0.9 * _late_blocks_rel_l2(short, ring_long)
    # still not equal: the decoded frames are the newest ones and lack future context
    assert long.stage_value("content_features", "rel_l2") > 0.01


def test_f0_window_does_not_depend_on_extra_time(sweep):
    short, long = sweep.attrs["results"]
    # the realtime F0 window is block + 50 ms whatever extra_time is: identical pitch input
    assert short.stage_value("f0", "n") == long.stage_value("f0", "n") > 0
    assert short.stage_value("f0", "cents_mae") == pytest.approx(long.stage_value("f0", "cents_mae"), abs=1e-9)
    # and it tracks the offline F0 of the same speech closely
    assert long.stage_value("f0", "f0_corr") > 0.8


def test_stage_table_and_alignment(sweep, speech):
    r = sweep.attrs["results"][1]
    assert list(r.stages["stage"]) == list(STAGE_ORDER)
    assert (r.stages["n"] > 0).all()
    g_cf = round(0.05 * SR)
    # the stream is late by crossfade + search - SOLA offset: the estimate must fall in that window
    assert g_cf - SR // 200 <= r.delay_samples <= g_cf + SR // 100 + SR // 200
    assert g_cf <= r.expected_delay_samples <= g_cf + SR // 100
    # both outputs carry the input's melody (DIO on each output, independent of the chain's F0 code)
    assert r.audio_metrics["f0_corr"] > 0.7
    assert np.isfinite(r.summary()["output_mcd_db"])
    # offline output covers the input up to HuBERT's last whole 20 ms frame (upstream); the stream
    # is zero-padded to flush its tail
    assert 0 <= speech.shape[0] - r.offline_audio.shape[0] <= 0.02 * SR
    assert r.stream_audio.shape[0] > speech.shape[0]


def test_rejects_rates_off_the_10ms_grid(models, speech):
    from rvc_lab.errors import SettingsError

    with pytest.raises(SettingsError, match="multiple of 100"):
        stream_vs_offline(models, speech, 22050, parity_stream_settings(f0_method="pm"))
