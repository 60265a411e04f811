"""Streaming generator for export: upstream's ``infer(..., skip_head, return_length, return_length2)``
with the random draws as inputs, so the exported graph holds no random numbers.

Inputs (in this order; ``pitch``, ``pitchf`` and ``noise_source`` only for f0 voices):

==================  ==========================================  =======
name                shape                                       dtype
==================  ==========================================  =======
phone               [1, T, C] (C = 256 v1, 768 v2)              float32
phone_lengths       [1]                                         int64
pitch               [1, T] coarse pitch 1..255                  int64
pitchf              [1, T] f0 in Hz (0 = unvoiced)              float32
sid                 [1]                                         int64
skip_head           [] frames                                   int64
return_length       [] frames                                   int64
return_length2      [] frames (= return_length: no stretch)     int64
noise_prior         [1, 192, T - max(skip_head - 24, 0)]        float32
noise_source        [1, return_length * upp, 1]                 float32
==================  ==========================================  =======

In a float16/bfloat16 bundle ``phone``, ``noise_prior`` and ``audio`` are in that dtype; ``pitchf``
and ``noise_source`` stay float32 (the NSF sine source runs in float32, see :func:`streaming_generator`).

Output ``audio`` [1, 1, return_length2 * upp] float32 at the voice's rate.  Zeros as noise give
upstream's zero-noise output; upstream's own draws (randn for the prior, rand(1, 1) consumed and
unused, randn for the source) give its seeded output.  Every window position is a tensor op on the
0-d inputs (no Python int), so T and the window stay dynamic in traced graphs.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from rvc_lab.export.formats import DTYPE_NAMES
from rvc_lab.models.nsf import upsample_stack
from rvc_lab.models.synthesizer import FLOW_CONTEXT_FRAMES, PRIOR_NOISE_SCALE, Synthesizer
from rvc_lab.models.vits_layers import ChannelLayerNorm, RelativeSelfAttention


def stretch_linear(x: torch.Tensor, n_out: torch.Tensor) -> torch.Tensor:
    """``F.interpolate(x, size=n_out, mode="linear")`` (align_corners False) with a tensor size.

    Parameters
    ----------
    x : [B, C, L] float32
    n_out : 0-d int64 tensor, output length

    Returns
    -------
    [B, C, n_out] in ``x``'s dtype; equals ``x`` exactly when ``n_out == L``.
    """
    n_in = x.shape[-1]
    scale = torch.as_tensor(n_in).to(torch.float32) / n_out.to(torch.float32)
    pos = (torch.arange(n_out).to(torch.float32) + 0.5) * scale - 0.5
    pos = torch.clamp(pos, min=0.0)
    i0 = torch.floor(pos).to(torch.int64)
    i0 = torch.clamp(i0, max=n_in - 1)
    i1 = torch.clamp(i0 + 1, max=n_in - 1)
    # positions in float32 (a float16 position is off by whole samples past 2048); the weights in
    # x's dtype, so a float16/bfloat16 signal stays in its dtype
    w = (pos - i0.to(torch.float32)).to(x.dtype)
    return x.index_select(-1, i0) * (1.0 - w) + x.index_select(-1, i1) * w


def _attention_forward(self: RelativeSelfAttention, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
    """:meth:`RelativeSelfAttention.forward` with pad/reshape instead of ``as_strided`` (ONNX has none).

    The band ``out[i, k] = padded[i, i + k]`` is read by the classic skew: flatten, pad, reshape
    to rows one element longer, slice.  Same values, data movement only.
    """
    b, c, t = x.shape
    w = self.window
    width = 2 * w + 1

    def heads(y):
        return y.view(b, self.n_heads, self.head_dim, t).transpose(2, 3)

    q = heads(self.conv_q(x)) / (self.head_dim**0.5)
    k = heads(self.conv_k(x))
    v = heads(self.conv_v(x))
    scores = torch.matmul(q, k.transpose(-2, -1))
    rel_logits = torch.matmul(q, self.emb_rel_k.unsqueeze(0).transpose(-2, -1))  # [B, H, T, 2w+1]
    scores = scores + _band_to_square(rel_logits, t, w)
    scores = scores.masked_fill(attn_mask == 0, -1e4)
    p_attn = torch.softmax(scores, dim=-1)
    out = torch.matmul(p_attn, v)
    rel_weights = _square_to_band(p_attn, t, w, width)
    out = out + torch.matmul(rel_weights, self.emb_rel_v.unsqueeze(0))
    out = out.transpose(2, 3).reshape(b, c, t)
    return self.conv_o(out)


def _band_to_square(rel: torch.Tensor, t, w: int) -> torch.Tensor:
    """[B, H, T, 2w+1] offsets -w..w -> [B, H, T, T] with ``sq[i, j] = rel[i, j - i + w]`` (0 outside)."""
    b, h = rel.shape[0], rel.shape[1]
    # Row i placed at columns i..i+2w of a [T, T + 2w] band: pad each row to T + 2w + 1, flatten, cut.
    padded = F.pad(rel, (0, t))  # [B, H, T, T + 2w + 1]
    flat = padded.reshape(b, h, -1)[:, :, : t * (t + 2 * w)]
    band = flat.reshape(b, h, t, t + 2 * w)
    return band[..., w : w + t]


def _square_to_band(p: torch.Tensor, t, w: int, width: int) -> torch.Tensor:
    """[B, H, T, T] -> [B, H, T, 2w+1] with ``band[i, k] = p[i, i + k - w]`` (0 outside)."""
    b, h = p.shape[0], p.shape[1]
    padded = F.pad(p, (w, w))  # [B, H, T, T + 2w]; row i needs columns i..i+2w
    flat = F.pad(padded.reshape(b, h, -1), (0, t))  # room for the skew
    skew = flat.reshape(b, h, t, t + 2 * w + 1)  # row i now starts i elements further left
    return skew[..., :width]


class _ExportAttention(nn.Module):
    def __init__(self, attn: RelativeSelfAttention):
        super().__init__()
        self.inner = attn

    def forward(self, x, attn_mask):
        return _attention_forward(self.inner, x, attn_mask)


class StreamingGenerator(nn.Module):
    """Export wrapper of a :class:`Synthesizer` (weights shared, eval; float32 unless cast, see :attr:`dtype`).

    ``forward`` has the signature of the module docstring's table (no ``pitch``, ``pitchf``,
    ``noise_source`` for no-f0 voices, see :attr:`input_names`).
    """

    def __init__(self, synth: Synthesizer):
        super().__init__()
        self.synth = synth
        self.if_f0 = synth.if_f0
        self.upp = synth.upp
        self.dtype = next(synth.enc_p.parameters()).dtype  # the compute dtype (float32 unless cast)
        self._orig_attn = None

    @property
    def input_names(self) -> list[str]:
        f0 = ["pitch", "pitchf"] if self.if_f0 else []
        return ["phone", "phone_lengths", *f0, "sid", "skip_head", "return_length", "return_length2",
                "noise_prior", *(["noise_source"] if self.if_f0 else [])]  # fmt: skip

    def forward(self, *args):
        if self.if_f0:
            phone, lengths, pitch, pitchf, sid, skip_head, ret, ret2, noise_prior, noise_source = args
        else:
            phone, lengths, sid, skip_head, ret, ret2, noise_prior = args
            pitch = pitchf = noise_source = None
        return self._run(phone, lengths, pitch, pitchf, sid, skip_head, ret, ret2, noise_prior, noise_source)

    def _run(self, phone, lengths, pitch, pitchf, sid, skip_head, ret, ret2, noise_prior, noise_source):
        m = self.synth
        g = m.emb_g(sid).unsqueeze(-1)  # [1, gin, 1]
        flow_head = torch.clamp(skip_head - FLOW_CONTEXT_FRAMES, min=0)
        dec_head = skip_head - flow_head
        # The projection is a 1x1 convolution: slicing after it equals upstream's slicing before.
        mean, log_scale, mask = m.enc_p(phone, pitch, lengths, head=0)
        mean, log_scale, mask = mean[:, :, flow_head:], log_scale[:, :, flow_head:], mask[:, :, flow_head:]
        z_p = (mean + torch.exp(log_scale) * noise_prior * PRIOR_NOISE_SCALE) * mask
        z = m.flow.inverse(z_p, mask, g)
        z = z[:, :, dec_head : dec_head + ret]
        mask = mask[:, :, dec_head : dec_head + ret]
        z = stretch_linear(z * mask, ret2)
        dec = m.dec
        source = None
        if pitchf is not None:
            f0 = pitchf[:, skip_head : skip_head + ret]
            source = dec.m_source(f0, self.upp, lambda shape: torch.zeros(shape), lambda shape: noise_source)
            # the source is computed in float32 (see streaming_generator); the decoder takes z's dtype
            source = stretch_linear(source, ret2 * self.upp).to(z.dtype)
        x = dec.conv_pre(z)
        if g is not None and hasattr(dec, "cond"):
            x = x + dec.cond(g)
        return upsample_stack(dec, x, source)


class _ExportLayerNorm(nn.Module):
    """Channel layer norm with its width as a constant (a traced ``x.shape[1]`` breaks ONNX export)."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.inner = norm
        self.channels = int(norm.gamma.numel())

    def forward(self, x):
        n = self.inner
        return F.layer_norm(x.transpose(1, -1), (self.channels,), n.gamma, n.beta, n.eps).transpose(1, -1)


def prepare_for_export(synth: Synthesizer) -> None:
    """Swap the attention and layer norms of ``synth`` for their export twins (in place, same weights)."""
    enc = synth.enc_p.encoder
    for i in range(len(enc.attn_layers)):
        if isinstance(enc.attn_layers[i], RelativeSelfAttention):
            enc.attn_layers[i] = _ExportAttention(enc.attn_layers[i])
    for name in ("norm_layers_1", "norm_layers_2"):
        layers = getattr(enc, name)
        for i in range(len(layers)):
            if isinstance(layers[i], ChannelLayerNorm):
                layers[i] = _ExportLayerNorm(layers[i])


def example_inputs(gen: StreamingGenerator, frames: int, skip_head: int = 0, return_length: int | None = None,
                   return_length2: int | None = None, seed: int = 0):
    """Inputs of one call in :attr:`StreamingGenerator.input_names` order (zeros as noise)."""
    ret = frames - skip_head if return_length is None else return_length
    ret2 = ret if return_length2 is None else return_length2
    c = gen.synth.spec.feature_dim
    rng = torch.Generator().manual_seed(seed)
    phone = torch.randn(1, frames, c, generator=rng)
    flow = frames - max(skip_head - FLOW_CONTEXT_FRAMES, 0)
    out = [phone, torch.tensor([frames])]
    if gen.if_f0:
        pitchf = 120.0 + 60.0 * torch.rand(1, frames, generator=rng)
        out += [torch.full((1, frames), 80, dtype=torch.long), pitchf]
    out += [torch.tensor([0]), torch.tensor(skip_head), torch.tensor(ret), torch.tensor(ret2),
            torch.zeros(1, gen.synth.spec.inter_channels, flow)]  # fmt: skip
    if gen.if_f0:
        out.append(torch.zeros(1, ret * gen.upp, 1))
    return tuple(out)


def streaming_generator(synth: Synthesizer, dtype: torch.dtype = torch.float32) -> StreamingGenerator:
    """Export-ready wrapper around a copy of ``synth`` (the caller's model is left untouched).

    ``dtype`` (float32, float16 or bfloat16) is the precision of every weight except the NSF
    sine source's: its phase, summed over thousands of samples, would drift in 16 bits (as in
    :mod:`rvc_lab.convert.runtime`), so ``pitchf`` and ``noise_source`` stay float32 inputs and
    the source is cast to ``dtype`` where the decoder takes it.
    """
    twin = copy.deepcopy(synth).eval().to(dtype)
    if twin.if_f0:
        twin.dec.m_source.float()
    prepare_for_export(twin)
    return StreamingGenerator(twin).eval()


def dynamic_axes(gen: StreamingGenerator) -> dict:
    """ONNX dynamic axes: T (frames), T_flow (prior noise frames), S_source and S (samples)."""
    axes = {"phone": {1: "T"}, "noise_prior": {2: "T_flow"}, "audio": {2: "S"}}
    if gen.if_f0:
        axes.update({"pitch": {1: "T"}, "pitchf": {1: "T"}, "noise_source": {1: "S_source"}})
    return axes


def io_spec(gen: StreamingGenerator) -> dict:
    """Manifest entry (inputs/outputs, symbolic shapes) of the streaming generator."""
    c, inter, upp = gen.synth.spec.feature_dim, gen.synth.spec.inter_channels, gen.upp
    low = DTYPE_NAMES[gen.dtype]  # pitchf and noise_source stay float32 (see streaming_generator)
    shapes = {
        "phone": (low, [1, "T", c]), "phone_lengths": ("int64", [1]),
        "pitch": ("int64", [1, "T"]), "pitchf": ("float32", [1, "T"]), "sid": ("int64", [1]),
        "skip_head": ("int64", []), "return_length": ("int64", []), "return_length2": ("int64", []),
        "noise_prior": (low, [1, inter, "T - max(skip_head - 24, 0)"]),
        "noise_source": ("float32", [1, f"return_length * {upp}", 1]),
    }
    return {"inputs": [{"name": n, "dtype": shapes[n][0], "shape": shapes[n][1]} for n in gen.input_names],
            "outputs": [{"name": "audio", "dtype": low, "shape": [1, 1, f"return_length2 * {upp}"]}]}
