"""Per-stage timing of the conversion chain, collected into a table (one row per block).

Every stage call of the offline and streaming drivers goes through :meth:`StageTimer.stage`, so a
trace of a stream is a :class:`pandas.DataFrame` with one column per stage in milliseconds.
When timing is off, :meth:`StageTimer.stage` returns a shared do-nothing context manager: no clock
is read and nothing is stored.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import pandas as pd

#: Stage columns of a trace, in chain order.
STAGES = (
    "noise_reduce",
    "input_resample",
    "content_features",
    "retrieval",
    "f0",
    "generator",
    "output_resample",
    "rms_mix",
    "sola_crossfade",
)

_NULL = contextlib.nullcontext()


def _synchronize_cuda() -> None:
    # A GPU runs asynchronously: without a barrier a stage's time would land on a later stage.
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


@dataclass
class StageTimer:
    """Collects per-stage wall times (ms) per block.

    Parameters
    ----------
    enabled : bool
        When False every method is a no-op and :meth:`stage` returns a null context.
    synchronize : bool
        Call ``torch.cuda.synchronize()`` around stages (only matters on a GPU).
    """

    enabled: bool = True
    synchronize: bool = False
    rows: list = field(default_factory=list)
    _current: dict | None = None
    _t0: float = 0.0

    def start_block(self, **info) -> None:
        """Open a new row; ``info`` (block index, durations, ...) is stored with it."""
        if not self.enabled:
            return
        self._current = dict(info)
        if self.synchronize:
            _synchronize_cuda()
        self._t0 = time.perf_counter()

    def stage(self, name: str):
        """Context manager timing one stage of the current block (adds up repeated calls)."""
        if not self.enabled or self._current is None:
            return _NULL
        return self._timed(name)

    @contextlib.contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        if self.synchronize:
            _synchronize_cuda()
        t = time.perf_counter()
        try:
            yield
        finally:
            if self.synchronize:
                _synchronize_cuda()
            ms = (time.perf_counter() - t) * 1e3
            self._current[name] = self._current.get(name, 0.0) + ms

    def note(self, **values) -> None:
        """Attach values (SOLA offset, flags) to the current row."""
        if self.enabled and self._current is not None:
            self._current.update(values)

    def end_block(self) -> None:
        """Close the row: total ms and overrun flag (total > block duration, when known)."""
        if not self.enabled or self._current is None:
            return
        if self.synchronize:
            _synchronize_cuda()
        row = self._current
        row["total"] = (time.perf_counter() - self._t0) * 1e3
        if "block_ms" in row:
            row["overrun"] = bool(row["total"] > row["block_ms"])
        self.rows.append(row)
        self._current = None

    def to_frame(self):
        """The trace as a DataFrame: one row per block, stage columns in ms (0 when not run)."""
        df = pd.DataFrame(self.rows)
        for s in STAGES:
            if s not in df.columns:
                df[s] = 0.0
            df[s] = df[s].fillna(0.0)
        lead = [c for c in ("block", "block_ms") if c in df.columns]
        rest = [c for c in df.columns if c not in lead and c not in STAGES and c != "total"]
        return df[lead + list(STAGES) + ["total"] + rest]


def summarize_trace(trace, warmup: int = 0, block_ms: float | None = None) -> dict:
    """Headline figures of a stream trace: the one trace summary of the package.

    Parameters
    ----------
    trace : pandas.DataFrame
        From :meth:`StageTimer.to_frame` (columns ``total`` and, unless ``block_ms`` is given,
        ``block_ms``, in ms; one column per stage).
    warmup : int
        Leading blocks left out (first calls allocate buffers and pick kernels).
    block_ms : float, optional
        Block duration in ms; read from the trace when omitted.

    Returns
    -------
    dict
        ``blocks`` (counted), ``block_ms``; ``median_ms`` and ``p95_ms`` of the block total;
        ``load_p50``, ``load_p95``, ``load_p99`` (compute time / block time: < 1 keeps up);
        ``overruns`` (blocks whose compute exceeded their duration); and ``<stage>_ms`` /
        ``<stage>_p95_ms`` (median, p95) for every stage of :data:`STAGES` that ran.
    """
    t = trace.iloc[warmup:]
    total = np.asarray(t["total"], dtype=float)
    if block_ms is None:
        block_ms = float(np.asarray(t["block_ms"])[0])
    load = total / block_ms
    row = {
        "blocks": int(len(total)),
        "block_ms": float(block_ms),
        "median_ms": float(np.median(total)),
        "p95_ms": float(np.percentile(total, 95)),
        "load_p50": float(np.percentile(load, 50)),
        "load_p95": float(np.percentile(load, 95)),
        "load_p99": float(np.percentile(load, 99)),
        "overruns": int(np.sum(total > block_ms)),
    }
    for s in STAGES:
        if s in t and float(t[s].sum()) > 0:
            median, p95 = _median_p95(t[s])
            row[f"{s}_ms"], row[f"{s}_p95_ms"] = median, p95
    return row


def _median_p95(values) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    return float(np.median(v)), float(np.percentile(v, 95))


def stage_summary(trace, stages=STAGES + ("total",)):
    """The per-stage part of :func:`summarize_trace` as a table: median and p95 ms, indexed by stage.

    Every listed stage present in the trace gets a row (also stages that did not run, at 0 ms).
    """
    rows = {}
    for s in stages:
        if s in trace:
            median, p95 = _median_p95(trace[s])
            rows[s] = {"median_ms": median, "p95_ms": p95}
    return pd.DataFrame.from_dict(rows, orient="index")
