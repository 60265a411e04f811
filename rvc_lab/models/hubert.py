"""HuBERT base content encoder, as RVC uses it (no fairseq or transformers needed at run time).

RVC conditions its synthesizer on HuBERT features of 16 kHz mono audio, one vector per 20 ms:

* **v1** voices get 256-dim features: the output of transformer layer 9 through ``final_proj``
  (768 -> 256), which is what fairseq's ``extract_features(output_layer=9)`` + ``final_proj`` and
  transformers' ``final_proj(hidden_states[9])`` compute.
* **v2** voices get the 768-dim output of the last (12th) layer, with no extra normalisation.

The network is the "post-LN" HuBERT base of the original fairseq recipe (``layer_norm_first=False``,
``extractor_mode="default"``):

1. seven 1-D convolutions, 512 channels, kernels 10,3,3,3,3,2,2, strides 5,2,2,2,2,2,2 (total stride
   320 samples = 20 ms, receptive field 400 samples = 25 ms), each followed by exact GELU; the first
   one is normalised by a per-channel GroupNorm (512 groups) over time;
2. LayerNorm(512) -> Linear(512 -> 768);
3. plus a convolutional positional embedding: grouped Conv1d (kernel 128, padding 64, 16 groups,
   weight-normalised over the kernel axis; the last output frame is dropped so the length is kept)
   -> GELU;
4. LayerNorm(768), then 12 transformer layers, each
   ``x = LN(x + MHA(x)); x = LN(x + W2 GELU(W1 x))`` (12 heads of 64, FFN 3072).

This module holds the weights only in the form it runs them: the positional convolution's weight
norm is folded into a plain weight when a file is loaded (``rvc_lab.files.hubert``).  Frame count
for N input samples: ``T = floor((N - 400) / 320) + 1`` (72000 samples -> 224 frames).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rvc_lab.errors import InvalidAudioError

SAMPLE_RATE = 16000
"""Input sample rate (Hz) every HuBERT checkpoint RVC uses was trained on."""

V1_LAYER = 9
"""Transformer layer (1-based) whose output, through ``final_proj``, makes RVC v1 features."""


@dataclass(frozen=True)
class HubertConfig:
    """Sizes of a post-LN HuBERT; the defaults are HuBERT base as RVC ships it.

    Attributes
    ----------
    conv_layers : tuple of (channels, kernel, stride)
        The waveform convolution stack, first layer first.
    conv_bias : bool
        Whether those convolutions have a bias (False for HuBERT base).
    embed_dim, ffn_dim, num_heads, num_layers : int
        Transformer width, feed-forward width, attention heads, layer count.
    pos_conv_kernel, pos_conv_groups : int
        Kernel size and groups of the convolutional positional embedding.
    final_dim : int
        Output size of ``final_proj`` (the v1 feature size).
    norm_eps : float
        Epsilon of every LayerNorm / GroupNorm.
    """

    conv_layers: tuple[tuple[int, int, int], ...] = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
    conv_bias: bool = False
    embed_dim: int = 768
    ffn_dim: int = 3072
    num_heads: int = 12
    num_layers: int = 12
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    final_dim: int = 256
    norm_eps: float = 1e-5

    @property
    def hop(self) -> int:
        """Samples between consecutive feature frames (product of strides; 320 = 20 ms)."""
        return math.prod(stride for _, _, stride in self.conv_layers)

    @property
    def receptive_field(self) -> int:
        """Input samples that make up the first frame (400 = 25 ms for HuBERT base)."""
        field = 1
        for _, kernel, stride in reversed(self.conv_layers):
            field = (field - 1) * stride + kernel
        return field

    def num_frames(self, num_samples: int) -> int:
        """Feature frames produced for ``num_samples`` input samples (0 if too short)."""
        n = num_samples
        for _, kernel, stride in self.conv_layers:
            n = (n - kernel) // stride + 1
            if n <= 0:
                return 0
        return n


class WaveformConvStack(nn.Module):
    """Strided 1-D convolutions turning a waveform into 50 frames/s of 512-dim features.

    ``[B, N]`` samples -> ``[B, 512, T]``.  The first convolution is followed by a GroupNorm with
    one group per channel (each channel normalised over time, per utterance), then GELU; the
    others by GELU only.
    """

    def __init__(self, cfg: HubertConfig):
        super().__init__()
        convs = []
        in_ch = 1
        for out_ch, kernel, stride in cfg.conv_layers:
            convs.append(nn.Conv1d(in_ch, out_ch, kernel, stride=stride, bias=cfg.conv_bias))
            in_ch = out_ch
        self.convs = nn.ModuleList(convs)
        first_ch = cfg.conv_layers[0][0]
        self.first_norm = nn.GroupNorm(first_ch, first_ch, eps=cfg.norm_eps, affine=True)

    def forward(self, wav: Tensor) -> Tensor:
        x = F.gelu(self.first_norm(self.first_conv(wav)))
        for conv in self.convs[1:]:
            x = F.gelu(conv(x))
        return x

    def first_conv(self, wav: Tensor) -> Tensor:
        """The single-channel first convolution, ``[B, N]`` -> ``[B, C, T]``, as one matrix product.

        oneDNN runs a 1 -> 512 channel convolution at a few GFLOP/s (7 ms on a 2.8 s buffer, 2
        threads); the same sums over strided frames of the waveform take 0.7 ms and give
        bit-identical results here (each output is a 10-term dot product either way).
        """
        conv = self.convs[0]
        if torch.onnx.is_in_onnx_export():
            # ONNX has no strided-window op for a dynamic length: the plain convolution instead
            return conv(wav.unsqueeze(1))
        (kernel,), (stride,) = conv.kernel_size, conv.stride
        frames = wav.unfold(-1, kernel, stride)  # [B, T, kernel], a strided view
        y = torch.matmul(conv.weight[:, 0, :], frames.transpose(1, 2))  # [B, C, T]
        return y if conv.bias is None else y + conv.bias[:, None]


class PositionalConv(nn.Module):
    """Convolutional relative-position embedding added to the projected features.

    ``[B, T, C]`` -> ``[B, T, C]``.  Grouped Conv1d with an even kernel and padding kernel//2 yields
    T+1 frames; the last one is dropped (fairseq's ``SamePad``), then GELU.  ``weight`` is the
    already folded weight-norm product ``g * v / ||v||``.
    """

    def __init__(self, cfg: HubertConfig):
        super().__init__()
        c, k, groups = cfg.embed_dim, cfg.pos_conv_kernel, cfg.pos_conv_groups
        self.groups = groups
        self.padding = k // 2
        self.trim = 1 if k % 2 == 0 else 0
        self.weight = nn.Parameter(torch.empty(c, c // groups, k))
        self.bias = nn.Parameter(torch.empty(c))
        bound = 1.0 / math.sqrt(c // groups * k)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        y = F.conv1d(x.transpose(1, 2), self.weight, self.bias, padding=self.padding, groups=self.groups)
        if self.trim:
            y = y[:, :, : -self.trim]
        return F.gelu(y).transpose(1, 2)


class SelfAttention(nn.Module):
    """Multi-head self-attention without mask (every frame sees every frame).

    ``[B, T, C]`` -> ``[B, T, C]``; heads of ``C / num_heads`` dims, softmax(q k^T / sqrt(d)) v via
    ``F.scaled_dot_product_attention``.
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, t, c = x.shape
        split = (b, t, self.num_heads, c // self.num_heads)
        q = self.q_proj(x).view(split).transpose(1, 2)
        k = self.k_proj(x).view(split).transpose(1, 2)
        v = self.v_proj(x).view(split).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(y.transpose(1, 2).reshape(b, t, c))


class PostNormLayer(nn.Module):
    """One post-LN transformer layer: ``x = LN(x + MHA(x)); x = LN(x + FFN(x))``, ``[B,T,C]``."""

    def __init__(self, cfg: HubertConfig):
        super().__init__()
        self.attn = SelfAttention(cfg.embed_dim, cfg.num_heads)
        self.attn_norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.ffn_in = nn.Linear(cfg.embed_dim, cfg.ffn_dim)
        self.ffn_out = nn.Linear(cfg.ffn_dim, cfg.embed_dim)
        self.ffn_norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)

    def forward(self, x: Tensor) -> Tensor:
        x = self.attn_norm(x + self.attn(x))
        return self.ffn_norm(x + self.ffn_out(F.gelu(self.ffn_in(x))))


class HubertBase(nn.Module):
    """HuBERT (post-LN, base by default) plus ``final_proj``: RVC's content encoder.

    Parameters
    ----------
    cfg : HubertConfig, optional
        Sizes; HuBERT base (94.6 M parameters + 0.2 M for ``final_proj``) by default.  Weights are
        PyTorch's default random init; load real ones with ``rvc_lab.files.hubert``.

    Notes
    -----
    Input: float32 waveform at 16 kHz, ``[B, N]`` (RVC uses B=1), fed as is (no normalisation, no
    padding mask).  Every method runs without autograd.
    """

    def __init__(self, cfg: HubertConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or HubertConfig()
        conv_out = cfg.conv_layers[-1][0]
        self.conv_stack = WaveformConvStack(cfg)
        self.feature_norm = nn.LayerNorm(conv_out, eps=cfg.norm_eps)
        self.feature_proj = nn.Linear(conv_out, cfg.embed_dim)
        self.pos_conv = PositionalConv(cfg)
        self.encoder_norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.layers = nn.ModuleList(PostNormLayer(cfg) for _ in range(cfg.num_layers))
        self.final_proj = nn.Linear(cfg.embed_dim, cfg.final_dim)
        self.eval()

    # -- running -------------------------------------------------------------------------------

    def _check_input(self, wav: Tensor) -> Tensor:
        if wav.dim() == 1:
            wav = wav.unsqueeze(0)
        if wav.dim() != 2:
            raise InvalidAudioError(f"HuBERT input must be a [batch, samples] waveform, got shape {tuple(wav.shape)}")
        if self.cfg.num_frames(wav.shape[-1]) < 1:
            raise InvalidAudioError(
                f"HuBERT needs at least {self.cfg.receptive_field} samples (16 kHz) for one frame, "
                f"got {wav.shape[-1]}"
            )
        param = self.feature_proj.weight
        return wav.to(device=param.device, dtype=param.dtype)

    def _layer_outputs(self, wav: Tensor, num_layers: int) -> Iterator[Tensor]:
        """Yield the encoder input (after its LayerNorm), then each layer's output up to ``num_layers``."""
        if not 0 <= num_layers <= len(self.layers):
            raise ValueError(f"num_layers must be within 0..{len(self.layers)}, got {num_layers}")
        wav = self._check_input(wav)
        x = self.conv_stack(wav).transpose(1, 2)  # [B, T, 512]
        x = self.feature_proj(self.feature_norm(x))  # [B, T, C]
        x = self.encoder_norm(x + self.pos_conv(x))
        yield x
        for layer in self.layers[:num_layers]:
            x = layer(x)
            yield x

    @torch.no_grad()
    def encode(self, wav: Tensor, num_layers: int | None = None) -> Tensor:
        """Output of transformer layer ``num_layers`` (1-based), running only the layers needed.

        Parameters
        ----------
        wav : Tensor
            ``[B, N]`` (or ``[N]``) float waveform, 16 kHz.
        num_layers : int, optional
            How many transformer layers to run (default: all).  0 gives the encoder input (after
            the positional embedding and LayerNorm), transformers' ``hidden_states[0]``.

        Returns
        -------
        Tensor
            ``[B, T, embed_dim]``, T = ``floor((N - 400) / 320) + 1`` for HuBERT base.
        """
        n = len(self.layers) if num_layers is None else num_layers
        out = None
        for out in self._layer_outputs(wav, n):
            pass
        return out

    @torch.no_grad()
    def hidden_states(self, wav: Tensor) -> list[Tensor]:
        """Encoder input and every layer output, like transformers' ``output_hidden_states``.

        Returns ``num_layers + 1`` tensors of shape ``[B, T, embed_dim]``; index i is the output of
        layer i (index 0 the encoder input after its LayerNorm).
        """
        return list(self._layer_outputs(wav, len(self.layers)))

    @torch.no_grad()
    def extract_features(self, wav: Tensor, version: str) -> Tensor:
        """RVC content features of a 16 kHz waveform.

        Parameters
        ----------
        wav : Tensor
            ``[1, N]`` float32 waveform at 16 kHz (``[B, N]`` works too), not normalised.
        version : {"v1", "v2"}
            "v1": ``final_proj`` of layer 9's output, 256-dim (layers 10-12 are not run);
            "v2": the last layer's output (layer 12 of HuBERT base), 768-dim.

        Returns
        -------
        Tensor
            ``[B, T, 256]`` (v1) or ``[B, T, 768]`` (v2) float32, one frame per 320 samples (20 ms),
            ``T = floor((N - 400) / 320) + 1``.
        """
        if version == "v1":
            if len(self.layers) < V1_LAYER:
                raise ValueError(f"v1 features need layer {V1_LAYER}, this model has {len(self.layers)} layers")
            return self.final_proj(self.encode(wav, V1_LAYER))
        if version == "v2":
            # upstream takes last_hidden_state: layer 12 of HuBERT base
            return self.encode(wav, len(self.layers))
        raise ValueError(f"unknown RVC feature version {version!r} (expected 'v1' or 'v2')")


def fold_weight_norm(g: Tensor, v: Tensor, dim: int) -> Tensor:
    """Weight of a weight-normalised layer: ``g * v / ||v||``, the norm over every axis but ``dim``.

    Computed once at load time instead of at every call, in float32 with the very kernel
    ``torch.nn.utils.weight_norm`` (fairseq) and its parametrization (transformers) run at every
    forward (``torch._weight_norm``), so the folded weight is bit-identical to theirs.  (A float64
    fold is closer to the exact value, but moves the features ~1e-6 relative away from upstream.)
    ``g`` has size 1 on every axis but ``dim`` (HuBERT's positional conv: g ``[1, 1, 128]``,
    v ``[768, 48, 128]``, dim 2).
    """
    return torch._weight_norm(v.detach().to(torch.float32), g.detach().to(torch.float32), dim)


def split_weight_norm(weight: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """Inverse of :func:`fold_weight_norm`: ``(g, v)`` with ``v = weight`` and ``g = ||weight||``."""
    axes = [a for a in range(weight.dim()) if a != dim]
    w = weight.detach().to(torch.float64)
    g = w.pow(2).sum(dim=axes, keepdim=True).sqrt()
    return g.to(weight.dtype), weight.detach().clone()
