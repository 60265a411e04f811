"""What an A/B study measures on one input: content kept, A against B, voice, quality, cost.

Every function takes mono float waveforms and returns ``{metric: value}``; a metric whose
package is missing raises :class:`MetricUnavailable` with the reason, so the caller lists it
as skipped instead of leaving it out.
"""
from __future__ import annotations

import functools
import logging
import os

import numpy as np

from rvc_lab.audio import resample_offline
from rvc_lab.f0 import pitch as pitchmod
from rvc_lab.metrics.compare import compare_audio
from rvc_lab.metrics.f0 import f0_metrics

log = logging.getLogger(__name__)

#: metric -> (group, kind): per_spec metrics have an A and a B value; pairwise ones compare A with B.
METRICS = {
    "f0_corr": ("content", "per_spec"),
    "f0_cents_error": ("content", "per_spec"),
    "voicing_agreement": ("content", "per_spec"),
    "f0_median_hz": ("content", "per_spec"),
    "mcd_db": ("a_vs_b", "pairwise"),
    "spectral_convergence": ("a_vs_b", "pairwise"),
    "lsd_db": ("a_vs_b", "pairwise"),
    "snr_db": ("a_vs_b", "pairwise"),
    "similarity_target": ("voice", "per_spec"),
    "similarity_ab": ("voice", "pairwise"),
    "dnsmos_overall": ("quality", "per_spec"),
    "dnsmos_signal": ("quality", "per_spec"),
    "dnsmos_background": ("quality", "per_spec"),
    "dnsmos_p808": ("quality", "per_spec"),
    "ms_per_s": ("cost", "per_spec"),
}


class MetricUnavailable(RuntimeError):
    """A metric's package is missing (the message says which and how to install it)."""


def content_kept(out16: np.ndarray, ref_f0_hz: np.ndarray, estimator) -> dict:
    """F0 of an output against the input's F0 after the spec's pitch shift.

    Parameters
    ----------
    out16 : np.ndarray, shape (N,)
        The output resampled to 16 kHz, float, aligned with the input (sample 0 = input sample 0).
    ref_f0_hz : np.ndarray, shape (T,)
        The input's F0 on 10 ms frames, Hz (0 unvoiced), already shifted by the spec's pitch.
    estimator : rvc_lab.f0.F0Estimator
        The judge (fcpe unless ``--f0-judge``): the same one measures input and output.

    Returns
    -------
    dict
        ``f0_corr`` (Pearson over frames voiced in both; NaN for a steady tone), ``f0_cents_error``
        (mean |cents| over frames voiced in both), ``voicing_agreement`` (fraction of frames with
        the same voiced/unvoiced decision), ``f0_median_hz`` (median voiced F0 of the output).
    """
    est = estimator.track(np.asarray(out16, dtype=np.float32))
    n = min(est.shape[0], ref_f0_hz.shape[0])
    est, ref = np.asarray(est[:n], dtype=np.float64), np.asarray(ref_f0_hz[:n], dtype=np.float64)
    m = f0_metrics(ref, est)
    voiced = est[est > 0]
    return {"f0_corr": m["f0_corr"], "f0_cents_error": m["cents_mae"],
            "voicing_agreement": float(np.mean((ref > 0) == (est > 0))) if n else float("nan"),
            "f0_median_hz": float(np.median(voiced)) if voiced.size else float("nan")}


def input_f0(x16: np.ndarray, estimator, semitones: float) -> np.ndarray:
    """The input's F0 (10 ms frames, Hz) shifted by ``semitones``: what a spec's output should sing."""
    return pitchmod.shift_semitones(np.asarray(estimator.track(np.asarray(x16, dtype=np.float32)), np.float64),
                                    semitones)


def a_against_b(a: np.ndarray, b: np.ndarray, sr: int) -> dict:
    """MCD, spectral convergence, LSD and SNR of B against A after delay alignment.

    Conventions are :func:`rvc_lab.metrics.compare.compare_audio`'s: B's delay against A by
    cross-correlation, then SPTK mel-cepstra order 24 without c0, dB, no DTW (``MCDConfig()``);
    STFT of ~40 ms frames with 75 % overlap for spectral convergence and LSD (base-10 dB);
    SNR = 10 log10(|A|^2 / |B - A|^2) (inf when identical).
    """
    c = compare_audio(np.asarray(b, np.float64), np.asarray(a, np.float64), sr, align=True, f0_method=None)
    return {"mcd_db": c["mcd_db"], "spectral_convergence": c["spectral_convergence"],
            "lsd_db": c["log_spectral_distance_db"], "snr_db": c["snr_db"]}


# ----------------------------------------------------------------------------- voice similarity
@functools.lru_cache(maxsize=1)
def voice_encoder():
    """resemblyzer's speaker encoder (GE2E, 256-d) with its bundled weights, loaded weights-only.

    resemblyzer's own constructor calls ``torch.load`` with the torch default; the weights are
    read here with ``weights_only=True`` instead (:func:`rvc_lab.files.safe_load.safe_torch_load`),
    so a replaced ``pretrained.pt`` cannot run code.
    """
    try:
        import resemblyzer
        from resemblyzer import hparams as hp
        from resemblyzer.voice_encoder import VoiceEncoder
    except ImportError as exc:
        raise MetricUnavailable(f"resemblyzer not installed ({exc}): pip install webrtcvad-wheels && "
                                "pip install --no-deps resemblyzer (make setup does)") from None
    import torch
    from torch import nn

    from rvc_lab.files.safe_load import safe_torch_load

    class _WeightsOnlyEncoder(VoiceEncoder):
        def __init__(self, path):  # the network of VoiceEncoder.__init__, without its torch.load
            nn.Module.__init__(self)
            self.lstm = nn.LSTM(hp.mel_n_channels, hp.model_hidden_size, hp.model_num_layers, batch_first=True)
            self.linear = nn.Linear(hp.model_hidden_size, hp.model_embedding_size)
            self.relu = nn.ReLU()
            self.device = torch.device("cpu")
            state = safe_torch_load(path, what="resemblyzer weights")["model_state"]
            # similarity_weight/bias are GE2E training terms, not part of the encoder
            self.load_state_dict({k: v for k, v in state.items() if not k.startswith("similarity_")})
            self.eval()

    return _WeightsOnlyEncoder(os.path.join(os.path.dirname(resemblyzer.__file__), "pretrained.pt"))


def speaker_embedding(x: np.ndarray, sr: int) -> np.ndarray:
    """L2-normalised 256-d resemblyzer embedding of a waveform (float32, any rate).

    Silences are not trimmed (resemblyzer's VAD can remove all of a short random-voice output);
    both specs' outputs of an input are embedded the same way.
    """
    enc = voice_encoder()  # first: names a missing package
    from resemblyzer.audio import normalize_volume
    from resemblyzer.hparams import audio_norm_target_dBFS, sampling_rate

    # resemblyzer's preprocess_wav, without its silence trimming: resample, raise quiet input
    wav = np.asarray(x, np.float64)
    if sr != sampling_rate:
        wav = resample_offline(wav, sr, sampling_rate)
    wav = normalize_volume(wav.astype(np.float32), audio_norm_target_dBFS, increase_only=True)
    e = np.asarray(enc.embed_utterance(wav), dtype=np.float64)
    return e / max(np.linalg.norm(e), 1e-12)


def cosine(u: np.ndarray, v: np.ndarray) -> float:
    """Cosine similarity of two vectors (1 = same direction)."""
    return float(np.dot(u, v) / max(np.linalg.norm(u) * np.linalg.norm(v), 1e-12))


# ----------------------------------------------------------------------------- DNSMOS
def dnsmos(x: np.ndarray, sr: int) -> dict:
    """DNSMOS P.835 (overall, signal, background) and P.808 of a waveform (speechmos's ONNX models).

    The models take 16 kHz; shorter clips than 9.01 s are repeated to that length by speechmos.
    """
    try:
        from speechmos import dnsmos as sm
    except ImportError as exc:
        raise MetricUnavailable(f"speechmos not installed ({exc}): pip install speechmos (the ab extra)") from None
    x16 = resample_offline(np.asarray(x, np.float64), sr, 16000) if sr != 16000 else np.asarray(x, np.float64)
    x16 = np.clip(x16, -1.0, 1.0)
    r = sm.run(x16, 16000)
    return {"dnsmos_overall": float(r["ovrl_mos"]), "dnsmos_signal": float(r["sig_mos"]),
            "dnsmos_background": float(r["bak_mos"]), "dnsmos_p808": float(r["p808_mos"])}
