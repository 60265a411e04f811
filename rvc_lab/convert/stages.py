"""Stage functions shared by the offline and streaming drivers.

Both drivers call these same functions; they differ only in buffering, caching between blocks
and how block edges are joined.  Every function states the rate and frame grid it works on:
16 kHz audio, 20 ms content frames (320 samples), 10 ms pitch frames (160 samples).
"""
from __future__ import annotations

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from scipy import signal

from rvc_lab.convert import runtime
from rvc_lab.models.channels_last import transformer_features

#: Samples per 10 ms pitch frame at 16 kHz.
HOP_16K = 160

# Upstream's offline input filter: 5th-order Butterworth high-pass at 48 Hz, applied forward and
# backward (zero phase), removes DC and rumble before features and pitch are computed.
_HP_B, _HP_A = signal.butter(N=5, Wn=48, btype="high", fs=16000)


def high_pass_48hz(audio16k: np.ndarray) -> np.ndarray:
    """Zero-phase 48 Hz high-pass of 16 kHz audio (``filtfilt``, default odd padding) -> float64."""
    return signal.filtfilt(_HP_B, _HP_A, audio16k)


@torch.no_grad()
def content_features(encoder, wav16k: torch.Tensor, version: str, precision: str = "fp32") -> torch.Tensor:
    """HuBERT content features.

    Parameters
    ----------
    encoder : rvc_lab.models.hubert.HubertBase
    wav16k : torch.Tensor
        float32 [N] or [1, N], 16 kHz.
    version : {"v1", "v2"}
        v1: 256-d (layer 9 + final_proj); v2: 768-d (layer 12).
    precision : {"fp32", "bf16"}
        fp32: exact.  bf16: bfloat16 matrix products (fast on AMX CPUs), ~1e-2 relative change
        of the features; see :mod:`rvc_lab.convert.runtime`.

    Returns
    -------
    torch.Tensor
        float32 [1, T, 256|768], one frame per 20 ms, T = (N - 400) // 320 + 1.
    """
    model = runtime.runtime_encoder(encoder, precision)
    return model.extract_features(wav16k.float().view(1, -1), version).float()


@torch.no_grad()
def content_features_from_conv(encoder, conv_feats: torch.Tensor, version: str, precision: str = "fp32") -> torch.Tensor:
    """HuBERT content features from its convolution front end's output (the transformer part).

    Parameters
    ----------
    encoder : rvc_lab.models.hubert.HubertBase
    conv_feats : torch.Tensor
        [1, T, 512] front-end frames, time-major (e.g. from
        :class:`rvc_lab.convert.frontend_cache.FrontEndCache`).
    version, precision
        As :func:`content_features`.

    Returns
    -------
    torch.Tensor
        float32 [1, T, 256|768].
    """
    model = runtime.runtime_encoder(encoder, precision)
    with runtime.autocast(precision, conv_feats.device):
        return transformer_features(model, conv_feats, version)


def upsample_to_pitch_frames(feats: torch.Tensor) -> torch.Tensor:
    """Repeat each 20 ms content frame twice -> the 10 ms pitch grid. [1, T, C] -> [1, 2T, C]."""
    return F.interpolate(feats.permute(0, 2, 1), scale_factor=2).permute(0, 2, 1)


def protect_unvoiced(feats: torch.Tensor, feats_raw: torch.Tensor, pitchf: torch.Tensor, protect: float) -> torch.Tensor:
    """Keep raw (un-retrieved) features where there is no pitch, to protect consonants and breath.

    Parameters
    ----------
    feats, feats_raw : torch.Tensor
        float32 [1, P, C]: blended and pre-retrieval features on the 10 ms grid.
    pitchf : torch.Tensor
        float32 [1, P] Hz.
    protect : float
        Weight of the blended features on unvoiced frames (< 0.5 enables protection).

    Returns
    -------
    torch.Tensor
        ``feats * m + feats_raw * (1 - m)`` with m = 1 where pitchf >= 1 Hz, ``protect`` elsewhere.
    """
    mask = pitchf.clone()
    mask[pitchf > 0] = 1
    mask[pitchf < 1] = protect
    mask = mask.unsqueeze(-1)
    return (feats * mask + feats_raw * (1 - mask)).to(feats_raw.dtype)


@torch.no_grad()
def run_generator(
    net_g,
    feats: torch.Tensor,
    p_len: int,
    pitch: torch.Tensor | None,
    pitchf: torch.Tensor | None,
    sid: int,
    *,
    skip_head: int | None = None,
    return_length: int | None = None,
    return_length2: int | None = None,
    noise: bool = True,
    seed: int | None = None,
    precision: str = "fp32",
) -> torch.Tensor:
    """One ``net_g.infer`` call.

    Parameters
    ----------
    feats : torch.Tensor
        float32 [1, P, C] features on the 10 ms grid.
    p_len : int
        Frames to synthesise (``phone_lengths``).
    pitch, pitchf : torch.Tensor or None
        int64 [1, P] coarse pitch (1..255) and float32 [1, P] Hz; None for no-f0 voices.
    sid : int
        Speaker id.
    skip_head, return_length, return_length2 : int, optional
        Streaming cut (10 ms frames); see :meth:`Synthesizer.infer`.
    noise : bool
        False replaces the generator's random draws with zeros (deterministic output).
    seed : int, optional
        ``torch.manual_seed(seed)`` right before the call, so draws repeat upstream's.
    precision : {"fp32", "bf16"}
        fp32: exact (the decoder runs channels-last, within float32 rounding of the module).
        bf16: bfloat16 convolutions and matrix products, NSF sine source in float32; the
        random draws are the same in both.  See :mod:`rvc_lab.convert.runtime`.

    Returns
    -------
    torch.Tensor
        float32 [S] audio at the voice's rate.
    """
    model = runtime.runtime_generator(net_g, precision)
    if seed is not None and noise:
        torch.manual_seed(seed)
    lengths = torch.tensor([p_len], dtype=torch.long)
    sid_t = torch.tensor([sid], dtype=torch.long)
    with runtime.autocast(precision, feats.device):
        out = model.infer(
            feats, lengths, pitch, pitchf, sid_t,
            skip_head=skip_head, return_length=return_length, return_length2=return_length2, noise=noise,
        )
    return out[0, 0].float()


def rms_mix_offline(audio16k: np.ndarray, out: np.ndarray, tgt_sr: int, rate: float) -> np.ndarray:
    """Upstream offline loudness matching: output envelope moved towards the input's.

    Parameters
    ----------
    audio16k : np.ndarray
        The (high-passed) 16 kHz input.
    out : np.ndarray
        float32 converted audio at ``tgt_sr``; scaled in place and returned.
    rate : float
        0 = input envelope, 1 = keep output envelope.  Envelopes are RMS over 0.5 s (hop 0.5 s),
        linearly interpolated to every output sample.
    """
    rms_in = librosa.feature.rms(y=audio16k, frame_length=16000 // 2 * 2, hop_length=16000 // 2)
    rms_out = librosa.feature.rms(y=out, frame_length=tgt_sr // 2 * 2, hop_length=tgt_sr // 2)
    n = out.shape[0]
    env_in = F.interpolate(torch.from_numpy(rms_in).unsqueeze(0), size=n, mode="linear").squeeze()
    env_out = F.interpolate(torch.from_numpy(rms_out).unsqueeze(0), size=n, mode="linear").squeeze()
    env_out = torch.clamp(env_out, min=1e-6)
    gain = torch.pow(env_in, torch.tensor(1 - rate)) * torch.pow(env_out, torch.tensor(rate - 1))
    out *= gain.numpy()
    return out


def rms_mix_stream(input_seg: torch.Tensor, out: torch.Tensor, zc: int, rate: float) -> torch.Tensor:
    """Upstream realtime loudness matching of one block (frames of 40 ms, hop 10 ms).

    Parameters
    ----------
    input_seg : torch.Tensor
        float32 [>= len(out)] input at the stream rate, aligned with ``out``.
    out : torch.Tensor
        float32 [L] block output at the stream rate.
    zc : int
        Samples per 10 ms at the stream rate.
    rate : float
        < 1 applies ``out *= (rms_in / max(rms_out, 1e-3)) ** (1 - rate)``.
    """
    n = out.shape[0]

    def envelope(x: np.ndarray) -> torch.Tensor:
        rms = torch.from_numpy(librosa.feature.rms(y=x, frame_length=4 * zc, hop_length=zc))
        return F.interpolate(rms.unsqueeze(0), size=n + 1, mode="linear", align_corners=True)[0, 0, :-1]

    env_in = envelope(input_seg[:n].cpu().numpy())
    env_out = torch.clamp(envelope(out.cpu().numpy()), min=1e-3)
    return out * torch.pow(env_in / env_out, 1.0 - rate)

