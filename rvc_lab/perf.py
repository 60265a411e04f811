"""Speed, scaling and memory of the streaming engine, and the fidelity cost of its fast modes.

Absolute CPU times drift with machine load, so everything here measures the configurations it
compares *side by side*: one converter per configuration, fed block by block in turns
(:func:`run_side_by_side`), so that a load change hits all of them alike.  With more than a
handful of configurations alive, raise oneDNN's kernel cache before torch runs its first
convolution (``ONEDNN_PRIMITIVE_CACHE_CAPACITY=16384``, as ``bench/speed_bench.py`` does):
at its default of 1024 kernels a 16-configuration sweep recompiles kernels every block.  Times are wall-clock
milliseconds per block from :class:`rvc_lab.instrument.StageTimer`; "load" is compute time over
block time (< 1 keeps up with real time).

* :func:`mode_table` -- speed-up and fidelity of fast modes against exact mode;
* :func:`scaling_table` / :func:`fit_cost_model` -- cost per block against the context
  (``extra_time``) and the block length, with a least-squares cost model
  ``ms = fixed + a * context_s + b * decoded_s``;
* :func:`memory_trace` -- resident memory of a long simulated stream (``/proc/self/status``);
* :func:`flop_counts` -- FLOPs of the model stages of one block (``torch.utils.flop_counter``).
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from rvc_lab.convert.runtime import compute_dtype
from rvc_lab.convert.streaming import (
    StreamGeometry,
    StreamingConverter,
    StreamSettings,
    stream_block_count,
    stream_file,
)
from rvc_lab.instrument import StageTimer, stage_summary, summarize_trace
from rvc_lab.metrics.compare import compare_audio
from rvc_lab.metrics.spectral import rel_l2
from rvc_lab.parity import remove_subsonic

log = logging.getLogger(__name__)

#: Upstream's full streaming block as stored in ``../shared/parity/README.md`` ("Upstream CPU
#: timings": CPU fp32, 2 threads, torch 2.13): median ms per block.  Another torch build and
#: another day: ``bench/speed_bench.py --upstream-checkout`` measures upstream side by side instead.
UPSTREAM_BLOCK_MS = {"defaults": 730.0, "fcpe_formant": 535.0}

#: Upstream's realtime defaults (``realtime_gui.py``).
UPSTREAM_DEFAULTS = dict(block_time=0.25, crossfade_time=0.05, extra_time=2.5, f0_method="rmvpe")

#: Model stages whose cost the precision changes.
MODEL_STAGES = ("content_features", "f0", "generator")


# ----------------------------------------------------------------------------------- inputs
def harmonic_glide(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """A voiced test signal: 11 harmonics of a 106-212 Hz glide plus faint noise, float32 [N].

    Any signal costs the same compute; this one keeps every F0 method voiced.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    f0 = 150 * 2 ** (np.sin(2 * np.pi * 0.3 * t) / 2)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 12)) * 0.2 + 0.005 * rng.standard_normal(t.shape)
    return x.astype(np.float32)


def _tile(audio: np.ndarray, n: int) -> np.ndarray:
    reps = max(1, math.ceil(n / max(audio.shape[0], 1)))
    return np.tile(np.asarray(audio, dtype=np.float32), reps)[: max(n, audio.shape[0])]


# ------------------------------------------------------------------------------- measuring
def run_side_by_side(models, settings: dict, audio: np.ndarray, sr: int, *, blocks: int | None = None,
                     record: bool = False, on_block=None) -> dict:
    """Stream ``audio`` through one converter per configuration, one block of each in turn.

    Parameters
    ----------
    models : rvc_lab.convert.models.ConverterModels or dict[str, ConverterModels]
        The models of every configuration, or per configuration name (e.g. exported backends
        measured beside eager torch).
    settings : dict[str, StreamSettings]
        Configurations by name (block lengths may differ).
    audio : np.ndarray
        float32 [N] mono at ``sr`` (the stream rate); tiled when a configuration needs more.
    blocks : int, optional
        Blocks per configuration; default: enough to feed and flush ``audio``.
    record : bool
        Keep per-block intermediates (``converter.records``).
    on_block : callable, optional
        ``on_block(name, converter)`` after each block of each configuration: e.g. timing
        another implementation on the same 16 kHz ring (``bench/speed_bench.py``, upstream).

    Returns
    -------
    dict[str, dict]
        Per name: ``trace`` (DataFrame, one row per block, stage ms), ``out`` (float32 output
        at ``sr``, unaligned), ``converter``.
    """
    if len(settings) > 4 and "ONEDNN_PRIMITIVE_CACHE_CAPACITY" not in os.environ:
        log.warning("%d configurations side by side with oneDNN's default kernel cache: times may include "
                    "kernel recompilation (set ONEDNN_PRIMITIVE_CACHE_CAPACITY=16384)", len(settings))
    state = {}
    for name, s in settings.items():
        timer = StageTimer(enabled=True)
        conv = StreamingConverter(models[name] if isinstance(models, dict) else models, s, sr, timer=timer,
                                  record=record)
        g = conv.geometry
        n = blocks if blocks is not None else stream_block_count(audio.shape[0], g)
        x = _tile(audio, n * g.block_frame) if n * g.block_frame > audio.shape[0] else audio
        padded = np.zeros(n * g.block_frame, dtype=np.float32)
        m = min(x.shape[0], padded.shape[0])
        padded[:m] = x[:m]
        state[name] = dict(conv=conv, timer=timer, x=padded, n=n, out=[])
    for i in range(max(st["n"] for st in state.values())):
        for name, st in state.items():
            if i < st["n"]:
                bf = st["conv"].geometry.block_frame
                st["out"].append(st["conv"].process_block(st["x"][i * bf : (i + 1) * bf]))
                if on_block is not None:
                    on_block(name, st["conv"])
    return {name: dict(trace=st["timer"].to_frame(), out=np.concatenate(st["out"]), converter=st["conv"])
            for name, st in state.items()}


def _decoded_features(conv) -> np.ndarray:
    """Generator input features of the decoded frames of every block, stacked [blocks * R, C]."""
    g = conv.geometry
    return np.concatenate([r["feats"][g.skip_head : g.skip_head + g.return_length] for r in conv.records])


def mode_table(models, modes: dict, audio: np.ndarray, sr: int, base=None, *, warmup: int = 3,
               reference: str = "exact", fidelity: bool = True) -> pd.DataFrame:
    """Speed-up and fidelity of streaming modes against a reference mode, measured side by side.

    Parameters
    ----------
    modes : dict[str, dict]
        Mode name -> :class:`StreamSettings` overrides (e.g. ``{"exact": {}, "bf16":
        {"precision": "bf16"}}``); must contain ``reference``.
    audio : np.ndarray
        float32 [N] at ``sr``; every mode converts all of it (tiled to at least ``warmup`` + 30
        blocks of the longest block).
    base : StreamSettings, optional
        Common settings (default: upstream's defaults with the generator noise off, so that
        differences come from the modes only).
    fidelity : bool
        Compare outputs (costs a few seconds per mode).

    Returns
    -------
    pandas.DataFrame
        One row per mode: the :func:`summarize_trace` figures, ``speedup`` (reference median /
        mode median), ``speedup_model_stages`` (same for HuBERT + F0 + generator), and against
        the reference output: ``feat_rel_l2`` (generator input features, decoded frames),
        ``rel_l2``, ``snr_db``, ``mcd_db``, ``f0_corr``, ``f0_raw_pitch_accuracy``,
        ``f0_cents_mae``, ``delay_samples`` (:func:`rvc_lab.metrics.compare.compare_audio` after
        delay alignment, both outputs high-passed at 20 Hz: random-weight voices emit a DC
        offset).  The F0 figures track both outputs with WORLD harvest; on the noisy output of a
        random-weight voice harvest jumps octaves, so they move a lot for small waveform
        differences (bf16 at 33 dB SNR: raw pitch accuracy ~0.7, correlation ~0.0-0.7).
    """
    if reference not in modes:
        raise ValueError(f"reference mode {reference!r} is not among {list(modes)}")
    base = base or StreamSettings(**UPSTREAM_DEFAULTS, noise=False)
    settings = {name: replace(base, **kw) for name, kw in modes.items()}
    longest = max(StreamGeometry.from_settings(s, sr).block_frame for s in settings.values())
    audio = _tile(audio, (warmup + 30) * longest)
    runs = run_side_by_side(models, settings, audio, sr, record=fidelity)
    ref = runs[reference]
    ref_row = summarize_trace(ref["trace"], warmup)
    ref_stage = sum(ref_row.get(f"{s}_ms", 0.0) for s in MODEL_STAGES)
    ref_out = remove_subsonic(ref["out"], sr)
    ref_feats = _decoded_features(ref["converter"]) if fidelity else None
    rows = []
    for name, run in runs.items():
        row = {"mode": name, **{k: v for k, v in modes[name].items()}}
        row.update(summarize_trace(run["trace"], warmup))
        row["speedup"] = ref_row["median_ms"] / row["median_ms"]
        stage = sum(row.get(f"{s}_ms", 0.0) for s in MODEL_STAGES)
        row["speedup_model_stages"] = ref_stage / stage if stage else float("nan")
        if fidelity:
            feats = _decoded_features(run["converter"])
            row["feat_rel_l2"] = rel_l2(feats, ref_feats)
            m = compare_audio(remove_subsonic(run["out"], sr), ref_out, sr, align=True, max_delay_s=0.05)
            for k in ("rel_l2", "snr_db", "mcd_db", "f0_corr", "f0_raw_pitch_accuracy", "f0_cents_mae",
                      "delay_samples"):
                row[k] = m[k]
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------- scaling
def scaling_table(models, *, extra_times=(0.5, 1.0, 2.0, 3.0, 5.0), block_times=(0.05, 0.1, 0.25, 0.5),
                  precisions=("fp32", "bf16"), base=None, fixed_block: float = 0.25, fixed_extra: float = 2.5,
                  blocks: int = 30, warmup: int = 3, sr: int = 48000) -> pd.DataFrame:
    """Cost per block against ``extra_time`` (at ``fixed_block``) and ``block_time`` (at ``fixed_extra``).

    All configurations run side by side in one pass (round-robin over blocks).

    Returns
    -------
    pandas.DataFrame
        One row per (precision, block_time, extra_time): ``sweep`` ("extra" or "block"),
        ``context_s`` (length of the ring HuBERT and the generator's encoder see),
        ``decoded_s`` (audio the decoder synthesises per block: block + SOLA buffer + search),
        ``algorithmic_latency_ms`` and the :func:`summarize_trace` figures.
    """
    base = base or StreamSettings(**UPSTREAM_DEFAULTS, noise=False)
    configs, meta = {}, {}
    for prec in precisions:
        points = [("extra", fixed_block, e) for e in extra_times] + [("block", b, fixed_extra) for b in block_times]
        for sweep, b, e in points:
            key = f"{prec}|{b:g}|{e:g}"
            if key in configs:
                meta[key]["sweep"] += f"+{sweep}"
                continue
            s = replace(base, precision=prec, block_time=b, extra_time=e, crossfade_time=min(base.crossfade_time, b))
            configs[key] = s
            g = StreamGeometry.from_settings(s, sr)
            meta[key] = dict(precision=prec, sweep=sweep, block_time=b, extra_time=e,
                             crossfade_time=s.crossfade_time, context_s=g.input_frame / sr,
                             decoded_s=g.return_length / 100, algorithmic_latency_ms=g.algorithmic_latency_s * 1000)
    longest = max(StreamGeometry.from_settings(s, sr).block_frame for s in configs.values())
    audio = harmonic_glide((warmup + blocks) * longest / sr, sr)
    runs = run_side_by_side(models, configs, audio, sr, blocks=warmup + blocks)
    rows = [{**meta[k], **summarize_trace(runs[k]["trace"], warmup)} for k in configs]
    return pd.DataFrame(rows)


def fit_cost_model(df: pd.DataFrame, target: str = "median_ms") -> pd.DataFrame:
    """Least-squares cost model per precision.

    ``ms = fixed_ms + ms_per_context_s * context_s + ms_per_decoded_s * decoded_s``.

    The context term is HuBERT and the generator's encoder (both run over the whole ring: linear
    in its length up to a small quadratic attention term); the decoded term is the HiFi-GAN
    decoder (it synthesises block + SOLA buffer + search each block); the rest (F0 window,
    resampling, SOLA) is nearly constant.

    Returns
    -------
    pandas.DataFrame
        Indexed by precision: ``fixed_ms``, ``ms_per_context_s``, ``ms_per_decoded_s``, ``r2``,
        ``rms_residual_ms``, ``n``.
    """
    rows = {}
    for prec, d in df.groupby("precision", sort=False):
        a = np.column_stack([np.ones(len(d)), d["context_s"].to_numpy(float), d["decoded_s"].to_numpy(float)])
        y = d[target].to_numpy(float)
        coef, *_ = np.linalg.lstsq(a, y, rcond=None)
        resid = y - a @ coef
        ss = float(np.sum((y - y.mean()) ** 2))
        rows[prec] = {"fixed_ms": coef[0], "ms_per_context_s": coef[1], "ms_per_decoded_s": coef[2],
                      "r2": 1 - float(np.sum(resid**2)) / ss if ss > 0 else float("nan"),
                      "rms_residual_ms": float(np.sqrt(np.mean(resid**2))), "n": int(len(d))}
    return pd.DataFrame.from_dict(rows, orient="index")


def predict_cost_ms(fit: pd.DataFrame, precision: str, context_s, decoded_s):
    """Evaluate :func:`fit_cost_model`'s model (ms per block) for one precision."""
    c = fit.loc[precision]
    return c["fixed_ms"] + c["ms_per_context_s"] * np.asarray(context_s) + c["ms_per_decoded_s"] * np.asarray(decoded_s)


def max_realtime_extra(fit: pd.DataFrame, precision: str, block_time: float, crossfade_time: float = 0.05,
                       headroom: float = 1.0) -> float:
    """Longest ``extra_time`` (s) the cost model predicts keeps ``cost <= headroom * block`` (may be < 0)."""
    c = fit.loc[precision]
    sola = min(crossfade_time, 0.04)
    decoded = block_time + sola + 0.01
    fixed_context = crossfade_time + 0.01 + block_time  # ring = extra + these
    budget = headroom * block_time * 1000 - c["fixed_ms"] - c["ms_per_decoded_s"] * decoded
    return float(budget / c["ms_per_context_s"] - fixed_context) if c["ms_per_context_s"] > 0 else float("inf")


#: Grids of :func:`scaling_study`: the report's and notebook's sweep, and a small one for CI.
SCALING_GRID = dict(extra_times=(0.5, 1.0, 2.5, 5.0), block_times=(0.1, 0.25, 0.5), fixed_block=0.25,
                    fixed_extra=2.5, blocks=8, warmup=2)
SCALING_GRID_QUICK = dict(extra_times=(0.3, 1.0), block_times=(0.1, 0.2), fixed_block=0.2, fixed_extra=0.3,
                          blocks=3, warmup=1)


def scaling_study(models, f0_method: str, *, quick: bool = False, sr: int = 48000,
                  precisions=("fp32", "bf16")) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cost per block against extra_time and block_time, with the fitted cost model per precision.

    What the report and the latency notebook show (``bench/speed_bench.py`` runs a finer grid
    with more blocks).  Grid: :data:`SCALING_GRID` (``quick``: :data:`SCALING_GRID_QUICK`);
    crossfade 0.05 s (at most the block), generator noise off.

    Returns
    -------
    table : pandas.DataFrame
        :func:`scaling_table`'s rows.
    fit : pandas.DataFrame
        :func:`fit_cost_model` of ``table``, plus ``realtime_extra_s_block_0.10`` and
        ``..._0.25``: the longest extra_time (s) the model keeps within real time at those
        block times (negative: not even with no extra context).
    """
    grid = SCALING_GRID_QUICK if quick else SCALING_GRID
    base = StreamSettings(block_time=grid["fixed_block"], crossfade_time=0.05, extra_time=grid["fixed_extra"],
                          f0_method=f0_method, noise=False)
    table = scaling_table(models, base=base, precisions=precisions, sr=sr, **grid)
    fit = fit_cost_model(table)
    for block in (0.10, 0.25):
        fit[f"realtime_extra_s_block_{block:.2f}"] = [max_realtime_extra(fit, p, block) for p in fit.index]
    return table, fit


# ---------------------------------------------------------------------------------- memory
def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MiB, from ``/proc/self/status``."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, kb = line.split()[:2]
                values[key[:-1]] = int(kb) / 1024
    return values.get("VmRSS", float("nan")), values.get("VmHWM", float("nan"))


def anon_rss_mb() -> float:
    """Anonymous resident memory of this process in MiB (``RssAnon``): what a leak grows.

    ``VmRSS`` also counts mapped library pages, which the kernel drops and reloads under memory
    pressure, so on a busy machine it moves by hundreds of MiB without any allocation.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def memory_trace(models, settings, seconds: float, sr: int = 48000, every: int = 10, audio: np.ndarray | None = None,
                 ) -> pd.DataFrame:
    """Resident memory while streaming ``seconds`` of audio (simulated clock).

    Parameters
    ----------
    settings : StreamSettings
    seconds : float
        Length of the stream; the input is ``audio`` tiled (default :func:`harmonic_glide`).
    every : int
        Sample RSS every ``every`` blocks (and after the last one).

    Returns
    -------
    pandas.DataFrame
        ``block``, ``audio_s`` (stream time), ``rss_mb``, ``peak_rss_mb``.
    """
    conv = StreamingConverter(models, settings, sr)
    g = conv.geometry
    n_blocks = int(math.ceil(seconds * sr / g.block_frame))
    src = harmonic_glide(min(seconds, 10.0), sr) if audio is None else np.asarray(audio, dtype=np.float32)
    rows = []
    for i in range(n_blocks):
        start = (i * g.block_frame) % max(src.shape[0] - g.block_frame, 1)
        conv.process_block(src[start : start + g.block_frame])
        if i % every == 0 or i == n_blocks - 1:
            cur, peak = rss_mb()
            rows.append({"block": i, "audio_s": (i + 1) * g.block_frame / sr, "rss_mb": cur, "peak_rss_mb": peak})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------- FLOPs
def flop_counts(models, settings, sr: int = 48000, warmup: int = 3) -> dict:
    """FLOPs of HuBERT, F0 and the generator in one block (matrix products and convolutions).

    Counted with :class:`torch.utils.flop_counter.FlopCounterMode` inside each timed stage of
    the block after ``warmup`` blocks (the converter's stage timer is swapped for a counting one).  Returns ``{"content_features": flops, "f0": ...,
    "generator": ...}``.
    """
    conv = StreamingConverter(models, settings, sr)
    g = conv.geometry
    x = harmonic_glide((warmup + 1) * g.block_frame / sr, sr)
    for i in range(warmup):
        conv.process_block(x[i * g.block_frame : (i + 1) * g.block_frame])
    conv.timer = _FlopCountingTimer()
    conv.process_block(x[warmup * g.block_frame : (warmup + 1) * g.block_frame])
    return {name: conv.timer.flops.get(name, 0) for name in MODEL_STAGES}


class _FlopCountingTimer(StageTimer):
    """A :class:`~rvc_lab.instrument.StageTimer` that also counts each stage's FLOPs."""

    def __init__(self):
        super().__init__(enabled=True)
        self.flops: dict[str, int] = {}

    @contextlib.contextmanager
    def stage(self, name: str):
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter, super().stage(name):
            yield
        self.flops[name] = self.flops.get(name, 0) + counter.get_total_flops()


def peak_gflops(threads: int | None = None, size: int = 2048, dtype: str = "fp32", repeats: int = 10) -> float:
    """Best-of-``repeats`` GFLOP/s of a square matrix product: the practical peak to compare stages with.

    2048 by default: on a 2-core AMD EPYC (Zen 3, AVX2) 1024 reaches 176, 2048 183 GFLOP/s of the
    203 GFLOP/s FMA peak ``bench/fma_peak.cpp`` measures; smaller shapes say more about the
    library's blocking than about the CPU (on an AVX-512 EPYC 1024 gave 213 while the generator
    ran at 332 GFLOP/s, its hand-checked FLOP count in :mod:`rvc_lab.flop_model`).
    """
    import time

    import torch


    dt = compute_dtype(dtype)
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        a = torch.randn(size, size).to(dt)
        b = torch.randn(size, size).to(dt)
        a @ b
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t)
    finally:
        torch.set_num_threads(old)
    return 2 * size**3 / best / 1e9


# ----------------------------------------------------------------------------- one stream's stage profile
@dataclass
class LatencyProfile:
    """Stage timing of one streaming run.

    Attributes
    ----------
    label : str
    settings : StreamSettings
    sr : int
        Stream rate (Hz).
    trace : pandas.DataFrame
        One row per block, stage columns in ms (:meth:`rvc_lab.instrument.StageTimer.to_frame`).
    load : dict
        :func:`rvc_lab.instrument.summarize_trace` (load p50/p95/p99, overruns, blocks, ...).
    stages : pandas.DataFrame
        :func:`rvc_lab.instrument.stage_summary` (median and p95 ms per stage).
    algorithmic_latency_ms : float
        block + crossfade + SOLA search: what the chain adds before device buffers.
    threads : int
        torch intra-op threads during the run.
    wall_s : float
        Wall time of the whole run (s).
    """

    label: str
    settings: object
    sr: int
    trace: pd.DataFrame
    load: dict
    stages: pd.DataFrame
    algorithmic_latency_ms: float
    threads: int
    wall_s: float

    def row(self) -> dict:
        """One flat row for a comparison table."""
        s = self.settings
        return {"config": self.label, "block_ms": s.block_time * 1000, "extra_s": s.extra_time,
                "crossfade_ms": s.crossfade_time * 1000, "f0": s.f0_method, "threads": self.threads,
                "blocks": self.load["blocks"], "median_ms": float(np.median(self.trace["total"])),
                "load_p50": self.load["load_p50"], "load_p95": self.load["load_p95"],
                "overruns": self.load["overruns"], "algorithmic_latency_ms": self.algorithmic_latency_ms}


def profile_stream(models, audio: np.ndarray, sr: int, settings, *, threads: int | None = None,
                   label: str | None = None, warmup_blocks: int = 1) -> LatencyProfile:
    """Stream ``audio`` with stage timing on and summarise the trace.

    Parameters
    ----------
    models : ConverterModels
    audio : np.ndarray
        float32 [N] at ``sr`` (the simulated device rate).
    settings : StreamSettings
    threads : int, optional
        ``torch.set_num_threads`` for the run (restored afterwards).
    warmup_blocks : int
        Leading blocks left out of the summaries (first calls allocate and load lazily).
    """
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        timer = StageTimer(enabled=True)
        t0 = time.perf_counter()
        _, out_sr, conv = stream_file(models, audio, sr, settings, timer=timer)
        wall = time.perf_counter() - t0
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
    trace = timer.to_frame()
    if len(trace) > warmup_blocks + 2:
        trace = trace.iloc[warmup_blocks:].reset_index(drop=True)
    s = settings
    return LatencyProfile(
        label=label or f"block {s.block_time * 1000:.0f} ms, extra {s.extra_time:g} s, {s.f0_method}",
        settings=s, sr=out_sr, trace=trace, load=summarize_trace(trace), stages=stage_summary(trace),
        algorithmic_latency_ms=conv.geometry.algorithmic_latency_s * 1000, threads=used, wall_s=wall)
