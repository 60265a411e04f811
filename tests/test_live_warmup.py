"""``StreamingConverter.warm_up``: every stage run once on silence, and the converter left untouched.

The truth is a second, fresh converter on the same models: after ``warm_up()`` a converter must
give exactly (bit for bit) the output that one gives, block by block, with the generator's noise
drawn from the same torch random state (warm-up's own draws are given back).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rvc_lab.convert.models import ConverterModels
from rvc_lab.convert.streaming import StreamingConverter, StreamSettings
from rvc_lab.perf import harmonic_glide

SR = 48000


@pytest.fixture(scope="module")
def models(demo_paths):
    return ConverterModels.load(demo_paths["demo_v2_40k_f0"], hubert=demo_paths["hubert"])


@pytest.fixture
def one_thread():
    """One torch thread for the test (restored after): on a loaded 2-core machine two threads wait
    for each other at every parallel region, measured 5-10x slower per block than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("frontend_cache", [False, True], ids=["plain", "frontend-cache"])
def test_output_after_warm_up_equals_a_fresh_converters(models, frontend_cache, one_thread):
    # silence gate and loudness match on: their first calls are what warm-up is for
    settings = StreamSettings(block_time=0.1, crossfade_time=0.05, extra_time=0.2, f0_method="pm",
                              threshold=-50.0, rms_mix_rate=0.3, precision="bf16", frontend_cache=frontend_cache)
    g = StreamingConverter(models, settings, SR).geometry
    x = harmonic_glide(4 * g.block_frame / SR, SR)
    x[: g.block_frame // 2] = 0  # a quiet start, so that the gate acts on the first block
    blocks = [x[i * g.block_frame : (i + 1) * g.block_frame] for i in range(4)]

    torch.manual_seed(11)  # unseeded generator noise: drawn from torch's global state
    fresh = StreamingConverter(models, settings, SR)
    expected = [fresh.process_block(b) for b in blocks]

    torch.manual_seed(11)
    warmed = StreamingConverter(models, settings, SR)
    state = torch.get_rng_state()
    times = warmed.warm_up(blocks=2)
    assert torch.equal(torch.get_rng_state(), state), "warm-up consumed torch's random numbers"
    assert len(times) == 2 and all(t > 0 for t in times)
    assert warmed.block_index == 0 and warmed.nonfinite_blocks == 0
    got = [warmed.process_block(b) for b in blocks]
    for k, (a, b) in enumerate(zip(got, expected)):
        assert np.array_equal(a, b), f"block {k} differs after warm-up (max {np.max(np.abs(a - b)):.3g})"
    assert any(np.any(e) for e in expected)  # the comparison is of real output, not of silence
