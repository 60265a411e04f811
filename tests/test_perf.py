"""FLOP counts against hand counts, and the matmul peak probe against the physical bound."""
from __future__ import annotations

import os

import torch
from torch.utils.flop_counter import FlopCounterMode

from rvc_lab.cpu import cpu_isa
from rvc_lab.models.channels_last import CLConv, CLConvTranspose, to_channels_last
from rvc_lab.perf import peak_gflops


def _flops(module, x) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(x)
    return counter.get_total_flops()


def test_decoder_convolution_flops_match_hand_counts():
    # Conv1d(4 -> 6, k=3, dilation 2, padding 2) on T=10: every output sample is a dot product of
    # 4 * 3 inputs, one multiply and one add each: 2 * 6 * 10 * 4 * 3 = 1440
    conv = CLConv(torch.nn.Conv1d(4, 6, 3, dilation=2, padding=2))
    assert _flops(conv, to_channels_last(torch.randn(1, 4, 10))) == 1440
    # ConvTranspose1d(6 -> 4, k=16, stride 8) on T_in=10 (the generator's first upsampler shape):
    # every input sample scatters into 4 * 16 outputs: 2 * 6 * 4 * 16 * 10 = 7680, not the
    # 8x (stride) more that counting per output sample would claim
    up = CLConvTranspose(torch.nn.ConvTranspose1d(6, 4, 16, stride=8, padding=4))
    assert _flops(up, to_channels_last(torch.randn(1, 6, 10))) == 7680


def test_peak_probe_stays_under_the_physical_bound():
    # one core, at most 6 GHz, at most 2 FMA units x 16 fp32 lanes x 2 FLOP (AVX-512): 384 GFLOP/s;
    # AVX2 without AVX-512: half that
    lanes = 16 if "AVX-512" in cpu_isa() else 8
    bound = 1 * 6.0 * 2 * lanes * 2
    peak = peak_gflops(threads=1, size=512, repeats=3)
    assert 1.0 < peak < bound, (peak, bound, os.cpu_count())


def _model_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return counter.get_total_flops()


def test_generator_flops_of_a_streaming_call_match_the_architecture_hand_count(demo_paths):
    # rvc_lab.flop_model counts the v2 40k generator from its published layer shapes; the torch
    # counter sees what the modules ran.  A streaming call (skip_head 250, 31 decoded frames,
    # formant-stretched to 36) and a whole-utterance call must both agree to 0.5 %.
    from rvc_lab import flop_model
    from rvc_lab.convert import stages
    from rvc_lab.convert.models import ConverterModels

    m = ConverterModels.load(demo_paths["demo_v2_40k_f0"], hubert=demo_paths["hubert"])
    for p_len, skip, ret, ret2 in ((281, 250, 31, 36), (400, 0, 400, 400)):
        feats = torch.randn(1, p_len, m.voice.feature_dim)
        pitch = torch.full((1, p_len), 100, dtype=torch.long)
        pitchf = torch.full((1, p_len), 200.0)
        counted = _model_flops(lambda: stages.run_generator(
            m.net_g, feats, p_len, pitch, pitchf, 0, skip_head=skip, return_length=ret, return_length2=ret2,
            noise=False))
        hand = flop_model.generator_flops(m.net_g.spec, p_len, skip, ret, ret2)["total"]
        assert abs(counted / hand - 1) < 5e-3, (p_len, counted, hand)


def test_hubert_flops_match_the_hand_count_once_the_attention_is_added(demo_paths):
    # torch's FlopCounterMode has no formula for the CPU flash-attention kernel that
    # scaled_dot_product_attention runs here, so it misses QK^T and AV: 4 T^2 d FLOP per layer.
    # Everything else must agree with the hand count to 0.5 %.
    from rvc_lab import flop_model
    from rvc_lab.convert import stages
    from rvc_lab.convert.models import ConverterModels

    m = ConverterModels.load(demo_paths["demo_v2_40k_f0"], hubert=demo_paths["hubert"])
    n = 32000
    counted = _model_flops(lambda: stages.content_features(m.encoder, torch.randn(n) * 0.1, "v2"))
    hand = flop_model.hubert_flops(n, "v2")
    t = hand["frames"]
    assert t == (n - 400) // 320 + 1
    attention = 12 * 4 * t * t * 768
    assert abs((counted + attention) / hand["total"] - 1) < 5e-3, (counted, attention, hand)
