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

import torch
from torch import nn

from rvc_lab.errors import SettingsError
from rvc_lab.models.nsf import HiFiGANDecoder
from rvc_lab.models.synth_spec import SynthSpec
from rvc_lab.models.vits_layers import ContentEncoder, PriorFlow

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
    """One RVC generator.  Build it with :func:`rvc_lab.files.generator_weights.build_synthesizer`
    (weights folded, eval, fp32).

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
