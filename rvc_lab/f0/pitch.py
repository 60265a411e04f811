"""Pitch post-processing shared by every F0 method: gap filling, key shift, coarse pitch.

All f0 arrays here are in Hz on 10 ms frames, 0 meaning unvoiced.  The coarse pitch is the
integer code (1..255) RVC synthesizers embed: 1 = unvoiced or <= 50 Hz, 255 = >= 1100 Hz, mel
spaced in between.  Two variants exist upstream and both are kept bit-exact:

* :func:`coarse_pitch` -- offline pipeline, numpy, ``np.rint`` (half to even) in the array's own
  float dtype (float64 for pm/rmvpe, float32 for fcpe);
* :func:`coarse_pitch_torch` -- realtime path, float32 torch, ``torch.round`` (half to even).
"""
from __future__ import annotations

import numpy as np
import torch

F0_MIN = 50.0  # Hz mapped to coarse 1
F0_MAX = 1100.0  # Hz mapped to coarse 255
F0_MEL_MIN = 1127 * np.log(1 + F0_MIN / 700)
F0_MEL_MAX = 1127 * np.log(1 + F0_MAX / 700)
COARSE_MIN = 1
COARSE_MAX = 255


def interpolate_unvoiced(f0: np.ndarray) -> np.ndarray:
    """Fill unvoiced (exactly 0) frames by linear interpolation over the voiced ones.

    Parameters
    ----------
    f0 : np.ndarray, [frames]
        Hz, 0 = unvoiced.

    Returns
    -------
    np.ndarray
        A copy with the same dtype.  Gaps between voiced frames are linearly interpolated in
        frame index; leading/trailing gaps hold the nearest voiced value (``np.interp``
        semantics, as upstream).  An all-unvoiced input is returned unchanged (all zeros).
    """
    out = np.array(f0, copy=True)
    unvoiced = out == 0
    if unvoiced.any() and not unvoiced.all():
        voiced_idx = np.flatnonzero(~unvoiced)
        out[unvoiced] = np.interp(np.flatnonzero(unvoiced), voiced_idx, out[voiced_idx])
    return out


def shift_semitones(f0: np.ndarray, semitones: float) -> np.ndarray:
    """``f0 * 2**(semitones/12)`` as a copy in the input's dtype (0 stays 0)."""
    out = np.array(f0, copy=True)
    out *= pow(2, semitones / 12)
    return out


def coarse_pitch(f0: np.ndarray) -> np.ndarray:
    """Offline coarse pitch: int32 codes 1..255 for f0 in Hz.

    ``mel = 1127 ln(1 + f0/700)``; where mel > 0 it becomes ``(mel - mel(50)) * 254 /
    (mel(1100) - mel(50)) + 1``; clipped to [1, 255]; ``np.rint``.  The arithmetic runs in the
    array's dtype with the constants rounded to it, which is what upstream's numpy 1.x did (its
    FCPE f0 is float32, so its coarse codes were computed in float32).
    """
    f0 = np.asarray(f0)
    dtype = f0.dtype if f0.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    f0 = f0.astype(dtype, copy=False)
    mel_min = dtype.type(F0_MEL_MIN)
    mel_span = dtype.type(F0_MEL_MAX - F0_MEL_MIN)
    mel = dtype.type(1127) * np.log(dtype.type(1) + f0 / dtype.type(700))
    positive = mel > 0
    mel[positive] = (mel[positive] - mel_min) * dtype.type(254) / mel_span + dtype.type(1)
    mel[mel <= 1] = 1
    mel[mel > 255] = 255
    return np.rint(mel).astype(np.int32)


def coarse_pitch_torch(f0: torch.Tensor) -> torch.Tensor:
    """Realtime coarse pitch: int64 codes 1..255, float32 torch arithmetic, ``torch.round``.

    Same formula as :func:`coarse_pitch`; the input is converted to float32 first (upstream's
    ``get_f0_post``).  Returns a new tensor of the input's shape on the input's device.
    """
    f0 = f0.float()
    mel = 1127 * torch.log(1 + f0 / 700)
    positive = mel > 0
    mel[positive] = (mel[positive] - F0_MEL_MIN) * 254 / (F0_MEL_MAX - F0_MEL_MIN) + 1
    mel[mel <= 1] = 1
    mel[mel > 255] = 255
    return torch.round(mel).long()
