"""Measurements for QA and research: pure functions on arrays, no file I/O.

- :mod:`~rvc_lab.metrics.align`: delay estimation (cross-correlation) and alignment.
- :mod:`~rvc_lab.metrics.spectral`: rel L2, SNR, SI-SDR, spectral convergence, log-spectral distance.
- :mod:`~rvc_lab.metrics.mcd`: mel-cepstral distortion with explicit conventions.
- :mod:`~rvc_lab.metrics.f0`: mir_eval melody metrics and pitch-error figures.
- :mod:`~rvc_lab.metrics.compare`: whole-output and per-stage comparisons for reference checks.
"""
from rvc_lab.metrics.align import align_signals, apply_delay, estimate_delay
from rvc_lab.metrics.compare import compare_audio, compare_stages, track_f0
from rvc_lab.metrics.f0 import F0_METRIC_NAMES, f0_metrics, hz_to_cents
from rvc_lab.metrics.mcd import DB_SCALE, MCDConfig, dtw_path, mcd, mcd_from_cepstra, mcd_per_frame, mel_cepstrum
from rvc_lab.metrics.spectral import (
    log_spectral_distance,
    max_abs_error,
    rel_l2,
    si_sdr_db,
    snr_db,
    spectral_convergence,
    stft_magnitude,
)

__all__ = [
    "estimate_delay",
    "align_signals",
    "apply_delay",
    "compare_audio",
    "compare_stages",
    "track_f0",
    "f0_metrics",
    "hz_to_cents",
    "F0_METRIC_NAMES",
    "DB_SCALE",
    "MCDConfig",
    "mel_cepstrum",
    "mcd",
    "mcd_from_cepstra",
    "mcd_per_frame",
    "dtw_path",
    "max_abs_error",
    "rel_l2",
    "snr_db",
    "si_sdr_db",
    "stft_magnitude",
    "spectral_convergence",
    "log_spectral_distance",
]
