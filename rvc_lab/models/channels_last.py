"""Channels-last execution of the convolution-heavy parts of HuBERT and the HiFi-GAN decoder.

PyTorch runs a ``Conv1d`` on a ``[B, C, T]`` tensor as a 2-D convolution, and oneDNN (the CPU
convolution library behind it) prefers channels-last ("NHWC") tensors: on a contiguous
``[B, C, T]`` input it reorders the input and the output at every call.  In float32 these
copies cost ~10 % of the decoder; in bfloat16 (AMX) the convolutions themselves are so fast
that the copies take a third of HuBERT's time and half of the decoder's.  The classes here
hold the *same weights* as the module they are built from, reshaped once to 4-D channels-last
``[out, in, 1, k]``, and keep the activations channels-last ``[B, C, 1, T]`` from the first
convolution to the last, so no reorder happens between layers.  (Measured, one thread, this
CPU: decoder of 30 frames 226 -> 198 ms in float32; 90 -> 57 ms in bfloat16 against plain
autocast; HuBERT's front end on 2.81 s 88 -> 41 ms in bfloat16.)

Only the summation order inside each convolution changes (oneDNN picks another kernel), which
moves float32 results by about 1e-7 relative per layer (2.3e-7 on the decoder output); the
operation sequence, including the order of residual additions, is that of
:mod:`rvc_lab.models.hubert` and :mod:`rvc_lab.models.nsf`, which stay the reference.

Used through :mod:`rvc_lab.convert.runtime` (which builds and caches these per model and
precision) and :mod:`rvc_lab.convert.frontend_cache`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rvc_lab.errors import InvalidAudioError
from rvc_lab.models.hubert import V1_LAYER
from rvc_lab.models.nsf import HiFiGANDecoder, MultiDilationResBlock, residual_stack, upsample_stack

_CL = torch.channels_last


def _conv_weight(conv: nn.Conv1d | nn.ConvTranspose1d, dtype: torch.dtype) -> nn.Parameter:
    """``[out, in, k]`` (or transposed ``[in, out, k]``) -> channels-last ``[., ., 1, k]`` copy."""
    w = conv.weight.detach().to(dtype).unsqueeze(2).contiguous(memory_format=_CL)
    return nn.Parameter(w, requires_grad=False)


def _bias(conv, dtype: torch.dtype) -> nn.Parameter | None:
    return None if conv.bias is None else nn.Parameter(conv.bias.detach().to(dtype).clone(), requires_grad=False)


class CLConv(nn.Module):
    """A ``Conv1d`` run as a channels-last ``conv2d`` on ``[B, C, 1, T]``."""

    def __init__(self, conv: nn.Conv1d, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.weight = _conv_weight(conv, dtype)
        self.bias = _bias(conv, dtype)
        self.stride = (1, conv.stride[0])
        self.padding = (0, conv.padding[0])
        self.dilation = (1, conv.dilation[0])
        self.groups = conv.groups

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class CLConvTranspose(nn.Module):
    """A ``ConvTranspose1d`` run as a channels-last ``conv_transpose2d`` on ``[B, C, 1, T]``."""

    def __init__(self, conv: nn.ConvTranspose1d, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.weight = _conv_weight(conv, dtype)
        self.bias = _bias(conv, dtype)
        self.stride = (1, conv.stride[0])
        self.padding = (0, conv.padding[0])

    def forward(self, x: Tensor) -> Tensor:
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding)


def to_channels_last(x: Tensor) -> Tensor:
    """``[B, C, T]`` -> channels-last ``[B, C, 1, T]`` (one copy)."""
    return x.unsqueeze(2).contiguous(memory_format=_CL)


class CLConvStack(nn.Module):
    """HuBERT's waveform convolutions (:class:`rvc_lab.models.hubert.WaveformConvStack`), channels-last.

    ``[B, N]`` float32 16 kHz samples -> ``[B, T, 512]`` (time-major, ready for the feature
    projection) in the stack's dtype.
    The first convolution has one input channel: it is computed as a matrix product of the
    framed waveform ``[B, T0, kernel]`` with the kernel, which yields the time-major
    (= channels-last) layout directly; its per-channel GroupNorm statistics are taken in float32.
    """

    def __init__(self, stack, dtype: torch.dtype = torch.float32):
        super().__init__()
        first = stack.convs[0]
        if first.in_channels != 1 or first.bias is not None:
            raise ValueError("CLConvStack expects a bias-free single-channel first convolution (HuBERT)")
        self.dtype = dtype
        self.first_kernel, self.first_stride = first.kernel_size[0], first.stride[0]
        # [out, 1, k] -> [k, out] for frames @ kernel
        self.first_weight = nn.Parameter(first.weight.detach()[:, 0, :].t().contiguous(), requires_grad=False)
        self.convs = nn.ModuleList(CLConv(c, dtype) for c in stack.convs[1:])
        norm = stack.first_norm
        if norm.num_groups != norm.num_channels:
            raise ValueError("CLConvStack expects one GroupNorm group per channel (HuBERT base)")
        self.norm_eps = norm.eps
        self.norm_weight = nn.Parameter(norm.weight.detach().clone(), requires_grad=False)
        self.norm_bias = nn.Parameter(norm.bias.detach().clone(), requires_grad=False)

    @property
    def strides(self) -> list[int]:
        """Stride of every layer (first layer first)."""
        return [self.first_stride] + [c.stride[1] for c in self.convs]

    @property
    def kernels(self) -> list[int]:
        """Kernel size of every layer (first layer first)."""
        return [self.first_kernel] + [c.weight.shape[-1] for c in self.convs]

    def first_conv(self, wav: Tensor) -> Tensor:
        """First convolution, before its GroupNorm: float32 ``[B, N]`` -> float32 ``[B, T0, C]``."""
        frames = wav.float().unfold(-1, self.first_kernel, self.first_stride)  # [B, T0, k]
        return frames @ self.first_weight

    @staticmethod
    def statistics(x0: Tensor) -> tuple[Tensor, Tensor]:
        """Per-channel mean and (biased) variance over time of ``[B, T0, C]`` -> ``[B, 1, C]`` each."""
        # (var_mean over a non-last axis is 30x slower than these two reductions)
        mean = x0.mean(dim=1, keepdim=True)
        centred = x0 - mean
        return mean, (centred * centred).mean(dim=1, keepdim=True)

    def normalize(self, x0: Tensor, mean: Tensor, var: Tensor) -> Tensor:
        """GroupNorm with the given statistics, then GELU: ``[B, T0, C]`` -> channels-last ``[B, C, 1, T0]``."""
        x = torch.addcmul(self.norm_bias, x0 - mean, torch.rsqrt(var + self.norm_eps) * self.norm_weight)
        return F.gelu(x.to(self.dtype)).transpose(1, 2).unsqueeze(2)

    def deeper(self, x: Tensor, start: int, stop: int) -> Tensor:
        """Layers ``start .. stop-1`` (1-based over the whole stack; layer 0 is the first conv) + GELU."""
        for conv in self.convs[start - 1 : stop - 1]:
            x = F.gelu(conv(x))
        return x

    @staticmethod
    def time_major(x: Tensor) -> Tensor:
        """Channels-last ``[B, C, 1, T]`` -> ``[B, T, C]`` (a view: the memory is already time-major)."""
        return x.squeeze(2).transpose(1, 2)

    def forward(self, wav: Tensor) -> Tensor:
        x0 = self.first_conv(wav)
        # per-channel statistics over time: the only non-local step of HuBERT's front end
        x = self.normalize(x0, *self.statistics(x0))
        return self.time_major(self.deeper(x, 1, len(self.convs) + 1))


class CLPositionalConv(nn.Module):
    """HuBERT's convolutional positional embedding (:class:`rvc_lab.models.hubert.PositionalConv`), channels-last.

    ``[B, T, C]`` -> ``[B, T, C]``.  A time-major ``[B, T, C]`` tensor *is* a channels-last
    ``[B, C, 1, T]`` one, so no copy is made on the way in or out.  The grouped convolution
    (16 groups, kernel 128) is 30 % faster in float32 and 2x in bfloat16 this way.
    """

    def __init__(self, pos_conv, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.weight = nn.Parameter(pos_conv.weight.detach().to(dtype).unsqueeze(2).contiguous(memory_format=_CL),
                                   requires_grad=False)
        self.bias = nn.Parameter(pos_conv.bias.detach().to(dtype).clone(), requires_grad=False)
        self.groups = pos_conv.groups
        self.padding = (0, pos_conv.padding)
        self.trim = pos_conv.trim

    def forward(self, x: Tensor) -> Tensor:
        y = F.conv2d(x.transpose(1, 2).unsqueeze(2), self.weight, self.bias, padding=self.padding, groups=self.groups)
        if self.trim:
            y = y[..., : -self.trim]
        return F.gelu(y).squeeze(2).transpose(1, 2)


class CLResBlock(nn.Module):
    """:class:`rvc_lab.models.nsf.MultiDilationResBlock`, channels-last."""

    def __init__(self, block: MultiDilationResBlock, dtype: torch.dtype):
        super().__init__()
        self.kind = block.kind
        if block.kind == "1":
            self.convs1 = nn.ModuleList(CLConv(c, dtype) for c in block.convs1)
            self.convs2 = nn.ModuleList(CLConv(c, dtype) for c in block.convs2)
        else:
            self.convs = nn.ModuleList(CLConv(c, dtype) for c in block.convs)

    def forward(self, x: Tensor) -> Tensor:
        return residual_stack(self, x)


class ChannelsLastDecoder(nn.Module):
    """:class:`rvc_lab.models.nsf.HiFiGANDecoder` with channels-last activations.

    Same call signature and result as the decoder it is built from.  The NSF excitation (phase
    accumulation and the random draws, in upstream's order) is computed by the original
    ``m_source`` module in float32; only the convolution chain runs in ``dtype``.

    Parameters
    ----------
    dec : HiFiGANDecoder
    dtype : torch.dtype
        float32 (exact within float rounding) or bfloat16 (fast, approximate).
    """

    def __init__(self, dec: HiFiGANDecoder, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.dtype = dtype
        self.n_kernels = dec.n_kernels
        self.upp = dec.upp
        self.with_source = dec.with_source
        self.conv_pre = CLConv(dec.conv_pre, dtype)
        self.cond = CLConv(dec.cond, dtype) if hasattr(dec, "cond") else None
        if dec.with_source:
            self.m_source = dec.m_source  # shared, float32: the sine phase needs the precision
            self.noise_convs = nn.ModuleList(CLConv(c, dtype) for c in dec.noise_convs)
        self.ups = nn.ModuleList(CLConvTranspose(u, dtype) for u in dec.ups)
        self.resblocks = nn.ModuleList(CLResBlock(b, dtype) for b in dec.resblocks)
        self.conv_post = CLConv(dec.conv_post, dtype)

    def forward(self, z, f0=None, g=None, n_frames=None, uniform=None, normal=None):
        """z [B, C, T], f0 [B, T] Hz, g [B, gin, 1] -> [B, 1, n_frames*upp] float32 audio.

        As :meth:`HiFiGANDecoder.forward`; the stages after ``conv_pre`` are
        :func:`rvc_lab.models.nsf.upsample_stack`, run on channels-last ``[B, C, 1, T]``.
        """
        source = None
        if self.with_source:
            source = self.m_source(f0.float(), self.upp, uniform, normal)
        if n_frames is not None:
            if source is not None and n_frames * self.upp != source.shape[-1]:
                source = F.interpolate(source, size=n_frames * self.upp, mode="linear")
            if n_frames != z.shape[-1]:
                z = F.interpolate(z, size=n_frames, mode="linear")
        dt = self.dtype
        x = self.conv_pre(to_channels_last(z.to(dt)))
        if g is not None and self.cond is not None:
            x = x + self.cond(g.to(dt).unsqueeze(2))
        if source is not None:
            source = to_channels_last(source.to(dt))
        return upsample_stack(self, x, source).squeeze(2).float().contiguous()


class GemmConv1d(nn.Module):
    """A stride-1, ungrouped ``Conv1d`` computed as one matrix product (``[B, C, T]`` in and out).

    For the generator's short sequences (tens of frames) a bfloat16 oneDNN convolution spends
    more time re-laying out its weights at every call than computing; stacking the ``k`` shifted
    copies of the input (``[B, k*C, T]``) and multiplying by the ``[out, k*C]`` weight halves
    the cost of the text encoder and the flow.  Same weights, same padding and dilation.
    """

    def __init__(self, conv: nn.Conv1d, dtype: torch.dtype = torch.float32):
        super().__init__()
        if conv.stride != (1,) or conv.groups != 1 or not isinstance(conv.padding, tuple):
            raise ValueError("GemmConv1d handles stride-1, ungrouped convolutions with numeric padding")
        out_ch, in_ch, k = conv.weight.shape
        self.kernel, self.dilation, self.pad = k, conv.dilation[0], conv.padding[0]
        # [out, in, k] -> [out, k*in], tap-major to match the stacked input below
        w = conv.weight.detach().to(dtype).permute(0, 2, 1).reshape(out_ch, k * in_ch).contiguous()
        self.weight = nn.Parameter(w, requires_grad=False)
        b = None if conv.bias is None else conv.bias.detach().to(dtype).view(-1, 1).clone()
        self.bias = None if b is None else nn.Parameter(b, requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.kernel > 1 or self.pad:
            x = F.pad(x, (self.pad, self.pad))
            n = x.shape[-1] - (self.kernel - 1) * self.dilation
            x = torch.cat([x[..., j * self.dilation : j * self.dilation + n] for j in range(self.kernel)], dim=1)
        if x.shape[0] == 1 and self.bias is not None:
            return torch.addmm(self.bias, self.weight, x[0]).unsqueeze(0)
        y = torch.matmul(self.weight, x)
        return y if self.bias is None else y + self.bias


def use_gemm_convs(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Replace (in place) every stride-1 ungrouped ``Conv1d`` under ``module`` by a :class:`GemmConv1d`."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Conv1d) and child.stride == (1,) and child.groups == 1 \
                and isinstance(child.padding, tuple):
            setattr(module, name, GemmConv1d(child, dtype))
        else:
            use_gemm_convs(child, dtype)
    return module


class LowPrecisionHubert(nn.Module):
    """HuBERT (:class:`rvc_lab.models.hubert.HubertBase`) run in a low precision (bfloat16).

    The waveform enters in float32 (the first convolution and its GroupNorm statistics are
    computed in float32, see :class:`CLConvStack`); the rest runs under ``torch.autocast`` with
    weights copied to ``dtype``.  The layer walk is HubertBase's: conv front end, LayerNorm and
    projection, positional convolution, encoder LayerNorm, post-LN transformer layers.

    Parameters
    ----------
    encoder : HubertBase
        Float32 model; its weights are copied, not shared.
    dtype : torch.dtype
    """

    def __init__(self, encoder, dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        import copy

        self.dtype = dtype
        self.cfg = encoder.cfg
        self.conv_stack = CLConvStack(encoder.conv_stack, dtype)
        self.pos_conv = CLPositionalConv(encoder.pos_conv, dtype)
        for name in ("feature_norm", "feature_proj", "encoder_norm", "layers", "final_proj"):
            setattr(self, name, copy.deepcopy(getattr(encoder, name)).to(dtype))
        self.eval()

    @torch.no_grad()
    def extract_features(self, wav: Tensor, version: str) -> Tensor:
        """As :meth:`HubertBase.extract_features`: ``[B, N]`` 16 kHz -> float32 ``[B, T, 256|768]``."""
        if wav.dim() == 1:
            wav = wav.unsqueeze(0)
        if wav.dim() != 2 or self.cfg.num_frames(wav.shape[-1]) < 1:
            raise InvalidAudioError(f"HuBERT needs a [batch, samples] waveform of at least "
                                    f"{self.cfg.receptive_field} samples (16 kHz), got shape {tuple(wav.shape)}")
        device = self.feature_proj.weight.device
        with torch.autocast(device.type, dtype=self.dtype):
            x = self.conv_stack(wav.to(device=device, dtype=torch.float32))
            return transformer_features(self, x, version)


@torch.no_grad()
def transformer_features(model, conv_feats: Tensor, version: str) -> Tensor:
    """HuBERT after its convolution front end: RVC v1/v2 features as float32 ``[B, T, 256|768]``.

    ``model`` is a :class:`rvc_lab.models.hubert.HubertBase` or a :class:`LowPrecisionHubert`
    (called under autocast); ``conv_feats`` ``[B, T, 512]`` is the front end's time-major output.
    The steps are HubertBase's: LayerNorm + projection, ``x + pos_conv(x)``, LayerNorm, the first
    9 (v1, then ``final_proj``) or all 12 (v2) transformer layers.
    """
    if version not in ("v1", "v2"):
        raise ValueError(f"unknown RVC feature version {version!r} (expected 'v1' or 'v2')")
    n_layers = V1_LAYER if version == "v1" else len(model.layers)
    x = conv_feats.to(model.feature_proj.weight.dtype)
    x = model.feature_proj(model.feature_norm(x))
    x = model.encoder_norm(x + model.pos_conv(x))
    for layer in model.layers[:n_layers]:
        x = layer(x)
    if version == "v1":
        x = model.final_proj(x)
    return x.float()
