"""``rvc-lab lora merge|random``: LoRA adapters on a voice's generator (see docs/lora.md)."""
from __future__ import annotations

import argparse
import logging

log = logging.getLogger("rvc_lab")


def cmd_merge(a: argparse.Namespace) -> int:
    """Merge an adapter into a voice; everything is validated before anything is written."""
    from rvc_lab.lora import merge_voice_file

    result = merge_voice_file(a.voice, a.adapter, a.output)
    log.info("wrote %s (%d layers adapted, largest fp16 rounding %.2g)", result["path"], result["layers"],
             result["max_rounding"])  # fmt: skip
    return 0


def cmd_random(a: argparse.Namespace) -> int:
    """Write a seeded random adapter for a voice (a test stand-in, not a trained adapter)."""
    from rvc_lab.files.lora import load_adapter, write_random_adapter
    from rvc_lab.files.voice import load_voice

    path = write_random_adapter(a.output, load_voice(a.voice), rank=a.rank, seed=a.seed, strength=a.strength)
    adapter = load_adapter(path)
    log.info("wrote %s: %d layers, %d parameters", path, len(adapter.layers), adapter.parameter_count)
    return 0


def add_parser(sub) -> None:
    lora = sub.add_parser("lora", help="LoRA adapters on a voice's generator: merge into a voice file")
    actions = lora.add_subparsers(dest="lora_command", required=True, metavar="ACTION")

    s = actions.add_parser("merge", help="write VOICE with ADAPTER merged as a normal voice .pth (fp16)")
    s.add_argument("voice", help="voice .pth the adapter was made for")
    s.add_argument("adapter", help="rvc_lab-lora/1 adapter file (docs/lora.md)")
    s.add_argument("-o", "--output", required=True, help="merged voice .pth to write (atomically)")
    s.set_defaults(func=cmd_merge)

    s = actions.add_parser("random", help="write a seeded random adapter for VOICE (test stand-in, not trained)")
    s.add_argument("voice")
    s.add_argument("-o", "--output", required=True, help="adapter file to write")
    s.add_argument("--rank", type=int, default=8, help="rank of the upsampling layers; residual blocks get max(4, rank/2)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--strength", type=float, default=0.1, help="||delta|| / ||weight|| per layer")
    s.set_defaults(func=cmd_random)
