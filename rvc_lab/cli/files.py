"""``rvc-lab info`` and ``rvc-lab demo-assets``: the voice files users bring, and seeded stand-ins."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from rvc_lab.files.synthetic import demo_assets
from rvc_lab.files.voice import load_voice


def cmd_info(a: argparse.Namespace) -> int:
    """Print (or ``--json``) the summary of a voice ``.pth``."""
    summary = load_voice(a.model).summary()
    if a.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        width = max(len(k) for k in summary)
        for k, v in summary.items():
            print(f"{k:<{width}}  {v}")
    return 0


def cmd_demo_assets(a: argparse.Namespace) -> int:
    """Write the seeded random-weight assets and list their paths."""
    paths = demo_assets(Path(a.dir), seed=a.seed)
    for name, path in paths.items():
        print(f"{name:<24} {path}")
    return 0


def add_parser(sub) -> None:
    s = sub.add_parser("info", help="summarise and validate a voice .pth")
    s.add_argument("model")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("demo-assets", help="write seeded random-weight assets in the real file formats")
    s.add_argument("dir")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_demo_assets)
