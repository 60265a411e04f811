"""fp32 / fp16 / bf16 bundles side by side: per-stage ms per block and output error (a benchmark).

    .venv/bin/python bench/bundle_precision_bench.py [--seconds 3] [--threads 2] [--out bench-out/precision]

The parity voice (index, RMVPE) is exported once per precision into the cache; each bundle runs on
TorchScript and, where ONNX Runtime's CPU provider has the kernels (not for bf16 convolutions), on
ONNX Runtime, beside torch eager fp32, through :func:`rvc_lab.export.compare.compare_backends`
(one streaming run per backend, one after the other, noise off; the first block left out), at
upstream's defaults (0.25 / 0.05 / 2.5, rmvpe) and at the low-latency configuration (0.10 / 0.05
/ 0.5, fcpe).  ``rel_l2_vs_torch`` is the streamed output's error against eager fp32.  Prints the
CPU first; writes ``precision.csv``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch
from parity_assets import PARITY  # bench/parity_assets.py (this folder)

from rvc_lab.atomic import write_text_atomic
from rvc_lab.audio import load_audio
from rvc_lab.convert.models import ConverterModels
from rvc_lab.convert.streaming import StreamSettings
from rvc_lab.cpu import cpu_description
from rvc_lab.errors import SettingsError
from rvc_lab.export.backends import models_from_bundle
from rvc_lab.export.bundle import cached_bundle
from rvc_lab.export.compare import compare_backends

CONFIGS = {
    "defaults 0.25/0.05/2.5 rmvpe": dict(block_time=0.25, crossfade_time=0.05, extra_time=2.5, f0_method="rmvpe"),
    "low latency 0.10/0.05/0.5 fcpe": dict(block_time=0.10, crossfade_time=0.05, extra_time=0.5, f0_method="fcpe"),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precisions", nargs="+", default=["fp32", "fp16", "bf16"], choices=["fp32", "fp16", "bf16"])
    p.add_argument("--out", type=Path, default=Path("bench-out/precision"))
    a = p.parse_args(argv)
    if not PARITY.generated():
        raise SystemExit(f"parity assets missing ({PARITY.root}): run the parity tests once (make test) to build them")
    torch.set_num_threads(a.threads)
    print(cpu_description(), f"| torch threads {torch.get_num_threads()}", flush=True)
    paths = PARITY.model_paths()
    by_backend = {"torch": ConverterModels.load(**paths)}
    for precision in a.precisions:
        bundle = cached_bundle(paths["model"], paths["hubert"], paths["index"], precision=precision,
                               rmvpe=paths["rmvpe"])
        for backend in ("torchscript", "onnx"):
            try:
                by_backend[f"{backend} {precision}"] = models_from_bundle(bundle, backend)
            except SettingsError as err:
                print(f"{backend} {precision} left out: {err}", flush=True)
    audio, sr = load_audio(PARITY.root / "audio" / "synth_48k.wav")
    audio = audio[: int(a.seconds * sr)]
    tables = []
    for name, kw in CONFIGS.items():
        t = compare_backends(by_backend, audio, sr, StreamSettings(index_rate=0.5, **kw))
        t.insert(0, "configuration", name)
        tables.append(t.reset_index())
        print(f"\n{name} (ms per block, median)\n{t.round(4).to_string()}", flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    table = pd.concat(tables, ignore_index=True)
    table.insert(0, "cpu", cpu_description())
    write_text_atomic(a.out / "precision.csv", table.to_csv(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
