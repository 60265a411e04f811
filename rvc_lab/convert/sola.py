"""SOLA (synchronized overlap-add) alignment and the crossfade that joins streaming blocks.

Pure DSP on 1-D float32 tensors at the stream's sample rate; no model, no state.  The streaming
driver keeps the ``sola_buffer`` (the tail of the previous block) between calls.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def fade_windows(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Power-complementary fades of ``n`` samples: ``fade_in = sin(pi/2 * t)^2``, t in [0, 1].

    Returns
    -------
    fade_in, fade_out : torch.Tensor
        float32 [n]; ``fade_out = 1 - fade_in``.
    """
    fade_in = torch.sin(0.5 * math.pi * torch.linspace(0.0, 1.0, steps=n, dtype=torch.float32)) ** 2
    return fade_in, 1 - fade_in


def sola_offset(head: torch.Tensor, sola_buffer: torch.Tensor) -> int:
    """Lag in ``head`` where the previous block's tail fits best (normalized cross-correlation).

    Parameters
    ----------
    head : torch.Tensor
        float32 [sola_buffer_frame + sola_search_frame]: start of the new block's output.
    sola_buffer : torch.Tensor
        float32 [sola_buffer_frame]: tail kept from the previous block.

    Returns
    -------
    int
        Offset in samples, 0 .. sola_search_frame; the first maximum when tied.

    Notes
    -----
    The score at lag k is ``<head[k:k+L], buf> / sqrt(||head[k:k+L]||^2 + 1e-8)``; the buffer's own
    norm is constant over k and left out.  Computed with ``conv1d`` as upstream does, so that the
    argmax takes the same decision on the same float32 numbers.
    """
    n = sola_buffer.shape[0]
    x = head[None, None, :]
    nom = F.conv1d(x, sola_buffer[None, None, :])
    den = torch.sqrt(F.conv1d(x**2, torch.ones(1, 1, n, dtype=head.dtype, device=head.device)) + 1e-8)
    return int(torch.argmax(nom[0, 0] / den[0, 0]))


def phase_vocoder_crossfade(
    prev: torch.Tensor, new: torch.Tensor, fade_out: torch.Tensor, fade_in: torch.Tensor
) -> torch.Tensor:
    """Crossfade whose middle is re-synthesised with interpolated phase (opt-in, classic RVC "use_pv").

    A plain crossfade of two signals that are not phase-locked dips in level where they cancel.
    Here the overlap is split into the faded originals plus a sum of sinusoids whose amplitude is
    the mean spectral magnitude of both frames and whose phase travels from ``prev``'s phase to
    ``new``'s over the window (the wrapped phase difference added to each bin's own frequency).

    Parameters
    ----------
    prev, new : torch.Tensor
        float32 [n]: the previous block's tail and the new block's head (after the SOLA shift).
    fade_out, fade_in : torch.Tensor
        float32 [n] windows from :func:`fade_windows`.

    Returns
    -------
    torch.Tensor
        float32 [n]: the joined samples.
    """
    n = prev.shape[0]
    taper = torch.sqrt(fade_out * fade_in)  # zero at both ends, so the resynthesis adds no clicks
    spec_prev = torch.fft.rfft(prev * taper)
    spec_new = torch.fft.rfft(new * taper)
    magnitude = spec_prev.abs() + spec_new.abs()
    # one-sided spectrum: every bin but DC (and Nyquist for even n) stands for two
    if n % 2 == 0:
        magnitude[1:-1] *= 2
    else:
        magnitude[1:] *= 2
    phase_prev = torch.angle(spec_prev)
    dphi = torch.angle(spec_new) - phase_prev
    dphi = dphi - 2 * math.pi * torch.floor(dphi / (2 * math.pi) + 0.5)  # wrap to [-pi, pi)
    omega = 2 * math.pi * torch.arange(n // 2 + 1, dtype=prev.dtype) + dphi  # cycles over the window
    t = torch.arange(n, dtype=prev.dtype)[:, None] / n
    resynth = torch.sum(magnitude * torch.cos(omega * t + phase_prev), dim=-1) * taper / n
    return prev * fade_out**2 + new * fade_in**2 + resynth


def crossfade_block(
    out: torch.Tensor,
    offset: int,
    sola_buffer: torch.Tensor,
    fade_in: torch.Tensor,
    fade_out: torch.Tensor,
    block_frame: int,
    phase_vocoder: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift by the SOLA offset, crossfade with the previous tail, split off the next tail.

    Parameters
    ----------
    out : torch.Tensor
        float32 [block_frame + sola_buffer_frame + sola_search_frame]: this block's output.
    offset : int
        From :func:`sola_offset`.
    sola_buffer : torch.Tensor
        float32 [sola_buffer_frame]: previous tail.
    fade_in, fade_out : torch.Tensor
        float32 [sola_buffer_frame].
    block_frame : int
        Samples emitted per block.
    phase_vocoder : bool
        Use :func:`phase_vocoder_crossfade` instead of the sin² crossfade.

    Returns
    -------
    block, new_sola_buffer : torch.Tensor
        float32 [block_frame] to emit, and float32 [sola_buffer_frame] to keep.
    """
    n = sola_buffer.shape[0]
    y = out[offset:].clone()
    if phase_vocoder:
        y[:n] = phase_vocoder_crossfade(sola_buffer, y[:n], fade_out, fade_in)
    else:
        y[:n] *= fade_in
        y[:n] += sola_buffer * fade_out
    return y[:block_frame], y[block_frame : block_frame + n].clone()
