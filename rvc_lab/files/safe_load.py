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

from rvc_lab.atomic import atomic_open
from rvc_lab.errors import ModelFileError, first_line


def require_file(path: str | os.PathLike, what: str, directory_ok: bool = False) -> str:
    """Check that ``path`` is a non-empty file (or, with ``directory_ok``, a directory) before reading it.

    Cheap (one ``stat``): the command line runs it on every model path before any model loads.

    Returns
    -------
    str
        ``path`` as a string.

    Raises
    ------
    ModelFileError
        ``"<path>: <what> not found"``, ``"... expected a <what> file, found a directory"``,
        ``"... <what> is empty (0 bytes)"``.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelFileError(path, f"{what} not found")
    if os.path.isdir(path):
        if directory_ok:
            return path
        raise ModelFileError(path, f"expected a {what} file, found a directory")
    if os.path.getsize(path) == 0:
        raise ModelFileError(path, f"{what} is empty (0 bytes)")
    return path


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
    path = require_file(path, what)
    try:
        with torch.serialization.safe_globals(list(allow)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refusals land here: the file asked for a global we do not allow.
        raise ModelFileError(
            path, f"{what} refused: it references code outside the allow-list, nothing was executed ({first_line(exc)})"
        ) from None
    except (RuntimeError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise ModelFileError(path, f"{what} is truncated or corrupt ({first_line(exc)})") from None


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> str:
    """``torch.save`` through :func:`rvc_lab.atomic.atomic_open`: never a half-written file.

    Creates missing parent folders; on any error the temporary file is removed and ``path`` is
    left as it was.  Saved to a file object, so the archive's inner folder is torch's fixed
    ``archive`` (saving to a path names it after the file).  Returns ``path`` as a string.
    """
    path = os.fspath(path)
    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)
    return path
