"""Speech to convert when nothing can be downloaded: rendered, bundled or synthesised offline.

Random-weight demo voices make noise whatever they are fed, but the conversion chain's timing,
F0 tracking and streaming/offline parity behave differently on speech (onsets, pauses, unvoiced
consonants) than on steady tones, so reports and notebooks prefer a real sentence.  In order:

1. ``espeak-ng`` (Debian package, installed by ``scripts/system-packages.sh``) renders
   :data:`SENTENCE`;
2. the LibriSpeech utterance fairseq ships with its HuBERT tests
   (``fairseq/examples/hubert/tests/6313-76958-0021.flac``, 11.9 s, 16 kHz), found without
   importing fairseq;
3. a synthetic vowel sequence (glottal pulse train through formant resonators), always available.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rvc_lab.audio import limit_peak, load_audio, resample_offline, write_wav_atomic

log = logging.getLogger(__name__)

#: What espeak-ng says: varied vowels, voiced and unvoiced consonants, one pause.
SENTENCE = "The quick brown fox jumps over the lazy dog. She sells sea shells by the shore."

#: Source names in preference order.
SOURCES = ("espeak-ng", "fairseq-librispeech", "synthetic-vowels")

FAIRSEQ_SAMPLE = Path("examples/hubert/tests/6313-76958-0021.flac")


@dataclass
class SpeechInput:
    """A mono speech signal and where it came from.

    Attributes
    ----------
    audio : np.ndarray
        float32 [N], peak <= 0.9.
    sr : int
        Sample rate (Hz).
    source : str
        One of :data:`SOURCES`.
    description : str
        One line for reports.
    """

    audio: np.ndarray
    sr: int
    source: str
    description: str

    @property
    def duration_s(self) -> float:
        return self.audio.shape[0] / self.sr


def espeak_speech(text: str = SENTENCE, voice: str = "en-us", words_per_minute: int = 150) -> tuple[np.ndarray, int]:
    """Render ``text`` with espeak-ng -> (float32 [N], 22050 Hz).

    Raises
    ------
    FileNotFoundError
        espeak-ng is not installed.
    RuntimeError
        espeak-ng ran but produced no audio.
    """
    import soundfile as sf

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise FileNotFoundError("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory(prefix="rvc_lab-espeak-") as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run([exe, "-v", voice, "-s", str(words_per_minute), "-w", str(wav), text],
                       check=True, capture_output=True, timeout=60)
        audio, sr = sf.read(wav, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if audio.size == 0 or not np.any(audio):
        raise RuntimeError("espeak-ng produced no audio")
    return audio, int(sr)


def fairseq_sample_path() -> Path | None:
    """Path of fairseq's bundled LibriSpeech flac, or None (fairseq is located, not imported)."""
    try:
        spec = importlib.util.find_spec("fairseq")
    except (ImportError, ValueError):
        return None
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / FAIRSEQ_SAMPLE
        if path.is_file():
            return path
    return None


def synthetic_vowels(sr: int = 16000, seconds: float = 3.0, f0_hz: float = 120.0) -> np.ndarray:
    """A speech-like vowel sequence /a/ /i/ /u/ /e/ with pauses, float32 [round(seconds * sr)].

    Source: an impulse train at ``f0_hz`` with slow intonation (+-10 %) and a -12 dB/octave
    glottal tilt; filter: three second-order resonators per vowel at textbook formant
    frequencies (F1..F3).  Vowels last ``seconds / 5`` each with 10 % pauses between them.
    """
    from scipy import signal

    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    f0 = f0_hz * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
    phase = np.cumsum(f0) / sr
    pulses = np.diff(np.floor(phase), prepend=0.0)  # one impulse per period
    # two one-pole low-passes: the glottal pulse's spectral tilt
    source = signal.lfilter([1.0], [1.0, -0.95], signal.lfilter([1.0], [1.0, -0.95], pulses))
    formants = {"a": (730, 1090, 2440), "i": (270, 2290, 3010), "u": (300, 870, 2240), "e": (530, 1840, 2480)}
    out = np.zeros(n)
    seg = n // (len(formants) + 1)
    gap = seg // 10
    for k, (_, freqs) in enumerate(formants.items()):
        lo, hi = k * seg + seg // 2, (k + 1) * seg + seg // 2 - gap
        y = source[lo:hi]
        for f in freqs:
            if f >= 0.45 * sr:
                continue
            bw = 80.0
            r = np.exp(-np.pi * bw / sr)
            y = signal.lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * f / sr), r * r], y)
        ramp = np.minimum(1.0, np.minimum(np.arange(y.size), np.arange(y.size)[::-1]) / (0.02 * sr))
        out[lo:hi] = y * ramp
    return (0.5 * out / max(np.abs(out).max(), 1e-9)).astype(np.float32)


def _peak(x: np.ndarray, peak: float = 0.9) -> np.ndarray:
    return limit_peak(np.asarray(x, dtype=np.float32), peak)[0]


def speech_input(max_seconds: float | None = None, prefer: str | None = None,
                 cache_dir: str | os.PathLike | None = None, sr: int | None = None) -> SpeechInput:
    """The best offline speech available (see module doc), optionally cut to ``max_seconds``.

    Parameters
    ----------
    max_seconds : float, optional
        Keep only the first ``max_seconds`` (with a 20 ms fade-out).
    prefer : str, optional
        Start the search at this source (one of :data:`SOURCES`), e.g. ``"synthetic-vowels"``
        for a quick, dependency-free run.
    cache_dir : path-like, optional
        Keep the espeak-ng rendering here as ``speech_espeak.wav`` (re-rendering costs ~0.2 s,
        but a cached file also makes runs on machines with different espeak versions equal).
    sr : int, optional
        Resample to this rate (soxr_hq).  espeak-ng renders at 22050 Hz, which is not a whole
        number of 10 ms frames: streaming needs a rate that is a multiple of 100 Hz.
    """
    order = list(SOURCES)
    if prefer is not None:
        if prefer not in SOURCES:
            raise ValueError(f"unknown speech source {prefer!r}; choose one of {', '.join(SOURCES)}")
        order = order[order.index(prefer):]
    result = None
    for source in order:
        try:
            result = _load_source(source, cache_dir)
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            log.info("speech source %s unavailable: %s", source, exc)
            continue
        if result is not None:
            break
    assert result is not None  # synthetic vowels always succeed
    if max_seconds is not None and result.duration_s > max_seconds:
        n = int(round(max_seconds * result.sr))
        x = result.audio[:n].copy()
        fade = min(n, int(0.02 * result.sr))
        x[n - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        result = SpeechInput(x, result.sr, result.source, result.description + f" (first {max_seconds:g} s)")
    if sr is not None and sr != result.sr:
        x = np.asarray(resample_offline(result.audio, result.sr, sr), dtype=np.float32)
        result = SpeechInput(_peak(x), int(sr), result.source, result.description)
    return result


def _load_source(source: str, cache_dir) -> SpeechInput | None:
    if source == "espeak-ng":
        cached = Path(cache_dir) / "speech_espeak.wav" if cache_dir else None
        if cached is not None and cached.is_file():
            import soundfile as sf

            audio, sr = sf.read(cached, dtype="float32")
        else:
            audio, sr = espeak_speech()
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                write_wav_atomic(cached, audio, sr, subtype="PCM_16")
        return SpeechInput(_peak(audio), int(sr), source, f'espeak-ng (synthetic speech): "{SENTENCE}"')
    if source == "fairseq-librispeech":
        path = fairseq_sample_path()
        if path is None:
            return None
        audio, sr = load_audio(path)
        return SpeechInput(_peak(audio), int(sr), source, "LibriSpeech 6313-76958-0021 (bundled with fairseq)")
    audio = synthetic_vowels()
    return SpeechInput(audio, 16000, "synthetic-vowels", "synthetic vowels /a i u e/ at 120 Hz (no speech source found)")
