"""The interface every F0 method implements, and the frame bookkeeping they share.

Conventions (all methods): input is 16 kHz mono audio; output is f0 in Hz on 10 ms frames
(hop 160 samples), 0 = unvoiced, raw (no gap filling, no key shift).  ``N`` samples have
``N//160 + 1`` natural frames, frame ``i`` centred on sample ``160*i`` (time ``i*0.01`` s).

Three entry points, because upstream RVC analyses audio in three slightly different ways:

``offline(x, p_len)``
    What the offline pipeline's ``get_f0`` computes before it fills gaps and shifts the key.
    ``x`` is the float64 high-passed, reflect-padded audio; ``p_len = len(x)//160``.  Lengths
    differ per method exactly as upstream's do (pm: padded to ``p_len``; rmvpe/fcpe: natural
    ``N//160 + 1``; harvest/dio/crepe: resampled to ``p_len``).
``realtime(x)``
    What the streaming path computes on one analysis window (a float32 tensor), ``N//160 + 1``
    frames, aligned so that frame ``i`` is at sample ``160*i``.
``track(x)``
    A plain, time-aligned f0 track of a whole file (``N//160 + 1`` frames), the offline
    analysis settings where they differ from the streaming ones (pm floor 50 Hz).
"""
from __future__ import annotations

import abc
from typing import Union

import numpy as np
import torch

SAMPLE_RATE = 16000
HOP = 160  # samples per 10 ms frame
FRAME_PERIOD_MS = 10.0

AudioLike = Union[np.ndarray, torch.Tensor]


def natural_frames(n_samples: int) -> int:
    """Frames of a centred 10 ms analysis of ``n_samples`` at 16 kHz: ``n//160 + 1``."""
    return n_samples // HOP + 1


def fit_length(f0: np.ndarray, n_frames: int) -> np.ndarray:
    """Cut, or zero-pad at the end, to exactly ``n_frames``."""
    if len(f0) >= n_frames:
        return f0[:n_frames]
    return np.pad(f0, (0, n_frames - len(f0)))


def stretch_to_length(f0: np.ndarray, n_frames: int) -> np.ndarray:
    """Linearly resample an f0 track to ``n_frames`` the classic RVC way (``_resize_f0``).

    Output frame ``j`` reads input position ``j*len(f0)/n_frames``.  Unvoiced frames (< 0.001 Hz)
    are NaN while interpolating, so any output frame touching an unvoiced input frame becomes 0.
    Returns float64.
    """
    source = np.array(f0, dtype=np.float64)
    source[source < 0.001] = np.nan
    positions = np.arange(0, len(source) * n_frames, len(source)) / n_frames
    return np.nan_to_num(np.interp(positions, np.arange(len(source)), source))


def as_numpy_audio(x: AudioLike, dtype=np.float64) -> np.ndarray:
    """1-D numpy copy-free view (when possible) of audio in ``dtype``."""
    if torch.is_tensor(x):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"expected 1-D mono audio, got shape {x.shape}")
    return x.astype(dtype, copy=False)


def as_tensor_audio(x: AudioLike) -> torch.Tensor:
    """1-D float32 CPU tensor of audio."""
    t = x.detach() if torch.is_tensor(x) else torch.from_numpy(np.ascontiguousarray(x))
    if t.dim() != 1:
        raise ValueError(f"expected 1-D mono audio, got shape {tuple(t.shape)}")
    return t.float()


class PitchMethod(abc.ABC):
    """One F0 method.  Subclasses hold their own (lazily loaded) models."""

    name: str = ""

    @abc.abstractmethod
    def offline(self, x16k: np.ndarray, p_len: int) -> np.ndarray:
        """Raw f0 (Hz, 0 = unvoiced) as the offline pipeline computes it; see module docs."""

    @abc.abstractmethod
    def realtime(self, x16k: torch.Tensor) -> np.ndarray:
        """Raw f0 of a streaming analysis window: ``N//160 + 1`` frames."""

    @abc.abstractmethod
    def track(self, x16k: AudioLike) -> np.ndarray:
        """Time-aligned raw f0 of a whole signal: ``N//160 + 1`` frames."""


class WholeSignalPitch(PitchMethod):
    """A method whose offline, realtime and track outputs are one and the same analysis.

    Neural trackers (rmvpe, fcpe) are called identically by upstream's offline and realtime
    paths: ``N//160 + 1`` frames of the given audio, not cut to ``p_len``.  Subclasses implement
    :meth:`_f0` only.
    """

    @abc.abstractmethod
    def _f0(self, x16k: AudioLike) -> np.ndarray:
        """Raw f0 (Hz, 0 = unvoiced) of the whole input, ``N//160 + 1`` frames."""

    def offline(self, x16k: np.ndarray, p_len: int) -> np.ndarray:
        return self._f0(x16k)

    def realtime(self, x16k: torch.Tensor) -> np.ndarray:
        return self._f0(x16k)

    def track(self, x16k: AudioLike) -> np.ndarray:
        return self._f0(x16k)
