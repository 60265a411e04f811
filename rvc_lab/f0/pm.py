"""``pm``: Praat's autocorrelation pitch tracker through parselmouth.

Settings as RVC: 10 ms steps, voicing threshold 0.6, ceiling 1100 Hz; floor 50 Hz offline,
65 Hz in the streaming path (a shorter analysis window, 3 periods of the floor).
"""
from __future__ import annotations

import math

import numpy as np
import parselmouth
import torch

from rvc_lab.f0.base import SAMPLE_RATE, AudioLike, PitchMethod, as_numpy_audio, fit_length, natural_frames

OFFLINE_FLOOR_HZ = 50.0
REALTIME_FLOOR_HZ = 65.0
CEILING_HZ = 1100.0
VOICING_THRESHOLD = 0.6
TIME_STEP_S = 0.01


def praat_pitch(x16k: np.ndarray, floor_hz: float) -> np.ndarray:
    """Praat ``To Pitch (ac)`` frequencies (Hz, 0 = unvoiced) with RVC's settings.

    Praat places its first frame half a window (1.5 periods of ``floor_hz``) in from the start,
    so this track is *not* aligned to sample 0 and has fewer frames than ``N//160 + 1``.
    """
    pitch = parselmouth.Sound(x16k, SAMPLE_RATE).to_pitch_ac(
        time_step=TIME_STEP_S,
        voicing_threshold=VOICING_THRESHOLD,
        pitch_floor=floor_hz,
        pitch_ceiling=CEILING_HZ,
    )
    return pitch.selected_array["frequency"]


def praat_pitch_aligned(x16k: np.ndarray, floor_hz: float) -> np.ndarray:
    """Praat pitch with frame ``i`` at sample ``160*i``: ``N//160 + 1`` frames.

    Zero-pads ``ceil(1.5/floor*16000)`` samples on the left (``+1`` on the right) so that Praat's
    first frame falls on the first real sample (upstream's streaming trick), then cuts or
    zero-pads to length.
    """
    pad = int(math.ceil(1.5 / floor_hz * SAMPLE_RATE))
    f0 = praat_pitch(np.pad(x16k, (pad, pad + 1)), floor_hz)
    return fit_length(f0, natural_frames(len(x16k)))


class PraatPitch(PitchMethod):
    name = "pm"

    def offline(self, x16k: np.ndarray, p_len: int) -> np.ndarray:
        """Praat pitch (floor 50 Hz), centred in ``p_len`` frames by zero padding.

        Praat gives ``len < p_len`` frames; ``(p_len - len + 1)//2`` zeros go left and the rest
        right.  A longer track is left as it is (upstream pads only, never cuts).
        """
        f0 = praat_pitch(as_numpy_audio(x16k), OFFLINE_FLOOR_HZ)
        left = (p_len - len(f0) + 1) // 2
        right = p_len - len(f0) - left
        if left > 0 or right > 0:
            f0 = np.pad(f0, (left, right))
        return f0

    def realtime(self, x16k: torch.Tensor) -> np.ndarray:
        """Aligned Praat pitch with the streaming floor of 65 Hz (float32 samples as given)."""
        return praat_pitch_aligned(as_numpy_audio(x16k, dtype=np.float32), REALTIME_FLOOR_HZ)

    def track(self, x16k: AudioLike) -> np.ndarray:
        """Aligned Praat pitch with the offline floor of 50 Hz."""
        return praat_pitch_aligned(as_numpy_audio(x16k), OFFLINE_FLOOR_HZ)
