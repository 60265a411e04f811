"""Streaming vs offline: how far the realtime chain's output is from the whole-file conversion.

Both drivers run the same stage functions; the streaming one sees only ``extra_time`` of past
audio (HuBERT context, the generator's encoder), computes F0 on a short window at the end of each
block, restarts the generator at every block and joins blocks with a SOLA crossfade.  This module
runs both on one signal with the generator's noise off and measures, per stage:

* ``content_features`` -- the features given to the generator (after retrieval), streaming
  block frames that are decoded (``skip_head .. skip_head + return_length``) against the offline
  features at the same input time: relative L2 and mean cosine similarity;
* ``f0`` -- the Hz track the generator gets (after gap filling and transposition), same frames;
  cents error and correlation (:func:`rvc_lab.metrics.f0.f0_metrics`);
* ``generator`` -- each block's decoded audio at the voice rate against the offline generator
  output at the same samples (relative L2, SNR, spectral convergence);
* ``output`` -- the streamed file (stream rate) against the offline output resampled to the
  stream rate, aligned by one cross-correlation delay estimate, as one would compare a recording
  (:func:`rvc_lab.metrics.compare.compare_audio`: rel L2, SNR, SI-SDR, spectral convergence,
  MCD, F0 of both outputs).  SOLA moves each block by up to 10 ms, so one delay fits some
  blocks only.

Waveform figures (rel L2, SNR, SI-SDR) are phase sensitive, and the streaming generator restarts
its harmonic source at phase 0 in every block (upstream does the same; SOLA then picks the best
of 10 ms of offsets to join blocks), so on voiced audio they stay poor even when the spectra
agree; spectral convergence, MCD and the F0 figures are not phase sensitive.

Waveforms are compared without their DC and sub-audio content (segment means removed, 20 Hz
zero-phase high-pass on whole outputs): a random-weight generator (the demo voices) emits a DC
offset of a quarter of full scale that would otherwise dominate every waveform figure and the
delay estimate.  Trained voices have no such offset, and nobody hears below 20 Hz.

Time bookkeeping (all sizes are whole 10 ms frames): after block k (0-based) the input ring ends
at input time ``(k + 1) * block`` and is ``extra + crossfade + search + block`` long; its 10 ms
frame j lies at ``ring_start + j * 10 ms``.  Offline frame j lies at ``j * 10 ms - x_pad`` (the
reflect padding).  When ``ring_start + x_pad`` is not a multiple of 20 ms the two HuBERT grids are
10 ms apart, which adds a divergence no context can remove; :attr:`ParityResult.grid_offset_ms`
reports it (block and extra times that are multiples of 20 ms with the default 50 ms crossfade
keep the grids aligned).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from rvc_lab.audio import normalize_peak, prepare_input, resample_offline
from rvc_lab.convert.offline import OfflineSettings, convert_offline
from rvc_lab.convert.streaming import StreamSettings, stream_file
from rvc_lab.errors import SettingsError
from rvc_lab.metrics.align import align_signals, estimate_delay
from rvc_lab.metrics.compare import compare_audio
from rvc_lab.metrics.f0 import f0_metrics
from rvc_lab.metrics.spectral import mean_frame_cosine, rel_l2, stft_magnitude

log = logging.getLogger(__name__)

STAGE_ORDER = ("content_features", "f0", "generator", "output")

#: Columns of :attr:`ParityResult.stages`.
STAGE_COLUMNS = ("stage", "compared", "n", "rel_l2", "snr_db", "cosine", "cents_mae", "f0_corr",
                 "spectral_convergence", "mcd_db", "si_sdr_db")


def parity_stream_settings(**overrides):
    """:class:`StreamSettings` for a parity run: noise off, no loudness matching, no gate, no index.

    The realtime loudness matching (40 ms frames) and the offline one (0.5 s frames) are different
    algorithms, so both are disabled (rms_mix_rate 1) to compare the chains themselves.
    """
    base = dict(noise=False, seed=None, rms_mix_rate=1.0, index_rate=0.0, threshold=-60.0, f0_method="fcpe")
    base.update(overrides)
    return StreamSettings(**base)


def matching_offline_settings(stream_settings):
    """The :class:`OfflineSettings` that do what ``stream_settings`` does, where both can.

    Same F0 method, transposition, index rate and speaker; noise off; ``protect`` 0.5 (the realtime
    chain has no consonant protection); ``rms_mix_rate`` 1 (compare before loudness matching).
    """
    s = stream_settings
    return OfflineSettings(f0_method=s.f0_method, pitch=s.pitch, index_rate=s.index_rate, sid=s.sid, noise=False,
                           seed=None, protect=0.5, rms_mix_rate=1.0)


@dataclass
class ParityResult:
    """Outcome of :func:`stream_vs_offline`.

    Attributes
    ----------
    stages : pandas.DataFrame
        One row per stage (:data:`STAGE_ORDER`), columns :data:`STAGE_COLUMNS`: ``compared``
        (what), ``n`` (frames or samples), ``rel_l2``, ``snr_db``, ``cosine`` (features),
        ``cents_mae``, ``f0_corr``, ``spectral_convergence``, ``mcd_db``, ``si_sdr_db`` (NaN where
        a figure does not apply).
    blocks : pandas.DataFrame
        One row per streaming block: ``block``, ``t_end_s`` (input time at the ring's end),
        ``feat_rel_l2``, ``f0_cents_mae``, ``gen_rel_l2``, ``sola_offset`` (NaN where the block
        decodes nothing inside the input).
    audio_metrics : dict
        :func:`rvc_lab.metrics.compare.compare_audio` of the streamed output against the offline one.
    delay_samples : int
        Estimated delay of the stream at ``sr`` (positive: late).
    expected_delay_samples : float
        Delay the geometry predicts: ``crossfade + search - sola_offset`` (median over blocks).
    grid_offset_ms : float
        0 or 10: distance between the streaming and offline HuBERT frame grids.
    sr, tgt_sr : int
        Stream rate (where outputs are compared) and voice rate (generator stage).
    stream_audio, offline_audio : np.ndarray
        float32 at ``sr``: the streamed file (unaligned) and the offline output resampled.
    input_audio : np.ndarray
        float32 at ``sr``: what both chains were given (peak-limited).
    trace : pandas.DataFrame or None
        The stream's stage timing, when a timer was used.
    settings, offline_settings
        What ran.
    """

    stages: pd.DataFrame
    blocks: pd.DataFrame
    audio_metrics: dict
    delay_samples: int
    expected_delay_samples: float
    grid_offset_ms: float
    sr: int
    tgt_sr: int
    stream_audio: np.ndarray
    offline_audio: np.ndarray
    input_audio: np.ndarray
    settings: object
    offline_settings: object
    trace: pd.DataFrame | None = None
    extras: dict = field(default_factory=dict)

    def stage_value(self, stage: str, column: str) -> float:
        """One figure of :attr:`stages`, e.g. ``stage_value("content_features", "rel_l2")``."""
        row = self.stages.loc[self.stages["stage"] == stage]
        return float(row[column].iloc[0]) if len(row) else float("nan")

    def summary(self) -> dict:
        """Flat dict: settings that vary in sweeps plus the headline figures of every stage."""
        s = self.settings
        out = {"block_time": s.block_time, "extra_time": s.extra_time, "crossfade_time": s.crossfade_time,
               "f0_method": s.f0_method, "grid_offset_ms": self.grid_offset_ms,
               "delay_ms": 1000.0 * self.delay_samples / self.sr,
               "expected_delay_ms": 1000.0 * self.expected_delay_samples / self.sr}
        out["features_rel_l2"] = self.stage_value("content_features", "rel_l2")
        out["features_cosine"] = self.stage_value("content_features", "cosine")
        out["f0_cents_mae"] = self.stage_value("f0", "cents_mae")
        out["f0_corr"] = self.stage_value("f0", "f0_corr")
        out["generator_rel_l2"] = self.stage_value("generator", "rel_l2")
        out["generator_snr_db"] = self.stage_value("generator", "snr_db")
        out["generator_spectral_convergence"] = self.stage_value("generator", "spectral_convergence")
        for k in ("rel_l2", "snr_db", "si_sdr_db", "spectral_convergence", "mcd_db", "log_spectral_distance_db",
                  "f0_corr"):
            out[f"output_{k}"] = float(self.audio_metrics.get(k, float("nan")))
        return out


def run_offline_reference(models, audio: np.ndarray, sr: int, offline_settings):
    """Offline conversion with stage recording of ``audio`` (at ``sr``; resampled to 16 kHz as upstream).

    Returns the :class:`rvc_lab.convert.offline.OfflineResult`; reuse it across a sweep of
    streaming settings (offline output does not depend on them).
    """
    x16 = prepare_input(normalize_peak(audio), sr)
    if x16.shape[0] > 16000 * offline_settings.x_max:
        raise SettingsError(f"parity needs an input shorter than {offline_settings.x_max} s "
                            "(longer inputs are cut into chunks offline, which this comparison does not map)")
    return convert_offline(models, x16, offline_settings, record_stages=True)


def stream_vs_offline(models, audio: np.ndarray, sr: int, stream_settings, offline_settings=None, *,
                      offline_result=None, timer=None) -> ParityResult:
    """Run the streaming and the offline chain on one signal and measure their divergence per stage.

    Parameters
    ----------
    models : rvc_lab.convert.models.ConverterModels
    audio : np.ndarray
        float32 [N] mono at ``sr``; limited to peak 0.95 for both chains (offline does so anyway).
    sr : int
        Stream rate (a multiple of 100 Hz); outputs are compared at this rate.
    stream_settings : rvc_lab.convert.streaming.StreamSettings
        Noise is forced off (a copy is changed, not the caller's object).  Use
        :func:`parity_stream_settings` for the comparable defaults.
    offline_settings : rvc_lab.convert.offline.OfflineSettings, optional
        Default: :func:`matching_offline_settings`.
    offline_result : OfflineResult, optional
        A recorded offline run of the same audio (:func:`run_offline_reference`), to skip it.
    timer : rvc_lab.instrument.StageTimer, optional
        Times the streaming run; its trace is returned in :attr:`ParityResult.trace`.
    """
    if sr % 100:
        raise SettingsError(f"stream rate {sr} Hz is not a multiple of 100 Hz; resample the input first")
    s = replace(stream_settings, noise=False, seed=None)
    if s.output_rate != "stream":
        raise SettingsError("parity compares at the stream rate: use output_rate='stream'")
    off_s = offline_settings or matching_offline_settings(s)
    x = normalize_peak(audio)
    off = offline_result if offline_result is not None else run_offline_reference(models, x, sr, off_s)
    stream_out, out_sr, conv = stream_file(models, x, sr, s, timer=timer, record=True)
    g = conv.geometry
    tgt_sr = models.voice.tgt_sr

    blocks, feat_pairs, f0_pairs, gen_pairs, grid = _per_block(conv, off, off_s, x.shape[0] / sr, tgt_sr)

    offline_float = np.asarray(off.stages["output_float"], dtype=np.float32)
    offline_at_sr = np.asarray(resample_offline(offline_float, off.sr, sr), dtype=np.float32) if off.sr != sr \
        else offline_float
    stream_hp, offline_hp = remove_subsonic(stream_out, sr), remove_subsonic(offline_at_sr, sr)

    # Block k's output is late by crossfade + search - sola_offset_k (0 <= offset <= search), so
    # the whole-file delay is searched in that window only (+-5 ms): a periodic output correlates
    # as well one pitch period away, and a wider search would lock onto such a lag.
    lo_d = g.crossfade_frame - g.zc // 2
    hi_d = g.crossfade_frame + g.sola_search_frame + g.zc // 2
    delay = int(estimate_delay(stream_hp, offline_hp, max_delay=hi_d, min_delay=lo_d))
    a_al, e_al = align_signals(stream_hp, offline_hp, delay)
    metrics = compare_audio(a_al, e_al, sr, align=False, f0_method="dio")
    metrics["delay_samples"], metrics["delay_ms"] = delay, 1000.0 * delay / sr
    offsets = blocks["sola_offset"].to_numpy(dtype=float)
    expected_delay = float(np.median(g.crossfade_frame + g.sola_search_frame - offsets)) if offsets.size \
        else float("nan")

    stages = pd.DataFrame([
        _feature_row(feat_pairs),
        _f0_row(f0_pairs, models.voice.if_f0),
        _waveform_row("generator", "decoded audio of each block at the voice rate, same input time", gen_pairs,
                      skip=bool(s.formant), why="formant shift resamples the block"),
        {"stage": "output", "compared": f"streamed vs offline output at {sr} Hz, one delay for the file",
         "n": metrics["n_compared"], "rel_l2": metrics["rel_l2"], "snr_db": metrics["snr_db"],
         "si_sdr_db": metrics["si_sdr_db"], "spectral_convergence": metrics["spectral_convergence"],
         "mcd_db": metrics["mcd_db"], "f0_corr": metrics["f0_corr"], "cents_mae": metrics["f0_cents_mae"]},
    ], columns=list(STAGE_COLUMNS))
    trace = timer.to_frame() if timer is not None and getattr(timer, "enabled", False) and timer.rows else None
    return ParityResult(
        stages=stages, blocks=blocks, audio_metrics=metrics, delay_samples=delay,
        expected_delay_samples=expected_delay, grid_offset_ms=grid, sr=sr, tgt_sr=tgt_sr,
        stream_audio=stream_hp, offline_audio=offline_hp, input_audio=x, settings=s,
        offline_settings=off_s, trace=trace,
    )


def _per_block(conv, off, off_s, duration_s: float, tgt_sr: int):
    """Pair each block's decoded frames/samples with the offline ones at the same input time."""
    g = conv.geometry
    ring_frames = g.input_frame // g.zc
    block_frames = g.block_frame // g.zc
    n_in_frames = int(math.floor(duration_s * 100 + 1e-9))
    off_feats = off.stages.get("blended_features")
    off_f0 = off.stages.get("f0_hz")
    off_gen = off.stages.get("generator_output")
    pad_frames = 100 * off_s.x_pad
    upp = tgt_sr // 100
    rows, feat_pairs, f0_pairs, gen_pairs = [], [], [], []
    grid = 0.0
    for k, rec in enumerate(conv.records):
        start = (k + 1) * block_frames - ring_frames  # input frame of ring frame 0 (< 0: before the input)
        # HuBERT frames are 20 ms: an odd 10 ms distance between the grids shifts every frame
        grid = max(grid, 10.0 * ((start + pad_frames) % 2))
        j = np.arange(g.skip_head, g.skip_head + g.return_length)
        t = start + j  # input 10 ms frame of each decoded frame
        ok = (t >= 0) & (t < n_in_frames)
        row = {"block": k, "t_end_s": (k + 1) * block_frames / 100.0, "feat_rel_l2": np.nan,
               "f0_cents_mae": np.nan, "gen_rel_l2": np.nan, "sola_offset": rec.get("sola_offset", np.nan)}
        if ok.any():
            jj, tt = j[ok], t[ok]
            feats = rec["feats"]
            fo = (tt + pad_frames) // 2  # offline 20 ms frame under this 10 ms frame
            valid = (jj < feats.shape[0]) & (fo < off_feats.shape[0])
            a, e = feats[jj[valid]], off_feats[fo[valid]]
            feat_pairs.append((a, e))
            row["feat_rel_l2"] = rel_l2(a, e)
            if rec.get("pitchf") is not None and off_f0 is not None:
                fi = tt + pad_frames
                v = (jj < rec["pitchf"].shape[0]) & (fi < off_f0.shape[0])
                fa, fe = rec["pitchf"][jj[v]].astype(np.float64), off_f0[fi[v]].astype(np.float64)
                f0_pairs.append((fa, fe))
                both = (fa > 0) & (fe > 0)
                if both.any():
                    row["f0_cents_mae"] = float(np.mean(np.abs(1200 * np.log2(fa[both] / fe[both]))))
            out = rec["infer_out"]
            s0 = (start + g.skip_head) * upp  # offline generator sample of this block's first sample
            lo, hi = max(0, -s0), min(out.shape[0], off_gen.shape[0] - s0, n_in_frames * upp - s0)
            if hi > lo:
                ga, ge = out[lo:hi].astype(np.float64), off_gen[s0 + lo : s0 + hi].astype(np.float64)
                ga, ge = ga - ga.mean(), ge - ge.mean()  # see the module doc: DC is not compared
                gen_pairs.append((ga, ge))
                row["gen_rel_l2"] = rel_l2(ga, ge)
        rows.append(row)
    return pd.DataFrame(rows), feat_pairs, f0_pairs, gen_pairs, grid


def remove_subsonic(x: np.ndarray, sr: int, cutoff_hz: float = 20.0) -> np.ndarray:
    """Zero-phase 4th-order Butterworth high-pass at ``cutoff_hz`` (float32 in, float32 out)."""
    from scipy import signal

    x = np.asarray(x, dtype=np.float64)
    if x.size < 64:
        return (x - x.mean()).astype(np.float32)
    sos = signal.butter(4, cutoff_hz, btype="high", fs=sr, output="sos")
    return signal.sosfiltfilt(sos, x).astype(np.float32)


def _feature_row(pairs) -> dict:
    row = {"stage": "content_features", "compared": "generator input features (after retrieval), decoded frames"}
    if not pairs:
        return {**row, "n": 0}
    a = np.concatenate([p[0] for p in pairs]).astype(np.float64)
    e = np.concatenate([p[1] for p in pairs]).astype(np.float64)
    err = float(np.sum((a - e) ** 2))
    return {**row, "n": int(a.shape[0]), "rel_l2": rel_l2(a, e), "cosine": mean_frame_cosine(a, e),
            "snr_db": 10 * math.log10(float(np.sum(e**2)) / err) if err > 0 else float("inf")}


def _f0_row(pairs, if_f0: bool) -> dict:
    row = {"stage": "f0", "compared": "generator F0 input (Hz), decoded frames"}
    if not if_f0 or not pairs:
        return {**row, "compared": "voice has no F0 input", "n": 0}
    a = np.concatenate([p[0] for p in pairs])
    e = np.concatenate([p[1] for p in pairs])
    m = f0_metrics(e, a)
    return {**row, "n": int(a.size), "rel_l2": rel_l2(a, e), "cents_mae": m["cents_mae"], "f0_corr": m["f0_corr"]}


def _waveform_row(stage: str, compared: str, pairs, skip: bool = False, why: str = "") -> dict:
    row = {"stage": stage, "compared": compared}
    if skip or not pairs:
        return {**row, "compared": f"not compared ({why or 'nothing to compare'})", "n": 0}
    a = np.concatenate([p[0] for p in pairs]).astype(np.float64)
    e = np.concatenate([p[1] for p in pairs]).astype(np.float64)
    err = float(np.sum((a - e) ** 2))
    # magnitude spectra per pair (40 ms frames at 40 kHz-ish rates), pooled like rel L2
    num = den = 0.0
    for pa, pe in pairs:
        sa, se = stft_magnitude(pa, 1024, 256), stft_magnitude(pe, 1024, 256)
        num += float(np.sum((sa - se) ** 2))
        den += float(np.sum(se**2))
    return {**row, "n": int(a.size), "rel_l2": rel_l2(a, e),
            "snr_db": 10 * math.log10(float(np.sum(e**2)) / err) if err > 0 else float("inf"),
            "spectral_convergence": math.sqrt(num / den) if den > 0 else float("nan")}


def parity_sweep(models, audio: np.ndarray, sr: int, base_settings=None, *, extra_times=(0.1, 0.5, 1.0),
                 block_times=None, keep_results: bool = False):
    """:func:`stream_vs_offline` over a grid of ``extra_time`` x ``block_time``; offline runs once.

    Returns
    -------
    pandas.DataFrame
        One row per setting: :meth:`ParityResult.summary`.  With ``keep_results`` the
        :class:`ParityResult` objects are in ``df.attrs["results"]`` (same order).
    """
    base = base_settings or parity_stream_settings()
    off_s = matching_offline_settings(base)
    off = run_offline_reference(models, audio, sr, off_s)
    rows, results = [], []
    for bt in (block_times or (base.block_time,)):
        for et in extra_times:
            s = replace(base, block_time=float(bt), extra_time=float(et),
                        crossfade_time=min(base.crossfade_time, float(bt)))
            r = stream_vs_offline(models, audio, sr, s, off_s, offline_result=off)
            rows.append(r.summary())
            if keep_results:
                results.append(r)
            log.info("parity block %.3f s extra %.2f s: features rel L2 %.3f", bt, et, rows[-1]["features_rel_l2"])
    df = pd.DataFrame(rows)
    if keep_results:
        df.attrs["results"] = results
    return df
