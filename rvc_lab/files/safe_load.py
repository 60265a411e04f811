"""Weights-only loading of torch checkpoint files.

``torch.load`` with ``weights_only=True`` refuses to unpickle anything but tensors and plain
containers, so a crafted file cannot run code.  Formats that legitimately pickle a class (the
fairseq checkpoint references ``fairseq.data.dictionary.Dictionary``) pass it in ``allow``.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from typing import Any, Iterable

import torch

from rvc_lab.errors import ModelFileError


def safe_torch_load(path: str | os.PathLike, allow: Iterable[Any] = (), what: str = "checkpoint") -> Any:
    """Load a torch checkpoint without executing pickled code.

    Parameters
    ----------
    path : path-like
        File written by ``torch.save``.
    allow : iterable
        Extra globals (classes, functions) the unpickler may reference; nothing else is allowed.
    what : str
        Name of the format for error messages ("voice model", "HuBERT checkpoint", ...).

    Returns
    -------
    object
        What ``torch.save`` stored, with tensors on the CPU.

    Raises
    ------
    ModelFileError
        Missing file, truncated/corrupt archive, or a pickle that asks for a global outside the
        allow-list (the message names it; nothing of it was run).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelFileError(path, f"{what} not found")
    if os.path.isdir(path):
        raise ModelFileError(path, f"expected a {what} file, found a directory")
    if os.path.getsize(path) == 0:
        raise ModelFileError(path, f"{what} is empty (0 bytes)")
    try:
        with torch.serialization.safe_globals(list(allow)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refusals land here: the file asked for a global we do not allow.
        raise ModelFileError(
            path, f"{what} refused: it references code outside the allow-list, nothing was executed ({_first_line(exc)})"
        ) from None
    except (RuntimeError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise ModelFileError(path, f"{what} is truncated or corrupt ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> str:
    """``torch.save`` into a temporary file beside ``path``, then rename: never a half-written file.

    Creates missing parent folders; on any error the temporary file is removed and ``path`` is
    left as it was.  Returns ``path`` as a string.
    """
    import tempfile

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
