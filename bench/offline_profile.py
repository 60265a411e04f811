"""Where the time of an offline conversion goes: stage split, FLOPs and the floor (a benchmark).

    .venv/bin/python bench/offline_profile.py [--seconds 60] [--backends torch onnx] [--repeats 2]
        [--f0-method fcpe] [--threads 2] [--out bench-out/offline_profile]

``convert_offline`` in this process (models loaded once per backend, so loading is not in the
figures; ``bench/offline_bench.py`` times whole processes against upstream) on the built-in speech
tiled to ``--seconds``, with the parity voice and index (index rate 0.75, RMS mix 0.25, protect
0.33).  Backends alternate, ``--repeats`` times each; the median of each stage is reported beside
its FLOPs (hand count of :mod:`rvc_lab.flop_model` over the chunks upstream's chunking makes,
``chunk_spans``), the rate achieved (GFLOP/s) and the floor at the FMA peak measured here
(``bench/fma_peak.cpp``).  Prints the CPU first.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from parity_assets import PARITY  # bench/parity_assets.py (this folder)
from speed_bench import fma_peak_gflops

from rvc_lab.atomic import write_text_atomic
from rvc_lab.convert.models import ConverterModels
from rvc_lab.convert.offline import OfflineSettings, chunk_spans, convert_offline, quiet_cut_points
from rvc_lab.convert.stages import HOP_16K, high_pass_48hz
from rvc_lab.cpu import cpu_description
from rvc_lab.files.synthetic import default_cache_dir
from rvc_lab.flop_model import generator_flops, hubert_flops
from rvc_lab.instrument import StageTimer
from rvc_lab.speech import speech_input


def offline_flops(models, audio16k: np.ndarray, settings: OfflineSettings) -> dict[str, float]:
    """FLOPs of the content encoder and the generator over the chunks ``convert_offline`` runs
    (``models``: eager torch ones, whose generator carries its architecture ``spec``)."""
    x_pad = 16000 * settings.x_pad
    n_padded = audio16k.shape[0] + 2 * x_pad
    spans = chunk_spans(n_padded, quiet_cut_points(high_pass_48hz(audio16k), settings), settings)
    enc = gen = 0
    for start, stop, _, _ in spans:
        n = min(stop, n_padded) - start
        h = hubert_flops(n, models.voice.version)
        enc += h["total"]
        p_len = min(n // HOP_16K, 2 * h["frames"])  # the generator gets the shorter of pitch and feature frames
        gen += generator_flops(models.net_g.spec, p_len, 0, p_len)["total"]
    return {"content_features": enc, "generator": gen, "chunks": len(spans)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--backends", nargs="+", default=["torch", "onnx"], choices=["torch", "torchscript", "onnx"])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--f0-method", default="fcpe", choices=["rmvpe", "fcpe", "pm"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("bench-out/offline_profile"))
    a = p.parse_args(argv)
    if not PARITY.generated():
        raise SystemExit(f"parity assets missing ({PARITY.root}): run the parity tests once (make test) to build them")
    torch.set_num_threads(a.threads)
    print(cpu_description(), f"| torch threads {torch.get_num_threads()}", flush=True)
    speech = speech_input(cache_dir=default_cache_dir() / "speech", sr=16000).audio
    n = int(a.seconds * 16000)
    audio = np.tile(speech, -(-n // speech.shape[0]))[:n].astype(np.float32)
    settings = OfflineSettings(f0_method=a.f0_method, index_rate=0.75, rms_mix_rate=0.25, protect=0.33)
    models = {b: ConverterModels.load(**PARITY.model_paths(), backend=b) for b in a.backends}
    flops = offline_flops(models.get("torch") or ConverterModels.load(**PARITY.model_paths()), audio, settings)
    peak = fma_peak_gflops(a.threads)
    rows = []
    for rep in range(a.repeats):
        for backend, m in models.items():
            timer = StageTimer(enabled=True)
            convert_offline(m, audio, settings, timer=timer)
            row = timer.to_frame().iloc[0].to_dict()
            rows.append({"backend": backend, "repeat": rep, **row})
            print(json.dumps({k: (round(v, 1) if isinstance(v, float) else v) for k, v in rows[-1].items()}), flush=True)
    df = pd.DataFrame(rows)
    stages = [c for c in ("f0", "content_features", "retrieval", "generator", "rms_mix", "output_resample", "total")
              if c in df.columns]
    table = df.groupby("backend", sort=False)[stages].median().T
    table.index.name = "stage"
    for stage in ("content_features", "generator"):
        table.loc[stage, "gflop"] = flops[stage] / 1e9
        table.loc[stage, "floor_at_fma_peak_ms"] = flops[stage] / 1e9 / peak * 1000
    for b in a.backends:
        table[f"{b}_gflop_per_s"] = table["gflop"] / (table[b] / 1000)
    table["audio_s"] = a.seconds
    print(f"{a.seconds:g} s input, {flops['chunks']} chunks, FMA peak {peak:.1f} GFLOP/s on {a.threads} threads")
    print(table.round(1).to_string())
    a.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(a.out / "offline_profile.csv", table.reset_index().to_csv(index=False))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())
