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
