"""Realtime block-by-block conversion with upstream RVC's realtime semantics.

:class:`StreamingConverter` reproduces ``realtime_gui.GUI.start_vc`` / ``audio_callback`` and
``infer/rtrvc.RVC.infer``: a ring of the last ``extra + crossfade + search + block`` input samples
at the stream rate, its 16 kHz twin updated by incremental resampling, HuBERT over the whole
16 kHz ring, retrieval only on frames after ``skip_head // 2``, F0 on a short window at the end
with 1024-frame pitch caches, a generator call that decodes only ``return_length`` frames after
``skip_head``, then loudness matching and a SOLA crossfade.  All sizes are whole 10 ms frames.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from rvc_lab.audio import StreamResampler, resample_offline
from rvc_lab.convert import runtime, sola, stages
from rvc_lab.convert.frontend_cache import FrontEndCache
from rvc_lab.errors import InvalidAudioError, SettingsError
from rvc_lab.f0 import METHODS
from rvc_lab.f0 import pitch as pitchmod
from rvc_lab.instrument import StageTimer
from rvc_lab.retrieval import blend_features

log = logging.getLogger(__name__)

#: Settings upstream applies while the stream runs (next block), without a restart.
LIVE_SETTINGS = ("pitch", "formant", "index_rate", "rms_mix_rate", "threshold", "f0_method", "phase_vocoder",
                 "input_noise_reduce", "output_noise_reduce")

#: Length of upstream's pitch caches (10 ms frames).
PITCH_CACHE_FRAMES = 1024


@dataclass
class StreamSettings:
    """Realtime parameters (upstream names in brackets); times in seconds.

    Attributes
    ----------
    block_time : float
        Audio per block [block_time]; rounded to whole 10 ms frames.
    crossfade_time : float
        Crossfade length [crossfade_length]; the SOLA buffer is min(crossfade, 40 ms).
    extra_time : float
        Past context fed to HuBERT and the generator [extra_time].
    f0_method : str
        One of :data:`rvc_lab.f0.METHODS`.
    pitch, formant : float
        Semitones [pitch, formant].
    index_rate, rms_mix_rate : float
        0..1 [index_rate, rms_mix_rate]; rms_mix_rate 1 disables loudness matching.
    threshold : float
        Silence gate in dB [threhold]; -60 or lower disables it.
    input_noise_reduce, output_noise_reduce : bool
        Spectral gating before / after the model [I_noise_reduce, O_noise_reduce].
    phase_vocoder : bool
        Phase-vocoder crossfade instead of sin² [use_pv, classic upstream].
    output_rate : {"stream", "model"}
        Stream at the input (device) rate or at the voice's rate [sr_type sr_device / sr_model].
    sid : int
        Speaker id (upstream's realtime path always uses 0).
    noise : bool
        False: generator random draws are zeros.
    seed : int, optional
        ``torch.manual_seed(seed + k)`` before the k-th block's generator call.
    precision : {"fp32", "bf16"}
        Compute precision of HuBERT and the generator.  "fp32" (default) is exact (upstream's
        output within float32 rounding).  "bf16" runs their matrix products and convolutions
        in bfloat16 (CPUs with AMX/AVX512-BF16): measured 1.8-2.6x faster on those two stages
        and 1.8-2.1x per block on 2 cores (block 0.10 s with fcpe: load p95 0.84-0.98),
        for ~5e-2 relative change of the features and ~2e-2 of the output
        (``bench/speed_bench.py``; :mod:`rvc_lab.convert.runtime`).
    frontend_cache : bool
        Reuse HuBERT's convolution front-end frames of earlier blocks and compute only those
        reaching the new samples (:mod:`rvc_lab.convert.frontend_cache`).  Approximate: old
        frames keep the GroupNorm statistics of their own block, which on speech moves the
        features by ~0.13 relative for ~20 % less HuBERT time: bf16 is the better trade.
    """

    block_time: float = 0.25
    crossfade_time: float = 0.05
    extra_time: float = 2.5
    f0_method: str = "rmvpe"
    pitch: float = 0.0
    formant: float = 0.0
    index_rate: float = 0.0
    rms_mix_rate: float = 0.0
    threshold: float = -60.0
    input_noise_reduce: bool = False
    output_noise_reduce: bool = False
    phase_vocoder: bool = False
    output_rate: str = "stream"
    sid: int = 0
    noise: bool = True
    seed: int | None = None
    precision: str = "fp32"
    frontend_cache: bool = False

    def validate(self) -> None:
        """Raise :class:`SettingsError` naming the first impossible setting."""
        if not self.block_time > 0:
            raise SettingsError(f"block_time={self.block_time} s must be > 0")
        if self.crossfade_time <= 0:
            raise SettingsError(f"crossfade_time={self.crossfade_time} s must be > 0")
        if self.crossfade_time > self.block_time:
            raise SettingsError(f"crossfade_time={self.crossfade_time} s must not exceed block_time={self.block_time} s")
        if self.extra_time < 0:
            raise SettingsError(f"extra_time={self.extra_time} s must be >= 0")
        if self.f0_method not in METHODS:
            raise SettingsError(f"f0 method {self.f0_method!r} unknown; choose one of {', '.join(METHODS)}")
        for name in ("index_rate", "rms_mix_rate"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise SettingsError(f"{name}={v} is outside [0, 1]")
        if not -48 <= self.pitch <= 48 or not -24 <= self.formant <= 24:
            raise SettingsError(f"pitch={self.pitch} / formant={self.formant} semitones out of range (±48 / ±24)")
        if self.output_rate not in ("stream", "model"):
            raise SettingsError(f"output_rate={self.output_rate!r}: use 'stream' or 'model'")
        runtime.check_precision(self.precision)
        if not isinstance(self.frontend_cache, bool):
            raise SettingsError(f"frontend_cache={self.frontend_cache!r} must be True or False")

    @property
    def exact(self) -> bool:
        """True when no speed/fidelity trade-off is on (the parity-tested configuration)."""
        return self.precision == "fp32" and not self.frontend_cache


@dataclass(frozen=True)
class StreamGeometry:
    """Buffer sizes derived from the settings and the stream rate (upstream ``start_vc``).

    All ``*_frame`` values are samples at the stream rate ``sr``; ``zc`` = samples per 10 ms.
    ``skip_head``, ``return_length`` are 10 ms frames.
    """

    sr: int
    zc: int
    block_frame: int
    block_frame_16k: int
    crossfade_frame: int
    sola_buffer_frame: int
    sola_search_frame: int
    extra_frame: int
    skip_head: int
    return_length: int

    @classmethod
    def from_settings(cls, s: StreamSettings, sr: int) -> "StreamGeometry":
        zc = sr // 100

        def frames(seconds: float) -> int:
            return int(np.round(seconds * sr / zc)) * zc

        block = frames(s.block_time)
        if block == 0:
            raise SettingsError(f"block_time={s.block_time} s is shorter than one 10 ms frame")
        crossfade = frames(s.crossfade_time)
        sola_buffer = min(crossfade, 4 * zc)
        if sola_buffer == 0:
            raise SettingsError(f"crossfade_time={s.crossfade_time} s is shorter than one 10 ms frame")
        search = zc
        extra = frames(s.extra_time)
        return cls(
            sr=sr, zc=zc, block_frame=block, block_frame_16k=160 * block // zc, crossfade_frame=crossfade,
            sola_buffer_frame=sola_buffer, sola_search_frame=search, extra_frame=extra,
            skip_head=extra // zc, return_length=(block + sola_buffer + search) // zc,
        )

    @property
    def input_frame(self) -> int:
        """Length of the input ring at the stream rate."""
        return self.extra_frame + self.crossfade_frame + self.sola_search_frame + self.block_frame

    @property
    def algorithmic_latency_s(self) -> float:
        """Block + crossfade + SOLA search (s): what the chain adds before any device latency."""
        return (self.block_frame + self.crossfade_frame + self.sola_search_frame) / self.sr


class StreamingConverter:
    """Converts a stream block by block, with upstream's realtime maths.

    Parameters
    ----------
    models : rvc_lab.convert.models.ConverterModels
    settings : StreamSettings
    sample_rate : int
        Rate of the incoming blocks (the device rate).  With ``output_rate="model"`` the caller
        must feed blocks at the voice's rate (see :func:`stream_file`).
    timer : StageTimer, optional
        Per-block stage times; a disabled timer costs nothing.
    record : bool
        Keep per-block intermediate values in :attr:`records` (one dict per block: ``input_16k``
        (the 16 kHz ring the content encoder reads), ``pitch``,
        ``pitchf`` [p_len] as given to the generator, ``feats`` [p_len, C], ``infer_out`` at the
        voice rate, ``sola_offset``): the streaming stage vectors of reference cases.
    """

    def __init__(self, models, settings: StreamSettings, sample_rate: int, timer: StageTimer | None = None,
                 record: bool = False):
        settings.validate()
        if sample_rate % 100:
            raise SettingsError(f"stream rate {sample_rate} Hz is not a multiple of 100 Hz (10 ms frames)")
        self.models = models
        self.settings = replace(settings)
        voice = models.voice
        self.tgt_sr = voice.tgt_sr
        sr = self.tgt_sr if settings.output_rate == "model" else sample_rate
        if sr != sample_rate:
            raise SettingsError(f"output_rate='model' needs blocks at the voice rate {self.tgt_sr} Hz, got {sample_rate} Hz")
        self.geometry = g = StreamGeometry.from_settings(settings, sr)
        self.timer = timer or StageTimer(enabled=False)
        self.block_index = 0
        self.nonfinite_blocks = 0
        self.records: list[dict] | None = [] if record else None

        self.input_wav = torch.zeros(g.input_frame, dtype=torch.float32)
        self.input_wav_denoise = self.input_wav.clone()
        self.input_wav_res = torch.zeros(160 * g.input_frame // g.zc, dtype=torch.float32)
        self.rms_buffer = np.zeros(4 * g.zc, dtype=np.float32)
        self.sola_buffer = torch.zeros(g.sola_buffer_frame, dtype=torch.float32)
        self.nr_buffer = self.sola_buffer.clone()
        self.output_buffer = self.input_wav.clone()
        self.cache_pitch = torch.zeros(PITCH_CACHE_FRAMES, dtype=torch.long)
        self.cache_pitchf = torch.zeros(PITCH_CACHE_FRAMES, dtype=torch.float32)
        self.fade_in, self.fade_out = sola.fade_windows(g.sola_buffer_frame)


        self._resampler_cls = StreamResampler
        self.resampler_in = StreamResampler(sr, 16000)
        self.resampler_out = StreamResampler(self.tgt_sr, sr) if self.tgt_sr != sr else None
        self._formant_resamplers: dict[int, object] = {}
        self._gate = None
        # build (or fetch) the runtime model copies now, not inside the first block's deadline
        runtime.runtime_encoder(models.encoder, settings.precision)
        runtime.runtime_generator(models.net_g, settings.precision)
        self.frontend = None
        if settings.frontend_cache and getattr(models.encoder, "exported", False):
            # an exported encoder is one file from audio to features: no front end to cache
            log.info("frontend_cache ignored: the %s content encoder recomputes the whole ring", models.encoder.backend)
        elif settings.frontend_cache:
            # the tail rewritten per block: the block, 2 zc more after the silence gate, and the
            # resampler's 160-sample overlap (gate and overlap taken at their largest)
            self.frontend = FrontEndCache(
                models.encoder.conv_stack, self.input_wav_res.shape[0], g.block_frame_16k,
                g.block_frame_16k + 480, dtype=runtime.compute_dtype(settings.precision))

    # ------------------------------------------------------------------ settings
    def update(self, **changes) -> None:
        """Change live settings (pitch, formant, index_rate, rms_mix_rate, threshold, f0_method, ...).

        They take effect at the next block.  Geometry settings (block, crossfade, extra time,
        output rate) need a new converter: changing them raises :class:`SettingsError`.
        """
        names = {f.name for f in fields(StreamSettings)}
        for k in changes:
            if k not in names:
                raise SettingsError(f"unknown setting {k!r}")
            if k not in LIVE_SETTINGS:
                raise SettingsError(f"{k} cannot change while streaming; start a new StreamingConverter")
        new = replace(self.settings, **changes)
        new.validate()
        self.settings = new

    # ------------------------------------------------------------------ warm-up
    def warm_up(self, blocks: int = 2) -> list[float]:
        """Pay every stage's one-off first-call costs on silence, leaving this converter as it was.

        A first block is slow for reasons that have nothing to do with audio: librosa's lazy
        imports in the loudness match, the F0 model's construction, oneDNN building kernels for
        the generator's shapes (measured: 1133 ms for a 100 ms bf16 fcpe block, 644 ms of it in
        rms_mix).  Live, that is an overrun before any audio is converted.  Here a twin converter
        (same models, same settings, silence gate and loudness match switched on so that a live
        change to them finds them warm too) converts ``blocks`` blocks of zeros and is thrown
        away; torch's random state is restored afterwards (the twin's generator drew noise), and
        this converter's own lazily built helpers are built now.  Its buffers, block counter,
        records and timer are untouched: its output is exactly a fresh converter's.

        Call it from the thread that will convert (torch's OpenMP worker pool belongs to the
        calling thread).

        Parameters
        ----------
        blocks : int
            Silent blocks to convert (the second one shows what is left after the first).

        Returns
        -------
        list of float
            Wall time of each warm-up block (ms).
        """
        import time

        s = self.settings
        twin_settings = replace(s, threshold=max(s.threshold, -59.0), rms_mix_rate=min(s.rms_mix_rate, 0.5),
                                seed=None)
        rng = torch.get_rng_state()
        try:
            twin = StreamingConverter(self.models, twin_settings, self.geometry.sr)
            zeros = np.zeros(self.geometry.block_frame, dtype=np.float32)
            times = []
            for _ in range(max(1, int(blocks))):
                t0 = time.perf_counter()
                twin.process_block(zeros)
                times.append(1000.0 * (time.perf_counter() - t0))
        finally:
            torch.set_rng_state(rng)
        if s.input_noise_reduce or s.output_noise_reduce:
            self._spectral_gate()
        log.debug("warm-up: %s ms per silent block", ", ".join(f"{t:.0f}" for t in times))
        return times

    # ------------------------------------------------------------------ blocks
    def process_block(self, block: np.ndarray) -> np.ndarray:
        """Convert one block.

        Parameters
        ----------
        block : np.ndarray
            float32 [block_frame] or [block_frame, channels] at the stream rate.

        Returns
        -------
        np.ndarray
            float32 [block_frame] at the stream rate.  A block holding NaN/Inf gives silence (the
            input ring takes zeros instead, so timing is kept) and is counted.
        """
        g, s = self.geometry, self.settings
        x = np.asarray(block, dtype=np.float32)
        if x.ndim == 2:
            x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
        if x.ndim != 1 or x.shape[0] != g.block_frame:
            raise InvalidAudioError(f"block has shape {np.shape(block)}; expected {g.block_frame} samples "
                                    f"({g.block_frame / g.sr * 1000:.0f} ms at {g.sr} Hz), optionally x channels")
        k = self.block_index
        self.block_index += 1
        self.timer.start_block(block=k, block_ms=g.block_frame / g.sr * 1000)
        finite = bool(np.all(np.isfinite(x)))
        if not finite:
            self.nonfinite_blocks += 1
            log.warning("block %d holds NaN/Inf samples: fed as zeros, output silent", k)
            x = np.zeros_like(x)

        y = self._silence_gate(x) if s.threshold > -60 else x
        self._push_input(y)
        if s.input_noise_reduce:
            with self.timer.stage("noise_reduce"):
                src = self._denoise_input()
            n16 = g.block_frame_16k + 160
        else:
            src = self.input_wav[-y.shape[0] - 2 * g.zc :]
            n16 = 160 * (y.shape[0] // g.zc + 1)
        with self.timer.stage("input_resample"):
            # refresh the tail of the 16 kHz ring from the new samples plus 2 zc of left context;
            # the first 10 ms of the resampled piece only served as context and is dropped
            self.input_wav_res[-n16:] = self.resampler_in(src)[160:]
        out = self._infer(seed=None if s.seed is None else s.seed + k)
        if self.resampler_out is not None:
            with self.timer.stage("output_resample"):
                out = self.resampler_out(out)
        if s.output_noise_reduce:
            with self.timer.stage("noise_reduce"):
                out = self._denoise_output(out)
        if s.rms_mix_rate < 1:
            with self.timer.stage("rms_mix"):
                ref = (self.input_wav_denoise if s.input_noise_reduce else self.input_wav)[g.extra_frame :]
                out = stages.rms_mix_stream(ref, out, g.zc, s.rms_mix_rate)
        with self.timer.stage("sola_crossfade"):
            head = out[: g.sola_buffer_frame + g.sola_search_frame]
            offset = sola.sola_offset(head, self.sola_buffer)
            emitted, self.sola_buffer = sola.crossfade_block(
                out, offset, self.sola_buffer, self.fade_in, self.fade_out, g.block_frame, s.phase_vocoder)
        self.timer.note(sola_offset=offset, nonfinite=not finite)
        if self.records is not None:
            self._record["sola_offset"] = offset
            self.records.append(self._record)
        self.timer.end_block()
        result = emitted.numpy()
        return result if finite else np.zeros_like(result)

    # ------------------------------------------------------------------ steps
    def _silence_gate(self, x: np.ndarray) -> np.ndarray:
        """Zero 10 ms frames quieter than the threshold; returns block + 2 zc samples (upstream)."""
        import librosa

        g = self.geometry
        zc = g.zc
        y = np.append(self.rms_buffer, x)
        rms = librosa.feature.rms(y=y, frame_length=4 * zc, hop_length=zc)[:, 2:]
        self.rms_buffer[:] = y[-4 * zc :]
        y = y[2 * zc - zc // 2 :]
        quiet = librosa.amplitude_to_db(rms, ref=1.0)[0] < self.settings.threshold
        for i in np.flatnonzero(quiet):
            y[i * zc : (i + 1) * zc] = 0
        return y[zc // 2 :]

    def _push_input(self, y: np.ndarray) -> None:
        g = self.geometry
        self.input_wav[: -g.block_frame] = self.input_wav[g.block_frame :].clone()
        self.input_wav[-y.shape[0] :] = torch.from_numpy(np.ascontiguousarray(y))
        self.input_wav_res[: -g.block_frame_16k] = self.input_wav_res[g.block_frame_16k :].clone()

    def _denoise_input(self) -> torch.Tensor:
        """Spectral-gate the newest block (noise reference: the whole input ring), crossfaded with the
        previous gated tail; returns the denoised samples to resample (block + 2 zc)."""
        g = self.geometry
        self.input_wav_denoise[: -g.block_frame] = self.input_wav_denoise[g.block_frame :].clone()
        seg = self.input_wav[-g.sola_buffer_frame - g.block_frame :]
        seg = self._spectral_gate()(seg.unsqueeze(0), self.input_wav.unsqueeze(0)).squeeze(0)
        seg[: g.sola_buffer_frame] *= self.fade_in
        seg[: g.sola_buffer_frame] += self.nr_buffer * self.fade_out
        self.input_wav_denoise[-g.block_frame :] = seg[: g.block_frame]
        self.nr_buffer[:] = seg[g.block_frame :]
        return self.input_wav_denoise[-g.block_frame - 2 * g.zc :]

    def _spectral_gate(self):
        if self._gate is None:
            from noisereduce.torchgate import TorchGate

            self._gate = TorchGate(sr=self.geometry.sr, n_fft=4 * self.geometry.zc, prop_decrease=0.9)
        return self._gate

    def _denoise_output(self, out: torch.Tensor) -> torch.Tensor:
        g = self.geometry
        self.output_buffer[: -g.block_frame] = self.output_buffer[g.block_frame :].clone()
        self.output_buffer[-g.block_frame :] = out[-g.block_frame :]
        return self._spectral_gate()(out.unsqueeze(0), self.output_buffer.unsqueeze(0)).squeeze(0)

    @torch.no_grad()
    def _infer(self, seed: int | None) -> torch.Tensor:
        """upstream ``RVC.infer`` on the 16 kHz ring -> float32 [return_length * tgt_sr / 100]."""
        g, s, m = self.geometry, self.settings, self.models
        voice = m.voice
        timer = self.timer
        with timer.stage("content_features"):
            if self.frontend is not None:
                conv_feats = self.frontend(self.input_wav_res)
                feats = stages.content_features_from_conv(m.encoder, conv_feats, voice.version, s.precision)
            else:
                feats = stages.content_features(m.encoder, self.input_wav_res, voice.version, s.precision)
            feats = torch.cat((feats, feats[:, -1:, :]), 1)
        if m.index is not None and s.index_rate != 0:
            with timer.stage("retrieval"):
                # frames before skip_head // 2 are never decoded: not worth searching
                tail = feats[0, g.skip_head // 2 :]
                blended, applied = blend_features(tail, m.index, s.index_rate)
                if applied:
                    feats[0, g.skip_head // 2 :] = blended
        p_len = self.input_wav_res.shape[0] // 160
        factor = 2 ** (s.formant / 12)
        return_length2 = int(np.ceil(g.return_length * factor))
        pitch = pitchf = None
        if voice.if_f0:
            with timer.stage("f0"):
                pitch, pitchf = self._block_pitch(p_len, return_length2)
        feats = stages.upsample_to_pitch_frames(feats)[:, :p_len, :]
        with timer.stage("generator"):
            out = stages.run_generator(
                m.net_g, feats, p_len, pitch, pitchf, s.sid, skip_head=g.skip_head,
                return_length=g.return_length, return_length2=return_length2, noise=s.noise, seed=seed,
                precision=s.precision)
            upp_res = int(np.floor(factor * self.tgt_sr // 100))
            if upp_res != self.tgt_sr // 100:
                if upp_res not in self._formant_resamplers:
                    self._formant_resamplers[upp_res] = self._resampler_cls(upp_res, self.tgt_sr // 100)
                out = self._formant_resamplers[upp_res](out[: g.return_length * upp_res])
        if self.records is not None:
            self._record = {
                "input_16k": self.input_wav_res.clone().numpy(),  # the encoder's input: where a port starts
                "feats": feats[0].clone().numpy(),
                "pitch": None if pitch is None else pitch[0].clone().numpy(),
                "pitchf": None if pitchf is None else pitchf[0].clone().numpy(),
                "infer_out": out.clone().numpy(),
            }
        return out

    def _block_pitch(self, p_len: int, return_length2: int) -> tuple[torch.Tensor, torch.Tensor]:
        """F0 of the ring's tail, merged into the pitch caches; returns net_g's pitch inputs [1, p_len]."""
        g, s = self.geometry, self.settings
        n = g.block_frame_16k + 800
        if s.f0_method == "rmvpe":
            n = 5120 * ((n - 1) // 5120 + 1) - 160  # RMVPE's U-Net wants 32-frame multiples
        est = self.models.f0_estimator(s.f0_method)
        f0 = est.realtime(self.input_wav_res[-n:])
        f0 = pitchmod.interpolate_unvoiced(f0)
        f0 = pitchmod.shift_semitones(f0, s.pitch - s.formant)
        f0t = torch.from_numpy(np.asarray(f0)).float()
        coarse = pitchmod.coarse_pitch_torch(f0t)
        shift = g.block_frame_16k // 160
        self.cache_pitch[:-shift] = self.cache_pitch[shift:].clone()
        self.cache_pitchf[:-shift] = self.cache_pitchf[shift:].clone()
        # the first 3 and the last frame of the window are edge-affected: keep the cached values
        self.cache_pitch[4 - coarse.shape[0] :] = coarse[3:-1]
        self.cache_pitchf[4 - coarse.shape[0] :] = f0t[3:-1]
        pitch = self.cache_pitch[None, -p_len:]
        pitchf = self.cache_pitchf[None, -p_len:] * return_length2 / g.return_length
        return pitch, pitchf


def stream_block_count(n_samples: int, g: StreamGeometry) -> int:
    """Blocks needed to feed ``n_samples`` and flush the tail (see DESIGN.md)."""
    return (math.ceil(n_samples / g.block_frame)
            + math.ceil((g.crossfade_frame + g.sola_search_frame) / g.block_frame) + 1)


def stream_file(models, audio: np.ndarray, sr: int, settings: StreamSettings, *, timer: StageTimer | None = None,
                progress: bool = False, record: bool = False) -> tuple[np.ndarray, int, StreamingConverter]:
    """Run a whole signal through :class:`StreamingConverter` with a simulated clock.

    Parameters
    ----------
    audio : np.ndarray
        float32 [N] mono at ``sr`` (the stream/device rate).
    sr : int
        Its rate.  With ``settings.output_rate == "model"`` the signal is first resampled to the
        voice's rate, as a device opened at that rate would deliver it.

    Returns
    -------
    out : np.ndarray
        float32: every output block concatenated, unaligned (the chain's delay is in it).
    out_sr : int
        Stream rate.
    converter : StreamingConverter
        With its timer (trace) and counters.
    """
    x = np.asarray(audio, dtype=np.float32)
    if settings.output_rate == "model" and sr != models.voice.tgt_sr:
        log.info("output rate 'model': input resampled %d -> %d Hz", sr, models.voice.tgt_sr)
        x = resample_offline(x, sr, models.voice.tgt_sr).astype(np.float32)
        sr = models.voice.tgt_sr
    conv = StreamingConverter(models, settings, sr, timer=timer, record=record)
    g = conv.geometry
    n_blocks = stream_block_count(x.shape[0], g)
    padded = np.zeros(n_blocks * g.block_frame, dtype=np.float32)
    padded[: x.shape[0]] = x
    blocks = range(n_blocks)
    if progress:
        from tqdm import tqdm

        blocks = tqdm(blocks, desc="stream", unit="block")
    out = np.concatenate([conv.process_block(padded[i * g.block_frame : (i + 1) * g.block_frame]) for i in blocks])
    return out, sr, conv
