"""Offline (whole-file) conversion with upstream RVC's ``Pipeline`` semantics.

Chain on 16 kHz audio: peak limit -> 48 Hz zero-phase high-pass -> reflect padding (x_pad s) ->
F0 over the whole padded signal -> for each chunk (cut at quiet points when the input is long):
HuBERT -> retrieval blend -> x2 upsample -> protect -> generator -> drop the padding -> join ->
RMS mix -> optional resample -> int16.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from rvc_lab.audio import float_to_int16_upstream, normalize_peak, resample_offline
from rvc_lab.convert import stages
from rvc_lab.convert.runtime import check_precision
from rvc_lab.errors import InvalidAudioError, SettingsError
from rvc_lab.f0 import METHODS
from rvc_lab.f0 import pitch as pitchmod
from rvc_lab.instrument import StageTimer
from rvc_lab.retrieval import blend_features

log = logging.getLogger(__name__)


@dataclass
class OfflineSettings:
    """Parameters of an offline conversion (upstream names in brackets).

    Attributes
    ----------
    f0_method : str
        One of :data:`rvc_lab.f0.METHODS` [f0_method].
    pitch : float
        Transposition in semitones [f0_up_key].
    index_rate : float
        0..1, weight of retrieved features [index_rate].
    filter_radius : int
        Median filter radius for harvest/crepe (>= 3 enables it) [filter_radius].
    rms_mix_rate : float
        0..1; 1 keeps the generator's loudness envelope [rms_mix_rate].
    protect : float
        0..0.5; below 0.5 unvoiced frames keep raw features [protect].
    resample_sr : int
        Output rate; 0 (or < 16000) keeps the voice's rate [resample_sr].
    sid : int
        Speaker id.
    noise : bool
        False: the generator's random draws are zeros (deterministic).
    seed : int, optional
        Seeds torch before the k-th generator call with ``seed + k``.
    x_pad, x_query, x_center, x_max : int
        Chunking in seconds (upstream's CPU/fp32 configuration: 1, 6, 38, 41).
    precision : {"fp32", "bf16"}
        Compute precision of HuBERT and the generator: "fp32" exact, "bf16" fast and
        approximate (:mod:`rvc_lab.convert.runtime`).
    """

    f0_method: str = "rmvpe"
    pitch: float = 0.0
    index_rate: float = 0.75
    filter_radius: int = 3
    rms_mix_rate: float = 0.25
    protect: float = 0.33
    resample_sr: int = 0
    sid: int = 0
    noise: bool = True
    seed: int | None = None
    x_pad: int = 1
    x_query: int = 6
    x_center: int = 38
    x_max: int = 41
    precision: str = "fp32"

    def validate(self, n_speakers: int | None = None) -> None:
        """Raise :class:`SettingsError` naming the first impossible setting."""
        if self.f0_method not in METHODS:
            raise SettingsError(f"f0 method {self.f0_method!r} unknown; choose one of {', '.join(METHODS)}")
        for name, lo, hi in (("index_rate", 0, 1), ("rms_mix_rate", 0, 1), ("protect", 0, 0.5)):
            v = getattr(self, name)
            if not (lo <= v <= hi):
                raise SettingsError(f"{name}={v} is outside [{lo}, {hi}]")
        if not -48 <= self.pitch <= 48:
            raise SettingsError(f"pitch={self.pitch} semitones is outside [-48, 48]")
        if self.filter_radius < 0:
            raise SettingsError(f"filter_radius={self.filter_radius} must be >= 0")
        if self.resample_sr < 0:
            raise SettingsError(f"resample_sr={self.resample_sr} must be >= 0 (0 keeps the model rate)")
        if self.sid < 0 or (n_speakers is not None and self.sid >= n_speakers):
            raise SettingsError(f"sid={self.sid} but the voice has {n_speakers} speaker(s)")
        check_precision(self.precision)


@dataclass
class OfflineResult:
    """Output of :func:`convert_offline`.

    Attributes
    ----------
    audio : np.ndarray
        int16 [S] at ``sr`` (upstream's returned samples).
    sr : int
        Output sample rate (Hz).
    stages : dict
        Per-stage arrays when requested: ``input_16k`` (float32, after peak limiting),
        ``encoder_input`` (float32, the high-passed, reflect-padded 16 kHz signal the chunks are
        cut from: the content encoder's input when the input is not chunked),
        ``content_features`` / ``blended_features`` ([T20ms, C] per chunk, concatenated),
        ``f0_hz`` / ``f0_coarse`` (10 ms grid of the padded input), ``generator_output`` (float32 at
        the voice rate, padding removed, before RMS mix), ``output_float`` (before int16).
    """

    audio: np.ndarray
    sr: int
    stages: dict = field(default_factory=dict)


def quiet_cut_points(audio: np.ndarray, settings: OfflineSettings, window: int = stages.HOP_16K) -> list[int]:
    """Chunk boundaries (16 kHz samples) for long inputs, placed at the quietest nearby point.

    Every ``x_center`` seconds, the position within +-``x_query`` s with the smallest sum of |x|
    over a 10 ms sliding window is chosen; inputs shorter than ``x_max`` s are not cut.
    """
    sr = 16000
    padded = np.pad(audio, (window // 2, window // 2), mode="reflect")
    if padded.shape[0] <= sr * settings.x_max:
        return []
    # moving sum of |x| over one window, computed with a cumulative sum instead of 160 passes
    c = np.concatenate([[0.0], np.cumsum(np.abs(padded))])
    energy = c[window:window + audio.shape[0]] - c[: audio.shape[0]]
    t_query, t_center = sr * settings.x_query, sr * settings.x_center
    cuts = []
    for t in range(t_center, audio.shape[0], t_center):
        seg = energy[t - t_query : t + t_query]
        cuts.append(t - t_query + int(np.argmin(seg)))
    return cuts


def chunk_spans(n_padded: int, cuts: list[int], settings: OfflineSettings, window: int = stages.HOP_16K
                ) -> list[tuple[int, int, int, int | None]]:
    """The padded input's chunks as upstream's ``Pipeline.pipeline`` slices them.

    Parameters
    ----------
    n_padded : int
        Samples (16 kHz) of the input after reflect padding by ``x_pad`` s on both sides.
    cuts : list of int
        :func:`quiet_cut_points` of the unpadded input (16 kHz samples).

    Returns
    -------
    list of (start, stop, f_lo, f_hi)
        Samples ``[start, stop)`` of each chunk (its ``x_pad`` s of context on both sides
        included; a cut is floored to a whole 10 ms window) and its pitch frames ``[f_lo, f_hi)``
        (``f_hi`` None: to the end).
    """
    t_pad = 16000 * settings.x_pad
    spans, start = [], 0
    for t in cuts:
        end = t // window * window
        spans.append((start, end + 2 * t_pad + window, start // window, (end + 2 * t_pad) // window))
        start = end
    spans.append((start, n_padded, start // window, None))
    return spans


def convert_offline(
    models,
    audio16k: np.ndarray,
    settings: OfflineSettings | None = None,
    timer: StageTimer | None = None,
    record_stages: bool = False,
) -> OfflineResult:
    """Convert a whole 16 kHz signal as upstream's ``VC.vc_single`` does.

    Parameters
    ----------
    models : rvc_lab.convert.models.ConverterModels
    audio16k : np.ndarray
        float32 [N] mono at 16 kHz (see :func:`rvc_lab.audio.load_audio` / ``prepare_input``).
    settings : OfflineSettings
    timer : StageTimer, optional
        Receives one row with per-stage milliseconds.
    record_stages : bool
        Fill :attr:`OfflineResult.stages` with the intermediate arrays.
    """
    s = settings or OfflineSettings()
    voice = models.voice
    s.validate(voice.n_speakers)
    x = _checked_input(audio16k)
    timer = timer or StageTimer(enabled=False)
    timer.start_block(block=0, input_s=x.size / 16000)
    rec: dict | None = {} if record_stages else None

    x = normalize_peak(x)
    if rec is not None:
        rec["input_16k"] = x.copy()
    audio = stages.high_pass_48hz(x)
    t_pad = 16000 * s.x_pad
    # upstream reflect-pads by t_pad; inputs shorter than that need numpy's reflect to wrap, which
    # it does for pad > len by repeated reflection, the same as upstream
    audio_pad = np.pad(audio, (t_pad, t_pad), mode="reflect")
    if rec is not None:
        # what the content encoder reads (as float32), so a port can start at the features
        rec["encoder_input"] = audio_pad.astype(np.float32)
    pitch, pitchf = _pitch_inputs(models, audio_pad, s, timer, rec)
    out = _convert_in_chunks(models, audio_pad, quiet_cut_points(audio, s), pitch, pitchf, s, timer, rec)
    out, sr = _postprocess(out, audio, voice.tgt_sr, s, timer)
    if rec is not None:
        rec["output_float"] = np.asarray(out, dtype=np.float32).copy()
    if not np.any(x):
        # upstream gets here too with rms_mix_rate < 1 (the input envelope is 0); a random or
        # badly trained generator would otherwise hum on digital silence
        log.info("input is digital silence: output is silence")
        out = np.zeros_like(out)
    result = float_to_int16_upstream(out)
    timer.end_block()
    return OfflineResult(audio=result, sr=sr, stages=rec or {})


def _checked_input(audio16k) -> np.ndarray:
    """float32 mono of at least 50 ms, finite; anything else raises :class:`InvalidAudioError`."""
    x = np.asarray(audio16k, dtype=np.float32)
    if x.ndim != 1 or x.size == 0:
        raise InvalidAudioError(f"expected non-empty mono audio, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise InvalidAudioError("audio contains NaN or Inf samples")
    if x.size < 800:  # reflect padding and HuBERT's 400-sample receptive field need some signal
        raise InvalidAudioError(f"audio is too short ({x.size} samples at 16 kHz; need at least 800 = 50 ms)")
    return x


def _pitch_inputs(models, audio_pad: np.ndarray, s: OfflineSettings, timer, rec: dict | None):
    """Coarse pitch [1, P] int64 and shifted F0 [1, P] float32 (Hz) of the padded input (None, None without F0).

    P = ``len(audio_pad) // 160``: one value per 10 ms frame of the whole padded file (upstream
    tracks F0 once, then slices it per chunk).
    """
    if not models.voice.if_f0:
        return None, None
    p_len = audio_pad.shape[0] // stages.HOP_16K
    with timer.stage("f0"):
        est = models.f0_estimator(s.f0_method, s.filter_radius)
        f0 = est.offline(audio_pad, p_len)
        f0 = pitchmod.interpolate_unvoiced(f0)
        f0 = pitchmod.shift_semitones(f0, s.pitch)
        coarse = pitchmod.coarse_pitch(f0)
    if rec is not None:
        rec["f0_hz"], rec["f0_coarse"] = f0.copy(), coarse.copy()
    pitch = torch.from_numpy(coarse[:p_len].astype(np.int64)).unsqueeze(0)
    pitchf = torch.from_numpy(f0[:p_len].astype(np.float32)).unsqueeze(0)
    return pitch, pitchf


def _convert_in_chunks(models, audio_pad: np.ndarray, cuts: list[int], pitch, pitchf, s: OfflineSettings,
                       timer, rec: dict | None) -> np.ndarray:
    """Generator output (float, voice rate) of the padded input, converted chunk by chunk at ``cuts``.

    Each chunk carries ``x_pad`` seconds of context on both sides, which is cut off its output;
    chunk k's generator noise is seeded with ``seed + k``.
    """
    t_pad_tgt = models.voice.tgt_sr * s.x_pad
    pieces, feats_log, blended_log = [], [], []
    for k, (start, stop, f_lo, f_hi) in enumerate(chunk_spans(audio_pad.shape[0], cuts, s)):
        seg = audio_pad[start:stop]
        seg_pitch = None if pitch is None else pitch[:, f_lo:f_hi]
        seg_pitchf = None if pitchf is None else pitchf[:, f_lo:f_hi]
        out, feats, blended = _convert_chunk(models, seg, seg_pitch, seg_pitchf, s, timer, k)
        pieces.append(out[t_pad_tgt:-t_pad_tgt])
        feats_log.append(feats)
        blended_log.append(blended)
    out = np.concatenate(pieces)
    if rec is not None:
        rec["content_features"] = np.concatenate(feats_log)
        rec["blended_features"] = np.concatenate(blended_log)
        rec["generator_output"] = out.copy()
    return out


def _postprocess(out: np.ndarray, audio: np.ndarray, tgt_sr: int, s: OfflineSettings, timer) -> tuple[np.ndarray, int]:
    """Loudness mix with the (high-passed, 16 kHz) input, then resampling to ``resample_sr``; returns (out, sr)."""
    if s.rms_mix_rate != 1:
        with timer.stage("rms_mix"):
            out = stages.rms_mix_offline(audio, out, tgt_sr, s.rms_mix_rate)
    if tgt_sr != s.resample_sr >= 16000:
        with timer.stage("output_resample"):
            return resample_offline(out, tgt_sr, s.resample_sr), s.resample_sr
    return out, tgt_sr


def _convert_chunk(models, seg: np.ndarray, pitch, pitchf, s: OfflineSettings, timer,
                   k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One padded chunk through HuBERT, retrieval, protect and the generator (upstream ``Pipeline.vc``).

    Returns the generator output [S] (voice rate), the content features [T, C] and the blended
    features [T, C] (20 ms frames) of the chunk.
    """
    voice = models.voice
    with timer.stage("content_features"):
        feats = stages.content_features(models.encoder, torch.from_numpy(seg).float(), voice.version, s.precision)
    feats_raw_np = feats[0].numpy().copy()
    use_protect = s.protect < 0.5 and pitch is not None
    feats_raw = feats.clone() if use_protect else None
    if models.index is not None and s.index_rate != 0:
        with timer.stage("retrieval"):
            # upstream offline has no missing-neighbour check: a -1 id gets distance FLT_MAX, so its
            # weight underflows to 0 and it drops out (realtime instead skips the block's blend)
            blended, _ = blend_features(feats[0], models.index, s.index_rate, on_missing="ignore")
            feats = blended.unsqueeze(0)
    blended_np = feats[0].numpy().copy()
    feats = stages.upsample_to_pitch_frames(feats)
    if use_protect:
        feats_raw = stages.upsample_to_pitch_frames(feats_raw)
    p_len = seg.shape[0] // stages.HOP_16K
    if feats.shape[1] < p_len:
        p_len = feats.shape[1]
        if pitch is not None:
            pitch, pitchf = pitch[:, :p_len], pitchf[:, :p_len]
    if use_protect:
        feats = stages.protect_unvoiced(feats, feats_raw, pitchf, s.protect)
    with timer.stage("generator"):
        out = stages.run_generator(
            models.net_g, feats, p_len, pitch, pitchf, s.sid, noise=s.noise,
            seed=None if s.seed is None else s.seed + k, precision=s.precision,
        )
    return out.numpy(), feats_raw_np, blended_np
