"""Readers of pitch datasets: audio files paired with reference F0, in each dataset's own layout.

Every layout gives :class:`DatasetItem` (where an utterance and its reference lie) and reads as
mono float32 audio plus a :class:`PitchReference` (frame times in s, F0 in Hz, 0 = unvoiced).
Estimates are scored on the reference's own grid (:func:`rvc_lab.metrics.f0.track_on_times`),
never by moving the reference.

Layouts (``root`` is the folder given to ``--dataset``):

``mir1k``
    MIR-1K: ``Wavfile/NAME.wav`` (16 kHz stereo: accompaniment left, **singing voice right**;
    only the right channel is read) and ``PitchLabel/NAME.pv`` (one value per line: the pitch
    in semitones as a MIDI number, 0 = unvoiced; 40 ms frames at a **20 ms hop**, frame i
    centred at ``(i + 1) * 20 ms``).  Hz = ``440 * 2 ** ((midi - 69) / 12)``.
``mdb-stem-synth``
    MDB-stem-synth: ``audio_stem/NAME.RESYN.wav`` (44.1 kHz mono) and
    ``annotation_stem/NAME.RESYN.csv`` (rows ``time_s,f0_hz``, no header, hop 128/44100 s,
    0 = unvoiced).
``ptdb-tug``
    PTDB-TUG: ``**/MIC/SPK/mic_SPK_UTT.wav`` (48 kHz) with ``**/REF/SPK/ref_SPK_UTT.f0``
    (whitespace-separated columns, the first is F0 in Hz, 0 = unvoiced; the rest are voicing
    probability, energy and cross-correlation, not read).  The references were computed with
    RAPT on the laryngograph signal (``LAR/``, not read) with 32 ms frames and a **10 ms**
    shift; frame k is taken at its window centre, ``16 ms + k * 10 ms`` (the database report's
    frame offset could not be checked here: pass ``ptdb_offset_s`` to :func:`read_reference`
    if your copy's documentation says otherwise).
``csv``
    Any dataset converted to this: ``NAME.wav`` (or .flac) beside ``NAME.csv`` holding a header
    row ``time_s,f0_hz`` then one row per frame (any hop, 0 = unvoiced), in one folder.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rvc_lab.audio import load_audio
from rvc_lab.errors import SettingsError

log = logging.getLogger(__name__)

LAYOUTS = ("mir1k", "ptdb-tug", "mdb-stem-synth", "csv")

#: Hop of each layout's reference, s (None: read from the file's own times).
REFERENCE_HOP_S = {"mir1k": 0.02, "ptdb-tug": 0.01, "mdb-stem-synth": 128 / 44100, "csv": None}

#: Time of PTDB-TUG's first reference frame, s (centre of a 32 ms window starting at 0).
PTDB_OFFSET_S = 0.016


@dataclass(frozen=True)
class DatasetItem:
    """One utterance: ``name`` (unique in the dataset), ``audio`` and ``reference`` paths, ``layout``."""

    name: str
    audio: str
    reference: str
    layout: str


@dataclass
class PitchReference:
    """Reference F0 of one utterance: ``times`` (s), ``f0_hz`` (0 = unvoiced), ``voiced`` (bool)."""

    times: np.ndarray
    f0_hz: np.ndarray
    voiced: np.ndarray


def check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise SettingsError(f"dataset layout {layout!r} unknown; choose one of {', '.join(LAYOUTS)}")
    return layout


def dataset_items(root: str | os.PathLike, layout: str) -> list[DatasetItem]:
    """Every utterance of a dataset folder that has both its audio and its reference, sorted by name.

    Audio without a reference is left out with one log line (datasets ship such files);
    no pair at all is an error.

    Raises
    ------
    SettingsError
        Unknown layout, missing folder, or no audio/reference pair in the expected layout.
    """
    check_layout(layout)
    base = Path(root)
    if not base.is_dir():
        raise SettingsError(f"dataset {base} is not a folder")
    pairs = _pairs(base, layout)
    items = [DatasetItem(name, os.fspath(a), os.fspath(r), layout) for name, (a, r) in sorted(pairs.items()) if r]
    orphans = sorted(name for name, (_, r) in pairs.items() if not r)
    if orphans:
        log.info("dataset %s: %d audio file(s) without a reference left out (first: %s)", base, len(orphans), orphans[0])
    if not items:
        raise SettingsError(f"dataset {base}: no audio file with its reference in the {layout} layout "
                            f"(see rvc_lab.pitch_datasets for the expected file names)")
    return items


def _pairs(base: Path, layout: str) -> dict[str, tuple[Path, Path | None]]:
    def ref_or_none(p: Path) -> Path | None:
        return p if p.is_file() else None

    if layout == "mir1k":
        return {a.stem: (a, ref_or_none(base / "PitchLabel" / f"{a.stem}.pv"))
                for a in (base / "Wavfile").glob("*.wav")}
    if layout == "mdb-stem-synth":
        return {a.name[: -len(".wav")]: (a, ref_or_none(base / "annotation_stem" / (a.name[: -len(".wav")] + ".csv")))
                for a in (base / "audio_stem").glob("*.wav")}
    if layout == "ptdb-tug":
        out = {}
        for a in base.glob("**/MIC/*/mic_*.wav"):
            ref = a.parent.parent.parent / "REF" / a.parent.name / ("ref_" + a.stem[len("mic_"):] + ".f0")
            out[a.stem[len("mic_"):]] = (a, ref_or_none(ref))
        return out
    return {a.stem: (a, ref_or_none(a.with_suffix(".csv")))
            for a in base.iterdir() if a.suffix.lower() in (".wav", ".flac")}


def read_item_audio(item: DatasetItem) -> tuple[np.ndarray, int]:
    """The utterance as float32 mono at its file's rate (MIR-1K: the right channel, the voice)."""
    if item.layout == "mir1k":
        import soundfile as sf

        data, sr = sf.read(item.audio, dtype="float32", always_2d=True)
        if data.shape[1] < 2:
            raise SettingsError(f"{item.audio}: MIR-1K files are stereo (voice on the right); this one has "
                                f"{data.shape[1]} channel")
        return np.ascontiguousarray(data[:, 1]), int(sr)
    return load_audio(item.audio)


def read_reference(item: DatasetItem, ptdb_offset_s: float = PTDB_OFFSET_S) -> PitchReference:
    """The reference F0 of ``item`` on its own frame times (see module doc for each layout)."""
    path = item.reference
    try:
        if item.layout == "mir1k":
            midi = np.loadtxt(path, dtype=np.float64, ndmin=1)
            f0 = np.where(midi > 0, 440.0 * 2.0 ** ((midi - 69.0) / 12.0), 0.0)
            times = (np.arange(f0.size) + 1) * REFERENCE_HOP_S["mir1k"]
        elif item.layout == "mdb-stem-synth":
            table = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
            times, f0 = table[:, 0], table[:, 1]
        elif item.layout == "ptdb-tug":
            table = np.loadtxt(path, dtype=np.float64, ndmin=2)
            f0 = table[:, 0]
            times = ptdb_offset_s + np.arange(f0.size) * REFERENCE_HOP_S["ptdb-tug"]
        else:
            table = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2, skiprows=1)
            times, f0 = table[:, 0], table[:, 1]
    except (OSError, ValueError, IndexError) as exc:
        raise SettingsError(f"{path}: not a {item.layout} reference F0 file ({exc})") from None
    f0 = np.where(np.isfinite(f0) & (f0 > 0), f0, 0.0)
    if times.size and np.any(np.diff(times) <= 0):
        raise SettingsError(f"{path}: reference times do not increase")
    return PitchReference(times=np.asarray(times, dtype=np.float64), f0_hz=f0, voiced=f0 > 0)
