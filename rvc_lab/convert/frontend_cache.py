"""Incremental HuBERT front end for streaming: reuse the convolution frames of earlier blocks.

HuBERT's seven waveform convolutions cost about a third of its FLOPs on the streaming ring
(14 of 39 GFLOP at upstream's defaults), and from one block to the next only the frames that
see the newest samples change -- except for one step: the first convolution is followed by a
GroupNorm with one group per channel, i.e. every channel is normalised by its mean and variance
over the *whole* ring.  Those statistics move a little every block, so reusing old frames is
an approximation (this is why exact mode recomputes the front end over the whole ring, as
upstream does).

:class:`FrontEndCache` keeps the output of the deepest convolution whose frame grid the ring's
shift preserves (cumulative stride 320 samples when the block is an even number of 10 ms
frames, else 160), shifts it with the ring, and per block

1. runs the (cheap: 10 taps, one input channel) first convolution over the whole ring and takes
   the GroupNorm statistics of the *current* window;
2. recomputes the cached layer only for the frames whose receptive field reaches the samples
   rewritten this block (new block + resampler overlap), normalised with those statistics;
3. runs the remaining convolution(s), if any, over the whole cached sequence.

Frames computed in earlier blocks keep the statistics of their own block: that is the whole
error.  It vanishes on a steady signal and when the ring is periodic with the block (tested
exactly in ``tests/test_fast_modes.py``), but speech changes level from syllable to syllable
and GroupNorm makes HuBERT level-invariant only when all frames share one normalisation:
measured on speech (``bench/speed_bench.py``, 2 threads), the generator's input features move
by 0.13 relative (bf16: 0.055) for 22 % less HuBERT time at upstream's defaults (bf16: 2.0x).
Opt-in, and dominated by ``precision="bf16"``; kept as the measured answer to "can the front
end be cached?".
"""
from __future__ import annotations

import torch

from rvc_lab.models.channels_last import CLConvStack


class FrontEndCache:
    """Conv front-end frames of one stream's 16 kHz ring, carried from block to block.

    Parameters
    ----------
    conv_stack : rvc_lab.models.hubert.WaveformConvStack
        HuBERT's front end (its weights are copied into a channels-last runner).
    ring_samples : int
        Length of the 16 kHz ring.
    shift : int
        Samples the ring moves per block (a multiple of 160).
    rewritten : int
        Samples at the end of the ring that change every block (shift + resampler overlap).
    dtype : torch.dtype
        Compute dtype of the convolutions (float32 or bfloat16).
    """

    def __init__(self, conv_stack, ring_samples: int, shift: int, rewritten: int, dtype=torch.float32):
        self.stack = CLConvStack(conv_stack, dtype)
        strides, kernels = self.stack.strides, self.stack.kernels
        self.cum_stride, self.field = [], []
        s, r = 1, 1
        for k, st in zip(kernels, strides):
            r += (k - 1) * s
            s *= st
            self.cum_stride.append(s)
            self.field.append(r)
        # deepest layer whose frame grid moves by whole frames when the ring shifts
        self.level = max(i for i, cs in enumerate(self.cum_stride) if shift % cs == 0)
        if self.level < 1:
            raise ValueError(f"ring shift {shift} samples is not a multiple of {self.cum_stride[1]}")
        self.ring_samples = ring_samples
        self.shift_frames = shift // self.cum_stride[self.level]
        self.rewritten = rewritten
        self.cache: torch.Tensor | None = None  # channels-last [1, C, 1, T_level]
        self.recomputed_frames = 0  # frames of the cached level computed in the last call

    def _frames(self, n: int, upto: int) -> int:
        for k, st in zip(self.stack.kernels[: upto + 1], self.stack.strides[: upto + 1]):
            n = (n - k) // st + 1
        return n

    @torch.no_grad()
    def __call__(self, ring: torch.Tensor) -> torch.Tensor:
        """Front-end output of the current ring: float32 16 kHz ``[N]`` -> ``[1, T, 512]`` time-major."""
        st = self.stack
        wav = ring.reshape(1, -1)
        if wav.shape[-1] != self.ring_samples:
            raise ValueError(f"ring has {wav.shape[-1]} samples, expected {self.ring_samples}")
        x0 = st.first_conv(wav)  # [1, T0, C] float32
        mean, var = st.statistics(x0)
        lvl = self.level
        n_level = self._frames(self.ring_samples, lvl)
        if self.cache is None:
            first = 0
        else:
            # first frame whose receptive field reaches the rewritten tail
            changed_from = self.ring_samples - self.rewritten
            first = max(0, (changed_from - self.field[lvl]) // self.cum_stride[lvl] + 1)
        start0 = first * self.cum_stride[lvl] // self.cum_stride[0]  # first-conv frame where it starts
        fresh = st.deeper(st.normalize(x0[:, start0:], mean, var), 1, lvl + 1)
        if fresh.shape[-1] != n_level - first:
            raise AssertionError(f"front-end cache misaligned: {fresh.shape[-1]} != {n_level - first}")
        if self.cache is None:
            self.cache = fresh
        else:
            d = self.shift_frames
            kept = self.cache[..., d : first + d]
            if kept.shape[-1] != first:
                raise AssertionError(f"front-end cache too short: {kept.shape[-1]} kept frames, need {first}")
            self.cache = torch.cat((kept, fresh), dim=-1).contiguous(memory_format=torch.channels_last)
        self.recomputed_frames = n_level - first
        out = st.deeper(self.cache, lvl + 1, len(st.kernels))
        return st.time_major(out)
