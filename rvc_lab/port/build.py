"""Building the reference C++ host (``ports/cpp``) once per source and torch version.

The host links the libtorch inside the installed torch wheel with plain g++ (cmake's
``find_package(Torch)`` asks for a CUDA toolkit with the CUDA wheel; see ports/cpp/Makefile).
The binary is cached under ``<cache>/port-cpp/<key>/``, keyed by the sources, the torch version
and the compiler command, so an edited source or another torch rebuilds it and nothing else does.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

from rvc_lab.errors import RVCLabError, SettingsError

log = logging.getLogger(__name__)

SOURCE_DIR = Path(__file__).resolve().parents[2] / "ports" / "cpp"
SOURCES = ("rvc_cli.cpp", "rvc_host.cpp")  # compiled; the headers enter the key too
BINARY = "rvc_host_cli"
BUILD_TIMEOUT_S = 900  # libtorch's headers make one translation unit take ~30 s on 2 cores


class PortBuildError(RVCLabError):
    """The C++ host did not compile or link (the compiler's message is attached)."""


def compile_command(out: Path, source_dir: Path = SOURCE_DIR) -> list[str]:
    """The g++ command line (the one of /work/shared/README.md, -O2 and warnings added)."""
    import torch

    t = Path(torch.__file__).resolve().parent
    return ["g++", "-std=c++17", "-O2", "-Wall", "-D_GLIBCXX_USE_CXX11_ABI=1", f"-I{t}/include",
            f"-I{t}/include/torch/csrc/api/include", *[str(source_dir / s) for s in SOURCES], "-o", str(out),
            f"-L{t}/lib", f"-Wl,-rpath,{t}/lib", "-ltorch", "-ltorch_cpu", "-lc10"]


def build_key(source_dir: Path = SOURCE_DIR) -> str:
    """sha256 (20 hex digits) of the host's sources, the torch version and the compile flags."""
    import torch

    h = hashlib.sha256()
    for p in sorted(source_dir.glob("*")):
        if p.suffix in (".cpp", ".h", ".hpp"):
            h.update(p.name.encode() + b"\0" + p.read_bytes())
    h.update(torch.__version__.encode())
    h.update(" ".join(compile_command(Path("OUT"), Path("SRC"))).encode())
    return h.hexdigest()[:20]


def build_host(source_dir: Path = SOURCE_DIR, cache_dir: os.PathLike | None = None) -> Path:
    """The host binary, compiled into the cache on first use.

    Returns
    -------
    Path
        ``<cache>/port-cpp/<key>/rvc_host_cli``.

    Raises
    ------
    SettingsError
        No ``ports/cpp`` sources (an installed, non-editable package) or no g++.
    PortBuildError
        The compiler failed (its last lines are in the message).
    """
    from rvc_lab.files.synthetic import default_cache_dir

    if not (source_dir / SOURCES[1]).is_file():
        raise SettingsError(f"{source_dir}: the C++ host's sources are not there (port-check runs from a checkout)")
    if shutil.which("g++") is None:
        raise SettingsError("g++ not found: apt-get install build-essential (or bash scripts/system-packages.sh)")
    out_dir = Path(cache_dir or default_cache_dir()) / "port-cpp" / build_key(source_dir)
    binary = out_dir / BINARY
    if binary.is_file():
        return binary
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{BINARY}.{os.getpid()}.tmp"
    log.info("building the C++ host into %s (about 30 s)", out_dir)
    t0 = time.perf_counter()
    try:
        res = subprocess.run(compile_command(tmp, source_dir), capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        tmp.unlink(missing_ok=True)
        raise PortBuildError(f"g++ took longer than {BUILD_TIMEOUT_S} s") from None
    if res.returncode != 0:
        tmp.unlink(missing_ok=True)
        tail = "\n".join((res.stderr or res.stdout).strip().splitlines()[-20:])
        raise PortBuildError(f"building {source_dir} failed (g++ exit {res.returncode}):\n{tail}")
    os.replace(tmp, binary)  # atomic: a concurrent build finds a whole binary or none
    log.info("built %s in %.1f s", binary, time.perf_counter() - t0)
    return binary
