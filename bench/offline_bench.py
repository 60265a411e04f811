"""Offline conversion: ``rvc-lab convert`` against upstream's ``vc_single``, each in its own process.

    .venv/bin/python bench/offline_bench.py --upstream-checkout UPSTREAM --out bench-out/offline \\
        [--seconds 60] [--f0-method fcpe] [--repeats 2] [--threads 2] [--backends torch onnx]

Both convert the same 16 kHz speech input (the built-in speech, ``rvc_lab.speech``, tiled to
``--seconds``) with the parity voice, its index (index rate 0.75), RMS mix 0.25, protect 0.33,
same torch, same thread count (``OMP_NUM_THREADS``; upstream's driver also calls
``torch.set_num_threads``).  Each run is a fresh subprocess, so that its wall time includes
loading the models, and its peak RSS (``os.wait4``'s ``ru_maxrss``) is its own.  The runs
alternate, ``--repeats`` times each; ``--backends`` adds ``rvc-lab convert --backend`` rows.  Writes ``offline.csv`` and prints the table with the CPU,
the real-time factor (wall / audio seconds, < 1 is faster than real time) and the output
difference of the two (delay-aligned SNR: different chunking and F0 rounding, not a parity gate;
the parity tests hold the chain to upstream's goldens).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from parity_assets import PARITY  # bench/parity_assets.py (this folder)

from rvc_lab.atomic import write_text_atomic
from rvc_lab.cpu import cpu_description

ROOT = Path(__file__).resolve().parents[1]


def _input(seconds: float, path: Path) -> Path:
    from rvc_lab.files.synthetic import default_cache_dir
    from rvc_lab.speech import speech_input

    speech = speech_input(cache_dir=default_cache_dir() / "speech", sr=16000).audio
    n = int(seconds * 16000)
    sf.write(path, np.tile(speech, -(-n // speech.shape[0]))[:n], 16000, subtype="FLOAT")
    return path


def _timed(cmd: list[str], env: dict) -> tuple[float, str]:
    """Run ``cmd``; (wall s, stdout)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    out, err = proc.communicate()
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{err[-3000:]}")
    return wall, out


def _rss_wrapper(cmd: list[str]) -> list[str]:
    """``cmd`` run by a small Python wrapper that prints the child's own peak RSS (KiB) last.

    RUSAGE_CHILDREN of this process would be a max over every child so far; ``os.wait4`` gives
    the one child's own."""
    code = ("import os,subprocess,sys;p=subprocess.Popen(sys.argv[1:]);_,st,ru=os.wait4(p.pid,0);"
            "print('peak_rss_kib',ru.ru_maxrss);sys.exit(os.waitstatus_to_exitcode(st))")
    return [sys.executable, "-c", code, *cmd]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--upstream-checkout", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--f0-method", default="fcpe", choices=["rmvpe", "fcpe", "pm"])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--backends", nargs="+", default=["torch"], choices=["torch", "torchscript", "onnx"],
                   help="rvc-lab convert --backend values timed beside upstream (exported bundles are written "
                        "into the cache before the timed runs)")
    a = p.parse_args(argv)
    if not PARITY.voice().is_file():
        raise SystemExit(f"parity assets missing ({PARITY.assets}): run the parity tests once (make test) to build them")
    a.out.mkdir(parents=True, exist_ok=True)
    wav = _input(a.seconds, a.out / "input_16k.wav")
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    common = dict(pitch="0", index_rate="0.75")
    cmds = {
        "upstream vc_single": [sys.executable, str(ROOT / "bench" / "upstream_offline.py"),
                               "--checkout", str(a.upstream_checkout), "--assets", str(PARITY.assets), "--voice", str(PARITY.voice()),
                               "--index", str(PARITY.index()), "--input", str(wav), "--output", str(a.out / "upstream.wav"),
                               "--f0-method", a.f0_method, "--pitch", common["pitch"],
                               "--index-rate", common["index_rate"], "--threads", str(a.threads)],
    }
    for backend in a.backends:
        name = "rvc-lab convert" + ("" if backend == "torch" else f" --backend {backend}")
        cmds[name] = [sys.executable, "-m", "rvc_lab.cli", "convert", "--model", str(PARITY.voice()),
                      "--hubert", str(PARITY.hubert_dir), "--index", str(PARITY.index()), "--rmvpe", str(PARITY.rmvpe),
                      str(wav), "-o", str(a.out / f"rvc_lab_{backend}.wav"), "--f0-method", a.f0_method,
                      "--backend", backend, "--pitch", common["pitch"], "--index-rate", common["index_rate"],
                      "--rms-mix", "0.25", "--protect", "0.33"]
        if backend != "torch":  # export outside the timed runs (what --backend would do on its first use)
            from rvc_lab.export.bundle import cached_bundle

            cached_bundle(PARITY.voice(), PARITY.hubert_dir, PARITY.index(), rmvpe=PARITY.rmvpe)
    print(cpu_description())
    rows = []
    for rep in range(a.repeats):
        for name, cmd in cmds.items():
            wall, out = _timed(_rss_wrapper(cmd), env)
            rss_kib = int(out.strip().splitlines()[-1].split()[1])
            rows.append({"run": name, "repeat": rep, "wall_s": wall, "audio_s": a.seconds, "rtf": wall / a.seconds,
                         "peak_rss_mb": rss_kib / 1024})
            print(json.dumps(rows[-1]), flush=True)
    df = pd.DataFrame(rows)
    table = df.groupby("run", sort=False).agg(wall_s=("wall_s", "median"), rtf=("rtf", "median"),
                                              peak_rss_mb=("peak_rss_mb", "max")).reset_index()
    up = table.loc[table["run"] == "upstream vc_single", "wall_s"].iloc[0]
    table["speedup_vs_upstream"] = up / table["wall_s"]
    table.insert(0, "cpu", cpu_description())
    write_text_atomic(a.out / "offline.csv", table.to_csv(index=False))
    print(table.to_string(index=False))
    from rvc_lab.metrics.compare import compare_audio

    x, sr_x = sf.read(a.out / "upstream.wav", dtype="float32")
    y, sr_y = sf.read(a.out / f"rvc_lab_{a.backends[0]}.wav", dtype="float32")
    if sr_x == sr_y:
        print(f"rvc-lab against upstream, delay-aligned: {compare_audio(y, x, sr_x, f0_method=None)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
