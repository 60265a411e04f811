"""The cell cache of a sweep: one JSON record per finished cell under ``OUT/cells/``.

A cell's key hashes everything its numbers depend on: its settings and measurements, the input
(file bytes, or the built-in signal's samples), the voice files' bytes, the rvc_lab and torch
versions, the CPU model and the threads per cell.  Rerunning a study computes only cells
without a record; a record is written atomically when its cell finishes, so a study killed at any
moment resumes with every finished cell intact.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from rvc_lab.atomic import write_text_atomic

_FILE_HASHES: dict[tuple, str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (a folder: of its files' names and hashes), memoised by
    (path, size, mtime) so a study hashes each large checkpoint once per process."""
    p = Path(path)
    if p.is_dir():
        h = hashlib.sha256()
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            h.update(f"{f.relative_to(p)}:{file_sha256(f)}\n".encode())
        return h.hexdigest()
    st = p.stat()
    key = (os.fspath(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FILE_HASHES:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _FILE_HASHES[key] = h.hexdigest()
    return _FILE_HASHES[key]


def audio_sha256(audio: np.ndarray, sr: int) -> str:
    """sha256 of float32 samples and their rate (built-in inputs have no file to hash)."""
    return hashlib.sha256(np.ascontiguousarray(audio, dtype=np.float32).tobytes() + str(int(sr)).encode()).hexdigest()


def cell_key(cell, voice_fingerprint: str, input_fingerprint: str, environment: dict) -> str:
    """The cache key of ``cell`` (hex sha256)."""
    record = {"params": {k: cell.params[k] for k in sorted(cell.params)}, "measure": list(cell.measure),
              "seconds": cell.seconds, "threads": cell.threads, "voice": voice_fingerprint,
              "input": input_fingerprint, "rmvpe": file_sha256(cell.rmvpe) if cell.rmvpe else None,
              **environment}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def record_path(out: Path, key: str) -> Path:
    return out / "cells" / f"{key}.json"


def read_record(out: Path, key: str) -> dict | None:
    """The finished cell's record, or None (missing or unreadable: computed again)."""
    try:
        return json.loads(record_path(out, key).read_text())
    except (OSError, ValueError):
        return None


def write_record(out: Path, key: str, record: dict) -> None:
    path = record_path(out, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Python's json writes NaN and Infinity (a figure may be either) and reads them back
    write_text_atomic(path, json.dumps(record, indent=1) + "\n")
