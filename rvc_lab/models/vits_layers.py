"""Prior side of the RVC generator: content encoder and normalising flow (inference only).

Tensors are channels-first ``[batch, channels, frames]`` with 10 ms frames and a float mask
``[batch, 1, frames]`` (1 = real frame).  Submodule attribute names follow the key layout of
exported voice files (``enc_p.encoder.attn_layers.0.conv_q`` ...), because that layout *is* the
file format; weight-normalised convolutions hold their folded plain ``weight`` here.

The arithmetic reproduces upstream RVC's float32 operations in the same order wherever the order
changes the rounding (parity target: relative L2 <= 1e-4 on the final audio).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rvc_lab.models.synth_spec import ATTENTION_WINDOW, FLOW_COUPLINGS, FLOW_WN_KERNEL, FLOW_WN_LAYERS, PITCH_BINS


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of ``[B, C, T]`` (parameters named gamma/beta as stored)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.transpose(1, -1), (x.shape[1],), self.gamma, self.beta, self.eps)
        return y.transpose(1, -1)


def _band_view(padded: torch.Tensor, length: int, width: int) -> torch.Tensor:
    """View ``out[..., i, k] = padded[..., i, i + k]`` of a contiguous ``[..., L, L + width - 1]``.

    Row i of the band starts one element further right than row i-1, i.e. the row stride is
    ``row_len + 1``; this is the diagonal band of relative positions without any copy.
    """
    row_len = padded.shape[-1]
    lead = padded.shape[:-2]
    lead_strides = padded.stride()[:-2]
    return padded.as_strided((*lead, length, width), (*lead_strides, row_len + 1, 1))


class RelativeSelfAttention(nn.Module):
    """Multi-head self-attention with shared relative-position key/value embeddings (window 10).

    Positions further apart than the window get no relative term (upstream pads its embedding
    table with zeros there), so only the band |i - j| <= window is ever computed.
    """

    def __init__(self, channels: int, n_heads: int, window: int = ATTENTION_WINDOW):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = channels // n_heads
        self.window = window
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, channels, 1)
        self.emb_rel_k = nn.Parameter(torch.zeros(1, 2 * window + 1, self.head_dim))
        self.emb_rel_v = nn.Parameter(torch.zeros(1, 2 * window + 1, self.head_dim))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """x [B, C, T], attn_mask [B, 1, T, T] (1 = may attend) -> [B, C, T]."""
        b, c, t = x.shape
        w = self.window
        width = 2 * w + 1

        def heads(y):  # [B, C, T] -> [B, H, T, d]
            return y.view(b, self.n_heads, self.head_dim, t).transpose(2, 3)

        q = heads(self.conv_q(x)) / math.sqrt(self.head_dim)
        k = heads(self.conv_k(x))
        v = heads(self.conv_v(x))

        scores = torch.matmul(q, k.transpose(-2, -1))
        # Relative keys: logits for offsets -w..w, placed on the diagonal band of [T, T].
        rel_logits = torch.matmul(q, self.emb_rel_k.unsqueeze(0).transpose(-2, -1))  # [B, H, T, 2w+1]
        band = q.new_zeros(b, self.n_heads, t, t + 2 * w)
        _band_view(band, t, width).copy_(rel_logits)
        scores = scores + band[..., w : w + t]

        scores = scores.masked_fill(attn_mask == 0, -1e4)
        p_attn = torch.softmax(scores, dim=-1)
        out = torch.matmul(p_attn, v)
        # Relative values: the attention weights of offsets -w..w times their embeddings.
        p_padded = F.pad(p_attn, (w, w))
        rel_weights = _band_view(p_padded, t, width)  # [B, H, T, 2w+1]
        out = out + torch.matmul(rel_weights, self.emb_rel_v.unsqueeze(0))
        out = out.transpose(2, 3).reshape(b, c, t)
        return self.conv_o(out)


class ConvFeedForward(nn.Module):
    """Two 'same'-padded convolutions with ReLU, inputs masked before each convolution."""

    def __init__(self, channels: int, filter_channels: int, kernel_size: int):
        super().__init__()
        self.pad = ((kernel_size - 1) // 2, kernel_size // 2)
        self.conv_1 = nn.Conv1d(channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, channels, kernel_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv_1(F.pad(x * mask, self.pad)))
        y = self.conv_2(F.pad(y * mask, self.pad))
        return y * mask


class TransformerStack(nn.Module):
    """Post-norm transformer encoder: n x [rel-attention -> add & norm -> conv FFN -> add & norm]."""

    def __init__(self, channels: int, filter_channels: int, n_heads: int, n_layers: int, kernel_size: int):
        super().__init__()
        self.attn_layers = nn.ModuleList(RelativeSelfAttention(channels, n_heads) for _ in range(n_layers))
        self.norm_layers_1 = nn.ModuleList(ChannelLayerNorm(channels) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(
            ConvFeedForward(channels, filter_channels, kernel_size) for _ in range(n_layers)
        )
        self.norm_layers_2 = nn.ModuleList(ChannelLayerNorm(channels) for _ in range(n_layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        attn_mask = mask.unsqueeze(2) * mask.unsqueeze(-1)
        x = x * mask
        for attn, norm1, ffn, norm2 in zip(self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2):
            x = norm1(x + attn(x, attn_mask))
            x = norm2(x + ffn(x, mask))
        return x * mask


class ContentEncoder(nn.Module):
    """Content features (+ coarse pitch) -> prior mean and log-scale per frame.

    Parameters
    ----------
    feature_dim : int
        256 (v1) or 768 (v2).
    out_channels : int
        Latent channels (192); the projection gives 2x that (mean, log-scale).
    """

    def __init__(self, feature_dim, out_channels, hidden_channels, filter_channels, n_heads, n_layers, kernel_size,
                 with_pitch: bool):  # fmt: skip
        super().__init__()
        self.out_channels = out_channels
        self.hidden_channels = hidden_channels
        self.emb_phone = nn.Linear(feature_dim, hidden_channels)
        if with_pitch:
            self.emb_pitch = nn.Embedding(PITCH_BINS, hidden_channels)
        self.encoder = TransformerStack(hidden_channels, filter_channels, n_heads, n_layers, kernel_size)
        self.proj = nn.Conv1d(hidden_channels, 2 * out_channels, 1)

    def forward(self, phone: torch.Tensor, pitch: torch.Tensor | None, lengths: torch.Tensor, head: int = 0):
        """
        Parameters
        ----------
        phone : [B, T, feature_dim] float32
        pitch : [B, T] long coarse pitch (1..255) or None for no-f0 models
        lengths : [B] long valid frames
        head : int
            Frames dropped from the front *after* the transformer (which always sees all frames).

        Returns
        -------
        mean, log_scale : [B, out_channels, T - head]
        mask : [B, 1, T - head]
        """
        x = self.emb_phone(phone)
        if pitch is not None:
            x = x + self.emb_pitch(pitch)
        x = F.leaky_relu(x * math.sqrt(self.hidden_channels), 0.1).transpose(1, -1)  # [B, H, T]
        frames = torch.arange(x.shape[2], device=x.device)
        mask = (frames.unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(1).to(x.dtype)
        x = self.encoder(x * mask, mask)
        if head:
            x, mask = x[:, :, head:], mask[:, :, head:]
        stats = self.proj(x) * mask
        mean, log_scale = torch.split(stats, self.out_channels, dim=1)
        return mean, log_scale, mask


class GatedWaveNet(nn.Module):
    """Non-causal WaveNet of gated dilated convolutions with speaker conditioning and skip sums."""

    def __init__(self, channels: int, kernel_size: int, n_layers: int, gin_channels: int):
        super().__init__()
        self.channels = channels
        self.n_layers = n_layers
        self.in_layers = nn.ModuleList(
            nn.Conv1d(channels, 2 * channels, kernel_size, padding=(kernel_size - 1) // 2) for _ in range(n_layers)
        )
        self.res_skip_layers = nn.ModuleList(
            nn.Conv1d(channels, 2 * channels if i < n_layers - 1 else channels, 1) for i in range(n_layers)
        )
        if gin_channels:
            self.cond_layer = nn.Conv1d(gin_channels, 2 * channels * n_layers, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        h = self.channels
        cond = self.cond_layer(g) if g is not None else None
        skip = None
        for i, (inp, res_skip) in enumerate(zip(self.in_layers, self.res_skip_layers)):
            a = inp(x)
            if cond is not None:
                a = a + cond[:, 2 * h * i : 2 * h * (i + 1)]
            acts = torch.tanh(a[:, :h]) * torch.sigmoid(a[:, h:])
            rs = res_skip(acts)
            if i < self.n_layers - 1:
                x = (x + rs[:, :h]) * mask
                rs = rs[:, h:]
            skip = rs if skip is None else skip + rs
        return skip * mask


class MeanOnlyCoupling(nn.Module):
    """Affine coupling with unit scale: the second half is shifted by a WaveNet of the first half."""

    def __init__(self, channels: int, hidden_channels: int, gin_channels: int):
        super().__init__()
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden_channels, 1)
        self.enc = GatedWaveNet(hidden_channels, FLOW_WN_KERNEL, FLOW_WN_LAYERS, gin_channels)
        self.post = nn.Conv1d(hidden_channels, self.half, 1)

    def inverse(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        x0, x1 = torch.split(x, [self.half, self.half], dim=1)
        h = self.enc(self.pre(x0) * mask, mask, g)
        shift = self.post(h) * mask
        # exp(-log_scale) with log_scale = 0 is exactly 1: omitted.
        return torch.cat([x0, (x1 - shift) * mask], dim=1)


class _ChannelFlip(nn.Module):
    """Placeholder at the odd flow indices (the stored keys skip them); flips channel order."""


class PriorFlow(nn.Module):
    """Stack of 4 mean-only couplings each followed by a channel flip, run in reverse (prior -> z)."""

    def __init__(self, channels: int, hidden_channels: int, gin_channels: int):
        super().__init__()
        layers = []
        for _ in range(FLOW_COUPLINGS):
            layers += [MeanOnlyCoupling(channels, hidden_channels, gin_channels), _ChannelFlip()]
        self.flows = nn.ModuleList(layers)

    def inverse(self, z_p: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        x = z_p
        for layer in reversed(self.flows):
            x = torch.flip(x, [1]) if isinstance(layer, _ChannelFlip) else layer.inverse(x, mask, g)
        return x
