"""``rvc-lab ab``: two specs on the same inputs, with statistics (:mod:`rvc_lab.ab`)."""
from __future__ import annotations

import argparse
import logging

from rvc_lab.f0.estimator import METHODS

log = logging.getLogger("rvc_lab")


def cmd_ab(a: argparse.Namespace) -> int:
    """Run the study, print the summary, write ``-o OUT``."""
    from rvc_lab.ab import parse_spec, run_ab, write_ab

    specs = parse_spec(a.a, "A", a.mode), parse_spec(a.b, "B", a.mode)  # refused before anything loads
    result = run_ab(*specs, a.inputs, target_voice=a.target_voice, mode=a.mode, f0_judge=a.f0_judge)
    cols = ["metric", "kind", "a_mean", "b_mean", "diff_mean", "diff_ci_low", "diff_ci_high", "p_value", "test"]
    print(result.summary[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for metric, reason in result.skipped.items():
        print(f"{metric}: {reason}")
    for path, reason in result.unreadable:
        print(f"unreadable input (left out): {path}: {reason}")
    if result.synthetic:
        from rvc_lab.ab.run import RANDOM_WEIGHTS_NOTE

        print(f"note: {RANDOM_WEIGHTS_NOTE}")
    write_ab(result, a.output)
    return 0


def add_parser(sub) -> None:
    s = sub.add_parser("ab", help="A/B study: two voices/adapters/settings/backends on the same inputs")
    s.add_argument("--a", required=True, metavar="SPEC",
                   help="'key=value ...' with convert/stream flag names (_ for -), e.g. 'model=V.pth hubert=H.pt "
                        "f0_method=fcpe pitch=0 lora=ADAPTER seed=N'; model=demo/v2_40k for a demo voice; "
                        "or a JSON file of the same keys")
    s.add_argument("--b", required=True, metavar="SPEC", help="the other spec (same form)")
    s.add_argument("--inputs", required=True, nargs="+", metavar="DIR|FILE", help="audio files and/or folders")
    s.add_argument("--target-voice", nargs="+", metavar="REF.wav",
                   help="recordings of the target speaker (speaker similarity; not computed without)")
    s.add_argument("--mode", choices=("offline", "stream"), default="offline")
    s.add_argument("--f0-judge", choices=METHODS, default="fcpe", help="F0 method measuring inputs and outputs")
    s.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="folder: per_input.csv, summary.csv, summary.json, index.html, audio/")
    s.set_defaults(func=cmd_ab)
