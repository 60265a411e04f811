"""SOLA offset and crossfades against their definitions."""
from __future__ import annotations

import numpy as np
import torch

from rvc_lab.convert.sola import crossfade_block, fade_windows, phase_vocoder_crossfade, sola_offset


def test_fades_are_power_complementary_and_monotone():
    fi, fo = fade_windows(1920)
    assert torch.allclose(fi + fo, torch.ones(1920))
    assert fi[0] == 0 and abs(float(fi[-1]) - 1) < 1e-6 and bool(torch.all(fi[1:] >= fi[:-1]))


def test_offset_finds_a_known_shift_by_brute_force():
    rng = np.random.default_rng(1)
    n, search = 1920, 480
    sig = torch.from_numpy(rng.standard_normal(n + search).astype(np.float32))
    for shift in (0, 1, 37, 480):
        buf = sig[shift : shift + n].clone()
        assert sola_offset(sig, buf) == shift
    # against a direct transcription of the normalized cross-correlation
    buf = torch.from_numpy(rng.standard_normal(n).astype(np.float32))
    scores = [float(torch.dot(sig[k : k + n], buf) / torch.sqrt(torch.sum(sig[k : k + n] ** 2) + 1e-8)) for k in range(search + 1)]
    assert sola_offset(sig, buf) == int(np.argmax(scores))


def test_crossfade_joins_identical_signals_seamlessly():
    # the new audio holds the crossfade, the block and the next crossfade (1920 + 4800 + 1920 samples)
    x = torch.sin(torch.arange(12000, dtype=torch.float32) * 0.05)
    fi, fo = fade_windows(1920)
    block, tail = crossfade_block(x[4000:], 0, x[4000:5920].clone(), fi, fo, block_frame=4800)
    assert torch.allclose(block, x[4000:8800], atol=1e-6)
    # the tail kept for the next block is the audio right after the block
    assert torch.equal(tail, x[8800:10720])


def test_phase_vocoder_crossfade_keeps_level_of_in_phase_signals():
    n = 1920
    t = torch.arange(n, dtype=torch.float32)
    a = torch.sin(2 * np.pi * 200 / 48000 * t)
    fi, fo = fade_windows(n)
    y = phase_vocoder_crossfade(a, a.clone(), fo, fi)
    assert torch.allclose(y, a, atol=0.05)
