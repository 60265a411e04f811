"""Test tones with exact ground-truth F0 and voicing on a 10 ms grid, at any sample rate.

Every signal is synthesised from an analytic F0 contour f0(t) by phase accumulation, so its
instantaneous frequency *is* f0(t); the truth is that contour sampled at the frame instants
``t_k = k * 10 ms`` (k = 0 .. floor(duration / 10 ms)), which at 16 kHz is exactly the
``N // 160 + 1`` frames RVC's F0 trackers return.  Voicing truth: a frame is voiced when the
tone's amplitude envelope at ``t_k`` is at least half its full level (gaps have 5 ms
raised-cosine edges, so the half-level instant is the middle of each ramp).  Unvoiced frames
carry F0 0.

The suite deliberately includes signals some trackers get wrong: a pure sine (WORLD's harvest
reports it unvoiced: it needs harmonics), noise bursts in gaps (false alarms), a 50-1100 Hz
sweep (the whole range RVC allows) and steady tones above 1040 Hz (where RMVPE has been reported
to read an octave low).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from rvc_lab.audio import limit_peak

__all__ = [
    "FRAME_PERIOD_S",
    "ToneCase",
    "frame_times",
    "synthesize",
    "add_noise_at_snr",
    "pure_sine",
    "harmonic_complex",
    "sawtooth",
    "vibrato",
    "glide",
    "with_gaps",
    "noisy",
    "range_sweep",
    "tone_suite",
    "SUITE_NAMES",
]

#: Frame period of the F0 truth, seconds (RVC's F0 hop: 160 samples at 16 kHz).
FRAME_PERIOD_S = 0.01
_RAMP_S = 0.005
_PEAK = 0.5

F0Contour = Callable[[np.ndarray], np.ndarray]


@dataclass
class ToneCase:
    """A test signal and its F0 truth.

    Attributes
    ----------
    name : str
        Short identifier, e.g. ``"complex_220"``.
    audio : np.ndarray, shape (N,), float32
        Mono samples, peak <= 0.9.
    sr : int
        Sample rate, Hz.
    times : np.ndarray, shape (T,), float64
        Frame instants in seconds, ``k * 0.01``, T = floor(N / sr / 0.01) + 1.
    f0_hz : np.ndarray, shape (T,), float64
        True F0 at each frame instant, Hz; 0 where unvoiced.
    voiced : np.ndarray, shape (T,), bool
        True voicing at each frame instant.
    description : str
        What the signal is and why it is in the suite.
    """

    name: str
    audio: np.ndarray
    sr: int
    times: np.ndarray
    f0_hz: np.ndarray
    voiced: np.ndarray
    description: str = field(default="")

    @property
    def duration_s(self) -> float:
        """Length of ``audio`` in seconds."""
        return self.audio.shape[0] / self.sr


def frame_times(n_samples: int, sr: int) -> np.ndarray:
    """Frame instants ``k * 10 ms`` for k = 0 .. floor(n_samples / sr / 10 ms), seconds.

    Integer arithmetic (``k * sr <= n_samples * 100``) avoids float edge effects; at 16 kHz
    this gives ``n_samples // 160 + 1`` frames.
    """
    n_frames = (100 * int(n_samples)) // int(sr) + 1
    return np.arange(n_frames) * FRAME_PERIOD_S


def _envelope(t: np.ndarray, segments: list[tuple[float, float]], duration: float) -> np.ndarray:
    """Amplitude envelope in [0, 1]: 1 inside each (start, end) segment with raised-cosine
    ramps of 5 ms centred on the boundaries (half level exactly at start and end).  A segment
    starting at 0 or ending at ``duration`` has no ramp there: the tone simply starts or stops
    with the signal."""
    env = np.zeros_like(t)
    for start, end in segments:
        rise = np.clip((t - (start - _RAMP_S / 2)) / _RAMP_S, 0.0, 1.0) if start > 0.0 else np.ones_like(t)
        fall = np.clip(((end + _RAMP_S / 2) - t) / _RAMP_S, 0.0, 1.0) if end < duration else np.ones_like(t)
        seg = np.minimum(0.5 - 0.5 * np.cos(np.pi * rise), 0.5 - 0.5 * np.cos(np.pi * fall))
        env = np.maximum(env, seg)
    return env


def synthesize(
    f0_contour: F0Contour,
    sr: int,
    seconds: float,
    *,
    partials: str = "complex",
    n_harmonics: int | None = None,
    segments: list[tuple[float, float]] | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Synthesise a periodic signal following ``f0_contour`` and return it with its truth.

    Parameters
    ----------
    f0_contour : callable
        Maps times in seconds (np.ndarray) to F0 in Hz (> 0).
    sr : int
        Sample rate, Hz.
    seconds : float
        Duration, s.
    partials : {"sine", "complex", "sawtooth"}
        ``"sine"``: fundamental only.  ``"complex"``: harmonics k = 1..K with amplitude 1/k and
        random phases (from ``seed``).  ``"sawtooth"``: same amplitudes, all phases equal (a
        band-limited sawtooth).  Harmonics fade out smoothly between 0.40 and 0.45 of the sample
        rate so nothing aliases as F0 moves.
    n_harmonics : int, optional
        Cap on the number of harmonics (default: as many as fit below 0.45 sr).
    segments : list of (start_s, end_s), optional
        Voiced spans; the signal is silent outside them (default: the whole duration).
    seed : int
        Seed of the harmonic phases.

    Returns
    -------
    audio : np.ndarray, shape (N,), float64, peak 0.5
    times, f0_hz, voiced : np.ndarray, shape (T,)
        Truth on the 10 ms grid (see :class:`ToneCase`).
    """
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    spans = segments if segments is not None else [(0.0, seconds)]
    f0 = np.asarray(f0_contour(t), dtype=np.float64)
    # Phase by trapezoidal integration of f0: the instantaneous frequency equals f0(t) to
    # second order in 1/sr.
    phase = 2.0 * np.pi * np.concatenate(([0.0], np.cumsum(0.5 * (f0[1:] + f0[:-1])) / sr))
    rng = np.random.default_rng(seed)
    if partials == "sine":
        k_max = 1
    elif partials in ("complex", "sawtooth"):
        k_max = max(1, int(0.45 * sr / max(float(f0.min()), 1.0)))
        if n_harmonics is not None:
            k_max = min(k_max, n_harmonics)
    else:
        raise ValueError(f"unknown partials {partials!r} (sine, complex, sawtooth)")
    audio = np.zeros(n)
    for k in range(1, k_max + 1):
        gain = np.clip((0.45 * sr - k * f0) / (0.05 * sr), 0.0, 1.0)
        if not np.any(gain):
            continue
        offset = rng.uniform(0.0, 2.0 * np.pi) if partials == "complex" else 0.0
        audio += gain * np.sin(k * phase + offset) / k
    env = _envelope(t, spans, seconds)
    audio *= env
    peak = float(np.max(np.abs(audio))) if n else 0.0
    if peak > 0:
        audio *= _PEAK / peak

    times = frame_times(n, sr)
    frame_env = _envelope(times, spans, seconds)
    voiced = frame_env >= 0.5 - 1e-9  # the half-level instant itself counts as voiced
    f0_frames = np.where(voiced, np.asarray(f0_contour(times), dtype=np.float64), 0.0)
    return audio, times, f0_frames, voiced


def _case(name: str, description: str, sr: int, audio, times, f0, voiced) -> ToneCase:
    # noisy mixtures can exceed full scale; scaling keeps every ratio
    audio, _ = limit_peak(np.asarray(audio, dtype=np.float64), 0.9)
    return ToneCase(name, audio.astype(np.float32), int(sr), times, f0, voiced, description)


def add_noise_at_snr(clean: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """``clean`` plus white Gaussian noise scaled so that ``10 log10(sum clean^2 / sum noise^2)``
    equals ``snr_db`` exactly for the noise actually drawn.

    Parameters
    ----------
    clean : np.ndarray, shape (N,)
    snr_db : float
        Signal-to-noise ratio in dB over the whole signal.
    seed : int
        Seed of the noise.

    Returns
    -------
    np.ndarray, shape (N,), float64
    """
    clean = np.asarray(clean, dtype=np.float64)
    noise = np.random.default_rng(seed).standard_normal(clean.shape)
    noise *= np.sqrt(np.sum(clean**2) / (np.sum(noise**2) * 10.0 ** (snr_db / 10.0)))
    return clean + noise


def _constant(f0_hz: float) -> F0Contour:
    return lambda t: np.full(np.shape(t), float(f0_hz))


def pure_sine(f0_hz: float, sr: int = 16000, seconds: float = 1.0) -> ToneCase:
    """A single sinusoid at ``f0_hz`` (harvest finds no voicing in it)."""
    return _case(
        f"sine_{f0_hz:g}",
        f"pure sine {f0_hz:g} Hz (no harmonics: harvest calls it unvoiced)",
        sr,
        *synthesize(_constant(f0_hz), sr, seconds, partials="sine"),
    )


def harmonic_complex(f0_hz: float, sr: int = 16000, seconds: float = 1.0, seed: int = 0) -> ToneCase:
    """Steady harmonic complex, harmonics 1/k with random phases."""
    return _case(
        f"complex_{f0_hz:g}",
        f"harmonic complex {f0_hz:g} Hz, 1/k amplitudes, random phases",
        sr,
        *synthesize(_constant(f0_hz), sr, seconds, partials="complex", seed=seed),
    )


def sawtooth(f0_hz: float, sr: int = 16000, seconds: float = 1.0) -> ToneCase:
    """Band-limited sawtooth at ``f0_hz``."""
    return _case(
        f"sawtooth_{f0_hz:g}",
        f"band-limited sawtooth {f0_hz:g} Hz",
        sr,
        *synthesize(_constant(f0_hz), sr, seconds, partials="sawtooth"),
    )


def vibrato(
    center_hz: float,
    depth_cents: float = 100.0,
    rate_hz: float = 5.5,
    sr: int = 16000,
    seconds: float = 1.0,
    seed: int = 0,
) -> ToneCase:
    """Harmonic complex with sinusoidal vibrato: ``f0 = center * 2^(depth/1200 sin(2 pi rate t))``."""
    contour = lambda t: center_hz * 2.0 ** (depth_cents / 1200.0 * np.sin(2.0 * np.pi * rate_hz * np.asarray(t)))
    return _case(
        f"vibrato_{center_hz:g}",
        f"vibrato around {center_hz:g} Hz, +/-{depth_cents:g} cents at {rate_hz:g} Hz",
        sr,
        *synthesize(contour, sr, seconds, partials="complex", seed=seed),
    )


def glide(
    start_hz: float,
    end_hz: float,
    sr: int = 16000,
    seconds: float = 1.0,
    shape: str = "exponential",
    seed: int = 0,
) -> ToneCase:
    """Harmonic complex gliding from ``start_hz`` to ``end_hz`` over the whole duration.

    ``shape="exponential"`` moves at a constant rate in octaves per second, ``"linear"`` in Hz
    per second.
    """
    if shape == "exponential":
        contour = lambda t: start_hz * (end_hz / start_hz) ** (np.asarray(t) / seconds)
    elif shape == "linear":
        contour = lambda t: start_hz + (end_hz - start_hz) * np.asarray(t) / seconds
    else:
        raise ValueError(f"unknown glide shape {shape!r} (exponential, linear)")
    return _case(
        f"glide_{start_hz:g}_{end_hz:g}",
        f"{shape} glide {start_hz:g} -> {end_hz:g} Hz",
        sr,
        *synthesize(contour, sr, seconds, partials="complex", seed=seed),
    )


def with_gaps(f0_hz: float = 200.0, sr: int = 16000, seconds: float = 1.0, seed: int = 0) -> ToneCase:
    """Harmonic complex interrupted by a silent gap and by a white-noise burst.

    Voiced over [0, 0.3), [0.45, 0.7) and [0.85, 1] of the duration; silence over
    [0.3, 0.45); white noise at 1/10 of the tone's RMS over [0.7, 0.85) (an unvoiced sound that
    a tracker should not call voiced).
    """
    spans = [(0.0, 0.3 * seconds), (0.45 * seconds, 0.7 * seconds), (0.85 * seconds, seconds)]
    audio, times, f0, voiced = synthesize(_constant(f0_hz), sr, seconds, partials="complex", segments=spans, seed=seed)
    t = np.arange(audio.size) / sr
    burst_env = _envelope(t, [(0.7 * seconds, 0.85 * seconds)], seconds)
    rms = float(np.sqrt(np.mean(audio[np.abs(audio) > 0] ** 2))) if np.any(audio) else 1.0
    noise = np.random.default_rng(seed + 1).standard_normal(audio.size)
    audio = audio + 0.1 * rms * burst_env * noise
    return _case(
        f"gaps_{f0_hz:g}",
        f"harmonic complex {f0_hz:g} Hz with a silent gap and a noise burst (unvoiced truth)",
        sr,
        audio,
        times,
        f0,
        voiced,
    )


def noisy(f0_hz: float, snr_db: float, sr: int = 16000, seconds: float = 1.0, seed: int = 0) -> ToneCase:
    """Harmonic complex plus white Gaussian noise at ``snr_db`` (over the whole signal)."""
    audio, times, f0, voiced = synthesize(_constant(f0_hz), sr, seconds, partials="complex", seed=seed)
    return _case(
        f"noisy_{f0_hz:g}_snr{snr_db:g}",
        f"harmonic complex {f0_hz:g} Hz + white noise at {snr_db:g} dB SNR",
        sr,
        add_noise_at_snr(audio, snr_db, seed=seed + 2),
        times,
        f0,
        voiced,
    )


def range_sweep(
    low_hz: float = 50.0, high_hz: float = 1100.0, sr: int = 16000, seconds: float = 1.0, seed: int = 0
) -> ToneCase:
    """Exponential sweep of a harmonic complex across ``low_hz`` .. ``high_hz`` (RVC's F0 range)."""
    case = glide(low_hz, high_hz, sr=sr, seconds=seconds, shape="exponential", seed=seed)
    case.name = f"sweep_{low_hz:g}_{high_hz:g}"
    case.description = f"exponential sweep {low_hz:g} -> {high_hz:g} Hz (RVC's whole F0 range)"
    return case


def _suite_builders(sr: int, seconds: float, seed: int) -> dict[str, Callable[[], ToneCase]]:
    return {
        "sine_110": lambda: pure_sine(110.0, sr, seconds),
        "sine_440": lambda: pure_sine(440.0, sr, seconds),
        "complex_220": lambda: harmonic_complex(220.0, sr, seconds, seed),
        "sawtooth_150": lambda: sawtooth(150.0, sr, seconds),
        "vibrato_300": lambda: vibrato(300.0, 100.0, 5.5, sr, seconds, seed),
        "glide_120_480": lambda: glide(120.0, 480.0, sr, seconds, "exponential", seed),
        "glide_400_100": lambda: glide(400.0, 100.0, sr, seconds, "linear", seed),
        "gaps_200": lambda: with_gaps(200.0, sr, seconds, seed),
        "noisy_220_snr20": lambda: noisy(220.0, 20.0, sr, seconds, seed),
        "noisy_220_snr10": lambda: noisy(220.0, 10.0, sr, seconds, seed),
        "noisy_220_snr0": lambda: noisy(220.0, 0.0, sr, seconds, seed),
        "sweep_50_1100": lambda: range_sweep(50.0, 1100.0, sr, seconds, seed),
        "sine_1050": lambda: pure_sine(1050.0, sr, seconds),
        "complex_1050": lambda: harmonic_complex(1050.0, sr, seconds, seed),
        "complex_1090": lambda: harmonic_complex(1090.0, sr, seconds, seed),
    }


#: Names of :func:`tone_suite`'s signals, in suite order.
SUITE_NAMES: tuple[str, ...] = tuple(_suite_builders(16000, 1.0, 0))


def tone_suite(
    sr: int = 16000, seconds: float = 1.0, seed: int = 0, names: Iterable[str] | None = None
) -> list[ToneCase]:
    """The standard set of test signals with their F0 truth.

    Parameters
    ----------
    sr : int
        Sample rate, Hz (any; the truth grid is 10 ms regardless).
    seconds : float
        Duration of each signal, s.  The sweep covers 50-1100 Hz (4.46 octaves) in this time.
    seed : int
        Seed of harmonic phases and noise (the suite is deterministic for a seed).
    names : iterable of str, optional
        Subset to build, in suite order (see :data:`SUITE_NAMES`); unknown names raise ValueError.

    Returns
    -------
    list of ToneCase
        Pure sines (110, 440 Hz), harmonic complex 220 Hz, sawtooth 150 Hz, vibrato 300 Hz
        +/-100 cents at 5.5 Hz, glides 120->480 Hz (exponential) and 400->100 Hz (linear), gaps
        (silence + noise burst) at 200 Hz, noisy 220 Hz at 20/10/0 dB SNR, the 50-1100 Hz sweep,
        and high tones: sine 1050 Hz, complex 1050 and 1090 Hz.
    """
    builders = _suite_builders(sr, seconds, seed)
    if names is None:
        chosen = list(builders)
    else:
        wanted = list(names)
        unknown = [n for n in wanted if n not in builders]
        if unknown:
            raise ValueError(f"unknown test signal(s) {unknown}; known: {', '.join(builders)}")
        chosen = [n for n in builders if n in wanted]
    cases = [builders[name]() for name in chosen]
    for name, case in zip(chosen, cases):
        case.name = name
    return cases
