"""A study file (YAML or JSON): what a sweep runs, checked completely before anything loads.

Schema (every key but ``grid`` and ``measure`` has a default)::

    name: demo                      # names the study in results (default: the file's stem)
    voices:                         # for parity and cost; f0-only studies need none
      - demo/v2_40k                 # a demo voice by name (seeded random weights, see below)
      - {model: V.pth, hubert: H.pt, index: I.index, rmvpe: R.pt, name: mine}
    inputs:                         # each entry is one or more inputs
      - tones                       # the ground-truth tone suite (rvc_lab.testsignals), all of it
      - {tones: [complex_220, vibrato_300]}   # part of it
      - speech                      # the built-in speech (rvc_lab.speech.speech_input)
      - path/to/file.wav            # a file, or a folder (its audio files, sorted, not recursive)
      - {dataset: DIR, layout: mir1k}         # a pitch dataset (rvc_lab.pitch_datasets)
    grid:                           # the cartesian product of these lists is swept
      block_time: [0.1, 0.25]
      f0_method: [fcpe, pm]
    settings: {pitch: 0}            # fixed settings of every cell (same keys as grid)
    measure: [parity, f0, cost]     # see rvc_lab.sweep.measures
    seconds: 2.0                    # inputs are cut to this length (null: whole files)
    threads_per_cell: 1             # torch threads of one cell (serial runs use the same)
    rmvpe: R.pt                     # rmvpe.pt for the rmvpe F0 method when no voice gives one

Setting keys are the ``rvc-lab stream`` flag names with ``_`` for ``-``: every field of
:class:`rvc_lab.convert.streaming.StreamSettings` that a sweep may vary (:data:`SETTING_KEYS`)
plus ``backend`` (torch, torchscript, onnx).  Paths are relative to the study file's folder.
Demo voices: ``demo/v2_40k``, ``demo/v1_48k``, ``demo/v2_32k_nof0`` (written to the cache on
first use by :func:`rvc_lab.files.synthetic.cached_demo_assets`); random weights, so their
outputs are noise and only parity, F0 and cost figures mean anything.
"""
from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from rvc_lab.errors import SettingsError
from rvc_lab.export.backends import check_backend
from rvc_lab.pitch_datasets import dataset_items
from rvc_lab.testsignals import SUITE_NAMES

#: Settings a study may fix or sweep, with their types (StreamSettings fields and the backend).
SETTING_KEYS: dict[str, type] = {
    "block_time": float, "crossfade_time": float, "extra_time": float, "f0_method": str,
    "pitch": float, "formant": float, "index_rate": float, "rms_mix_rate": float, "threshold": float,
    "input_noise_reduce": bool, "output_noise_reduce": bool, "phase_vocoder": bool, "sid": int,
    "precision": str, "frontend_cache": bool, "backend": str,
}

#: Keys of a study file.
STUDY_KEYS = ("name", "voices", "inputs", "grid", "settings", "measure", "seconds", "threads_per_cell", "rmvpe")

#: Demo voice names -> key of :func:`rvc_lab.files.synthetic.demo_assets`' result.
DEMO_VOICE_NAMES = {"demo/v2_40k": "demo_v2_40k_f0", "demo/v1_48k": "demo_v1_48k_f0",
                    "demo/v2_32k_nof0": "demo_v2_32k_nof0"}

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")


@dataclass(frozen=True)
class VoiceSpec:
    """A voice of the study: a demo voice by name, or user files (absolute paths)."""

    name: str
    model: str | None = None
    hubert: str | None = None
    index: str | None = None
    rmvpe: str | None = None
    demo: str | None = None  # key of demo_assets() when this is a demo voice


@dataclass(frozen=True)
class InputSpec:
    """One input signal of the study.

    ``kind`` is ``"tone"`` (``ref`` = a tone-suite name), ``"speech"``, ``"file"`` (``ref`` = an
    absolute path) or ``"dataset"`` (``ref`` = audio path, ``reference`` = its F0 file,
    ``layout`` = the dataset layout).
    """

    name: str
    kind: str
    ref: str = ""
    reference: str = ""
    layout: str = ""


@dataclass
class Study:
    """A parsed, checked study (see module doc)."""

    name: str
    voices: list[VoiceSpec]
    inputs: list[InputSpec]
    grid: dict[str, list]
    settings: dict = field(default_factory=dict)
    measure: tuple[str, ...] = ("parity",)
    seconds: float | None = 2.0
    threads_per_cell: int = 1
    rmvpe: str | None = None

    def cells(self) -> list["Cell"]:
        """Every cell: voices x inputs x grid points, in that nesting order (a voice-less study
        has one voice slot, None)."""
        keys = list(self.grid)
        points = [dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys))]
        voices = self.voices or [None]
        return [Cell(self.name, v, i, {**self.settings, **p}, self.measure, self.seconds, self.threads_per_cell,
                     self.rmvpe)
                for v in voices for i in self.inputs for p in points]

    def file_paths(self) -> list[str]:
        """Every file the study reads (what a remote worker must be able to open)."""
        paths = [p for v in self.voices for p in (v.model, v.hubert, v.index, v.rmvpe) if p]
        paths += [p for i in self.inputs for p in (i.ref if i.kind in ("file", "dataset") else "", i.reference) if p]
        return paths + ([self.rmvpe] if self.rmvpe else [])


@dataclass(frozen=True)
class Cell:
    """One unit of work: a voice, an input, settings and the measurements to take."""

    study: str
    voice: VoiceSpec | None
    input: InputSpec
    params: dict
    measure: tuple[str, ...]
    seconds: float | None
    threads: int
    rmvpe: str | None = None

    def label(self) -> str:
        params = " ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.voice.name if self.voice else '-'} | {self.input.name} | {params}"


# ----------------------------------------------------------------------------- loading


def read_study_file(path: str | os.PathLike) -> dict:
    """The raw mapping of a ``.yaml``/``.yml``/``.json`` study file."""
    p = Path(path)
    if not p.is_file():
        raise SettingsError(f"study file {p} does not exist")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(text)  # safe_load: a study file cannot construct Python objects
        elif p.suffix.lower() == ".json":
            raw = json.loads(text)
        else:
            raise SettingsError(f"study file {p}: use a .yaml, .yml or .json file")
    except (ValueError, ImportError) as exc:
        raise SettingsError(f"study file {p} cannot be parsed: {exc}") from None
    except Exception as exc:  # yaml.YAMLError and its subclasses
        raise SettingsError(f"study file {p} cannot be parsed: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise SettingsError(f"study file {p}: expected a mapping of {', '.join(STUDY_KEYS)}")
    return raw


def load_study(path: str | os.PathLike) -> Study:
    """Read and check a study file (:func:`study_from_dict` with paths relative to its folder)."""
    raw = read_study_file(path)
    raw.setdefault("name", Path(path).stem)
    return study_from_dict(raw, base_dir=Path(path).resolve().parent)


def study_from_dict(raw: dict, base_dir: str | os.PathLike = ".") -> Study:
    """Check a study mapping completely and resolve its voices and inputs.

    Raises
    ------
    SettingsError
        Naming the first unknown key, bad value, missing file or impossible setting; nothing
        has been loaded or written when it is raised.
    """
    from rvc_lab.sweep.measures import MEASURES

    base = Path(base_dir)
    unknown = sorted(set(raw) - set(STUDY_KEYS))
    if unknown:
        raise SettingsError(f"study: unknown key(s) {', '.join(unknown)}; known: {', '.join(STUDY_KEYS)}")
    name = str(raw.get("name") or "study")
    measure = raw.get("measure", ["parity"])
    measure = [measure] if isinstance(measure, str) else list(measure or [])
    bad = [m for m in measure if m not in MEASURES]
    if not measure or bad:
        raise SettingsError(f"study {name}: measure {bad or measure} unknown; choose from {', '.join(MEASURES)}")
    grid = raw.get("grid") or {}
    if not isinstance(grid, dict):
        raise SettingsError(f"study {name}: grid must map setting names to lists of values")
    grid = {k: _setting_values(k, v if isinstance(v, list) else [v]) for k, v in grid.items()}
    settings = raw.get("settings") or {}
    if not isinstance(settings, dict):
        raise SettingsError(f"study {name}: settings must map setting names to values")
    settings = {k: _setting_values(k, [v])[0] for k, v in settings.items()}
    both = sorted(set(grid) & set(settings))
    if both:
        raise SettingsError(f"study {name}: {', '.join(both)} both fixed in settings and swept in grid")
    seconds = raw.get("seconds", 2.0)
    if seconds is not None and not (isinstance(seconds, (int, float)) and seconds > 0):
        raise SettingsError(f"study {name}: seconds={seconds!r} must be a positive number or null")
    threads = raw.get("threads_per_cell", 1)
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise SettingsError(f"study {name}: threads_per_cell={threads!r} must be a whole number >= 1")
    rmvpe = _existing(raw["rmvpe"], base, "rmvpe") if raw.get("rmvpe") else None
    voices = [_voice(v, base) for v in (raw.get("voices") or [])]
    if not voices and set(measure) - {"f0", "cost"}:
        # without a voice, cost is the F0 tracking time
        raise SettingsError(f"study {name}: measure {', '.join(sorted(set(measure) - {'f0', 'cost'}))} needs voices")
    inputs = [spec for entry in (raw.get("inputs") or []) for spec in _inputs(entry, base)]
    if not inputs:
        raise SettingsError(f"study {name}: no inputs")
    names = [i.name for i in inputs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SettingsError(f"study {name}: input name(s) {', '.join(dup)} appear twice")
    study = Study(name, voices, inputs, grid, settings, tuple(measure),
                  None if seconds is None else float(seconds), threads, rmvpe)
    _check_cells(study)
    return study


def _setting_values(key: str, values: list) -> list:
    if key not in SETTING_KEYS:
        raise SettingsError(f"study: setting {key!r} unknown; known: {', '.join(SETTING_KEYS)}")
    if not values:
        raise SettingsError(f"study: {key} has no values")
    kind, out = SETTING_KEYS[key], []
    for v in values:
        ok = isinstance(v, bool) if kind is bool else (isinstance(v, str) if kind is str else
                                                        isinstance(v, (int, float)) and not isinstance(v, bool))
        if kind is int:
            ok = ok and float(v).is_integer()
        if not ok:
            raise SettingsError(f"study: {key}={v!r} is not a {kind.__name__}")
        out.append(kind(v))
    if len(set(out)) != len(out):
        raise SettingsError(f"study: {key} lists a value twice: {values}")
    return out


def _check_cells(study: Study) -> None:
    """Every grid point must be a valid stream configuration for every voice (before any load)."""
    from rvc_lab.sweep.measures import stream_settings

    keys = list(study.grid)
    for values in itertools.product(*(study.grid[k] for k in keys)):
        params = {**study.settings, **dict(zip(keys, values))}
        check_backend(params.get("backend", "torch"))
        s = stream_settings(params)
        s.validate()
        for v in study.voices or [None]:
            # demo voices come with every file (resolved by rvc_lab.sweep.runner.resolve_voices)
            has_rmvpe = v is not None and bool(v.rmvpe or v.demo) or bool(study.rmvpe)
            if s.f0_method == "rmvpe" and not has_rmvpe:
                raise SettingsError(f"study {study.name}: f0_method rmvpe needs an rmvpe.pt "
                                    f"(the voice's rmvpe: key or the study's rmvpe:)")
            if s.index_rate > 0 and v is not None and not (v.index or v.demo):
                raise SettingsError(f"study {study.name}: index_rate {s.index_rate} needs an index for voice {v.name}")


def _existing(p, base: Path, what: str, directory_ok: bool = False) -> str:
    path = Path(os.path.expanduser(str(p)))
    path = path if path.is_absolute() else base / path
    if not path.exists():
        raise SettingsError(f"study: {what} {path} does not exist")
    if path.is_dir() and not directory_ok:
        raise SettingsError(f"study: {what} {path} is a folder, not a file")
    return os.fspath(path.resolve())


def _voice(entry, base: Path) -> VoiceSpec:
    if isinstance(entry, str):
        if entry not in DEMO_VOICE_NAMES:
            raise SettingsError(f"study: voice {entry!r} is not a demo voice ({', '.join(DEMO_VOICE_NAMES)}); "
                                "give files as {model: V.pth, hubert: H.pt, index: I.index}")
        return VoiceSpec(name=entry, demo=DEMO_VOICE_NAMES[entry])
    if not isinstance(entry, dict):
        raise SettingsError(f"study: voice {entry!r} must be a demo name or a mapping")
    unknown = sorted(set(entry) - {"model", "hubert", "index", "rmvpe", "name"})
    if unknown or not entry.get("model") or not entry.get("hubert"):
        raise SettingsError(f"study: voice {entry}: needs model and hubert (optional index, rmvpe, name)"
                            + (f"; unknown key(s) {', '.join(unknown)}" if unknown else ""))
    model = _existing(entry["model"], base, "voice model")
    return VoiceSpec(name=str(entry.get("name") or Path(model).stem), model=model,
                     hubert=_existing(entry["hubert"], base, "HuBERT checkpoint", directory_ok=True),
                     index=_existing(entry["index"], base, "index") if entry.get("index") else None,
                     rmvpe=_existing(entry["rmvpe"], base, "rmvpe checkpoint") if entry.get("rmvpe") else None)


def _inputs(entry, base: Path) -> list[InputSpec]:
    if entry == "tones":
        return [InputSpec(f"tone:{n}", "tone", n) for n in SUITE_NAMES]
    if entry == "speech":
        return [InputSpec("speech", "speech")]
    if isinstance(entry, dict) and set(entry) == {"tones"}:
        names = entry["tones"] if isinstance(entry["tones"], list) else [entry["tones"]]
        bad = [n for n in names if n not in SUITE_NAMES]
        if bad:
            raise SettingsError(f"study: tone(s) {bad} unknown; known: {', '.join(SUITE_NAMES)}")
        return [InputSpec(f"tone:{n}", "tone", n) for n in names]
    if isinstance(entry, dict) and "dataset" in entry:
        unknown = sorted(set(entry) - {"dataset", "layout"})
        if unknown:
            raise SettingsError(f"study: dataset entry: unknown key(s) {', '.join(unknown)}")
        root = _existing(entry["dataset"], base, "dataset", directory_ok=True)
        return [InputSpec(it.name, "dataset", it.audio, it.reference, it.layout)
                for it in dataset_items(root, entry.get("layout", "csv"))]
    if isinstance(entry, str):
        path = Path(_existing(entry, base, "input", directory_ok=True))
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
            if not files:
                raise SettingsError(f"study: input folder {path} holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
            return [InputSpec(p.name, "file", os.fspath(p)) for p in files]
        return [InputSpec(path.name, "file", os.fspath(path))]
    raise SettingsError(f"study: input {entry!r}: use tones, speech, a file, a folder, {{tones: [...]}} "
                        "or {dataset: DIR, layout: ...}")

