"""Exceptions raised for invalid user input.

Every error names the thing at fault (a file path, a setting) and the problem, so a message read
in a log tells the user what to fix without a traceback.
"""
from __future__ import annotations

import os


class RVCLabError(Exception):
    """Base class of every error rvc_lab raises on purpose."""


class InvalidAudioError(RVCLabError):
    """Audio that cannot be converted: empty, NaN/Inf, not an audio file, unreadable."""


class ModelFileError(RVCLabError):
    """A model file (voice .pth, hubert, rmvpe, index) that is missing, truncated or malformed.

    Parameters
    ----------
    path : str or os.PathLike
        The offending file.
    problem : str
        What is wrong with it, in plain words.
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class IndexMismatchError(ModelFileError):
    """A retrieval index whose vectors do not fit the voice model (e.g. v1 index, v2 model)."""


class SettingsError(RVCLabError, ValueError):
    """Impossible or out-of-range settings, raised before any work starts."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty).

    Library errors (libsndfile, faiss, zipfile) can run to many lines; rvc_lab's own messages
    quote only this one.
    """
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
