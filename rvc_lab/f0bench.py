"""F0 benchmark: every F0 method on the test-tone suite, scored against the exact truth.

``run_f0_bench`` runs ``F0Estimator(method).track`` (10 ms frames, ``N//160 + 1`` of them, Hz,
0 = unvoiced) on each signal of :func:`rvc_lab.testsignals.tone_suite` at 16 kHz and scores
the track with :func:`rvc_lab.metrics.f0.f0_metrics` (mir_eval's melody metrics plus gross
pitch error, octave errors, cents error and F0 correlation).  Speed is reported as milliseconds
of computation per second of audio, with model loading excluded by a warm-up call.

``rvc-lab f0-bench [-o RESULTS.csv] [--methods ...] [--rmvpe PATH]`` is :func:`main_f0_bench`.
With ``--dataset DIR --layout L`` it scores a pitch dataset instead (:mod:`rvc_lab.pitch_datasets`):
each (method, utterance) is a cell of a voice-less sweep (:mod:`rvc_lab.sweep`, Dask, cached, so
a stopped run resumes) and :func:`dataset_summary` gives each metric's mean over the utterances
with a bootstrap 95 % interval.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from rvc_lab.atomic import write_text_atomic
from rvc_lab.errors import SettingsError
from rvc_lab.f0 import METHODS, F0Estimator
from rvc_lab.metrics.f0 import F0_METRIC_NAMES, f0_metrics
from rvc_lab.metrics.stats import bootstrap_mean_ci
from rvc_lab.pitch_datasets import check_layout
from rvc_lab.sweep import run_study, study_from_dict
from rvc_lab.sweep.runner import check_run_options
from rvc_lab.testsignals import SUITE_NAMES, ToneCase, tone_suite

logger = logging.getLogger(__name__)

__all__ = [
    "BENCH_SAMPLE_RATE",
    "RESULT_COLUMNS",
    "run_f0_bench",
    "bench_summary",
    "run_dataset_bench",
    "dataset_summary",
    "build_f0_bench_parser",
    "main_f0_bench",
]

#: The rate every F0 method in RVC analyses (Hz).
BENCH_SAMPLE_RATE = 16000

#: Columns of :func:`run_f0_bench`'s table, in order.
RESULT_COLUMNS = (
    ("method", "signal", "status", "reason", "seconds_audio", "ms_per_s")
    + F0_METRIC_NAMES
    + ("n_frames", "n_ref_voiced", "n_both_voiced")
)

Tracker = Callable[[np.ndarray], np.ndarray]


def _all_methods() -> tuple[str, ...]:
    return tuple(METHODS)


def _row(method: str, case: ToneCase, status: str, reason: str = "", **values) -> dict:
    row = {col: np.nan for col in RESULT_COLUMNS}
    row.update(method=method, signal=case.name, status=status, reason=reason,
               seconds_audio=case.duration_s, n_frames=len(case.times))
    row.update(values)
    return row


def _make_tracker(method: str, rmvpe_path: str | None) -> Tracker:
    return F0Estimator(method, rmvpe_path=rmvpe_path).track


def run_f0_bench(
    methods: Iterable[str] | None = None,
    rmvpe_path: str | None = None,
    suite: Sequence[ToneCase] | None = None,
    seconds: float = 1.0,
    trackers: Mapping[str, Tracker] | None = None,
    warmup: bool = True,
) -> pd.DataFrame:
    """Score F0 methods on test tones with exact truth.

    Parameters
    ----------
    methods : iterable of str, optional
        Names from ``rvc_lab.f0.METHODS`` (default: all of them).  ``rmvpe`` runs when
        ``rmvpe_path`` is given and is otherwise listed as skipped with the reason.
    rmvpe_path : str, optional
        Path of an ``rmvpe.pt``.
    suite : sequence of ToneCase, optional
        Signals at 16 kHz (default: ``tone_suite(16000, seconds)``).
    seconds : float
        Duration of each default-suite signal, s (crepe full costs several seconds of CPU per
        second of audio: keep it short).
    trackers : mapping name -> callable, optional
        Extra F0 trackers to benchmark alongside (each maps 16 kHz float32 audio of N samples to
        ``N//160 + 1`` F0 values in Hz, 0 = unvoiced), e.g. a method under development.
    warmup : bool
        Run each method once on a short tone before timing, so model loading is not counted.

    Returns
    -------
    pandas.DataFrame
        One row per (method, signal), columns :data:`RESULT_COLUMNS`: ``status`` is ``ok``,
        ``skipped`` or ``error`` (``reason`` says why); ``ms_per_s`` = milliseconds of
        ``track`` per second of audio; the metrics of :func:`rvc_lab.metrics.f0.f0_metrics`
        (NaN where undefined, e.g. false alarms on a signal with no unvoiced frame).
    """
    if suite is None:
        suite = tone_suite(BENCH_SAMPLE_RATE, seconds)
    bad_sr = [c.name for c in suite if c.sr != BENCH_SAMPLE_RATE]
    if bad_sr:
        raise ValueError(f"F0 bench signals must be at {BENCH_SAMPLE_RATE} Hz; not: {', '.join(bad_sr)}")
    method_list = list(_all_methods() if methods is None else methods)
    jobs: list[tuple[str, Tracker | None, str]] = []  # (name, tracker, skip/error reason)
    for method in method_list:
        if method == "rmvpe" and not rmvpe_path:
            jobs.append((method, None, "skipped: no rmvpe.pt given (--rmvpe PATH)"))
            continue
        try:
            jobs.append((method, _make_tracker(method, rmvpe_path), ""))
        except Exception as exc:  # an unknown method or bad setting must not stop the others
            logger.warning("f0-bench: %s cannot run: %s", method, exc)
            jobs.append((method, None, f"error: {exc}"))
    for name, fn in (trackers or {}).items():
        jobs.append((name, fn, ""))

    rows: list[dict] = []
    for name, tracker, problem in jobs:
        if tracker is None:
            status, reason = problem.split(": ", 1)
            rows.extend(_row(name, case, status, reason) for case in suite)
            continue
        if warmup:
            try:
                warm = tone_suite(BENCH_SAMPLE_RATE, 0.2, names=["complex_220"])[0].audio
                tracker(warm)
            except Exception as exc:
                logger.warning("f0-bench: %s failed its warm-up: %s", name, exc)
                rows.extend(_row(name, case, "error", f"{type(exc).__name__}: {exc}") for case in suite)
                continue
        for case in suite:
            rows.append(_score(name, tracker, case))
            logger.debug("f0-bench: %s on %s: %s", name, case.name, rows[-1]["status"])
    table = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    # frame counts are integers; skipped/error rows have none (nullable Int64 keeps both)
    return table.astype({"n_frames": "Int64", "n_ref_voiced": "Int64", "n_both_voiced": "Int64"})


def _score(name: str, tracker: Tracker, case: ToneCase) -> dict:
    try:
        start = time.perf_counter()
        f0 = np.asarray(tracker(case.audio), dtype=np.float64).ravel()
        elapsed = time.perf_counter() - start
    except Exception as exc:
        logger.warning("f0-bench: %s failed on %s: %s", name, case.name, exc)
        return _row(name, case, "error", f"{type(exc).__name__}: {exc}")
    if f0.shape != case.f0_hz.shape:
        return _row(name, case, "error", f"returned {f0.size} frames, expected {case.f0_hz.size}")
    scores = f0_metrics(case.f0_hz, f0, ref_voiced=case.voiced)
    return _row(name, case, "ok", "", ms_per_s=1000.0 * elapsed / case.duration_s, **scores)


def bench_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Mean of each metric and of ``ms_per_s`` per method over the signals it ran on.

    Parameters
    ----------
    results : pandas.DataFrame
        Output of :func:`run_f0_bench`.

    Returns
    -------
    pandas.DataFrame
        Indexed by method (in first-seen order), columns ``ok`` (signals scored), ``ms_per_s``
        and the metric names; NaNs are ignored in the means.
    """
    ok = results[results["status"] == "ok"]
    cols = ["ms_per_s", *F0_METRIC_NAMES]
    order = list(dict.fromkeys(results["method"]))
    summary = ok.groupby("method", sort=False)[cols].mean().reindex(order)
    summary.insert(0, "ok", ok.groupby("method", sort=False).size().reindex(order).fillna(0).astype(int))
    return summary


def run_dataset_bench(root, layout: str, methods: Iterable[str] | None = None, rmvpe_path: str | None = None,
                      out=None, workers: int | None = None, scheduler: str | None = None, serial: bool = False,
                      seconds: float | None = None, progress: bool = True) -> pd.DataFrame:
    """Score F0 methods on a pitch dataset, one sweep cell per (method, utterance).

    Parameters
    ----------
    root, layout
        The dataset folder and its layout (:data:`rvc_lab.pitch_datasets.LAYOUTS`).
    methods : iterable of str, optional
        Default: every method of ``rvc_lab.f0.METHODS`` (``rmvpe`` only with ``rmvpe_path``).
    out : path-like, optional
        Sweep folder (cell cache and tidy results; default ``f0bench-<dataset>-<layout>``).
    workers, scheduler, serial
        Where the cells run (:func:`rvc_lab.sweep.run_study`).
    seconds : float, optional
        Cut each utterance to this many seconds (default: whole files).

    Returns
    -------
    pandas.DataFrame
        One row per (method, utterance): ``method``, ``signal``, ``status``, ``reason``,
        ``ms_per_s`` and the metrics of :data:`rvc_lab.metrics.f0.F0_METRIC_NAMES`.
    """
    from pathlib import Path

    check_run_options(workers, scheduler, serial)  # before the dataset is listed
    method_list = list(_all_methods() if methods is None else methods)
    if "rmvpe" in method_list and not rmvpe_path:
        logger.info("f0-bench: rmvpe left out: no rmvpe.pt given (--rmvpe PATH)")
        method_list.remove("rmvpe")
    if not method_list:
        raise SettingsError("f0-bench --dataset: no method to run")
    root = Path(root)
    study = study_from_dict({"name": f"f0bench-{root.resolve().name}", "inputs": [{"dataset": os.fspath(root),
                             "layout": layout}], "grid": {"f0_method": method_list}, "measure": ["f0", "cost"],
                             "seconds": seconds, "rmvpe": rmvpe_path})
    out = Path(out) if out else Path(f"f0bench-{root.resolve().name}-{layout}")
    table = run_study(study, out, workers=workers, scheduler=scheduler, serial=serial, progress=progress).table
    return _per_utterance(table)


def _per_utterance(table: pd.DataFrame) -> pd.DataFrame:
    """The sweep's tidy rows as one row per (method, utterance)."""
    rows = []
    for (method, signal), group in table.groupby(["f0_method", "input"], sort=False):
        errors = group[group["status"] == "error"]
        values = dict(zip(group["metric"], group["value"]))
        rows.append({"method": method, "signal": signal, "status": "error" if len(errors) else "ok",
                     "reason": "; ".join(errors["reason"]), "ms_per_s": values.get("f0_ms_per_s", np.nan),
                     **{m: values.get(m, np.nan) for m in F0_METRIC_NAMES}})
    return pd.DataFrame(rows, columns=["method", "signal", "status", "reason", "ms_per_s", *F0_METRIC_NAMES])


def dataset_summary(results: pd.DataFrame, confidence: float = 0.95, n_resamples: int = 1000) -> pd.DataFrame:
    """Per method: utterances scored, and each metric's mean with a bootstrap interval.

    Parameters
    ----------
    results : pandas.DataFrame
        :func:`run_dataset_bench`'s table (or :func:`run_f0_bench`'s).

    Returns
    -------
    pandas.DataFrame
        Indexed by method; columns ``ok`` and, for ``ms_per_s`` and every metric, ``<name>``
        (mean over utterances), ``<name>_lo`` and ``<name>_hi`` (percentile bootstrap over
        utterances, :func:`rvc_lab.metrics.stats.bootstrap_mean_ci`, seeded).
    """
    ok = results[results["status"] == "ok"]
    out = {}
    for method in dict.fromkeys(results["method"]):
        group = ok[ok["method"] == method]
        row = {"ok": len(group)}
        for name in ("ms_per_s", *F0_METRIC_NAMES):
            row[name], row[f"{name}_lo"], row[f"{name}_hi"] = bootstrap_mean_ci(
                group[name], n_resamples=n_resamples, confidence=confidence)
        out[method] = row
    return pd.DataFrame.from_dict(out, orient="index")


def build_f0_bench_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add ``f0-bench``'s options to ``parser`` (a new one when None) and return it."""
    if parser is None:
        parser = argparse.ArgumentParser(prog="rvc-lab f0-bench", description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", metavar="RESULTS.csv", help="write the per-signal table as CSV")
    parser.add_argument("--methods", nargs="+", metavar="METHOD",
                        help="F0 methods to run (default: all: pm harvest dio crepe crepe-tiny rmvpe fcpe)")
    parser.add_argument("--rmvpe", metavar="PATH", help="rmvpe.pt (without it rmvpe is listed as skipped)")
    parser.add_argument("--seconds", type=float, default=1.0, help="duration of each test signal, s (default 1)")
    parser.add_argument("--signals", nargs="+", metavar="NAME", choices=SUITE_NAMES,
                        help="subset of the tone suite (default: all)")
    parser.add_argument("--dataset", metavar="DIR", help="score a pitch dataset instead of the tone suite")
    parser.add_argument("--layout", help="its layout: mir1k, ptdb-tug, mdb-stem-synth or csv "
                                         "(file names, hops and units: rvc_lab.pitch_datasets)")
    parser.add_argument("--sweep-out", metavar="DIR", help="--dataset: cell cache and tidy results "
                                                           "(default f0bench-<dataset>-<layout>; reused on rerun)")
    parser.add_argument("--workers", type=int, help="--dataset: LocalCluster workers (default: one per core)")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="--dataset: an existing Dask scheduler")
    parser.add_argument("--serial", action="store_true", help="--dataset: run in this process")
    return parser


def main_f0_bench(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """Command-line entry: run the bench, print a per-method summary, optionally write the CSV.

    Parameters
    ----------
    args : argparse.Namespace or list of str or None
        Parsed options from :func:`build_f0_bench_parser` (as the ``rvc-lab`` CLI passes them),
        or raw arguments to parse (None: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 when every method that was not skipped ran on every signal, 1 otherwise.
    """
    if not isinstance(args, argparse.Namespace):
        args = build_f0_bench_parser().parse_args(args)
    if getattr(args, "dataset", None) or getattr(args, "layout", None):
        return _main_dataset(args)
    suite = tone_suite(BENCH_SAMPLE_RATE, getattr(args, "seconds", 1.0), names=getattr(args, "signals", None))
    results = run_f0_bench(methods=getattr(args, "methods", None), rmvpe_path=getattr(args, "rmvpe", None), suite=suite)
    if getattr(args, "output", None):
        write_text_atomic(args.output, results.to_csv(index=False))
    summary = bench_summary(results)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
        sys.stdout.write(summary.to_string() + "\n")
    problems = results[results["status"] != "ok"].drop_duplicates(["method", "status", "reason"])
    for _, row in problems.iterrows():
        sys.stdout.write(f"{row['method']}: {row['status']} ({row['reason']})\n")
    if getattr(args, "output", None):
        sys.stdout.write(f"wrote {args.output} ({len(results)} rows)\n")
    return 0 if not (results["status"] == "error").any() else 1


def _main_dataset(args: argparse.Namespace) -> int:
    """``f0-bench --dataset DIR --layout L``: the per-method summary with intervals."""
    if not (args.dataset and args.layout):
        raise SettingsError("f0-bench: --dataset and --layout go together")
    check_layout(args.layout)
    if args.signals or args.seconds != 1.0:
        raise SettingsError("f0-bench --dataset scores whole utterances: --signals and --seconds are for the tone suite")
    results = run_dataset_bench(args.dataset, args.layout, methods=args.methods, rmvpe_path=args.rmvpe,
                                out=args.sweep_out, workers=args.workers, scheduler=args.scheduler,
                                serial=args.serial)
    if args.output:
        write_text_atomic(args.output, results.to_csv(index=False))
    summary = dataset_summary(results)
    shown = summary[["ok"] + [c for name in ("raw_pitch_accuracy", "raw_chroma_accuracy", "overall_accuracy",
                                              "voicing_recall", "voicing_false_alarm", "gross_pitch_error",
                                              "octave_error_rate", "ms_per_s")
                               if name in summary for c in (name, f"{name}_lo", f"{name}_hi")]]
    with pd.option_context("display.width", 250, "display.max_columns", 40, "display.precision", 3):
        sys.stdout.write(f"{summary['ok'].max()} utterance(s) of {args.dataset} ({args.layout}); "
                         "mean [95 % bootstrap interval] per method\n" + shown.to_string() + "\n")
    for _, row in results[results["status"] != "ok"].drop_duplicates(["method", "reason"]).iterrows():
        sys.stdout.write(f"{row['method']}: {row['status']} ({row['reason']})\n")
    if args.output:
        sys.stdout.write(f"wrote {args.output} ({len(results)} rows)\n")
    return 0 if not (results["status"] == "error").any() else 1
