"""Waveform side of the RVC generator: HiFi-GAN decoder with optional NSF harmonic source.

Latent ``z`` [B, 192, T] at 10 ms frames -> audio [B, 1, T*upp] at the model rate, where
``upp`` = product of the upsample rates (320/400/480 samples per frame for 32k/40k/48k).
f0 models add a neural-source-filter excitation: a sine at the frame f0 (Hz, 0 = unvoiced)
plus Gaussian noise, merged by a 1->1 linear + tanh and injected after every upsampling stage.

Numerics follow upstream RVC's float32 operation order (phase accumulation by cumulative sums
at frame and sample rate, the same interpolation calls), because the sine phase over thousands of
samples is where a different formula would drift.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.1
SINE_AMP = 0.1  # amplitude of the harmonic source
VOICED_NOISE_STD = 0.003  # excitation noise std in voiced samples (unvoiced: SINE_AMP / 3)

#: Draw functions the generator calls for its random numbers, so a caller can make them zeros.
#: ``uniform(shape)`` and ``normal(shape)`` return float32 tensors of that shape.
Draw = Callable[[tuple], torch.Tensor]


def _cumsum_float64(x: torch.Tensor) -> torch.Tensor:
    """Cumulative sum over dim 1, accumulated in float64 and rounded back to ``x.dtype``.

    Bit-identical to torch's CPU ``cumsum`` of float32 (which accumulates in double); written
    out so that exported graphs accumulate the same way (ONNX Runtime's float32 CumSum drifts
    the NSF phase by ~1e-2 over 20k samples).
    """
    return torch.cumsum(x.to(torch.float64), dim=1).to(x.dtype)


def harmonic_excitation(f0: torch.Tensor, upp: int, sample_rate: int, uniform: Draw, normal: Draw) -> torch.Tensor:
    """NSF excitation: sine at f0 in voiced samples plus noise, at the output sample rate.

    Parameters
    ----------
    f0 : [B, T] float32
        Frame f0 in Hz, 0 = unvoiced.
    upp : int
        Output samples per frame.
    sample_rate : int
        Output rate in Hz.
    uniform, normal : callables
        Random draws; called in upstream's order: a [B, 1] uniform initial phase (then forced to
        0 for the fundamental, so it only advances the generator), and normals for the noise.

    Returns
    -------
    [B, T*upp, 1] float32 excitation (before the learned merge).
    """
    f0 = f0.unsqueeze(-1)  # [B, T, 1] (one harmonic: the fundamental)
    cycles_per_sample = (f0 / sample_rate) % 1
    # Random initial phase of the fundamental is zeroed by design: adding it would add 0.0.
    uniform((f0.shape[0], f0.shape[2]))

    # Accumulated phase at frame rate, stretched to sample rate; its wraps mark where the
    # sample-rate cumulative sum below must subtract one cycle.
    phase_frames = _cumsum_float64(cycles_per_sample)
    phase_frames *= upp
    phase_samples = F.interpolate(
        phase_frames.transpose(2, 1), scale_factor=float(upp), mode="linear", align_corners=True
    ).transpose(2, 1)
    # nearest upsampling by an integer factor, written as a repeat: bit-identical to upstream's
    # F.interpolate(mode="nearest"), and exported graphs keep it exact (ONNX Resize rounds
    # nearest positions its own way, which drifts the phase by whole samples).
    increments = cycles_per_sample.repeat_interleave(upp, dim=1)
    phase_samples %= 1
    wrapped = (phase_samples[:, 1:, :] - phase_samples[:, :-1, :]) < 0
    correction = torch.zeros_like(increments)
    correction[:, 1:, :] = wrapped * -1.0
    sine = torch.sin(_cumsum_float64(increments + correction) * 2 * torch.pi) * SINE_AMP

    voiced = (f0 > 0).to(f0.dtype)  # voiced_threshold 0
    voiced = voiced.repeat_interleave(upp, dim=1)
    noise_amp = voiced * VOICED_NOISE_STD + (1 - voiced) * SINE_AMP / 3
    return sine * voiced + noise_amp * normal(tuple(sine.shape))


class HarmonicSource(nn.Module):
    """Excitation merged to one channel: tanh(linear(excitation)). Key prefix ``m_source``."""

    def __init__(self, sample_rate: int):
        super().__init__()
        self.sample_rate = sample_rate
        self.l_linear = nn.Linear(1, 1)

    def forward(self, f0: torch.Tensor, upp: int, uniform: Draw, normal: Draw) -> torch.Tensor:
        """f0 [B, T] Hz -> [B, 1, T*upp]."""
        exc = harmonic_excitation(f0, upp, self.sample_rate, uniform, normal)
        return torch.tanh(self.l_linear(exc)).transpose(1, 2)


class MultiDilationResBlock(nn.Module):
    """HiFi-GAN residual block.

    Type "1": pairs (dilated conv, plain conv) with dilations ``dilations``; type "2": one dilated
    conv per dilation.  Leaky ReLU (0.1) before every convolution; a residual add per pair/conv.
    """

    def __init__(self, channels: int, kernel_size: int, dilations, kind: str):
        super().__init__()

        def conv(d):
            return nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=(kernel_size * d - d) // 2)

        self.kind = kind
        if kind == "1":
            self.convs1 = nn.ModuleList(conv(d) for d in dilations)
            self.convs2 = nn.ModuleList(conv(1) for _ in dilations)
        else:
            self.convs = nn.ModuleList(conv(d) for d in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return residual_stack(self, x)


def residual_stack(block, x: torch.Tensor) -> torch.Tensor:
    """A HiFi-GAN residual block's forward pass; shared by every layout of the block's convolutions.

    ``block.kind`` "1": pairs (dilated conv, 1-dilation conv) each behind a leaky ReLU, residual per
    pair; "2": one dilated conv per residual step.
    """
    if block.kind == "1":
        for c1, c2 in zip(block.convs1, block.convs2):
            y = c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
            x = y + x
    else:
        for c in block.convs:
            x = c(F.leaky_relu(x, LRELU_SLOPE)) + x
    return x


def upsample_stack(decoder, x: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
    """The decoder after ``conv_pre``: upsampling stages, then the output convolution and tanh.

    Shared by every layout of the decoder's convolutions (:class:`HiFiGANDecoder` and its
    channels-last twin :class:`rvc_lab.models.channels_last.ChannelsLastDecoder`): no step here
    depends on the layout, the callers convert ``x`` and ``source`` before and the result after.
    Each stage: leaky ReLU (0.1), transposed convolution, plus the stage's strided convolution of
    the NSF source; then the mean of the stage's ``n_kernels`` residual blocks, summed in order
    and divided once.  Last: leaky ReLU with slope 0.01 (upstream's), ``conv_post``, tanh.

    Parameters
    ----------
    decoder : HiFiGANDecoder or ChannelsLastDecoder
        Provides ``ups``, ``noise_convs`` (used when ``source`` is given), ``resblocks``
        (``n_kernels`` per stage, stage-major), ``n_kernels`` and ``conv_post``.
    x : [B, C, T] (or channels-last [B, C, 1, T])
        ``conv_pre`` output (plus speaker conditioning), T frames.
    source : [B, 1, T*upp] (or [B, 1, 1, T*upp]), optional
        NSF excitation, laid out like ``x``; None for decoders without f0.

    Returns
    -------
    [B, 1, T*upp] (or [B, 1, 1, T*upp]) audio in [-1, 1], laid out and typed like ``x``.
    """
    n = decoder.n_kernels
    for i, up in enumerate(decoder.ups):
        x = up(F.leaky_relu(x, LRELU_SLOPE))
        if source is not None:
            x = x + decoder.noise_convs[i](source)
        blocks = decoder.resblocks[i * n : (i + 1) * n]
        acc = blocks[0](x)
        for block in blocks[1:]:
            acc += block(x)
        x = acc / n
    # Upstream's last activation uses F.leaky_relu's default slope (0.01), not 0.1.
    x = decoder.conv_post(F.leaky_relu(x))
    return torch.tanh(x)


class HiFiGANDecoder(nn.Module):
    """Latent -> waveform; with ``sample_rate`` set (f0 models) an NSF source joins every stage.

    Parameters
    ----------
    in_channels : int
        Latent channels (192).
    resblock : {"1", "2"}
    resblock_kernel_sizes, resblock_dilation_sizes : sequences
        One residual block per kernel size at each stage; their outputs are averaged.
    upsample_rates, upsample_kernel_sizes : sequences
        Transposed-convolution strides/kernels; channels halve at each stage.
    upsample_initial_channel : int
    gin_channels : int
        Speaker embedding width (0 = no speaker conditioning).
    sample_rate : int or None
        Output rate for the NSF sine; None builds the no-f0 decoder.
    """

    def __init__(self, in_channels, resblock, resblock_kernel_sizes, resblock_dilation_sizes, upsample_rates,
                 upsample_initial_channel, upsample_kernel_sizes, gin_channels, sample_rate=None):  # fmt: skip
        super().__init__()
        self.n_kernels = len(resblock_kernel_sizes)
        self.upp = math.prod(upsample_rates)
        self.with_source = sample_rate is not None
        self.conv_pre = nn.Conv1d(in_channels, upsample_initial_channel, 7, 1, padding=3)
        if gin_channels:
            self.cond = nn.Conv1d(gin_channels, upsample_initial_channel, 1)
        if self.with_source:
            self.m_source = HarmonicSource(sample_rate)
            self.noise_convs = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        ch = upsample_initial_channel
        for i, (rate, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes)):
            ch_in, ch = ch, upsample_initial_channel // 2 ** (i + 1)
            self.ups.append(nn.ConvTranspose1d(ch_in, ch, k, rate, padding=(k - rate) // 2))
            if self.with_source:
                # Bring the sample-rate source down to this stage's rate.
                stride = math.prod(upsample_rates[i + 1 :])
                if i + 1 < len(upsample_rates):
                    self.noise_convs.append(nn.Conv1d(1, ch, 2 * stride, stride, padding=stride // 2))
                else:
                    self.noise_convs.append(nn.Conv1d(1, ch, 1))
            for kr, dil in zip(resblock_kernel_sizes, resblock_dilation_sizes):
                self.resblocks.append(MultiDilationResBlock(ch, kr, dil, resblock))
        self.conv_post = nn.Conv1d(ch, 1, 7, 1, padding=3, bias=False)

    def forward(self, z, f0=None, g=None, n_frames=None, uniform: Draw | None = None, normal: Draw | None = None):
        """
        Parameters
        ----------
        z : [B, C, T] latent
        f0 : [B, T] Hz (f0 models only)
        g : [B, gin, 1] speaker embedding
        n_frames : int or None
            Output length in frames: when it differs from T, the latent and the source are
            linearly stretched to it (upstream's ``return_length2``, used by formant shifting).
        uniform, normal : draw callables for the NSF source.

        Returns
        -------
        [B, 1, n_frames*upp] audio in [-1, 1].
        """
        source = None
        if self.with_source:
            source = self.m_source(f0, self.upp, uniform, normal)
        if n_frames is not None:
            if source is not None and n_frames * self.upp != source.shape[-1]:
                source = F.interpolate(source, size=n_frames * self.upp, mode="linear")
            if n_frames != z.shape[-1]:
                z = F.interpolate(z, size=n_frames, mode="linear")
        x = self.conv_pre(z)
        if g is not None:
            x = x + self.cond(g)
        return upsample_stack(self, x, source)
