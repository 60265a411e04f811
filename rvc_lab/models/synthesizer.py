"""RVC generator (net_g) for inference: the four upstream variants in one module.

``SynthesizerTrnMs256NSFsid`` (v1, f0), ``..._nono`` (v1, no f0), ``Ms768NSFsid`` (v2, f0) and
``Ms768NSFsid_nono`` (v2, no f0) differ only in the content width (256/768) and in whether coarse
pitch is embedded and an NSF source drives the decoder; :class:`Synthesizer` covers all four.

Chain per call: content encoder (transformer over all frames) -> prior sample ``m + e^logs *
noise * 0.66666`` -> flow in reverse -> HiFi-GAN(+NSF) decoder.  No posterior encoder and no
discriminators: this is the inference path only.

Random numbers: upstream draws from torch's global CPU generator, per call and in this order,
``randn_like(m_p)`` [B, 192, T_flow], ``rand(B, 1)`` (sine phase, f0 models), ``randn_like(sine)``
[B, S, 1] (excitation noise, f0 models).  ``infer(noise=True)`` makes the same draws in the same
order and shapes, so ``torch.manual_seed(s)`` before a call reproduces upstream's output;
``noise=False`` replaces the three draws by zeros without touching the generator.
"""
from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from rvc_lab.errors import ModelFileError, SettingsError
from rvc_lab.models.nsf import HiFiGANDecoder
from rvc_lab.models.synth_spec import (
    SR_TAGS,
    SynthSpec,
    spec_from_config,
    standard_config,
    stored_layout,
)
from rvc_lab.models.vits_layers import ContentEncoder, PriorFlow

if TYPE_CHECKING:
    from rvc_lab.files.voice import VoiceModel

PRIOR_NOISE_SCALE = 0.66666  # upstream's sampling temperature of the prior
FLOW_CONTEXT_FRAMES = 24  # frames before skip_head the flow still sees (upstream constant)


class _Draws:
    """Random draws of one infer call: torch's global generator, or zeros without consuming it."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def normal(self, shape: tuple) -> torch.Tensor:
        return torch.randn(shape) if self.enabled else torch.zeros(shape)

    def uniform(self, shape: tuple) -> torch.Tensor:
        return torch.rand(shape) if self.enabled else torch.zeros(shape)


class Synthesizer(nn.Module):
    """One RVC generator.  Build it with :func:`build_synthesizer` (weights folded, eval, fp32).

    Attributes
    ----------
    spec : SynthSpec
        Named hyper-parameters (version, f0 flag, sampling rate, ...).
    upp : int
        Output samples per 10 ms input frame (tgt_sr / 100).
    """

    def __init__(self, spec: SynthSpec):
        super().__init__()
        self.spec = spec
        self.upp = spec.upp
        self.enc_p = ContentEncoder(
            spec.feature_dim, spec.inter_channels, spec.hidden_channels, spec.filter_channels,
            spec.n_heads, spec.n_layers, spec.kernel_size, with_pitch=spec.if_f0,
        )  # fmt: skip
        self.flow = PriorFlow(spec.inter_channels, spec.hidden_channels, spec.gin_channels)
        self.dec = HiFiGANDecoder(
            spec.inter_channels, spec.resblock, spec.resblock_kernel_sizes, spec.resblock_dilation_sizes,
            spec.upsample_rates, spec.upsample_initial_channel, spec.upsample_kernel_sizes, spec.gin_channels,
            sample_rate=spec.sampling_rate if spec.if_f0 else None,
        )  # fmt: skip
        self.emb_g = nn.Embedding(spec.n_speakers, spec.gin_channels)

    @property
    def if_f0(self) -> bool:
        return self.spec.if_f0

    @property
    def tgt_sr(self) -> int:
        return self.spec.sampling_rate

    @torch.no_grad()
    def infer(
        self,
        phone: torch.Tensor,
        phone_lengths: torch.Tensor,
        pitch: torch.Tensor | None,
        pitchf: torch.Tensor | None,
        sid: torch.Tensor,
        skip_head: int | None = None,
        return_length: int | None = None,
        return_length2: int | None = None,
        noise: bool = True,
    ) -> torch.Tensor:
        """Convert content features (+ pitch) to audio at the model rate.

        Parameters
        ----------
        phone : [1, T, 256|768] float32
            Content features at 10 ms frames (HuBERT features upsampled x2).
        phone_lengths : [1] long
            Valid frames (normally T).
        pitch : [1, T] long or None
            Coarse pitch 1..255 (f0 models; ignored by no-f0 models).
        pitchf : [1, T] float32 or None
            f0 in Hz, 0 = unvoiced (f0 models; ignored by no-f0 models).
        sid : [1] long
            Speaker id.
        skip_head, return_length : int or None
            Streaming window, both needed to take effect: only frames ``skip_head :
            skip_head + return_length`` are decoded.  The encoder still sees every frame; the
            prior noise and the flow cover frames from ``max(skip_head - 24, 0)`` on.
        return_length2 : int or None
            Decode to this many frames instead (latent and source stretched linearly), as
            upstream's formant shift does.
        noise : bool
            True: upstream's random draws from torch's global generator.  False: zeros.

        Returns
        -------
        [1, 1, S] float32 audio in [-1, 1], S = frames * upp (frames = return_length2, else
        return_length, else T).
        """
        spec = self.spec
        phone = phone.to(torch.float32)
        if phone.dim() != 3 or phone.shape[-1] != spec.feature_dim:
            raise SettingsError(
                f"phone must be [1, T, {spec.feature_dim}] for a {spec.version} model, got {tuple(phone.shape)}"
            )
        sid = torch.as_tensor(sid, dtype=torch.long).reshape(-1)
        if int(sid.min()) < 0 or int(sid.max()) >= spec.n_speakers:
            raise SettingsError(f"speaker id {sid.tolist()} out of range: the model has {spec.n_speakers} speaker(s)")
        phone_lengths = torch.as_tensor(phone_lengths, dtype=torch.long).reshape(-1)
        if spec.if_f0:
            if pitch is None or pitchf is None:
                raise SettingsError("this voice model uses pitch (f0): pitch and pitchf are required")
            pitch = torch.as_tensor(pitch, dtype=torch.long)
            pitchf = torch.as_tensor(pitchf, dtype=torch.float32)
            if pitch.numel() and (int(pitch.min()) < 0 or int(pitch.max()) > 255):
                raise SettingsError("coarse pitch must lie in 0..255")
        else:
            pitch = pitchf = None

        draws = _Draws(noise)
        g = self.emb_g(sid).unsqueeze(-1)  # [B, gin, 1]
        windowed = skip_head is not None and return_length is not None
        flow_head = dec_head = 0
        if windowed:
            skip_head, return_length = int(skip_head), int(return_length)
            flow_head = max(skip_head - FLOW_CONTEXT_FRAMES, 0)
            dec_head = skip_head - flow_head

        mean, log_scale, mask = self.enc_p(phone, pitch, phone_lengths, head=flow_head)
        prior_noise = draws.normal(tuple(mean.shape))
        z_p = (mean + torch.exp(log_scale) * prior_noise * PRIOR_NOISE_SCALE) * mask
        z = self.flow.inverse(z_p, mask, g)
        if windowed:
            z = z[:, :, dec_head : dec_head + return_length]
            mask = mask[:, :, dec_head : dec_head + return_length]
            if pitchf is not None:
                pitchf = pitchf[:, skip_head : skip_head + return_length]
        n_frames = None if return_length2 is None else int(return_length2)
        return self.dec(z * mask, pitchf, g=g, n_frames=n_frames, uniform=draws.uniform, normal=draws.normal)


# --------------------------------------------------------------------------------------------
# Loading


def fold_weight_norm(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Stored weights -> plain float32 state dict: weight norm folded, ``enc_q.*`` dropped.

    Accepts upstream's ``weight_g``/``weight_v`` pairs and the newer
    ``parametrizations.weight.original0/1`` naming (norm over every dim but 0 in both).
    """
    out: dict[str, torch.Tensor] = {}
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, t in weights.items():
        if key.startswith("enc_q."):
            continue
        for g_suffix, v_suffix in ((".weight_g", ".weight_v"), (".parametrizations.weight.original0",
                                                                 ".parametrizations.weight.original1")):
            if key.endswith(g_suffix):
                pairs.setdefault(key[: -len(g_suffix)], {})["g"] = t
                break
            if key.endswith(v_suffix):
                pairs.setdefault(key[: -len(v_suffix)], {})["v"] = t
                break
        else:
            out[key] = t.to(torch.float32)
    for layer, gv in pairs.items():
        if set(gv) != {"g", "v"}:
            raise KeyError(f"{layer}: weight-norm pair incomplete (has only {sorted(gv)})")
        # The same primitive upstream's remove_weight_norm evaluates: v * g / ||v||, norm over dims != 0.
        out[f"{layer}.weight"] = torch._weight_norm(gv["v"].to(torch.float32), gv["g"].to(torch.float32), 0)
    return out


def build_synthesizer(voice: "VoiceModel") -> Synthesizer:
    """Build the generator of a loaded voice: eval mode, float32, weight norm folded.

    Every module parameter must come from the file and every stored tensor (except the
    training-only ``enc_q.*``) must be used; anything else raises :class:`ModelFileError`.
    """
    spec = spec_from_config(voice.config, voice.version, voice.if_f0, n_speakers=voice.n_speakers)
    model = Synthesizer(spec)
    try:
        state = fold_weight_norm(voice.weights)
    except KeyError as exc:
        raise ModelFileError(voice.path, f"voice model weights incomplete: {exc.args[0]}") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ModelFileError(
            voice.path,
            f"voice model weights do not fit a {spec.version} {'f0' if spec.if_f0 else 'no-f0'} generator: "
            f"missing {_few(missing)}, unexpected {_few(unexpected)}",
        )
    wrong = [k for k in expected if tuple(expected[k].shape) != tuple(state[k].shape)]
    if wrong:
        k = wrong[0]
        raise ModelFileError(
            voice.path, f"voice model tensor {k} has shape {tuple(state[k].shape)}, expected {tuple(expected[k].shape)}"
        )
    model.load_state_dict(state, strict=True)
    return model.eval().float()


def _few(keys: list[str], n: int = 4) -> str:
    if not keys:
        return "none"
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


# --------------------------------------------------------------------------------------------
# Seeded random weights (demo assets)


def _key_stream(seed: int, label: str, key: str) -> np.random.Generator:
    """Independent PCG64 stream per tensor, so values don't depend on which other tensors exist."""
    digest = hashlib.sha256(f"rvc_lab|{seed}|{label}|{key}".encode()).digest()
    words = np.frombuffer(digest[:16], dtype="<u4")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words.tolist())))


def _uniform(rng: np.random.Generator, shape: tuple, low: float, high: float) -> np.ndarray:
    return low + (high - low) * rng.random(shape)


def _normal(rng: np.random.Generator, shape: tuple, std: float) -> np.ndarray:
    # Box-Muller from uniform doubles: only Generator.random() is used, whose stream NumPy keeps
    # stable across versions (the normal samplers' streams are not guaranteed).
    n = int(np.prod(shape))
    u1 = 1.0 - rng.random((n + 1) // 2)  # (0, 1]: log is finite
    u2 = rng.random((n + 1) // 2)
    r = np.sqrt(-2.0 * np.log(u1))
    z = np.concatenate([r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)])[:n]
    return (std * z).reshape(shape)


def random_synthesizer_weights(
    version: str, sr_tag: str, if_f0: bool, seed: int, n_speakers: int = 1, *, config: list | None = None
) -> dict[str, torch.Tensor]:
    """Seeded random weights in the stored layout of an exported voice (``weight_g``/``weight_v``).

    Scales follow PyTorch's default initialisation (weights and biases U(+-1/sqrt(fan_in)),
    embeddings N(0, 1), relative-position embeddings N(0, 1/head_dim)); LayerNorm parameters are
    perturbed around identity (gamma 1+U(+-0.1), beta U(+-0.1)) and weight-norm gains are
    ||v|| x U(0.9, 1.1), so that every parameter matters.  Values are rounded to float16 (what an
    exported file stores) and returned as float32.

    Parameters
    ----------
    version : {"v1", "v2"}
    sr_tag : {"32k", "40k", "48k"}
    if_f0 : bool
    seed : int
    n_speakers : int
        Rows of ``emb_g.weight``.
    config : list, optional
        A non-standard 18-item config (e.g. a tiny generator for fast tests); default: upstream's
        standard config for ``version`` x ``sr_tag``.  Its sampling rate must match ``sr_tag``.

    Returns
    -------
    dict[str, Tensor]
        Deterministic for (version, sr_tag, if_f0, seed, n_speakers); each tensor has its own stream.
    """
    if sr_tag not in SR_TAGS:
        raise ValueError(f"sr_tag must be one of {sorted(SR_TAGS)}, got {sr_tag!r}")
    if config is None:
        config = standard_config(version, sr_tag, n_speakers=n_speakers)
    spec = spec_from_config(config, version, if_f0, n_speakers=n_speakers)
    if spec.sampling_rate != SR_TAGS[sr_tag]:
        raise ValueError(f"config sampling rate {spec.sampling_rate} does not match sr_tag {sr_tag!r}")
    layout = stored_layout(spec)
    label = f"{version}-{sr_tag}-{'f0' if if_f0 else 'nof0'}"
    values: dict[str, np.ndarray] = {}
    # Weight-norm gains depend on their direction tensors: draw those first.
    for key in sorted(layout, key=lambda k: layout[k].init == "wn_g"):
        ts = layout[key]
        rng = _key_stream(seed, label, key)
        if ts.init == "uniform":
            bound = 1.0 / math.sqrt(ts.fan_in)
            a = _uniform(rng, ts.shape, -bound, bound)
        elif ts.init == "normal":
            a = _normal(rng, ts.shape, ts.std)
        elif ts.init == "ln_gamma":
            a = 1.0 + _uniform(rng, ts.shape, -0.1, 0.1)
        elif ts.init == "ln_beta":
            a = _uniform(rng, ts.shape, -0.1, 0.1)
        elif ts.init == "wn_g":
            v = values[ts.of].astype(np.float64)
            norm = np.sqrt((v.reshape(v.shape[0], -1) ** 2).sum(axis=1)).reshape(ts.shape)
            a = norm * _uniform(rng, ts.shape, 0.9, 1.1)
        else:  # pragma: no cover - layout and this switch are written together
            raise AssertionError(ts.init)
        values[key] = a.astype(np.float16)
    return {k: torch.from_numpy(values[k].astype(np.float32)) for k in layout}
