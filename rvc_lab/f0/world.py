"""``harvest`` and ``dio``: the WORLD vocoder's F0 estimators through pyworld (classic RVC).

Both run at a 10 ms frame period over 50-1100 Hz and are refined by StoneMask.  They give
``N//160 + 1`` frames aligned to sample 0.

* harvest: optional median filter (``filter_radius``: scipy ``medfilt`` kernel size, applied
  when > 2; it must then be odd).
* dio: values rounded to 0.1 Hz (as the classic code did).

Offline, the classic pipeline resamples the track to ``p_len = len(x)//160`` frames
(:func:`~rvc_lab.f0.base.stretch_to_length`, which zeroes frames next to unvoiced ones).
Harvest finds a *pure* sine unvoiced: its voicing test wants more than one harmonic or noise.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import signal

from rvc_lab.f0.base import FRAME_PERIOD_MS, SAMPLE_RATE, AudioLike, PitchMethod, as_numpy_audio, stretch_to_length

with warnings.catch_warnings():
    # pyworld imports the deprecated pkg_resources at import time; nothing we can act on.
    warnings.simplefilter("ignore", UserWarning)
    import pyworld

FLOOR_HZ = 50.0
CEILING_HZ = 1100.0


def harvest_track(x16k: np.ndarray, filter_radius: int) -> np.ndarray:
    """Harvest + StoneMask (+ median filter of size ``filter_radius`` if > 2): Hz, N//160+1 frames."""
    x = np.ascontiguousarray(x16k, dtype=np.float64)
    f0, times = pyworld.harvest(x, fs=SAMPLE_RATE, f0_floor=FLOOR_HZ, f0_ceil=CEILING_HZ, frame_period=FRAME_PERIOD_MS)
    f0 = pyworld.stonemask(x, f0, times, SAMPLE_RATE)
    if filter_radius > 2:
        f0 = signal.medfilt(f0, filter_radius)
    return f0


def dio_track(x16k: np.ndarray) -> np.ndarray:
    """DIO + StoneMask, rounded to 0.1 Hz: Hz, N//160+1 frames."""
    x = np.ascontiguousarray(x16k, dtype=np.float64)
    f0, times = pyworld.dio(x, fs=SAMPLE_RATE, f0_floor=FLOOR_HZ, f0_ceil=CEILING_HZ, frame_period=FRAME_PERIOD_MS)
    f0 = pyworld.stonemask(x, f0, times, SAMPLE_RATE)
    return np.round(f0, 1)


class HarvestPitch(PitchMethod):
    name = "harvest"

    def __init__(self, filter_radius: int = 3) -> None:
        self.filter_radius = int(filter_radius)

    def offline(self, x16k: np.ndarray, p_len: int) -> np.ndarray:
        return stretch_to_length(harvest_track(as_numpy_audio(x16k), self.filter_radius), p_len)

    def realtime(self, x16k: torch.Tensor) -> np.ndarray:
        return harvest_track(as_numpy_audio(x16k), self.filter_radius)

    def track(self, x16k: AudioLike) -> np.ndarray:
        return harvest_track(as_numpy_audio(x16k), self.filter_radius)


class DioPitch(PitchMethod):
    name = "dio"

    def offline(self, x16k: np.ndarray, p_len: int) -> np.ndarray:
        return stretch_to_length(dio_track(as_numpy_audio(x16k)), p_len)

    def realtime(self, x16k: torch.Tensor) -> np.ndarray:
        return dio_track(as_numpy_audio(x16k))

    def track(self, x16k: AudioLike) -> np.ndarray:
        return dio_track(as_numpy_audio(x16k))
