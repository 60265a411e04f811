"""A/B specs: ``key=value`` strings (or JSON files) turned into validated conversion settings.

The keys are the ``convert``/``stream`` flag names with ``_`` for ``-``; they are parsed by the
same argparse options (:func:`rvc_lab.cli.options.add_voice_options`) and checked by the same
validation (:func:`rvc_lab.cli.options.check_voice_args`, ``OfflineSettings.validate`` /
``StreamSettings.validate``), so a spec accepts exactly what the command line accepts, and every
refusal is a :class:`SettingsError` raised before any model loads.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
from dataclasses import dataclass

from rvc_lab.cli.options import (
    add_offline_options,
    add_stream_options,
    add_voice_options,
    check_paths_exist,
    check_voice_args,
)
from rvc_lab.convert.offline import OfflineSettings
from rvc_lab.convert.streaming import StreamSettings
from rvc_lab.errors import SettingsError

#: Demo voices by name (seeded random weights): the names rvc_lab.sweep.study uses.
from rvc_lab.sweep.study import DEMO_VOICE_NAMES

MODES = ("offline", "stream")
#: Flags of one mode only (``convert`` or ``stream``), beside the shared voice options.
OFFLINE_KEYS = ("filter_radius", "protect", "resample_sr")
STREAM_KEYS = ("block_time", "crossfade", "extra_time", "formant", "threshold")


class _SpecParser(argparse.ArgumentParser):
    """argparse that raises :class:`SettingsError` instead of exiting (a spec is not a command line)."""

    def error(self, message):  # noqa: D102 - argparse hook
        raise SettingsError(f"{self.prog}: {message}")


def _parser(mode: str, label: str) -> _SpecParser:
    p = _SpecParser(prog=f"spec {label}", add_help=False, allow_abbrev=False)
    add_voice_options(p)
    p.add_argument("--lora", help="LoRA adapter merged into the voice in memory")
    if mode == "offline":
        add_offline_options(p)
    else:
        add_stream_options(p)
    return p


@dataclass
class ABSpec:
    """One side of an A/B study, validated.

    Attributes
    ----------
    label : str
        "A" or "B".
    text : str
        The spec as given (string, or the JSON file's path).
    args : argparse.Namespace
        The parsed options (paths resolved: a demo voice names its files here).
    settings : OfflineSettings or StreamSettings
        What :func:`rvc_lab.convert.offline.convert_offline` / ``stream_file`` run with.  Generator
        noise is off unless the spec sets ``seed``.
    mode : {"offline", "stream"}
    demo : str or None
        The demo voice's name (``demo/v2_40k``) when the spec names one: random weights.
    """

    label: str
    text: str
    args: argparse.Namespace
    settings: object
    mode: str
    demo: str | None = None

    @property
    def models_key(self) -> tuple:
        """What the loaded models depend on: specs with equal keys share one load."""
        a = self.args
        return (a.model, a.hubert, a.index, a.rmvpe, a.backend, a.lora)

    def describe(self) -> str:
        """The spec's non-default keys, for tables and logs."""
        return self.text if not os.path.isfile(self.text) else f"{self.text} (JSON)"


def _pairs(text: str, label: str) -> dict:
    """``key=value`` pairs of a spec string, or the mapping of a JSON file."""
    if os.path.isfile(text):
        try:
            with open(text, encoding="utf-8") as fh:
                obj = json.load(fh)
        except (OSError, ValueError) as exc:
            raise SettingsError(f"spec {label}: {text} is not a readable JSON file ({exc})") from None
        if not isinstance(obj, dict):
            raise SettingsError(f"spec {label}: {text} must hold a JSON object of key: value")
        return {str(k): v for k, v in obj.items()}
    out = {}
    for token in shlex.split(text):
        key, sep, value = token.partition("=")
        if not sep or not key:
            raise SettingsError(f"spec {label}: {token!r} is not key=value (e.g. model=V.pth pitch=0)")
        if key in out:
            raise SettingsError(f"spec {label}: {key} given twice")
        out[key] = value
    if not out:
        raise SettingsError(f"spec {label}: empty (give at least model=V.pth or model=demo/v2_40k)")
    return out


def _argv(pairs: dict, label: str, mode: str) -> list[str]:
    allowed = {"bundle", "no_noise"} | ({"model", "hubert", "index", "rmvpe", "backend", "f0_method", "pitch",
                                         "index_rate", "rms_mix", "sid", "precision", "seed", "lora"})
    allowed |= set(OFFLINE_KEYS if mode == "offline" else STREAM_KEYS)
    argv = []
    for key, value in pairs.items():
        if key not in allowed:
            other = "stream" if key in STREAM_KEYS else "offline" if key in OFFLINE_KEYS else None
            hint = f" (a --mode {other} key)" if other else f"; known keys: {', '.join(sorted(allowed))}"
            raise SettingsError(f"spec {label}: unknown key {key!r}{hint}")
        if key == "no_noise":
            raise SettingsError(f"spec {label}: noise is off unless seed=N is given; no_noise is implied")
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return argv


def _resolve_demo(a: argparse.Namespace, pairs: dict) -> str | None:
    """A demo voice (``model=demo/v2_40k``) brings its encoder, index and rmvpe unless the spec names them."""
    if a.model not in DEMO_VOICE_NAMES:
        if a.model and a.model.startswith("demo/"):
            raise SettingsError(f"model={a.model}: not a demo voice ({', '.join(DEMO_VOICE_NAMES)})")
        return None
    from rvc_lab.files.synthetic import cached_demo_assets

    name, key = a.model, DEMO_VOICE_NAMES[a.model]
    paths = cached_demo_assets()
    a.model = os.fspath(paths[key])
    a.hubert = a.hubert or os.fspath(paths["hubert"])
    a.rmvpe = a.rmvpe or os.fspath(paths["rmvpe"])
    if "index" not in pairs:
        a.index = os.fspath(paths[f"{key}_index"])
    return name


def parse_spec(text: str, label: str = "A", mode: str = "offline") -> ABSpec:
    """Parse and validate one spec; no model is loaded.

    Parameters
    ----------
    text : str
        ``"model=V.pth hubert=H.pt index=I.index f0_method=fcpe pitch=0 index_rate=0.75
        precision=bf16 backend=onnx lora=ADAPTER seed=N"`` (any subset; ``model`` may be a demo
        voice: ``demo/v2_40k``, ``demo/v1_48k``, ``demo/v2_32k_nof0``), or a JSON file's path with
        the same keys.
    label : str
        "A" or "B" (named in errors).
    mode : {"offline", "stream"}
        Which settings the spec fills; mode-only keys of the other mode are refused.

    Raises
    ------
    SettingsError
        Unknown keys, bad values, missing files, impossible combinations (lora with an exported
        backend).
    """
    if mode not in MODES:
        raise SettingsError(f"mode {mode!r}: choose offline or stream")
    pairs = _pairs(text, label)
    a = _parser(mode, label).parse_args(_argv(pairs, label, mode))
    demo = _resolve_demo(a, pairs)
    # a difference between A and B must be the specs', not the generator's random draws'
    noise = {"noise": a.seed is not None, "seed": a.seed}
    optional = {**({"index_rate": a.index_rate} if a.index_rate is not None else {}),
                **({"rms_mix_rate": a.rms_mix} if a.rms_mix is not None else {})}
    if mode == "offline":
        settings = OfflineSettings(f0_method=a.f0_method, pitch=a.pitch, filter_radius=a.filter_radius,
                                   protect=a.protect, resample_sr=a.resample_sr, sid=a.sid, precision=a.precision,
                                   **noise, **optional)
        validate = settings.validate
    else:
        settings = StreamSettings(block_time=a.block_time, crossfade_time=a.crossfade, extra_time=a.extra_time,
                                  f0_method=a.f0_method, pitch=a.pitch, formant=a.formant, threshold=a.threshold,
                                  sid=a.sid, precision=a.precision, **noise, **optional)
        validate = settings.validate
    try:
        validate()
        check_voice_args(a)
        check_paths_exist(a, ("lora",))
    except SettingsError as exc:
        raise SettingsError(f"spec {label}: {exc}") from None
    if a.lora and (a.backend != "torch" or a.bundle):
        raise SettingsError(f"spec {label}: lora= is merged into the torch generator; use backend=torch "
                            "(or merge first with rvc-lab lora merge and export the merged voice)")
    if a.lora:
        _check_adapter(a, label)
    return ABSpec(label=label, text=text, args=a, settings=settings, mode=mode, demo=demo)


def _check_adapter(a: argparse.Namespace, label: str) -> None:
    """The adapter fits the voice: read both files (weights-only), build nothing.

    Raises
    ------
    SettingsError
        Naming the first layer that does not fit, or the voice tags that differ.
    """
    from rvc_lab.errors import ModelFileError
    from rvc_lab.files.lora import check_adapter_fits, load_adapter
    from rvc_lab.files.voice import load_voice

    try:
        check_adapter_fits(load_adapter(a.lora), load_voice(a.model))
    except ModelFileError as exc:
        raise SettingsError(f"spec {label}: lora={a.lora} does not fit model={a.model}: {exc}") from None
