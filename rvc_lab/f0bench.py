"""F0 benchmark: every F0 method on the test-tone suite, scored against the exact truth.

``run_f0_bench`` runs ``F0Estimator(method).track`` (10 ms frames, ``N//160 + 1`` of them, Hz,
0 = unvoiced) on each signal of :func:`rvc_lab.testsignals.tone_suite` at 16 kHz and scores
the track with :func:`rvc_lab.metrics.f0.f0_metrics` (mir_eval's melody metrics plus gross
pitch error, octave errors, cents error and F0 correlation).  Speed is reported as milliseconds
of computation per second of audio, with model loading excluded by a warm-up call.

``rvc-lab f0-bench [-o RESULTS.csv] [--methods ...] [--rmvpe PATH]`` is :func:`main_f0_bench`.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from rvc_lab.atomic import write_text_atomic
from rvc_lab.f0 import METHODS, F0Estimator
from rvc_lab.metrics.f0 import F0_METRIC_NAMES, f0_metrics
from rvc_lab.testsignals import SUITE_NAMES, ToneCase, tone_suite

logger = logging.getLogger(__name__)

__all__ = [
    "BENCH_SAMPLE_RATE",
    "RESULT_COLUMNS",
    "run_f0_bench",
    "bench_summary",
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
