"""FLOPs of HuBERT and the RVC generator counted by hand from their published architectures.

An independent check of :func:`rvc_lab.perf.flop_counts` (which asks
``torch.utils.flop_counter`` what the modules actually ran): if the two disagree, either the
counter misses or double-counts an op, or the modules compute something the architecture does
not.  Only matrix products and convolutions are counted (2 FLOP per multiply-accumulate, as the
counter does; a transposed convolution costs ``C_in * C_out * k`` per *input* sample);
normalisation, activations and the sine source are a few percent of the work and are left out.

HuBERT base (Hsu et al. 2021, fairseq ``hubert_base``): a 7-layer waveform convolution stack of
512 channels, kernels (10, 3, 3, 3, 3, 2, 2), strides (5, 2, 2, 2, 2, 2, 2); a 512 -> 768
projection; a grouped positional convolution (kernel 128, 16 groups); 12 post-norm transformer
layers of width 768, 12 heads, feed-forward 3072.  RVC v1 stops after layer 9 and applies
``final_proj`` (768 -> 256); v2 takes layer 12.

The generator (VITS with an NSF-HiFiGAN decoder, as RVC's ``SynthesizerTrnMs*NSFsid``):

* text encoder over all ``p_len`` frames: a ``feature_dim`` -> hidden projection, ``n_layers``
  attention layers (q, k, v, o projections, scores and weighted sum over ``p_len`` frames,
  relative position terms of a +-10 window), feed-forward convolutions hidden -> filter -> hidden
  of ``kernel_size``, then hidden -> 2 * inter;
* flow over ``min(skip_head, 24) + return_length`` frames (RVC's streaming ``infer`` runs it on
  the frames the decoder needs plus 24 of context): 4 coupling layers, each inter/2 -> hidden, a
  3-layer WaveNet (hidden -> 2 hidden of kernel 5, then 1x1 hidden -> 2 hidden, the last
  hidden -> hidden), hidden -> inter/2;
* decoder over ``return_length2`` frames: inter -> upsample_initial_channel (kernel 7), per
  stage a transposed convolution, a noise convolution from the harmonic source and
  ``len(resblock_kernel_sizes)`` residual blocks of 2 x 3 convolutions (ResBlock1), then
  channels -> 1 (kernel 7).
"""
from __future__ import annotations

import math

#: HuBERT base waveform convolutions: (channels, kernel, stride).
HUBERT_CONV = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
HUBERT_WIDTH, HUBERT_FFN, HUBERT_POS_KERNEL, HUBERT_POS_GROUPS = 768, 3072, 128, 16
#: Relative-attention window of RVC's text encoder (frames each side).
TEXT_ENCODER_WINDOW = 10
#: WaveNet layers and kernel of each flow coupling layer; coupling layers in the flow.
FLOW_WN_LAYERS, FLOW_KERNEL, FLOW_COUPLINGS = 3, 5, 4
#: Frames of context the streaming flow runs before the decoded frames (RVC's ``infer``).
FLOW_CONTEXT = 24


def hubert_flops(samples: int, version: str = "v2") -> dict[str, int]:
    """FLOPs of HuBERT base on ``samples`` of 16 kHz audio.

    Returns
    -------
    dict
        ``{"conv_stack", "projection", "positional_conv", "transformer", "total"}`` in FLOP, and
        ``frames`` (T, 20 ms each).
    """
    macs_conv, length, channels = 0, samples, 1
    for out_ch, kernel, stride in HUBERT_CONV:
        length = (length - kernel) // stride + 1
        macs_conv += channels * out_ch * kernel * length
        channels = out_ch
    t, d = length, HUBERT_WIDTH
    layers = 9 if version == "v1" else 12
    macs_proj = channels * d * t + (d * 256 * t if version == "v1" else 0)
    # 'same' padding of an even kernel yields T + 1 outputs; the last is dropped after the conv
    macs_pos = d * (d // HUBERT_POS_GROUPS) * HUBERT_POS_KERNEL * (t + 1)
    macs_layer = 4 * d * d * t + 2 * t * t * d + 2 * d * HUBERT_FFN * t
    out = {"conv_stack": 2 * macs_conv, "projection": 2 * macs_proj, "positional_conv": 2 * macs_pos,
           "transformer": 2 * layers * macs_layer}
    out["total"] = sum(out.values())
    out["frames"] = t
    return out


def generator_flops(spec, p_len: int, skip_head: int, return_length: int, return_length2: int | None = None
                    ) -> dict[str, int]:
    """FLOPs of one streaming ``net_g.infer`` call.

    Parameters
    ----------
    spec : rvc_lab.models.synth_spec.SynthSpec
        The voice's architecture (from its ``.pth`` config).
    p_len : int
        Frames (10 ms) given to the generator.
    skip_head, return_length : int
        Frames skipped before, and frames decoded.
    return_length2 : int, optional
        Frames the decoder runs (``ceil(return_length * 2 ** (formant / 12))``); default
        ``return_length``.

    Returns
    -------
    dict
        ``{"text_encoder", "flow", "decoder", "total"}`` in FLOP.
    """
    r2 = return_length if return_length2 is None else return_length2
    h, f, inter = spec.hidden_channels, spec.filter_channels, spec.inter_channels
    t = p_len
    window = 2 * TEXT_ENCODER_WINDOW + 1
    macs_attn = 4 * h * h * t + 2 * t * t * h + 2 * t * window * h
    macs_ffn = 2 * h * f * spec.kernel_size * t
    macs_enc = spec.feature_dim * h * t + spec.n_layers * (macs_attn + macs_ffn) + h * 2 * inter * t

    flow_t = min(skip_head, FLOW_CONTEXT) + return_length
    half = inter // 2
    wn = (FLOW_WN_LAYERS * h * 2 * h * FLOW_KERNEL + (FLOW_WN_LAYERS - 1) * h * 2 * h + h * h)
    macs_flow = FLOW_COUPLINGS * (half * h + wn + h * half) * flow_t

    c = spec.upsample_initial_channel
    macs_dec = inter * c * 7 * r2
    length = r2
    rates = list(spec.upsample_rates)
    for i, (rate, kernel) in enumerate(zip(rates, spec.upsample_kernel_sizes)):
        c_out = c // 2
        macs_dec += c * c_out * kernel * length  # transposed: per input sample
        length *= rate
        stride_f0 = math.prod(rates[i + 1:])
        macs_dec += c_out * (2 * stride_f0 if stride_f0 > 1 else 1) * length
        macs_dec += sum(6 * c_out * c_out * k * length for k in spec.resblock_kernel_sizes)
        c = c_out
    macs_dec += c * 7 * length
    out = {"text_encoder": 2 * macs_enc, "flow": 2 * macs_flow, "decoder": 2 * macs_dec}
    out["total"] = sum(out.values())
    return out
