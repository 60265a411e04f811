"""``rvc-lab f0`` (the F0 track of a file) and ``rvc-lab f0-bench`` (every method on the tone suite)."""
from __future__ import annotations

import argparse
import logging

import numpy as np
import pandas as pd

from rvc_lab.atomic import write_text_atomic
from rvc_lab.audio import load_audio, prepare_input
from rvc_lab.f0 import F0Estimator
from rvc_lab.f0.estimator import METHODS
from rvc_lab.f0.pitch import shift_semitones
from rvc_lab.f0bench import build_f0_bench_parser, main_f0_bench

log = logging.getLogger("rvc_lab")


def cmd_f0(a: argparse.Namespace) -> int:
    """Write ``time_s, f0_hz, voiced`` on the 10 ms grid of ``a.input`` as CSV."""
    audio, sr = load_audio(a.input)
    x16 = prepare_input(audio, sr)
    f0 = F0Estimator(a.f0_method, rmvpe_path=a.rmvpe).track(x16)
    if a.pitch:
        f0 = shift_semitones(f0, a.pitch)
    df = pd.DataFrame({"time_s": np.arange(len(f0)) * 0.01, "f0_hz": f0, "voiced": f0 > 0})
    write_text_atomic(a.output, df.to_csv(index=False))
    log.info("wrote %s: %d frames, %d voiced", a.output, len(df), int(df.voiced.sum()))
    return 0


def add_parser(sub) -> None:
    s = sub.add_parser("f0", help="F0 track of a file (10 ms hop)")
    s.add_argument("input")
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--f0-method", required=True, choices=METHODS, help="F0 method (rmvpe needs --rmvpe)")
    s.add_argument("--rmvpe", help="rmvpe.pt (for --f0-method rmvpe)")
    s.add_argument("--pitch", type=float, default=0.0)
    s.set_defaults(func=cmd_f0)

    s = build_f0_bench_parser(sub.add_parser("f0-bench", help="every F0 method on the ground-truth tone suite, or on a pitch dataset (--dataset)"))
    s.set_defaults(func=main_f0_bench)
