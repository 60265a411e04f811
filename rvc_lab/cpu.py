"""What CPU this runs on: model name, the ISA extensions that change speed and last bits, cores.

Machines of one kind come with different CPUs (Intel Xeon with AMX, AMD EPYC with AVX-512 and
AVX512-BF16 and no AMX): FFT/BLAS/oneDNN results differ between them in the last bits and bf16
speed differs a lot, so every benchmark figure and cost row names the CPU it came from.
"""
from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path

#: the /proc/cpuinfo flags that matter here, under the names we print
ISA_FLAGS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16", "avx512f": "AVX-512", "avx2": "AVX2",
             "fma": "FMA"}


@lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset]:
    model, flags = "", frozenset()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no flags to read
        text = ""
    for line in text.splitlines():
        if line.startswith("model name") and not model:
            model = line.split(":", 1)[1].strip()
        elif line.startswith("flags") and not flags:
            flags = frozenset(line.split(":", 1)[1].split())
    return model or platform.processor() or "unknown CPU", flags


def cpu_model() -> str:
    """The CPU's model name, e.g. ``'AMD EPYC 9R14 96-Core Processor'``."""
    return _cpuinfo()[0]


def cpu_isa() -> list[str]:
    """The speed-relevant ISA extensions present, e.g. ``['AVX512-BF16', 'AVX-512', 'AVX2', 'FMA']``."""
    flags = _cpuinfo()[1]
    return [name for flag, name in ISA_FLAGS.items() if flag in flags]


def has_native_bf16() -> bool:
    """True when the CPU multiplies bfloat16 in hardware (AMX-BF16 or AVX512-BF16).

    Without either, oneDNN emulates bf16 with conversions around fp32 arithmetic: measured 7-9x
    *slower* than fp32 per streaming block on a 2-core AMD EPYC (Zen 3, AVX2), where the
    AVX512-BF16 EPYC ran it 2.1x faster.
    """
    return bool({"AMX-BF16", "AVX512-BF16"} & set(cpu_isa()))


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask), not the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cpu_description() -> str:
    """One line for benchmark output: ``CPU: <model> | <ISA, ...> | N usable cores``."""
    isa = ", ".join(cpu_isa()) or "no AVX2"
    return f"CPU: {cpu_model()} | {isa} | {usable_cores()} usable cores"
