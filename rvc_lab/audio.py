"""Audio in and out: reading user files, the resampling kernels upstream RVC uses, safe writing.

Two resamplers on purpose, because upstream uses two and parity is measured against each:

* offline (``resample_offline``): ``librosa.resample`` with ``res_type="soxr_hq"`` (librosa's
  default), which is what upstream's CPU code calls to resample a finished conversion
  (``Pipeline.pipeline`` with ``resample_sr``) and in ``infer.audio.resample_audio``.
* streaming (``StreamResampler``): ``torchaudio.transforms.Resample`` with its defaults
  (``sinc_interp_hann``, ``lowpass_filter_width=6``, ``rolloff=0.99``), the kernel
  ``realtime_gui.py`` builds for device rate -> 16 kHz and model rate -> device rate.

What upstream's *offline loader* does (``infer/audio.py::load_audio(file, 16000)``): on CPU it
asks ffmpeg to decode straight to 16 kHz mono float32 (``-ar 16000 -ac 1``, i.e. ffmpeg's own
swresample filter and down-mix); with a CUDA torchaudio it decodes with ``torchaudio.load``,
averages channels and resamples with the torchaudio kernel above.  Neither is available here
without ffmpeg, so :func:`to_16k_offline` uses soxr_hq: for a 16 kHz input (every parity case)
no resampling happens and the samples are exactly ffmpeg's (``int16 / 32768``); for other rates
the result differs from ffmpeg's swresample by the two filters' different stop bands (well below
the audible error of the conversion itself, but not bit-exact).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from rvc_lab.atomic import atomic_open
from rvc_lab.errors import InvalidAudioError, first_line

logger = logging.getLogger(__name__)

#: Sample rate of everything the content encoder and F0 estimators see.
SR_16K = 16000

#: Upstream ``vc_single`` scales the input down when its peak exceeds this value.
INPUT_PEAK_LIMIT = 0.95
#: Upstream ``Pipeline.pipeline`` scales the output down when its peak exceeds this value.
OUTPUT_PEAK_LIMIT = 0.99

_WAV_SUBTYPES = ("PCM_16", "PCM_24", "PCM_32", "FLOAT")


# ------------------------------------------------------------------------------------- reading
def load_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 mono at its own sample rate.

    Parameters
    ----------
    path : path-like
        WAV/FLAC/OGG/... (anything libsndfile reads; MP3 with libsndfile >= 1.1).  Formats
        libsndfile cannot read fall back to ``librosa.load`` (audioread/ffmpeg) when available.

    Returns
    -------
    audio : np.ndarray
        float32 [N], integer PCM read as ``int / 2**(bits-1)`` (``int16 / 32768``), the same
        numbers ffmpeg's f32le decode gives.  Multi-channel files are mixed down to the channel
        mean (what upstream's realtime path does with a stereo block), logged at INFO.
    sr : int
        The file's sample rate in Hz.

    Raises
    ------
    InvalidAudioError
        Missing file, a directory, not an audio file, no samples, or NaN/Inf samples; the
        message names the file and the problem.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InvalidAudioError(f"{path}: audio file not found")
    if os.path.isdir(path):
        raise InvalidAudioError(f"{path}: expected an audio file, found a directory")
    if os.path.getsize(path) == 0:
        raise InvalidAudioError(f"{path}: file is empty (0 bytes), not audio")

    data, sr = _decode(path)  # float32 [N, C]
    if data.shape[0] == 0:
        raise InvalidAudioError(f"{path}: contains no audio samples")
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise InvalidAudioError(f"{path}: contains {bad} NaN/Inf sample values")
    if data.shape[1] > 1:
        logger.info("%s: %d channels mixed down to mono (channel mean)", path, data.shape[1])
        audio = data.mean(axis=1, dtype=np.float32)
    else:
        audio = data[:, 0]
    return np.ascontiguousarray(audio, dtype=np.float32), int(sr)


def _decode(path: str) -> tuple[np.ndarray, int]:
    """float32 [N, C] and the sample rate, via soundfile, else librosa/audioread."""
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
        return data, sr
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        first_error = exc
    # libsndfile could not parse it: try the decoders librosa can reach (audioread -> ffmpeg,
    # gstreamer, ...).  A file none of them reads is not audio as far as we are concerned.
    try:
        import warnings

        import librosa

        with warnings.catch_warnings():
            # librosa warns "PySoundFile failed. Trying audioread instead." -- we already know.
            warnings.simplefilter("ignore")
            y, sr = librosa.load(path, sr=None, mono=False, dtype=np.float32)
    except Exception as exc:  # noqa: BLE001 -- any decoder failure means "not readable audio"
        raise InvalidAudioError(
            f"{path}: not a readable audio file ({first_line(first_error)}; fallback decoder: {first_line(exc)})"
        ) from None
    y = np.asarray(y, dtype=np.float32)
    data = y[:, None] if y.ndim == 1 else y.T
    return data, int(sr)


# ------------------------------------------------------------------------------- preparation
def limit_peak(audio: np.ndarray, limit: float) -> tuple[np.ndarray, float]:
    """Scale audio down when its peak exceeds ``limit``; the one peak limiter of the package.

    The ratio ``max|x| / limit`` is computed in float64 and the array is divided by it rounded
    to the array's own float dtype (what upstream's numpy 1.26 did, see :func:`normalize_peak`).

    Parameters
    ----------
    audio : np.ndarray
        float [N] (float32 or float64; other dtypes become float32).
    limit : float
        Largest |sample| let through unchanged.

    Returns
    -------
    audio : np.ndarray
        A new array when scaled, else the input (as a float array).
    ratio : float
        The factor it was divided by (1.0 when unchanged).
    """
    x = np.asarray(audio)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    if x.size == 0:
        return x, 1.0
    ratio = float(np.abs(x).max()) / limit
    if ratio > 1:
        return x / x.dtype.type(ratio), ratio
    return x, 1.0


def normalize_peak(audio: np.ndarray, limit: float = INPUT_PEAK_LIMIT) -> np.ndarray:
    """Scale audio down when its peak exceeds ``limit`` (upstream ``vc_single``), else return it.

    Upstream: ``audio_max = np.abs(audio).max() / 0.95; if audio_max > 1: audio /= audio_max``
    on the float32 input.  The goldens ran with numpy 1.26, where the float32 peak divided by a
    Python float is computed in float64 and the in-place division then divides by that value
    rounded to float32; we spell that out so numpy 2's promotion rules do not move a sample.

    Parameters
    ----------
    audio : np.ndarray
        float32 [N] (any float array is accepted; the result is float32).
    limit : float
        Peak allowed through unchanged.

    Returns
    -------
    np.ndarray
        float32 [N]: a new array when scaled, the (float32) input otherwise.
    """
    x, ratio = limit_peak(np.asarray(audio, dtype=np.float32), limit)
    if ratio > 1:
        logger.info("input peak %.3f above %.2f: scaled down by %.4f (as upstream)", ratio * limit, limit, ratio)
    return x


def resample_offline(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample a whole signal with ``librosa.resample(res_type="soxr_hq")`` (upstream offline).

    Parameters
    ----------
    audio : np.ndarray
        float [N] at ``sr_in`` Hz.
    sr_in, sr_out : int
        Sample rates in Hz.

    Returns
    -------
    np.ndarray
        [ceil(N * sr_out / sr_in)] at ``sr_out`` Hz, same float dtype as the input
        (float32 for float32); the input itself when the rates are equal.
    """
    if int(sr_in) <= 0 or int(sr_out) <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    x = np.asarray(audio)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    if int(sr_in) == int(sr_out):
        return x
    import librosa

    return librosa.resample(x, orig_sr=int(sr_in), target_sr=int(sr_out), res_type="soxr_hq")


def to_16k_offline(audio: np.ndarray, sr: int) -> np.ndarray:
    """Mono float32 audio at ``sr`` -> 16 kHz as the offline chain needs it (soxr_hq; see module doc).

    Returns float32 [M]; logs one INFO line when it actually resamples.
    """
    x = np.asarray(audio, dtype=np.float32)
    if int(sr) == SR_16K:
        return x
    logger.info("resampled input %d Hz -> %d Hz (soxr_hq)", int(sr), SR_16K)
    return np.asarray(resample_offline(x, int(sr), SR_16K), dtype=np.float32)


def prepare_input(audio: np.ndarray, sr: int, normalize: bool = True) -> np.ndarray:
    """The 16 kHz input upstream's offline conversion works on: resample, then peak limit.

    Upstream ``VC.vc_single``: ``audio = load_audio(path, 16000)`` then the 0.95 peak limit
    (:func:`normalize_peak`).  The streaming path does neither (it resamples blocks with
    :class:`StreamResampler` and never normalises).

    Parameters
    ----------
    audio : np.ndarray
        float32 [N] mono at ``sr`` Hz (from :func:`load_audio`).
    sr : int
        Its sample rate in Hz.
    normalize : bool
        Apply the 0.95 peak limit (upstream does, always).

    Returns
    -------
    np.ndarray
        float32 [M] at 16 kHz.
    """
    x = to_16k_offline(audio, sr)
    return normalize_peak(x) if normalize else x


class StreamResampler:
    """The realtime resampling kernel: ``torchaudio.transforms.Resample`` with upstream's settings.

    ``realtime_gui.py`` builds ``Resample(orig_freq, new_freq, dtype=torch.float32)``, i.e. the
    torchaudio defaults: windowed-sinc with a Hann window (``sinc_interp_hann``),
    ``lowpass_filter_width=6``, ``rolloff=0.99``.  The transform is stateless: every call filters
    its input as an isolated signal (zero outside it), so upstream feeds overlapping windows and
    discards the edge samples; the caller keeps that bookkeeping.

    Parameters
    ----------
    sr_in, sr_out : int
        Sample rates in Hz (integers; torchaudio reduces the ratio by their gcd).
    """

    def __init__(self, sr_in: int, sr_out: int):
        import torch
        from torchaudio.transforms import Resample

        if int(sr_in) <= 0 or int(sr_out) <= 0:
            raise ValueError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
        self.sr_in = int(sr_in)
        self.sr_out = int(sr_out)
        self._resample = Resample(orig_freq=self.sr_in, new_freq=self.sr_out, dtype=torch.float32)

    def __call__(self, x):
        """Resample ``x`` (torch.Tensor float32 [..., N] at ``sr_in``) -> [..., ceil(N*sr_out/sr_in)].

        Equal rates return ``x`` unchanged (as torchaudio does).
        """
        import torch

        with torch.no_grad():
            return self._resample(x)

    def __repr__(self) -> str:
        return f"StreamResampler({self.sr_in} -> {self.sr_out}, sinc_interp_hann, width 6, rolloff 0.99)"


# ------------------------------------------------------------------------------------ output
def float_to_int16_upstream(audio: np.ndarray) -> np.ndarray:
    """Float output -> int16 exactly as upstream's offline pipeline does (parity README step 12).

    ``m = max|out| / 0.99``; ``scale = 32768``, divided by ``m`` when ``m > 1``;
    ``(out * scale).astype(int16)``, which truncates toward zero.  The goldens ran numpy 1.26:
    ``m`` and ``32768 / m`` are float64 scalars and the multiplication happens in the array's
    dtype with the scale rounded to it; that order is written out here so numpy 2 gives the
    same integers.

    Parameters
    ----------
    audio : np.ndarray
        float [N] (float32 in the pipeline; float64 is computed in float64).

    Returns
    -------
    np.ndarray
        int16 [N].

    Raises
    ------
    InvalidAudioError
        NaN/Inf in the output (the cast would produce arbitrary integers).
    """
    x = np.asarray(audio)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    if x.size == 0:
        return np.zeros(0, dtype=np.int16)
    if not np.all(np.isfinite(x)):
        raise InvalidAudioError("converted audio contains NaN/Inf samples; refusing to write garbage")
    m = float(np.abs(x).max()) / OUTPUT_PEAK_LIMIT
    scale = 32768.0
    if m > 1:
        scale /= m
    return (x * x.dtype.type(scale)).astype(np.int16)


def write_wav_atomic(path: str | os.PathLike, audio: np.ndarray, sr: int, subtype: str = "PCM_16") -> Path:
    """Write a WAV file so that ``path`` is either the complete new file or untouched.

    Written through :func:`rvc_lab.atomic.atomic_open` (a temporary sibling, then
    ``os.replace``; on any error the temporary file is removed and the error re-raised).

    Parameters
    ----------
    path : path-like
        Destination; missing parent directories are created.
    audio : np.ndarray
        [N] or [N, channels]; int16 arrays are written verbatim, float arrays are converted by
        libsndfile to ``subtype`` (clipped to [-1, 1] for PCM).
    sr : int
        Sample rate in Hz.
    subtype : str
        ``"PCM_16"`` (default), ``"PCM_24"``, ``"PCM_32"`` or ``"FLOAT"`` (32-bit float).

    Returns
    -------
    Path
        ``path``.
    """
    if subtype not in _WAV_SUBTYPES:
        raise ValueError(f"WAV subtype must be one of {_WAV_SUBTYPES}, got {subtype!r}")
    if int(sr) <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    data = np.asarray(audio)
    if data.ndim not in (1, 2):
        raise ValueError(f"audio must be [N] or [N, channels], got shape {data.shape}")
    if np.issubdtype(data.dtype, np.floating) and not np.all(np.isfinite(data)):
        raise InvalidAudioError(f"{os.fspath(path)}: refusing to write audio with NaN/Inf samples")

    dest = Path(path)
    with atomic_open(dest, "wb") as fh:
        sf.write(fh, data, int(sr), subtype=subtype, format="WAV")
    return dest
