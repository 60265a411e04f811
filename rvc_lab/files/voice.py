"""RVC voice model files (``.pth`` exported by RVC's training UI): parse, validate, summarise, write.

An exported voice is a dict::

    weight   {key: fp16 tensor}  generator weights, weight norm stored as weight_g/weight_v, no enc_q
    config   18-item list        generator hyper-parameters (see rvc_lab.models.synth_spec.CONFIG_FIELDS)
    info     str                 free text (training epochs ...)
    sr       "32k"|"40k"|"48k"   output sample rate tag
    f0       1 | 0               pitch-guided model or not        (missing: 1, as upstream)
    version  "v1" | "v2"         256- or 768-dim content features (missing: "v1", as upstream)

Files are untrusted: they are read with a weights-only unpickler and every tensor is checked
against the layout the config implies, so a wrong or damaged file fails here with a message
that says what is wrong, not later inside a convolution.
"""
from __future__ import annotations

import logging
import math
import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from rvc_lab.errors import ModelFileError
from rvc_lab.files.safe_load import atomic_torch_save, safe_torch_load
from rvc_lab.models.synth_spec import (
    CONFIG_FIELDS,
    FEATURE_DIM,
    SR_TAGS,
    spec_from_config,
    standard_config,
    stored_layout,
)

log = logging.getLogger(__name__)

_WHAT = "voice model"
_OPTIONAL_META = ("name", "author", "timestamp", "id", "hash")  # written by some forks


@dataclass
class VoiceModel:
    """A validated RVC voice.

    Attributes
    ----------
    path : str
        File it came from.
    version : {"v1", "v2"}
    tgt_sr : int
        Output sample rate in Hz.
    if_f0 : bool
        Pitch-guided model (NSF decoder, coarse-pitch embedding).
    config : list
        The 18-item config with item 15 (speaker count) replaced by the row count of
        ``emb_g.weight``, as upstream's loaders do.
    weights : dict[str, Tensor]
        Stored tensors as read (usually float16; weight norm as ``weight_g``/``weight_v``).
    info : str
    n_speakers : int
    feature_dim : int
        256 (v1) or 768 (v2): width of the content features the model takes.
    meta : dict
        Optional extra fields some forks write (name, author, timestamp, id, hash).
    """

    path: str
    version: str
    tgt_sr: int
    if_f0: bool
    config: list
    weights: dict
    info: str
    n_speakers: int
    feature_dim: int
    meta: dict = field(default_factory=dict)

    @property
    def sr_tag(self) -> str:
        """"40k" style tag of ``tgt_sr``."""
        return f"{self.tgt_sr // 1000}k" if self.tgt_sr % 1000 == 0 else str(self.tgt_sr)

    @property
    def samples_per_frame(self) -> int:
        """Output samples per 10 ms content frame (product of the upsample rates)."""
        return math.prod(self.config[CONFIG_FIELDS.index("upsample_rates")])

    @property
    def parameter_count(self) -> int:
        """Stored values (weight-norm gains counted, training-only enc_q excluded)."""
        return sum(t.numel() for k, t in self.weights.items() if not k.startswith("enc_q."))

    def summary(self) -> dict:
        """Plain-data description for ``rvc-lab info`` (JSON-serialisable)."""
        dtypes = sorted({str(t.dtype).replace("torch.", "") for t in self.weights.values()})
        out = {
            "path": self.path,
            "version": self.version,
            "sample_rate": self.tgt_sr,
            "sr_tag": self.sr_tag,
            "f0": self.if_f0,
            "speakers": self.n_speakers,
            "feature_dim": self.feature_dim,
            "samples_per_frame": self.samples_per_frame,
            "parameters": self.parameter_count,
            "tensors": len(self.weights),
            "weights_dtype": ",".join(dtypes),
            "info": self.info,
            "config": dict(zip(CONFIG_FIELDS, self.config)),
        }
        out.update(self.meta)
        return out


def voice_config(version: str, sr_tag: str, n_speakers: int = 109) -> list:
    """The 18-item config upstream's export writes for ``version`` ("v1"/"v2") x ``sr_tag``
    ("32k"/"40k"/"48k"); ``n_speakers`` is item 15 (upstream writes 109)."""
    return standard_config(version, sr_tag, n_speakers=n_speakers)


def load_voice(path: str | os.PathLike) -> VoiceModel:
    """Read and validate an RVC voice ``.pth``.

    Raises
    ------
    ModelFileError
        Missing/empty/truncated file, a pickle referencing code (nothing is executed), a training
        checkpoint instead of an exported voice, missing keys, a config that does not fit the
        weights, version/f0/sample-rate tags that contradict the weights, non-finite weights.
    """
    path = os.fspath(path)
    obj = safe_torch_load(path, what=_WHAT)
    return parse_voice(path, obj)


def parse_voice(path: str, obj) -> VoiceModel:
    """Validate an already-unpickled voice dict (``path`` only names it in errors)."""

    def fail(problem: str):
        raise ModelFileError(path, problem)

    if not isinstance(obj, dict):
        fail(
            f"not an RVC voice model: the file holds a {type(obj).__name__}, "
            "expected a dict with 'weight' and 'config'"
        )
    _reject_training_checkpoint(path, obj)
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        fail(
            f"not an RVC voice model: a bare state dict ({len(obj)} tensors) without 'config'; "
            "exported voices are dicts with 'weight', 'config', 'f0', 'version', 'sr'"
        )
    missing = [k for k in ("weight", "config") if k not in obj]
    if missing:
        fail(f"voice model lacks {', '.join(repr(k) for k in missing)} (keys present: {_names(obj)})")

    weights = obj["weight"]
    if not isinstance(weights, dict) or not weights:
        fail(f"'weight' must be a non-empty dict of tensors, got {type(weights).__name__}")
    for k, t in weights.items():
        if not isinstance(k, str) or not isinstance(t, torch.Tensor):
            fail(f"'weight' must map names to tensors; entry {k!r} is a {type(t).__name__}")
        if not t.is_floating_point():
            fail(f"weight {k} has dtype {t.dtype}, expected a floating-point tensor")

    version = obj.get("version", "v1")
    if not isinstance(version, str) or version not in FEATURE_DIM:
        fail(f"unknown 'version' {version!r} (expected 'v1' or 'v2')")
    f0_flag = obj.get("f0", 1)
    if f0_flag not in (0, 1) or isinstance(f0_flag, float):
        fail(f"'f0' must be 1 (pitch model) or 0 (no pitch), got {f0_flag!r}")
    if_f0 = bool(f0_flag)

    config = _check_config(path, obj["config"])
    tgt_sr = config[-1] if isinstance(config[-1], int) else SR_TAGS[config[-1]]
    _check_sr_tag(path, obj.get("sr"), tgt_sr)
    rates = config[CONFIG_FIELDS.index("upsample_rates")]
    if math.prod(rates) * 100 != tgt_sr:
        fail(
            f"config upsample_rates {rates} give {math.prod(rates)} samples per 10 ms frame, but its sampling rate "
            f"{tgt_sr} Hz needs {tgt_sr // 100}"
        )

    stored = _canonical_keys(weights)
    feature_dim, n_speakers = _check_tags_against_weights(path, stored, version, if_f0, config)
    config = list(config)
    if config[15] != n_speakers:
        log.debug("%s: config speaker count %s replaced by emb_g rows %d (as upstream)", path, config[15], n_speakers)
    config[15] = n_speakers

    _check_layout(path, stored, config, version, if_f0)
    for k, t in weights.items():
        if not _all_finite(t):
            fail(f"weight {k} contains NaN or infinite values")

    info = obj.get("info", "")
    meta = {k: obj[k] for k in _OPTIONAL_META if k in obj and isinstance(obj[k], (str, int, float))}
    return VoiceModel(
        path=path, version=version, tgt_sr=tgt_sr, if_f0=if_f0, config=config, weights=weights,
        info=info if isinstance(info, str) else str(info), n_speakers=n_speakers, feature_dim=feature_dim, meta=meta,
    )  # fmt: skip


def write_voice(
    path: str | os.PathLike,
    weights: dict,
    config: list,
    version: str,
    sr_tag: str,
    if_f0: bool,
    info: str = "",
) -> str:
    """Write a voice ``.pth`` the way upstream's export does (fp16 weights, no ``enc_q``).

    The dict is validated exactly as :func:`load_voice` would before anything is written, then
    written to a temporary file beside ``path`` and moved into place (never half-written).

    Parameters
    ----------
    weights : dict[str, Tensor]
        Stored layout (``weight_g``/``weight_v`` for weight-normalised layers), any float dtype.
    config : list
        18 items (see :func:`voice_config`).
    version, sr_tag, if_f0, info
        The ``version``, ``sr``, ``f0`` and ``info`` fields.

    Returns
    -------
    str
        ``path``.
    """
    path = os.fspath(path)
    cpt = OrderedDict()
    cpt["weight"] = {
        k: t.detach().to("cpu", torch.float16).contiguous().clone()
        for k, t in weights.items()
        if not k.startswith("enc_q.")
    }
    cpt["config"] = list(config)
    cpt["info"] = str(info)
    cpt["sr"] = sr_tag
    cpt["f0"] = 1 if if_f0 else 0
    cpt["version"] = version
    parse_voice(path, cpt)
    atomic_torch_save(cpt, path)
    return path


# --------------------------------------------------------------------------------------------
# checks


def _names(d: dict, n: int = 8) -> str:
    keys = [repr(k) for k in list(d)[:n]]
    return ", ".join(keys) + (" ..." if len(d) > n else "") if keys else "none"


def _reject_training_checkpoint(path: str, obj: dict) -> None:
    if "weight" in obj or "model" not in obj:
        return
    markers = [k for k in ("optimizer", "iteration", "learning_rate") if k in obj]
    model = obj["model"]
    if not markers and not isinstance(model, dict):
        return
    if isinstance(model, dict) and any(str(k).startswith("discriminators.") for k in model):
        kind = "a discriminator training checkpoint (D_*.pth)"
    else:
        kind = "a generator training checkpoint (G_*.pth)"
    raise ModelFileError(
        path,
        f"this is {kind} with keys {', '.join(repr(k) for k in ['model', *markers])}, not an exported voice model; "
        "export the voice from it with RVC's checkpoint processing ('extract small model') and load that .pth",
    )


_INT_ITEMS = ("spec_channels", "segment_size", "inter_channels", "hidden_channels", "filter_channels", "n_heads",
              "n_layers", "kernel_size", "upsample_initial_channel", "spk_embed_dim", "gin_channels")  # fmt: skip


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_config(path: str, config) -> list:
    def fail(problem: str):
        raise ModelFileError(path, f"config {problem}")

    if not isinstance(config, (list, tuple)):
        fail(f"must be a list of {len(CONFIG_FIELDS)} items, got {type(config).__name__}")
    if len(config) != len(CONFIG_FIELDS):
        fail(f"has {len(config)} items, expected {len(CONFIG_FIELDS)} ({', '.join(CONFIG_FIELDS)})")
    c = dict(zip(CONFIG_FIELDS, config))

    def item(name: str) -> str:
        return f"item {CONFIG_FIELDS.index(name)} ({name})"

    for name in _INT_ITEMS:
        if not _is_int(c[name]) or c[name] < 0 or (c[name] == 0 and name not in ("gin_channels", "segment_size")):
            fail(f"{item(name)} must be a positive integer, got {c[name]!r}")
    if not isinstance(c["p_dropout"], (int, float)) or isinstance(c["p_dropout"], bool):
        fail(f"{item('p_dropout')} must be a number, got {c['p_dropout']!r}")
    if c["resblock"] not in ("1", "2"):
        fail(f"{item('resblock')} must be '1' or '2', got {c['resblock']!r}")
    for name in ("resblock_kernel_sizes", "upsample_rates", "upsample_kernel_sizes"):
        v = c[name]
        if not isinstance(v, (list, tuple)) or not v or not all(_is_int(x) and x > 0 for x in v):
            fail(f"{item(name)} must be a non-empty list of positive integers, got {v!r}")
    dil = c["resblock_dilation_sizes"]
    need = 3 if c["resblock"] == "1" else 2
    if (
        not isinstance(dil, (list, tuple))
        or len(dil) != len(c["resblock_kernel_sizes"])
        or not all(
            isinstance(d, (list, tuple)) and len(d) == need and all(_is_int(x) and x > 0 for x in d) for d in dil
        )
    ):
        fail(
            f"{item('resblock_dilation_sizes')} must be {len(c['resblock_kernel_sizes'])} lists of {need} positive "
            f"integers (one per resblock kernel size), got {dil!r}"
        )
    if len(c["upsample_rates"]) != len(c["upsample_kernel_sizes"]):
        fail(
            f"has {len(c['upsample_rates'])} upsample_rates but "
            f"{len(c['upsample_kernel_sizes'])} upsample_kernel_sizes"
        )
    sr = c["sampling_rate"]
    if not ((_is_int(sr) and sr > 0) or (isinstance(sr, str) and sr in SR_TAGS)):
        fail(f"{item('sampling_rate')} must be a sample rate in Hz, got {sr!r}")
    if c["hidden_channels"] % c["n_heads"]:
        fail(f"hidden_channels {c['hidden_channels']} is not divisible by n_heads {c['n_heads']}")
    if c["inter_channels"] % 2:
        fail(f"inter_channels {c['inter_channels']} must be even (the flow splits it in halves)")
    if c["upsample_initial_channel"] % 2 ** len(c["upsample_rates"]):
        fail(
            f"upsample_initial_channel {c['upsample_initial_channel']} cannot be halved "
            f"{len(c['upsample_rates'])} times (one per upsample rate)"
        )
    return list(config)


def _all_finite(t: torch.Tensor) -> bool:
    # max() propagates NaN and abs() turns -inf into inf: one reduction instead of an
    # elementwise isfinite, which is slow on CPU for the float16 tensors voices store.
    return t.numel() == 0 or bool(torch.isfinite(t.abs().max()))


def _check_sr_tag(path: str, tag, tgt_sr: int) -> None:
    if tag is None:
        return
    if _is_int(tag):
        hz = tag
    elif isinstance(tag, str) and re.fullmatch(r"\d+k", tag):
        hz = int(tag[:-1]) * 1000
    else:
        raise ModelFileError(path, f"'sr' must be a tag like '40k', got {tag!r}")
    if hz != tgt_sr:
        raise ModelFileError(path, f"'sr' says {tag} but the config's sampling rate is {tgt_sr} Hz")


def _canonical_keys(weights: dict) -> dict:
    """Stored key -> shape, with the newer weight-norm naming mapped to weight_g/weight_v and
    training-only enc_q.* dropped."""
    out = {}
    for k, t in weights.items():
        if k.startswith("enc_q."):
            continue
        k = k.replace(".parametrizations.weight.original0", ".weight_g").replace(
            ".parametrizations.weight.original1", ".weight_v"
        )
        out[k] = tuple(t.shape)
    return out


def _check_tags_against_weights(path: str, stored: dict, version: str, if_f0: bool, config: list):
    """Cross-check version/f0/decoder depth against the weights; returns (feature_dim, n_speakers)."""

    def fail(problem: str):
        raise ModelFileError(path, problem)

    for key in ("emb_g.weight", "enc_p.emb_phone.weight"):
        if key not in stored:
            fail(f"voice model weights lack {key} (is this an RVC generator?)")
    emb_g = stored["emb_g.weight"]
    if len(emb_g) != 2 or emb_g[0] < 1:
        fail(f"emb_g.weight has shape {emb_g}, expected [speakers, gin_channels]")
    emb_phone = stored["enc_p.emb_phone.weight"]
    if len(emb_phone) != 2:
        fail(f"enc_p.emb_phone.weight has shape {emb_phone}, expected [hidden, 256|768]")
    feature_dim = emb_phone[1]
    expected_dim = FEATURE_DIM[version]
    if feature_dim != expected_dim:
        weights_version = {v: k for k, v in FEATURE_DIM.items()}.get(feature_dim, "unknown")
        fail(
            f"version tag {version!r} expects {expected_dim}-dim content features, but enc_p.emb_phone takes "
            f"{feature_dim} ({weights_version} weights): the file's 'version' does not match its weights"
        )
    has_source = any(k.startswith("dec.m_source.") for k in stored)
    has_pitch = "enc_p.emb_pitch.weight" in stored
    if if_f0 and not (has_source and has_pitch):
        fail("'f0' says this is a pitch model, but the weights have no pitch embedding/NSF source "
             "(enc_p.emb_pitch, dec.m_source): a no-f0 model with a wrong 'f0' flag")  # fmt: skip
    if not if_f0 and (has_source or has_pitch):
        fail("'f0' says 0 (no pitch), but the weights contain a pitch embedding/NSF source "
             "(enc_p.emb_pitch, dec.m_source): a pitch model with a wrong 'f0' flag")  # fmt: skip
    ups = {int(m.group(1)) for k in stored if (m := re.match(r"dec\.ups\.(\d+)\.", k))}
    rates = config[CONFIG_FIELDS.index("upsample_rates")]
    if len(ups) != len(rates):
        fail(
            f"weights have {len(ups)} upsampling layers (dec.ups.*) but the config lists {len(rates)} upsample rates "
            f"{rates} (sampling rate {config[-1]}): config and weights come from different model types"
        )
    return feature_dim, emb_g[0]


def _check_layout(path: str, stored: dict, config: list, version: str, if_f0: bool) -> None:
    spec = spec_from_config(config, version, if_f0)
    layout = stored_layout(spec)
    missing = sorted(set(layout) - set(stored))
    unexpected = sorted(set(stored) - set(layout))
    if missing or unexpected:
        parts = []
        if missing:
            more = " ..." if len(missing) > 4 else ""
            parts.append(f"missing {len(missing)} tensor(s): {', '.join(missing[:4])}{more}")
        if unexpected:
            more = " ..." if len(unexpected) > 4 else ""
            parts.append(f"{len(unexpected)} unexpected: {', '.join(unexpected[:4])}{more}")
        raise ModelFileError(path, f"weights do not match the config ({'; '.join(parts)})")
    wrong = [(k, stored[k], layout[k].shape) for k in layout if stored[k] != layout[k].shape]
    if wrong:
        k, got, want = wrong[0]
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        raise ModelFileError(
            path,
            f"weight {k} has shape {list(got)} but the config implies {list(want)}{more}: config and weights differ",
        )
