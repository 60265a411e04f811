"""Measured round trip of a *conversion* on a private JACK loop (a benchmark, not a test).

``rvc-lab live --measure-latency --jack-loopback`` with the seed-0 random-weight demo voice (v2 40k,
full size), pm, bf16: the bursts only come back when the converter keeps up with the block, which
on a 2-core machine depends on the machine (CI measured load p50 1.46 at block 0.25 s, exact
enough to lose 21 of 24 bursts to late blocks), so this lives in bench/.  The device loop and the
passthrough round trip, which need no model, are CI tests (tests/test_live_jack.py).

    python bench/live_latency.py [--block-time 0.5] [--delay-blocks 2] [--bursts 8]

Prints the CPU, then the CLI's own report; its last line is
``measured latency: M ms (formula F ms, period P ms, bursts N/K agree within D ms)``; the exit
status is the CLI's (0: the gate held).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--block-time", type=float, default=0.5)
    p.add_argument("--extra-time", type=float, default=0.1)
    p.add_argument("--delay-blocks", type=int, default=2)
    p.add_argument("--bursts", type=int, default=8)
    p.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    a = p.parse_args(argv)

    from rvc_lab import jack
    from rvc_lab.cpu import cpu_description
    from rvc_lab.files.synthetic import cached_demo_assets

    print(cpu_description(), flush=True)
    assets = cached_demo_assets(seed=0)
    server = jack.start_dummy_server(rate=48000, period=480)
    try:
        env = dict(os.environ, JACK_DEFAULT_SERVER=server.name,
                   PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        cmd = [sys.executable, "-m", "rvc_lab.cli", "live", "--model", str(assets["demo_v2_40k_f0"]),
               "--hubert", str(assets["hubert"]), "--f0-method", "pm", "--precision", a.precision,
               "--block-time", str(a.block_time), "--extra-time", str(a.extra_time),
               "--delay-blocks", str(a.delay_blocks), "--measure-latency", "--jack-loopback",
               "--bursts", str(a.bursts)]
        return subprocess.run(cmd, env=env, cwd=REPO).returncode
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
