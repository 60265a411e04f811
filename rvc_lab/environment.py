"""What a measurement depends on: versions, threads, CPU and the checkout's commit.

Reports, benchmarks and soaks print this beside their timings (FFT/BLAS/oneDNN results and speed
differ between the Intel and AMD machines of one kind).
"""
from __future__ import annotations

import importlib.metadata as md
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

import rvc_lab
from rvc_lab.cpu import cpu_isa, cpu_model, usable_cores


def environment_info() -> dict:
    """Versions, threads and CPU: what the timings in a report depend on."""

    def version(pkg: str) -> str:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return "not installed"

    cpu, usable = cpu_model(), usable_cores()
    info = {
        "rvc_lab": rvc_lab.__version__,
        "git_commit": _git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_isa": ", ".join(cpu_isa()),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "load_average_1_5_15": " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "",
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cuda": torch.cuda.is_available(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", ""),
    }
    for pkg in ("torch", "torchaudio", "numpy", "scipy", "librosa", "soundfile", "faiss-cpu", "praat-parselmouth",
                "pyworld", "torchcrepe", "torchfcpe", "pandas", "matplotlib", "mir_eval", "fairseq-fixed"):
        info[pkg] = version(pkg)
    return info


def _git_commit() -> str:
    repo = Path(__file__).resolve().parents[1]
    if not (repo / ".git").exists():
        return ""
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return out.stdout.strip() + (" (modified)" if dirty.stdout.strip() else "") if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""
