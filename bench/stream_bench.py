"""Per-block stage times of the streaming engine (a benchmark, not a test).

Runs :class:`rvc_lab.convert.streaming.StreamingConverter` on full-size seeded demo assets (random
weights cost the same compute as trained ones) with a simulated clock, after a warm-up, and prints
median and p95 per stage plus the load figure (p95 compute / block time) for each configuration.

    .venv/bin/python bench/stream_bench.py [--blocks 30] [--threads 2] [--csv out.csv]
                                           [--backends torch,torchscript,onnx]

With several backends (exported models: the demo voice is exported once into the cache), each
configuration runs on each backend in turn and a side-by-side table of per-stage medians
follows, with each backend's time as a ratio to torch eager.

Absolute times drift with machine load: compare configurations measured in one run.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
import torch

from rvc_lab.atomic import write_text_atomic
from rvc_lab.convert.models import ConverterModels
from rvc_lab.convert.streaming import StreamingConverter, StreamSettings
from rvc_lab.files.synthetic import cached_demo_assets
from rvc_lab.instrument import StageTimer, stage_summary, summarize_trace

#: (label, settings): upstream's defaults, and the low-latency configuration of issue 3.
CONFIGS = [
    ("upstream defaults (0.25/0.05/2.5, rmvpe)", dict(block_time=0.25, crossfade_time=0.05, extra_time=2.5, f0_method="rmvpe")),
    ("low latency (0.10/0.05/0.5, fcpe)", dict(block_time=0.10, crossfade_time=0.05, extra_time=0.5, f0_method="fcpe")),
]


def bench_config(models, settings: StreamSettings, sr: int, blocks: int, warmup: int, seed: int = 0):
    """Run ``warmup + blocks`` blocks of a harmonic test signal; return the trace of the measured blocks."""
    timer = StageTimer(enabled=True)
    conv = StreamingConverter(models, settings, sr, timer=timer)
    g = conv.geometry
    rng = np.random.default_rng(seed)
    t = np.arange((blocks + warmup) * g.block_frame) / sr
    f0 = 150 * 2 ** (np.sin(2 * np.pi * 0.3 * t) / 2)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 12)) * 0.2 + 0.005 * rng.standard_normal(t.shape)
    x = x.astype(np.float32)
    for i in range(blocks + warmup):
        conv.process_block(x[i * g.block_frame : (i + 1) * g.block_frame])
    return timer.to_frame().iloc[warmup:].reset_index(drop=True), g


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blocks", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sr", type=int, default=48000, help="stream (device) rate")
    p.add_argument("--csv", help="write all per-block rows here")
    p.add_argument("--backends", default="torch", help="comma list of torch,torchscript,onnx (default torch)")
    a = p.parse_args(argv)
    from rvc_lab.cpu import cpu_description

    print(cpu_description(), flush=True)
    torch.set_num_threads(a.threads)
    paths = cached_demo_assets(seed=0)
    # exported backends: the voice is exported once into the cache, RMVPE included
    by_backend = {backend: ConverterModels.load(paths["demo_v2_40k_f0"], hubert=paths["hubert"],
                                                index=paths["demo_v2_40k_f0_index"], rmvpe=paths["rmvpe"],
                                                backend=backend)
                  for backend in a.backends.split(",")}
    rows = []
    for label, kw in CONFIGS:
        medians = {}
        for backend, models in by_backend.items():
            trace, g = bench_config(models, StreamSettings(index_rate=0.5, noise=True, seed=0, **kw), a.sr,
                                    a.blocks, a.warmup)
            summary = stage_summary(trace)
            load = summarize_trace(trace)
            print(f"\n## {label} on {backend}: block {g.block_frame / g.sr * 1000:.0f} ms, algorithmic latency "
                  f"{g.algorithmic_latency_s * 1000:.0f} ms, {a.threads} threads, {len(trace)} blocks")
            print(summary.round(1).to_string())
            print(f"load p50 {load['load_p50']:.2f}  p95 {load['load_p95']:.2f}  p99 {load['load_p99']:.2f}  "
                  f"overruns {load['overruns']}/{load['blocks']}")
            medians[backend] = summary.iloc[:, 0]
            trace.insert(0, "backend", backend)
            trace.insert(0, "config", label)
            rows.append(trace)
        if len(medians) > 1:
            side = pd.DataFrame(medians)
            if "torch" in side:
                for backend in medians:
                    if backend != "torch":
                        side[f"{backend}/torch"] = side[backend] / side["torch"]
            print(f"\n## {label}: median ms per stage, side by side (one run)")
            print(side.round(2).to_string())
    if a.csv:
        write_text_atomic(a.csv, pd.concat(rows).to_csv(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
