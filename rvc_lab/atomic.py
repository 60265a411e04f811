"""Atomic file writes: a path holds either its complete new content or what it held before.

Every writer in rvc_lab (audio, checkpoints, indexes, tables, reports, reference cases) goes
through these helpers.  The content is written to a hidden, uniquely named sibling in the same
directory (same file system, so the final ``os.replace`` is atomic), flushed to disk, then moved
over the destination; on any error the temporary is removed and the error re-raised.  Missing
parent directories are created.

* :func:`atomic_path` -- a temporary *path* for writers that insist on opening a name themselves
  (``DataFrame.to_csv``, ``faiss``, ``np.savez``);
* :func:`atomic_open` -- a temporary *file object* (``torch.save``, ``soundfile.write``);
* :func:`write_text_atomic` / :func:`write_bytes_atomic` -- whole content at once;
* :func:`atomic_directory` -- a directory built aside and swapped in (reference cases).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import IO, Iterator


def _temporary_sibling(dest: Path) -> Path:
    # hidden, unique per process and call: two writers of one path never share a temporary
    return dest.parent / f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; when the block ends without error it replaces ``dest``.

    The caller creates the file at the yielded path (nothing exists there yet).  A block that
    raises, or leaves no file behind, leaves ``dest`` untouched.

    Examples
    --------
    >>> with atomic_path("trace.csv") as tmp:       # doctest: +SKIP
    ...     df.to_csv(tmp, index=False)
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(dest)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{dest}: the writer created nothing to move into place")
        _fsync(tmp)
        os.replace(tmp, dest)
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_open(dest: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary file beside ``dest`` for writing; it replaces ``dest`` when the block ends.

    Parameters
    ----------
    dest : path-like
    mode : {"wb", "w"}
        Binary or text.
    encoding : str, optional
        Text mode only (default UTF-8).

    Notes
    -----
    The file is created with ``open(..., "x")`` rather than ``mkstemp``, so the result gets the
    usual umask-derived permissions instead of mkstemp's 0600.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode 'wb' or 'w', got {mode!r}")
    with atomic_path(dest) as tmp:
        text = mode == "w"
        with open(tmp, "x" if text else "xb", encoding=(encoding or "utf-8") if text else None) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def write_bytes_atomic(dest: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``dest`` atomically; returns ``dest`` as a Path."""
    with atomic_open(dest, "wb") as fh:
        fh.write(data)
    return Path(dest)


def write_text_atomic(dest: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``dest`` atomically; returns ``dest`` as a Path."""
    with atomic_open(dest, "w", encoding=encoding) as fh:
        fh.write(text)
    return Path(dest)


@contextlib.contextmanager
def atomic_directory(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``dest``; on success it replaces ``dest`` whole.

    An existing ``dest`` is moved aside first and removed only after the new directory is in
    place, so at every moment ``dest`` is absent, the old complete directory or the new one.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(dest)
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if dest.exists():
            old = _temporary_sibling(dest)
            os.replace(dest, old)
        try:
            os.replace(tmp, dest)
        except BaseException:
            if old is not None:
                os.replace(old, dest)  # put the previous directory back
            raise
        if old is not None:
            _remove(old)
    except BaseException:
        _remove(tmp)
        raise
