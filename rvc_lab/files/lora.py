"""LoRA adapter files (``rvc_lab-lora/1``): read, validate against a voice, write, seeded stand-ins.

An adapter file is a ``torch.save`` of plain data (read weights-only: nothing in it can run)::

    format   "rvc_lab-lora/1"
    target   {"version": "v1"|"v2", "sample_rate": 32000|40000|48000, "f0": 1|0}
    layers   {module name: {"lora_A": Tensor, "lora_B": Tensor, "alpha": float, "r": int}}
    info     str  (optional free text)

Module names are the generator's (``dec.ups.0``, ``dec.resblocks.4.convs2.1``); the factor shapes
per layer kind and the merge formula are :mod:`rvc_lab.models.lora`'s (docs/lora.md).  An adapter
is checked against the voice it is applied to before any generator is built: every layer must be
a linear/convolution layer of that voice with factors of the shapes its weight implies, and the
target tags must be the voice's, so an adapter of another architecture, version or sample rate
fails here with the first mismatched layer named.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from rvc_lab.errors import ModelFileError, SettingsError
from rvc_lab.files.generator_weights import generator_state_dict
from rvc_lab.files.safe_load import atomic_torch_save, safe_torch_load
from rvc_lab.files.synthetic import key_rng
from rvc_lab.models.lora import LayerAdapter, factor_shapes, layer_kind, lora_delta
from rvc_lab.models.synth_spec import spec_from_config
from rvc_lab.models.synthesizer import Synthesizer

FORMAT = "rvc_lab-lora/1"
_WHAT = "LoRA adapter"
_LAYER_KEYS = ("lora_A", "lora_B", "alpha", "r")


@dataclass
class LoRAAdapter:
    """A parsed adapter file.

    Attributes
    ----------
    path : str
        File it came from (names it in errors).
    target : dict
        ``version``, ``sample_rate`` (Hz), ``f0`` (1/0) of the voice it was made for.
    layers : dict[str, LayerAdapter]
        Module name -> factors (float32).
    info : str
    """

    path: str
    target: dict
    layers: dict[str, LayerAdapter]
    info: str = ""

    @property
    def parameter_count(self) -> int:
        return sum(layer.parameter_count for layer in self.layers.values())


def voice_target(voice) -> dict:
    """The ``target`` tags of a :class:`rvc_lab.files.voice.VoiceModel`."""
    return {"version": voice.version, "sample_rate": int(voice.tgt_sr), "f0": int(voice.if_f0)}


def describe_target(target: dict) -> str:
    """``"v2 40000 Hz f0"``: a target in words, for messages."""
    return f"{target['version']} {target['sample_rate']} Hz {'f0' if target['f0'] else 'no-f0'}"


def adaptable_layers(voice) -> dict[str, tuple[str, tuple]]:
    """Every layer of the voice's generator an adapter can target, in module order.

    Parameters
    ----------
    voice : VoiceModel (or anything with ``config``, ``version``, ``if_f0``, ``n_speakers``)

    Returns
    -------
    dict[str, (kind, weight_shape)]
        Module name -> (``"linear"|"conv1d"|"conv_transpose1d"``, shape of its folded weight).
        Built on the meta device (no weights read, nothing allocated) and cached per architecture.
    """
    key = (json.dumps(list(voice.config)), voice.version, bool(voice.if_f0), int(voice.n_speakers))
    return dict(_layer_table(key))


@lru_cache(maxsize=16)
def _layer_table(key: tuple) -> tuple:
    config, version, if_f0, n_speakers = key
    spec = spec_from_config(json.loads(config), version, if_f0, n_speakers=n_speakers)
    with torch.device("meta"):
        model = Synthesizer(spec)
    out = []
    for name, module in model.named_modules():
        try:
            kind = layer_kind(module)
        except TypeError:
            continue
        out.append((name, (kind, tuple(module.weight.shape))))
    return tuple(out)


def parse_adapter(path: str, obj) -> LoRAAdapter:
    """Validate an unpickled adapter dict on its own (no voice); ``path`` names it in errors."""

    def fail(problem: str):
        raise ModelFileError(path, problem)

    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        got = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        fail(f"not an rvc_lab LoRA adapter: 'format' is {got!r}, expected {FORMAT!r} (see docs/lora.md)")
    target = obj.get("target")
    if (
        not isinstance(target, dict)
        or target.get("version") not in ("v1", "v2")
        or not isinstance(target.get("sample_rate"), int)
        or target.get("f0") not in (0, 1)
    ):
        fail(f"'target' must be {{'version': 'v1'|'v2', 'sample_rate': Hz, 'f0': 1|0}}, got {target!r}")
    layers = obj.get("layers")
    if not isinstance(layers, dict) or not layers:
        fail("'layers' must be a non-empty dict of module name -> {lora_A, lora_B, alpha, r}")
    parsed = {}
    for name, entry in layers.items():
        if not isinstance(entry, dict) or set(entry) != set(_LAYER_KEYS):
            keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            fail(f"layer {name}: expected keys {', '.join(_LAYER_KEYS)}, got {keys}")
        r, alpha = entry["r"], entry["alpha"]
        if not isinstance(r, int) or isinstance(r, bool) or r < 1:
            fail(f"layer {name}: rank r must be a positive integer, got {r!r}")
        if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not math.isfinite(alpha) or alpha <= 0:
            fail(f"layer {name}: alpha must be a positive number, got {alpha!r}")
        for key in ("lora_A", "lora_B"):
            t = entry[key]
            if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.dim() != 2:
                fail(f"layer {name}: {key} must be a 2-D floating-point tensor, got {_describe(t)}")
            if not bool(torch.isfinite(t).all()):
                fail(f"layer {name}: {key} contains NaN or infinite values")
        parsed[name] = LayerAdapter(entry["lora_A"].float(), entry["lora_B"].float(), float(alpha), r)
    target = {"version": target["version"], "sample_rate": target["sample_rate"], "f0": int(target["f0"])}
    return LoRAAdapter(path=path, target=target, layers=parsed, info=str(obj.get("info", "")))


def load_adapter(path: str | os.PathLike) -> LoRAAdapter:
    """Read an adapter file weights-only and validate its structure (not yet against a voice).

    Raises
    ------
    ModelFileError
        Missing/empty/corrupt file, a pickle that references code (refused, nothing run), or a
        structure that is not ``rvc_lab-lora/1``.
    """
    path = os.fspath(path)
    return parse_adapter(path, safe_torch_load(path, what=_WHAT))


def check_adapter_fits(adapter: LoRAAdapter, voice) -> None:
    """Refuse an adapter that was not made for ``voice``'s generator.

    Layers are checked in the generator's module order (names the voice lacks come last), then
    the target tags, so the message names the first layer that does not fit.

    Raises
    ------
    ModelFileError
        On the adapter's path: ``layer dec.ups.0 (conv_transpose1d, weight [512, 256, 24]): ...``.
    """
    layers = adaptable_layers(voice)
    order = {name: i for i, name in enumerate(layers)}
    mine, theirs = describe_target(adapter.target), describe_target(voice_target(voice))
    context = f"adapter made for a {mine} voice, {voice.path} is {theirs}"
    for name in sorted(adapter.layers, key=lambda n: order.get(n, len(order))):
        layer = adapter.layers[name]
        if name not in layers:
            raise ModelFileError(adapter.path, f"layer {name}: the voice has no such linear/convolution layer ({context})")
        kind, shape = layers[name]
        want_a, want_b = factor_shapes(kind, shape, layer.r)
        got_a, got_b = tuple(layer.lora_A.shape), tuple(layer.lora_B.shape)
        if (got_a, got_b) != (want_a, want_b):
            raise ModelFileError(
                adapter.path,
                f"layer {name} ({kind}, weight {list(shape)}): lora_A {list(got_a)} and lora_B {list(got_b)} do not "
                f"fit, rank {layer.r} needs lora_A {list(want_a)} and lora_B {list(want_b)} ({context})",
            )
    if adapter.target != voice_target(voice):
        raise ModelFileError(adapter.path, f"{context}: version, sample rate and f0 must all match")


def write_adapter(path: str | os.PathLike, target: dict, layers: dict[str, LayerAdapter], info: str = "") -> str:
    """Write an ``rvc_lab-lora/1`` file atomically (factors as float32); returns ``path``.

    The dict is validated as :func:`load_adapter` would before anything is written.
    """
    path = os.fspath(path)
    obj = {
        "format": FORMAT,
        "target": dict(target),
        "layers": {
            name: {"lora_A": a.lora_A.detach().to("cpu", torch.float32).contiguous().clone(),
                   "lora_B": a.lora_B.detach().to("cpu", torch.float32).contiguous().clone(),
                   "alpha": float(a.alpha), "r": int(a.r)}  # fmt: skip
            for name, a in layers.items()
        },
        "info": str(info),
    }
    parse_adapter(path, obj)
    atomic_torch_save(obj, path)
    return path


#: Stored names of a weight-normalised layer's (g, v): upstream's, and torch's parametrizations.
_WEIGHT_NORM_SUFFIXES = ((".weight_g", ".weight_v"),
                         (".parametrizations.weight.original0", ".parametrizations.weight.original1"))  # fmt: skip


def stored_weight_keys(weights: dict, layer: str) -> tuple[str, ...]:
    """``(weight,)`` or ``(g, v)``: the stored keys holding ``layer``'s weight."""
    if f"{layer}.weight" in weights:
        return (f"{layer}.weight",)
    for g, v in _WEIGHT_NORM_SUFFIXES:
        if f"{layer}{g}" in weights and f"{layer}{v}" in weights:
            return (f"{layer}{g}", f"{layer}{v}")
    raise KeyError(f"{layer}: no stored weight (neither .weight nor a weight-norm pair)")


def folded_layer_weight(weights: dict, layer: str) -> torch.Tensor:
    """The weight ``layer`` computes with (weight norm folded), float32, from stored weights."""
    keys = stored_weight_keys(weights, layer)
    if len(keys) == 1:
        return weights[keys[0]].to(torch.float32)
    return generator_state_dict({k: weights[k] for k in keys})[f"{layer}.weight"]


# --------------------------------------------------------------------------------------------
# Seeded random adapters (tests and demos)


def default_ranks(voice, rank: int) -> dict[str, int]:
    """The public RVC LoRA project's choice of layers: rank ``rank`` on the decoder's upsampling
    layers (``dec.ups.*``), ``max(4, rank // 2)`` on every convolution of its residual blocks."""
    out = {}
    for name in adaptable_layers(voice):
        if name.startswith("dec.ups."):
            out[name] = rank
        elif name.startswith("dec.resblocks."):
            out[name] = max(4, rank // 2)
    return out


def random_adapter_layers(voice, rank: int = 8, seed: int = 0, strength: float = 0.1,
                          ranks: dict[str, int] | None = None) -> dict[str, LayerAdapter]:  # fmt: skip
    """Seeded random factors for ``voice``, with a delta of a chosen size.

    Unlike a freshly initialised adapter for training, ``lora_B`` is *not* zero here: a zero
    ``B`` makes the delta zero, so a merge that dropped or scrambled it would still pass every
    test.  ``A`` is drawn U(+-1/sqrt(fan_in)) (PyTorch's Kaiming-uniform default), ``B``
    U(+-1), then ``B`` is rescaled so that each layer's delta has ``strength`` times the
    Frobenius norm of the layer's folded weight.

    Parameters
    ----------
    voice : VoiceModel
    rank : int
        See :func:`default_ranks` (used when ``ranks`` is None).
    seed : int
        Each factor has its own PCG64 stream keyed by (seed, layer, factor).
    strength : float
        ``||scale * dW|| / ||W||`` per layer (dimensionless).
    ranks : dict[str, int], optional
        Layer name -> rank, instead of :func:`default_ranks`.

    Returns
    -------
    dict[str, LayerAdapter]
        ``alpha = 2 r`` (the public project's 16 at rank 8), float32 factors.
    """
    if not (isinstance(rank, int) and rank >= 1) or not (math.isfinite(strength) and strength > 0):
        raise SettingsError(f"rank must be a positive integer and strength a positive number, got {rank!r}, {strength!r}")
    layers = adaptable_layers(voice)
    ranks = default_ranks(voice, rank) if ranks is None else ranks
    out = {}
    for name, r in ranks.items():
        kind, shape = layers[name]
        a_shape, b_shape = factor_shapes(kind, shape, r)
        fan_in = math.prod(a_shape) // r
        a = _uniform(key_rng(seed, "lora", f"{name}.lora_A"), a_shape, 1.0 / math.sqrt(fan_in))
        b = _uniform(key_rng(seed, "lora", f"{name}.lora_B"), b_shape, 1.0)
        unit = LayerAdapter(a, b, alpha=2.0 * r, r=r)
        base = folded_layer_weight(voice.weights, name).double()
        gain = strength * float(base.norm()) / float(lora_delta(kind, shape, unit).double().norm())
        out[name] = LayerAdapter(a, (b * gain).float(), alpha=2.0 * r, r=r)
    return out


def write_random_adapter(path: str | os.PathLike, voice, rank: int = 8, seed: int = 0, strength: float = 0.1) -> str:
    """:func:`random_adapter_layers` written for ``voice`` (not a trained adapter: see its docstring)."""
    layers = random_adapter_layers(voice, rank=rank, seed=seed, strength=strength)
    return write_adapter(path, voice_target(voice), layers,
                         info=f"seeded random adapter (seed {seed}, rank {rank}, strength {strength}); not trained")  # fmt: skip


def _uniform(rng: np.random.Generator, shape: tuple, bound: float) -> torch.Tensor:
    return torch.from_numpy((bound * (2.0 * rng.random(shape) - 1.0)).astype(np.float32))


def _describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"a {x.dim()}-D {str(x.dtype).replace('torch.', '')} tensor"
    return f"a {type(x).__name__}"
