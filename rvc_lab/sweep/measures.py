"""What a sweep cell measures, and the worker-side caches that make cells cheap.

:func:`run_cell` is the task every scheduler runs (serially in the calling process, or on a Dask
worker): it loads the cell's input and voice, takes each measurement of :data:`MEASURES` and
returns tidy rows ``{measure, metric, value, status, reason}``.  A measurement that raises gives
one ``error`` row with the message; the other measurements of the cell still run.

Measurements
------------
``parity``
    Stream vs offline divergence (:func:`rvc_lab.parity.stream_vs_offline`, generator noise off,
    no loudness matching): the figures of :meth:`rvc_lab.parity.ParityResult.summary`.
``f0``
    The cell's ``f0_method`` on the input (16 kHz, 10 ms frames) scored against the input's
    ground truth (tones, pitch datasets) on the truth's own grid: :data:`F0_METRIC_NAMES`.  The
    input's own F0 is tracked, before any transposition.  Inputs without a truth (speech, files)
    give ``not computed`` rows.
``cost``
    Milliseconds: with a voice, one timed stream of the input (per-stage median ms, block
    median/p95 ms, load p95; 2 warm-up blocks left out); without one, ``f0_ms_per_s``, the F0
    tracking time per second of audio (the ``f0`` measurement's own track, after a warm-up).  Timings depend on what else runs on the machine: rows carry the CPU model
    and the number of workers that shared it.

Caches (one per process, so a Dask worker loads each voice once, not once per task): models per
(voice, backend), F0 estimators per method, offline references per (voice, input, settings).
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import replace

import numpy as np

from rvc_lab.audio import load_audio, prepare_input, resample_offline
from rvc_lab.convert.models import ConverterModels
from rvc_lab.convert.streaming import stream_file
from rvc_lab.cpu import cpu_model
from rvc_lab.errors import first_line
from rvc_lab.f0 import F0Estimator
from rvc_lab.files.synthetic import default_cache_dir
from rvc_lab.instrument import StageTimer, summarize_trace
from rvc_lab.metrics.f0 import F0_METRIC_NAMES, f0_metrics, track_on_times
from rvc_lab.parity import matching_offline_settings, parity_stream_settings, run_offline_reference, stream_vs_offline
from rvc_lab.pitch_datasets import DatasetItem, PitchReference, read_item_audio, read_reference
from rvc_lab.speech import speech_input
from rvc_lab.sweep.study import SETTING_KEYS
from rvc_lab.testsignals import tone_suite

log = logging.getLogger(__name__)

#: Rate tones and speech are made at for a sweep (a device rate; streaming needs a multiple of 100 Hz).
SWEEP_RATE = 48000

_MODELS: dict = {}
_F0: dict = {}
_LAST_TRACK: dict = {}
_OFFLINE: "OrderedDict[tuple, object]" = OrderedDict()
_OFFLINE_KEEP = 8


def stream_settings(params: dict):
    """The :class:`StreamSettings` of a cell: parity defaults (noise off, no loudness matching,
    no gate, fcpe) with the cell's settings over them (``backend`` is a load option, left out)."""
    return parity_stream_settings(**{k: v for k, v in params.items() if k != "backend"})


# ----------------------------------------------------------------------------- inputs


def load_input(spec, seconds: float | None):
    """The input of a cell: ``(audio float32 [N], sr, truth)``; truth is a
    :class:`rvc_lab.pitch_datasets.PitchReference` or None.

    Tones are made at 48 kHz with ``seconds`` (default 2 s) of signal; files and datasets are cut
    to ``seconds``; a file whose rate is not a multiple of 100 Hz is resampled to 48 kHz
    (streaming works on whole 10 ms frames), said in one log line.
    """
    truth = None
    if spec.kind == "tone":
        case = tone_suite(SWEEP_RATE, seconds or 2.0, names=[spec.ref])[0]
        return case.audio, case.sr, PitchReference(case.times, case.f0_hz, case.voiced)
    if spec.kind == "speech":
        sp = speech_input(max_seconds=seconds, cache_dir=default_cache_dir(), sr=SWEEP_RATE)
        return sp.audio, sp.sr, None
    if spec.kind == "dataset":
        item = DatasetItem(spec.name, spec.ref, spec.reference, spec.layout)
        audio, sr = read_item_audio(item)
        truth = read_reference(item)
    else:
        audio, sr = load_audio(spec.ref)
    if seconds is not None and audio.shape[0] > seconds * sr:
        audio = audio[: int(round(seconds * sr))]
        if truth is not None:
            keep = truth.times <= seconds
            truth = PitchReference(truth.times[keep], truth.f0_hz[keep], truth.voiced[keep])
    if sr % 100:
        log.info("%s: %d Hz is not a whole number of 10 ms frames; resampled to %d Hz", spec.name, sr, SWEEP_RATE)
        audio, sr = np.asarray(resample_offline(audio, sr, SWEEP_RATE), dtype=np.float32), SWEEP_RATE
    return np.asarray(audio, dtype=np.float32), int(sr), truth


# ----------------------------------------------------------------------------- caches


def cached_models(voice, backend: str):
    """:class:`rvc_lab.convert.models.ConverterModels` of a voice, loaded once per process."""
    key = (voice, backend)
    if key not in _MODELS:
        _MODELS[key] = ConverterModels.load(voice.model, hubert=voice.hubert, index=voice.index,
                                            rmvpe=voice.rmvpe, backend=backend)
    return _MODELS[key]


def _f0_tracker(method: str, rmvpe: str | None, models=None):
    """The F0 estimator of ``method``, made and warmed up once per process (a model's first call
    allocates and picks kernels: not part of any timing)."""
    key = (method, rmvpe, id(models))
    if key not in _F0:
        if models is not None:
            tracker = models.f0_estimator(method)
        else:
            tracker = F0Estimator(method, rmvpe_path=rmvpe)
        tracker.track(np.zeros(1600, dtype=np.float32))
        _F0[key] = tracker
    return _F0[key]


def _timed_track(cell, models, audio, sr) -> tuple[np.ndarray, float]:
    """``(f0 Hz on the 10 ms grid of the 16 kHz input, seconds of tracking)`` of the cell's
    ``f0_method``; the last result is kept so ``f0`` and ``cost`` of one cell track once."""
    method = stream_settings(cell.params).f0_method
    rmvpe = cell.rmvpe or (cell.voice.rmvpe if cell.voice else None)
    key = (cell.input, cell.seconds, method, rmvpe, id(models))
    if _LAST_TRACK.get("key") != key:
        tracker = _f0_tracker(method, rmvpe, models)
        x16 = prepare_input(audio, sr)
        start = time.perf_counter()
        f0 = np.asarray(tracker.track(x16), dtype=np.float64)
        _LAST_TRACK.update(key=key, value=(f0, time.perf_counter() - start))
    return _LAST_TRACK["value"]


def _offline_reference(models, key: tuple, audio, sr, off_settings):
    if key in _OFFLINE:
        _OFFLINE.move_to_end(key)
        return _OFFLINE[key]
    result = run_offline_reference(models, audio, sr, off_settings)
    _OFFLINE[key] = result
    while len(_OFFLINE) > _OFFLINE_KEEP:
        _OFFLINE.popitem(last=False)
    return result


# ----------------------------------------------------------------------------- measurements


def _rows(measure: str, values: dict) -> list[dict]:
    return [{"measure": measure, "metric": k, "value": float(v), "status": "ok", "reason": ""}
            for k, v in values.items()]


def measure_parity(cell, models, audio, sr, truth) -> list[dict]:
    s = stream_settings(cell.params)
    off_s = matching_offline_settings(s)
    key = (cell.voice, cell.params.get("backend", "torch"), cell.input, cell.seconds, repr(off_s))
    off = _offline_reference(models, key, audio, sr, off_s)
    summary = stream_vs_offline(models, audio, sr, s, off_s, offline_result=off).summary()
    # the summary repeats the settings (columns of the table already): keep the measured figures
    return _rows("parity", {k: v for k, v in summary.items()
                            if k not in SETTING_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)})


def measure_f0(cell, models, audio, sr, truth) -> list[dict]:
    if truth is None:
        return [{"measure": "f0", "metric": m, "value": float("nan"), "status": "not computed",
                 "reason": "the input has no F0 ground truth"} for m in F0_METRIC_NAMES]
    f0, _ = _timed_track(cell, models, audio, sr)
    est = track_on_times(f0, np.arange(f0.size) * 0.01, truth.times)
    scores = f0_metrics(truth.f0_hz, est, ref_voiced=truth.voiced)
    return _rows("f0", {m: scores[m] for m in F0_METRIC_NAMES})


def measure_cost(cell, models, audio, sr, truth) -> list[dict]:
    if cell.voice is None:
        _, seconds = _timed_track(cell, models, audio, sr)
        return _rows("cost", {"f0_ms_per_s": 1000.0 * seconds / (audio.shape[0] / sr)})

    timer = StageTimer()
    stream_file(models, audio, sr, replace(stream_settings(cell.params), noise=False), timer=timer)
    trace = timer.to_frame()
    summary = summarize_trace(trace, warmup=min(2, len(trace) - 1))
    return _rows("cost", {k: v for k, v in summary.items() if k.endswith("_ms") or k.startswith("load_")})


#: Measurement name -> function ``(cell, models, audio, sr, truth) -> rows``.
MEASURES = {"parity": measure_parity, "f0": measure_f0, "cost": measure_cost}


def run_cell(cell) -> dict:
    """Run every measurement of ``cell`` with ``cell.threads`` torch threads.

    Returns
    -------
    dict
        ``rows`` (list of ``{measure, metric, value, status, reason}``), ``wall_s``, ``cpu_model``.
        Errors are rows, never exceptions: a failing cell does not stop a study.
    """
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(cell.threads)
    # numpy's BLAS too: a float64 reduction split over other thread counts differs in the last bits,
    # and a cell must give the same numbers serially and on any worker
    blas = threadpool_limits(limits=cell.threads)
    start = time.perf_counter()
    rows: list[dict] = []
    try:
        try:
            audio, sr, truth = load_input(cell.input, cell.seconds)
            models = cached_models(cell.voice, cell.params.get("backend", "torch")) if cell.voice else None
        except Exception as exc:  # a bad input or voice fails every measurement of the cell
            log.warning("sweep cell %s failed to load: %s", cell.label(), first_line(exc))
            rows = [error_row(m, exc) for m in cell.measure]
            return {"rows": rows, "wall_s": time.perf_counter() - start, "cpu_model": cpu_model()}
        for name in cell.measure:
            try:
                rows.extend(MEASURES[name](cell, models, audio, sr, truth))
            except Exception as exc:
                log.warning("sweep cell %s: %s failed: %s", cell.label(), name, first_line(exc))
                rows.append(error_row(name, exc))
    finally:
        torch.set_num_threads(threads)
        blas.restore_original_limits()
    return {"rows": rows, "wall_s": time.perf_counter() - start, "cpu_model": cpu_model()}


def error_row(measure: str, exc: BaseException) -> dict:
    """The row a measurement that raised ``exc`` leaves (also for a cell whose worker died)."""
    return {"measure": measure, "metric": "", "value": float("nan"), "status": "error",
            "reason": f"{type(exc).__name__}: {first_line(exc)}"}
