"""Mutation check: does the suite notice deliberate faults?  (A dev tool, not part of CI.)

Each fault is a text substitution in one source file of a scratch copy of the working tree; a
targeted test selection (minutes, not the whole suite) runs against that copy.  A fault is
*killed* when the selection fails, *survived* when it passes.  The kill rate is the share of
faults killed; a survivor names a hole in the suite.

    .venv/bin/python scripts/mutation_check.py [--only NAME ...] [--list]

Needs ../shared/parity (or RVC_LAB_PARITY_DIR) for the golden-based selections; the scratch copy
shares this checkout's ``.cache`` (assets are not rebuilt).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Fault:
    name: str
    path: str          # source file, relative to the repository
    old: str           # exact text to replace (every occurrence)
    new: str
    tests: tuple       # pytest arguments: the targeted selection


FAULTS = (
    Fault("sola offset forced to 0", "rvc_lab/convert/sola.py",
          "return int(torch.argmax(nom[0, 0] / den[0, 0]))", "return 0",
          ("tests/test_sola.py",)),
    Fault("retrieval weights 1/d instead of 1/d^2", "rvc_lab/retrieval.py",
          "np.square(1 / score)", "(1 / score)",
          ("tests/test_retrieval.py",)),
    Fault("skip_head off by one frame", "rvc_lab/convert/streaming.py",
          "skip_head=extra // zc,", "skip_head=extra // zc + 1,",
          ("tests/test_conversion_parity.py", "-k", "stream_block_internals")),
    Fault("coarse pitch rounding: floor instead of round half to even", "rvc_lab/f0/pitch.py",
          "np.rint(mel).astype(np.int32)", "np.floor(mel).astype(np.int32)",
          ("tests/test_f0.py", "-k", "coarse")),
    Fault("realtime coarse pitch: floor instead of round", "rvc_lab/f0/pitch.py",
          "torch.round(mel).long()", "torch.floor(mel).long()",
          ("tests/test_f0.py", "-k", "coarse")),
    Fault("fade curves swapped", "rvc_lab/convert/sola.py",
          "return fade_in, 1 - fade_in", "return 1 - fade_in, fade_in",
          ("tests/test_sola.py", "tests/test_conversion_parity.py", "-k", "sola or fade or stream_block_internals")),
    Fault("MCD includes c0 by default", "rvc_lab/metrics/mcd.py",
          "    include_c0: bool = False\n", "    include_c0: bool = True\n",
          ("tests/test_metrics.py", "-k", "mcd or mcep or c0")),
    Fault("noise-reduction strength 0.5 instead of 0.9", "rvc_lab/convert/streaming.py",
          "prop_decrease=0.9", "prop_decrease=0.5",
          ("tests/test_streaming.py", "-k", "noise_reduction")),
    Fault("hand FLOP count: residual blocks counted once instead of 2 x 3 convolutions", "rvc_lab/flop_model.py",
          "sum(6 * c_out * c_out * k * length", "sum(3 * c_out * c_out * k * length",
          ("tests/test_perf.py",)),
    Fault("offline chunks: the last 10 ms window of context dropped", "rvc_lab/convert/offline.py",
          "spans.append((start, end + 2 * t_pad + window,", "spans.append((start, end + 2 * t_pad,",
          ("tests/test_offline.py", "-k", "chunk")),
    Fault("exported FCPE decode: the local window drops its edge bins instead of clamping", "rvc_lab/f0/fcpe.py",
          "window = (torch.arange(2 * LOCAL_RADIUS + 1) + (peak - LOCAL_RADIUS)).clamp(0, N_BINS - 1)",
          "window = (torch.arange(2 * LOCAL_RADIUS) + (peak - LOCAL_RADIUS)).clamp(0, N_BINS - 1)",
          ("tests/test_f0.py", "tests/test_export.py", "-k", "fcpe")),
    Fault("HTML tables: infinity shown as NaN", "rvc_lab/html_page.py",
          'return "–" if np.isnan(v) else', 'return "–" if True else',
          ("tests/test_html_page.py",)),
)


def scratch_copy(dest: Path) -> None:
    """The working tree's tracked and untracked-but-not-ignored files, plus a link to .cache."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    (REPO / ".cache").mkdir(exist_ok=True)
    (dest / ".cache").symlink_to(REPO / ".cache")


def run_fault(fault: Fault, parity_dir: str) -> tuple[str, float, str]:
    """('killed' | 'survived' | 'error: ...', seconds, last line of pytest's output)."""
    with tempfile.TemporaryDirectory(prefix="rvc_lab-mutant-") as tmp:
        root = Path(tmp)
        scratch_copy(root)
        target = root / fault.path
        text = target.read_text()
        if fault.old not in text:
            return f"error: pattern not found in {fault.path}", 0.0, ""
        target.write_text(text.replace(fault.old, fault.new))
        env = dict(os.environ, PYTHONPATH=str(root), RVC_LAB_PARITY_DIR=parity_dir, RVC_LAB_STRICT="1")
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *fault.tests],
                           cwd=root, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        last = (r.stdout.strip().splitlines() or [""])[-1]
        outcome = {0: "survived", 1: "killed"}.get(r.returncode, f"error: pytest exit {r.returncode}")
        return outcome, seconds, last


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", help="run only faults whose name contains one of these words")
    p.add_argument("--list", action="store_true", help="list the faults and exit")
    a = p.parse_args(argv)
    faults = [f for f in FAULTS if not a.only or any(w in f.name for w in a.only)]
    if a.list:
        for f in faults:
            print(f"{f.name}: {f.path}; tests {' '.join(f.tests)}")
        return 0
    parity_dir = os.environ.get("RVC_LAB_PARITY_DIR", str(REPO.parent / "shared" / "parity"))
    killed = 0
    for f in faults:
        outcome, seconds, last = run_fault(f, parity_dir)
        killed += outcome == "killed"
        print(f"{outcome:9s} {seconds:6.1f} s  {f.name}  [{last}]", flush=True)
    print(f"kill rate: {killed}/{len(faults)} = {killed / len(faults):.0%}")
    return 0 if killed == len(faults) else 1


if __name__ == "__main__":
    sys.exit(main())
