"""F0 (pitch) estimation for RVC: seven methods behind one interface, plus pitch helpers.

>>> est = F0Estimator("rmvpe", rmvpe_path="assets/rmvpe/rmvpe.pt")
>>> f0 = est.track(x16k)                     # Hz per 10 ms frame, 0 = unvoiced, N//160+1 frames
>>> pitchf = shift_semitones(interpolate_unvoiced(f0), +3)
>>> pitch = coarse_pitch(pitchf)             # int32 codes 1..255 for the synthesizer
"""
from rvc_lab.f0.estimator import METHODS, F0Estimator
from rvc_lab.f0.pitch import (
    F0_MAX,
    F0_MIN,
    coarse_pitch,
    coarse_pitch_torch,
    interpolate_unvoiced,
    shift_semitones,
)

__all__ = [
    "METHODS",
    "F0Estimator",
    "F0_MIN",
    "F0_MAX",
    "coarse_pitch",
    "coarse_pitch_torch",
    "interpolate_unvoiced",
    "shift_semitones",
]
