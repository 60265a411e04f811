"""Mel-cepstral distortion (MCD) with every convention explicit.

MCD numbers from different papers and toolkits disagree mostly because of conventions, not
because of the audio.  Here each one is a named setting (:class:`MCDConfig`):

* **source** of the mel-cepstrum:
  ``"sptk"`` - SPTK mel-cepstral analysis (``pysptk.mcep``, UELS) of Blackman-windowed frames;
  ``"world"`` - WORLD CheapTrick spectral envelope (pyworld, F0 from DIO + StoneMask) converted
  with ``pysptk.sp2mc``;
  ``"mfcc"`` - natural-log mel power spectrum (Slaney mel filterbank from librosa) followed by
  an orthonormal DCT-II.
  All three are natural-log cepstra, which is what the dB scale below assumes.
* **order** M: coefficients ``c0 .. cM`` are computed (M + 1 values per frame).
* **include_c0**: whether the energy term c0 enters the distance (default: excluded, so a gain
  difference alone gives MCD 0).
* **scale** (the factor in front of the Euclidean distance): ``"db"`` = ``10 sqrt(2) / ln 10``
  (~6.142; Kubichek's dB form for natural-log cepstra) or ``"unit"`` = 1 (the plain Euclidean
  distance, as in the ``mel-cepstral-distance`` package), or any float.
* **alignment** of the two frame sequences: ``"none"`` (frame i with frame i over the common
  length), ``"pad"`` (the shorter sequence is extended with all-zero cepstral frames, the
  ``mel-cepstral-distance`` package's convention, so a length mismatch costs distance) or
  ``"dtw"`` (dynamic time warping on the same coefficients, Euclidean local cost, steps
  (1,0), (0,1), (1,1) with equal weights; MCD is then the mean over the warping path).

Per frame ``d_t = scale * sqrt( sum_{d in D} (c_a[t, d] - c_b[t, d])^2 )`` with D = 0..M or
1..M, and MCD = mean_t d_t.  Defaults (parity work): SPTK source, order 24, c0 excluded, dB
scale, no alignment.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "DB_SCALE",
    "MCDConfig",
    "mel_cepstrum",
    "mcd_per_frame",
    "mcd_from_cepstra",
    "mcd",
    "dtw_path",
]

#: ``10 sqrt(2) / ln(10)``: turns the Euclidean distance of natural-log cepstra into dB.
DB_SCALE: float = 10.0 * math.sqrt(2.0) / math.log(10.0)


@dataclass(frozen=True)
class MCDConfig:
    """Every convention of an MCD figure (see the module docstring).

    Attributes
    ----------
    source : {"sptk", "world", "mfcc"}
        Where the mel-cepstrum comes from.
    order : int
        Highest cepstral index M; frames carry ``c0 .. cM``.
    include_c0 : bool
        Include the energy coefficient c0 in the distance.
    scale : {"db", "unit"} or float
        Factor in front of the Euclidean distance: ``"db"`` = 10 sqrt(2)/ln 10, ``"unit"`` = 1.
    alignment : {"none", "pad", "dtw"}
        How frame sequences of different timing are paired.
    warp_alpha : float or None
        All-pass (frequency-warping) constant for ``"sptk"``/``"world"``; None picks
        ``pysptk.util.mcepalpha(sr)`` (e.g. 0.41 at 16 kHz, 0.554 at 48 kHz).
    frame_ms : float
        Analysis frame length in ms, rounded to the nearest power of two in samples (SPTK's FFT
        needs one): 512 samples at 16 kHz, 1024 at 32-48 kHz with the default 25 ms.
    hop_ms : float
        Frame step in ms.
    floor_db : float
        ``"sptk"``: periodogram floor relative to each frame's maximum, in dB (negative); a
        relative floor keeps c1..cM exactly gain-invariant.
    n_mels : int
        ``"mfcc"``: number of mel bands (must exceed ``order``).
    mel_floor : float
        ``"mfcc"``: added to mel power before the logarithm (absolute, squared sample units).
    """

    source: Literal["sptk", "world", "mfcc"] = "sptk"
    order: int = 24
    include_c0: bool = False
    scale: Literal["db", "unit"] | float = "db"
    alignment: Literal["none", "pad", "dtw"] = "none"
    warp_alpha: float | None = None
    frame_ms: float = 25.0
    hop_ms: float = 5.0
    floor_db: float = -80.0
    n_mels: int = 40
    mel_floor: float = 1e-10

    def scale_factor(self) -> float:
        """The numeric factor in front of the Euclidean distance."""
        return _scale_factor(self.scale)


def _scale_factor(scale: str | float) -> float:
    if isinstance(scale, str):
        if scale == "db":
            return DB_SCALE
        if scale == "unit":
            return 1.0
        raise ValueError(f"scale must be 'db', 'unit' or a number, got {scale!r}")
    return float(scale)


def _frame_geometry(sr: int, config: MCDConfig) -> tuple[int, int]:
    """(frame_length, hop_length) in samples."""
    want = max(16.0, config.frame_ms * 1e-3 * sr)
    frame_length = 1 << int(round(math.log2(want)))  # nearest power of two (SPTK's FFT needs one)
    hop_length = max(1, int(round(config.hop_ms * 1e-3 * sr)))
    return frame_length, hop_length


def _frames(x: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """Frames fully inside ``x`` (``x`` zero-padded to one frame when shorter), shape (T, L)."""
    if x.size < frame_length:
        x = np.pad(x, (0, frame_length - x.size))
    n = 1 + (x.size - frame_length) // hop_length
    return np.lib.stride_tricks.sliding_window_view(x, frame_length)[::hop_length][:n]


def _warp_alpha(sr: int, config: MCDConfig) -> float:
    if config.warp_alpha is not None:
        return float(config.warp_alpha)
    import pysptk

    return float(pysptk.util.mcepalpha(sr))


def _mcep_sptk(x: np.ndarray, sr: int, config: MCDConfig) -> np.ndarray:
    import pysptk

    frame_length, hop_length = _frame_geometry(sr, config)
    alpha = _warp_alpha(sr, config)
    window = np.blackman(frame_length)
    frames = _frames(x, frame_length, hop_length) * window
    out = np.empty((frames.shape[0], config.order + 1))
    for t, frame in enumerate(frames):
        if not np.any(frame):
            # An all-zero frame has no log spectrum; give it the cepstrum of a tiny constant
            # periodogram so that silence in both signals compares equal (distance 0).
            out[t] = pysptk.mcep(np.ascontiguousarray(frame), config.order, alpha, etype=1, eps=1e-20)
        else:
            out[t] = pysptk.mcep(
                np.ascontiguousarray(frame), config.order, alpha, etype=2, eps=float(config.floor_db)
            )
    return out


def _mcep_world(x: np.ndarray, sr: int, config: MCDConfig) -> np.ndarray:
    import pysptk
    import pyworld

    frame_length, _ = _frame_geometry(sr, config)
    x = np.ascontiguousarray(x, dtype=np.float64)
    f0, times = pyworld.dio(x, sr, frame_period=config.hop_ms)
    f0 = pyworld.stonemask(x, f0, times, sr)
    fft_size = max(frame_length, pyworld.get_cheaptrick_fft_size(sr))
    envelope = pyworld.cheaptrick(x, f0, times, sr, fft_size=fft_size)
    return pysptk.sp2mc(envelope, config.order, _warp_alpha(sr, config))


def _mfcc(x: np.ndarray, sr: int, config: MCDConfig) -> np.ndarray:
    import librosa
    import scipy.fft

    if config.n_mels <= config.order:
        raise ValueError(f"n_mels ({config.n_mels}) must exceed order ({config.order})")
    frame_length, hop_length = _frame_geometry(sr, config)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(frame_length) / frame_length)
    power = np.abs(np.fft.rfft(_frames(x, frame_length, hop_length) * window, axis=-1)) ** 2
    mel_basis = librosa.filters.mel(sr=sr, n_fft=frame_length, n_mels=config.n_mels, fmin=0.0, fmax=sr / 2.0)
    log_mel = np.log(power @ mel_basis.T + config.mel_floor)
    return scipy.fft.dct(log_mel, type=2, norm="ortho", axis=-1)[:, : config.order + 1]


def mel_cepstrum(x: np.ndarray, sr: int, config: MCDConfig = MCDConfig()) -> np.ndarray:
    """Mel-cepstral frames of a signal under ``config``'s conventions.

    Parameters
    ----------
    x : np.ndarray, shape (N,)
        Mono samples (float; any scale).
    sr : int
        Sample rate of ``x`` in Hz.
    config : MCDConfig
        ``source``, ``order``, framing and floors.

    Returns
    -------
    np.ndarray, shape (T, order + 1), float64
        Natural-log cepstra ``c0 .. c_order`` per frame; T frames at ``config.hop_ms`` spacing.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"expected mono samples, got shape {x.shape}")
    if config.source == "sptk":
        return _mcep_sptk(x, sr, config)
    if config.source == "world":
        return _mcep_world(x, sr, config)
    if config.source == "mfcc":
        return _mfcc(x, sr, config)
    raise ValueError(f"unknown mel-cepstrum source {config.source!r} (sptk, world, mfcc)")


def dtw_path(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Optimal dynamic-time-warping path between two frame sequences.

    Local cost: Euclidean distance between frames.  Steps (1, 0), (0, 1), (1, 1), all with
    weight 1; the path runs from (0, 0) to (Ta - 1, Tb - 1) and minimises the summed cost.

    Parameters
    ----------
    a, b : np.ndarray, shape (Ta, D) and (Tb, D)

    Returns
    -------
    (np.ndarray, np.ndarray)
        Integer index arrays ``(ia, ib)`` of equal length (the path), monotone non-decreasing.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ta, tb = a.shape[0], b.shape[0]
    if ta == 0 or tb == 0:
        raise ValueError("dtw_path needs at least one frame in each sequence")
    acc = np.empty((ta, tb))
    for i in range(ta):
        local = np.linalg.norm(b - a[i], axis=1)
        if i == 0:
            acc[0] = np.cumsum(local)
            continue
        prev = acc[i - 1]
        # Best arrival from the row below (vertical or diagonal step) ...
        from_below = local + np.minimum(prev, np.concatenate(([np.inf], prev[:-1])))
        # ... then horizontal runs within this row: acc[j] = min_k<=j (from_below[k] + sum local[k+1..j]),
        # a running minimum on prefix sums, which keeps the row vectorised.
        prefix = np.cumsum(local)
        acc[i] = prefix + np.minimum.accumulate(from_below - prefix)
    ia, ib = [ta - 1], [tb - 1]
    i, j = ta - 1, tb - 1
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            diag, down, left = acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]
            if diag <= down and diag <= left:
                i, j = i - 1, j - 1
            elif down <= left:
                i -= 1
            else:
                j -= 1
        ia.append(i)
        ib.append(j)
    return np.array(ia[::-1]), np.array(ib[::-1])


def _select(c: np.ndarray, include_c0: bool) -> np.ndarray:
    c = np.asarray(c, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"cepstra must be 2-D (frames, coefficients), got shape {c.shape}")
    return c if include_c0 else c[:, 1:]


def _pair_frames(ca: np.ndarray, cb: np.ndarray, alignment: str) -> tuple[np.ndarray, np.ndarray]:
    if alignment == "none":
        n = min(ca.shape[0], cb.shape[0])
        if ca.shape[0] != cb.shape[0]:
            logger.debug(
                "MCD alignment 'none': comparing the first %d frames of %d and %d", n, ca.shape[0], cb.shape[0]
            )
        return ca[:n], cb[:n]
    if alignment == "pad":
        n = max(ca.shape[0], cb.shape[0])
        return (np.pad(ca, ((0, n - ca.shape[0]), (0, 0))), np.pad(cb, ((0, n - cb.shape[0]), (0, 0))))
    if alignment == "dtw":
        ia, ib = dtw_path(ca, cb)
        return ca[ia], cb[ib]
    raise ValueError(f"unknown alignment {alignment!r} (none, pad, dtw)")


def mcd_per_frame(
    cepstra_a: np.ndarray,
    cepstra_b: np.ndarray,
    include_c0: bool = False,
    scale: str | float = "db",
    alignment: Literal["none", "pad", "dtw"] = "none",
) -> np.ndarray:
    """Per-frame distortion ``scale * ||c_a[t] - c_b[t]||_2`` after alignment.

    Parameters
    ----------
    cepstra_a, cepstra_b : np.ndarray, shape (Ta, M + 1) and (Tb, M + 1)
        Natural-log cepstra, c0 in column 0.
    include_c0, scale, alignment
        See :class:`MCDConfig`.  DTW runs on the same coefficients as the distance.

    Returns
    -------
    np.ndarray, shape (T,)
        Distortion per aligned frame pair (dB when ``scale="db"``).
    """
    ca = _select(cepstra_a, include_c0)
    cb = _select(cepstra_b, include_c0)
    if ca.shape[1] != cb.shape[1]:
        raise ValueError(f"cepstral orders differ: {cepstra_a.shape[1]} vs {cepstra_b.shape[1]} coefficients")
    ca, cb = _pair_frames(ca, cb, alignment)
    return _scale_factor(scale) * np.linalg.norm(ca - cb, axis=1)


def mcd_from_cepstra(
    cepstra_a: np.ndarray,
    cepstra_b: np.ndarray,
    include_c0: bool = False,
    scale: str | float = "db",
    alignment: Literal["none", "pad", "dtw"] = "none",
) -> float:
    """Mean of :func:`mcd_per_frame` (NaN when there is no frame to compare)."""
    per_frame = mcd_per_frame(cepstra_a, cepstra_b, include_c0, scale, alignment)
    return float(per_frame.mean()) if per_frame.size else float("nan")


def mcd(actual: np.ndarray, expected: np.ndarray, sr: int, config: MCDConfig = MCDConfig()) -> float:
    """MCD between two signals at one sample rate under ``config``'s conventions.

    Parameters
    ----------
    actual, expected : np.ndarray, shape (N,) and (M,)
        Mono samples at ``sr`` Hz.  With ``alignment="none"`` they should already be
        time-aligned (see :mod:`rvc_lab.metrics.align`).
    sr : int
        Sample rate in Hz.
    config : MCDConfig

    Returns
    -------
    float
        Mean distortion (dB with the default ``scale="db"``).
    """
    ca = mel_cepstrum(actual, sr, config)
    ce = mel_cepstrum(expected, sr, config)
    return mcd_from_cepstra(ca, ce, config.include_c0, config.scale, config.alignment)
