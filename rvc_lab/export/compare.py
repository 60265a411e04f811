"""The chain on each backend, side by side: per-stage time and how far the output moves.

One streaming run per backend over the same audio and settings (noise off, so outputs are
deterministic and comparable sample by sample), the torch eager run first as the reference.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from rvc_lab.convert.streaming import stream_file
from rvc_lab.instrument import StageTimer
from rvc_lab.metrics.spectral import rel_l2

STAGES = ("content_features", "f0", "generator", "total")


def compare_backends(models_by_backend: dict, audio: np.ndarray, sr: int, settings,
                     warmup_blocks: int = 1) -> pd.DataFrame:
    """Stream ``audio`` on every backend; one row each.

    Parameters
    ----------
    models_by_backend : dict
        ``{"torch": ConverterModels, "onnx": ..., ...}``; "torch" must be there (the reference).
    audio : np.ndarray
        float32 [N] at ``sr`` Hz.
    settings : StreamSettings
        Run with ``noise=False``.

    Returns
    -------
    pandas.DataFrame
        Index backend; median ms per block of :data:`STAGES` (first ``warmup_blocks`` left out),
        ``total_vs_torch`` (ratio of median totals), ``rel_l2_vs_torch`` of the streamed output,
        ``sola_offsets_equal`` (every block's SOLA offset the same as torch's).
    """
    if "torch" not in models_by_backend:
        raise ValueError("compare_backends needs the torch backend as its reference")
    settings = replace(settings, noise=False, seed=None)
    order = ["torch", *[b for b in models_by_backend if b != "torch"]]
    rows, outputs, offsets = {}, {}, {}
    for backend in order:
        timer = StageTimer(enabled=True)
        out, _, _ = stream_file(models_by_backend[backend], audio, sr, settings, timer=timer)
        trace = timer.to_frame()
        outputs[backend], offsets[backend] = out, trace["sola_offset"].to_numpy()
        measured = trace.iloc[warmup_blocks:] if len(trace) > warmup_blocks + 2 else trace
        rows[backend] = {s: float(np.median(measured[s])) if s in measured else 0.0 for s in STAGES}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "backend"
    table["total_vs_torch"] = table["total"] / table.loc["torch", "total"]
    table["rel_l2_vs_torch"] = [rel_l2(outputs[b], outputs["torch"]) for b in table.index]
    table["sola_offsets_equal"] = [bool(np.array_equal(offsets[b], offsets["torch"])) for b in table.index]
    return table
