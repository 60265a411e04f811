"""Architecture of the RVC synthesizers as data: the 18-item config and the stored weight layout.

An RVC voice file carries its generator hyper-parameters as an unnamed 18-item list (the
positional arguments of upstream's ``SynthesizerTrnMs*NSFsid`` classes).  This module names those
items, knows the standard lists upstream's export writes for 32k/40k/48k x v1/v2, and derives
from a config the exact set of tensors an exported voice must hold (key -> shape), so that a file
can be checked tensor by tensor before any module is built.

Stored layout = upstream's export: every weight-normalised convolution is stored as
``<layer>.weight_g`` / ``<layer>.weight_v``; the posterior encoder (``enc_q.*``) is dropped.
No torch modules here and no file I/O.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

#: Names of the 18 config items, in upstream's order.
CONFIG_FIELDS = (
    "spec_channels",
    "segment_size",
    "inter_channels",
    "hidden_channels",
    "filter_channels",
    "n_heads",
    "n_layers",
    "kernel_size",
    "p_dropout",
    "resblock",
    "resblock_kernel_sizes",
    "resblock_dilation_sizes",
    "upsample_rates",
    "upsample_initial_channel",
    "upsample_kernel_sizes",
    "spk_embed_dim",
    "gin_channels",
    "sampling_rate",
)

#: Content-feature width per model version (HuBERT final_proj 256 for v1, layer-12 768 for v2).
FEATURE_DIM = {"v1": 256, "v2": 768}
SR_TAGS = {"32k": 32000, "40k": 40000, "48k": 48000}

# Fixed by upstream's model code, not by the config.
ATTENTION_WINDOW = 10  # relative-position window of the text encoder (2*10+1 embeddings)
FLOW_COUPLINGS = 4  # coupling layers in the flow, each followed by a channel flip
FLOW_WN_KERNEL = 5
FLOW_WN_LAYERS = 3
PITCH_BINS = 256  # coarse pitch embedding rows
PRE_POST_KERNEL = 7  # decoder conv_pre / conv_post kernel

_RESBLOCK1 = [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
# (upsample_rates, upsample_kernel_sizes, spec_channels) of upstream's exported configs.
_DECODERS = {
    ("v1", "32k"): ([10, 4, 2, 2, 2], [16, 16, 4, 4, 4], 513),
    ("v1", "40k"): ([10, 10, 2, 2], [16, 16, 4, 4], 1025),
    ("v1", "48k"): ([10, 6, 2, 2, 2], [16, 16, 4, 4, 4], 1025),
    ("v2", "32k"): ([10, 8, 2, 2], [20, 16, 4, 4], 513),
    ("v2", "40k"): ([10, 10, 2, 2], [16, 16, 4, 4], 1025),  # upstream has no v2 40k json: it reuses v1's
    ("v2", "48k"): ([12, 10, 2, 2], [24, 20, 4, 4], 1025),
}


def standard_config(version: str, sr_tag: str, n_speakers: int = 109) -> list:
    """The 18-item config upstream's export writes for ``version`` x ``sr_tag``.

    Parameters
    ----------
    version : {"v1", "v2"}
    sr_tag : {"32k", "40k", "48k"}
    n_speakers : int
        Item 15 (``spk_embed_dim``); upstream always writes 109 and readers replace it by the
        row count of ``emb_g.weight``.

    Returns
    -------
    list
        A fresh list (segment_size is always 32 in exported files; it only matters in training).
    """
    key = (version, sr_tag)
    if key not in _DECODERS:
        raise ValueError(f"no standard RVC config for version={version!r} sr={sr_tag!r}")
    rates, kernels, spec = _DECODERS[key]
    return [
        spec, 32, 192, 192, 768, 2, 6, 3, 0, "1", [3, 7, 11], [list(d) for d in _RESBLOCK1],
        list(rates), 512, list(kernels), int(n_speakers), 256, SR_TAGS[sr_tag],
    ]  # fmt: skip


def miniature_config(version: str, sr_tag: str, n_speakers: int = 1) -> list:
    """A tiny generator (~0.1 M parameters) with the standard decoder strides of ``version`` x
    ``sr_tag``: same output rate and samples per frame, channels cut so tests run in milliseconds.
    Not a model anyone trained; its outputs only exercise the code paths."""
    rates, kernels, spec = _DECODERS[(version, sr_tag)]
    return [
        spec, 32, 16, 16, 32, 2, 2, 3, 0, "1", [3, 7], [[1, 3, 5], [1, 3, 5]],
        list(rates), 64, list(kernels), int(n_speakers), 16, SR_TAGS[sr_tag],
    ]  # fmt: skip


@dataclass(frozen=True)
class SynthSpec:
    """Everything needed to build one generator: named config items plus version and f0 flag.

    ``upp`` is the number of output samples per 10 ms content frame (product of upsample rates).
    """

    version: str
    if_f0: bool
    feature_dim: int
    inter_channels: int
    hidden_channels: int
    filter_channels: int
    n_heads: int
    n_layers: int
    kernel_size: int
    resblock: str
    resblock_kernel_sizes: tuple
    resblock_dilation_sizes: tuple
    upsample_rates: tuple
    upsample_initial_channel: int
    upsample_kernel_sizes: tuple
    n_speakers: int
    gin_channels: int
    sampling_rate: int

    @property
    def upp(self) -> int:
        return math.prod(self.upsample_rates)

    @property
    def decoder_channels(self) -> list[int]:
        """Channels after each upsampling stage."""
        return [self.upsample_initial_channel // 2 ** (i + 1) for i in range(len(self.upsample_rates))]


def spec_from_config(config: list, version: str, if_f0: bool, n_speakers: int | None = None) -> SynthSpec:
    """Name the items of an (already type-checked) 18-item config.

    ``n_speakers`` overrides item 15, as upstream's loaders do with the ``emb_g`` row count.
    A sampling rate given as "40k" is accepted (upstream's constructor maps it too).
    """
    c = dict(zip(CONFIG_FIELDS, config))
    sr = c["sampling_rate"]
    if isinstance(sr, str):
        sr = SR_TAGS[sr]
    return SynthSpec(
        version=version,
        if_f0=bool(if_f0),
        feature_dim=FEATURE_DIM[version],
        inter_channels=int(c["inter_channels"]),
        hidden_channels=int(c["hidden_channels"]),
        filter_channels=int(c["filter_channels"]),
        n_heads=int(c["n_heads"]),
        n_layers=int(c["n_layers"]),
        kernel_size=int(c["kernel_size"]),
        resblock=str(c["resblock"]),
        resblock_kernel_sizes=tuple(int(k) for k in c["resblock_kernel_sizes"]),
        resblock_dilation_sizes=tuple(tuple(int(d) for d in ds) for ds in c["resblock_dilation_sizes"]),
        upsample_rates=tuple(int(u) for u in c["upsample_rates"]),
        upsample_initial_channel=int(c["upsample_initial_channel"]),
        upsample_kernel_sizes=tuple(int(k) for k in c["upsample_kernel_sizes"]),
        n_speakers=int(c["spk_embed_dim"] if n_speakers is None else n_speakers),
        gin_channels=int(c["gin_channels"]),
        sampling_rate=int(sr),
    )


@dataclass(frozen=True)
class TensorSpec:
    """One stored tensor: shape and how a PyTorch-default initialisation would draw it.

    ``init`` is one of "uniform" (bound = 1/sqrt(fan_in)), "normal" (``std``), "ln_gamma",
    "ln_beta", "wn_g" (norm of ``of`` over all dims but 0).
    """

    shape: tuple
    init: str
    fan_in: int = 0
    std: float = 1.0
    of: str = ""


def _conv(out: dict, name: str, cout: int, cin: int, k: int, bias: bool = True, weight_norm: bool = False):
    fan_in = cin * k
    if weight_norm:
        out[f"{name}.weight_g"] = TensorSpec((cout, 1, 1), "wn_g", of=f"{name}.weight_v")
        out[f"{name}.weight_v"] = TensorSpec((cout, cin, k), "uniform", fan_in)
    else:
        out[f"{name}.weight"] = TensorSpec((cout, cin, k), "uniform", fan_in)
    if bias:
        out[f"{name}.bias"] = TensorSpec((cout,), "uniform", fan_in)


def _conv_transpose_wn(out: dict, name: str, cin: int, cout: int, k: int):
    # ConvTranspose weights are [in, out, k]; weight norm over dim 0 -> g is [in, 1, 1];
    # PyTorch's fan_in for them is size(1)*k = out*k.
    out[f"{name}.weight_g"] = TensorSpec((cin, 1, 1), "wn_g", of=f"{name}.weight_v")
    out[f"{name}.weight_v"] = TensorSpec((cin, cout, k), "uniform", cout * k)
    out[f"{name}.bias"] = TensorSpec((cout,), "uniform", cout * k)


def stored_layout(spec: SynthSpec) -> dict[str, TensorSpec]:
    """Every tensor an exported voice with this spec holds, keyed as upstream stores them."""
    out: dict[str, TensorSpec] = {}
    h, c, g = spec.hidden_channels, spec.inter_channels, spec.gin_channels
    head_dim = h // spec.n_heads

    # Text (content) encoder.
    out["enc_p.emb_phone.weight"] = TensorSpec((h, spec.feature_dim), "uniform", spec.feature_dim)
    out["enc_p.emb_phone.bias"] = TensorSpec((h,), "uniform", spec.feature_dim)
    if spec.if_f0:
        out["enc_p.emb_pitch.weight"] = TensorSpec((PITCH_BINS, h), "normal", std=1.0)
    for i in range(spec.n_layers):
        a = f"enc_p.encoder.attn_layers.{i}"
        for proj in ("conv_q", "conv_k", "conv_v", "conv_o"):
            _conv(out, f"{a}.{proj}", h, h, 1)
        for rel in ("emb_rel_k", "emb_rel_v"):
            out[f"{a}.{rel}"] = TensorSpec((1, 2 * ATTENTION_WINDOW + 1, head_dim), "normal", std=head_dim**-0.5)
        for norm in (f"enc_p.encoder.norm_layers_1.{i}", f"enc_p.encoder.norm_layers_2.{i}"):
            out[f"{norm}.gamma"] = TensorSpec((h,), "ln_gamma")
            out[f"{norm}.beta"] = TensorSpec((h,), "ln_beta")
        _conv(out, f"enc_p.encoder.ffn_layers.{i}.conv_1", spec.filter_channels, h, spec.kernel_size)
        _conv(out, f"enc_p.encoder.ffn_layers.{i}.conv_2", h, spec.filter_channels, spec.kernel_size)
    _conv(out, "enc_p.proj", 2 * c, h, 1)

    # Flow: couplings at even indices, parameter-free flips at odd ones.
    for n in range(FLOW_COUPLINGS):
        f = f"flow.flows.{2 * n}"
        _conv(out, f"{f}.pre", h, c // 2, 1)
        for j in range(FLOW_WN_LAYERS):
            _conv(out, f"{f}.enc.in_layers.{j}", 2 * h, h, FLOW_WN_KERNEL, weight_norm=True)
            res_out = 2 * h if j < FLOW_WN_LAYERS - 1 else h
            _conv(out, f"{f}.enc.res_skip_layers.{j}", res_out, h, 1, weight_norm=True)
        if g:
            _conv(out, f"{f}.enc.cond_layer", 2 * h * FLOW_WN_LAYERS, g, 1, weight_norm=True)
        _conv(out, f"{f}.post", c // 2, h, 1)  # mean-only coupling: half the channels

    # Decoder (HiFi-GAN, NSF source for f0 models).
    u0 = spec.upsample_initial_channel
    _conv(out, "dec.conv_pre", u0, c, PRE_POST_KERNEL)
    if g:
        _conv(out, "dec.cond", u0, g, 1)
    chans = spec.decoder_channels
    n_convs = {"1": (("convs1", 3), ("convs2", 3)), "2": (("convs", 2),)}[spec.resblock]
    for i, (rate, k) in enumerate(zip(spec.upsample_rates, spec.upsample_kernel_sizes)):
        cin = u0 if i == 0 else chans[i - 1]
        _conv_transpose_wn(out, f"dec.ups.{i}", cin, chans[i], k)
        if spec.if_f0:
            stride = math.prod(spec.upsample_rates[i + 1 :])
            _conv(out, f"dec.noise_convs.{i}", chans[i], 1, 2 * stride if i + 1 < len(spec.upsample_rates) else 1)
        for j, kr in enumerate(spec.resblock_kernel_sizes):
            r = f"dec.resblocks.{i * len(spec.resblock_kernel_sizes) + j}"
            for group, count in n_convs:
                for m in range(count):
                    _conv(out, f"{r}.{group}.{m}", chans[i], chans[i], kr, weight_norm=True)
    out["dec.conv_post.weight"] = TensorSpec((1, chans[-1], PRE_POST_KERNEL), "uniform", chans[-1] * PRE_POST_KERNEL)
    if spec.if_f0:
        out["dec.m_source.l_linear.weight"] = TensorSpec((1, 1), "uniform", 1)
        out["dec.m_source.l_linear.bias"] = TensorSpec((1,), "uniform", 1)

    out["emb_g.weight"] = TensorSpec((spec.n_speakers, g), "normal", std=1.0)
    return out
