"""Seeded random-weight demo assets in the real file formats (``rvc-lab demo-assets DIR``).

Everything a conversion needs, without any trained model: a full-size HuBERT base checkpoint
(fairseq format), an RMVPE checkpoint, three voices (v2 40k with pitch, v1 48k with pitch, v2 32k
without pitch), a matching retrieval index for each, and short test tones.  The weights are
random, so the "converted" audio is not speech; the files exercise every loader, shape and code
path exactly as real ones do.

Determinism: every tensor comes from its own numpy PCG64 stream keyed by
``(seed, asset, tensor name)`` and only ``Generator.random()`` is used (normals by Box-Muller),
so the same seed gives the same tensors on any platform and numpy version, independent of the
order in which tensors are made.  File *bytes* may still differ between torch versions
(``torch.save`` container details); compare loaded tensors, not files.

Layout of ``outdir``::

    hubert/hubert_base.pt                   fairseq HuBERT base (94.6 M params + final_proj), fp16
    rmvpe/rmvpe.pt                          RMVPE E2E(4, 1, (2, 2)) state dict, fp16
    weights/demo_v2_40k_f0.pth              voices as upstream exports them
    weights/demo_v1_48k_f0.pth
    weights/demo_v2_32k_nof0.pth
    indices/added_IVF{n}_Flat_nprobe_1_<voice>_<version>.index   one per voice
    audio/tone_16k.wav, audio/tone_48k.wav  2 s harmonic tone with a glide, PCM16 mono
    DEMO_ASSETS.json                        stamp: seed, format version, files (written last)
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rvc_lab.atomic import write_text_atomic
from rvc_lab.audio import write_wav_atomic
from rvc_lab.files.hubert import write_fairseq_checkpoint
from rvc_lab.files.index import build_ivf_flat_index, ivf_index_filename
from rvc_lab.files.rmvpe import random_rmvpe_weights, write_rmvpe
from rvc_lab.files.voice import voice_config, write_voice
from rvc_lab.models.hubert import HubertBase
from rvc_lab.models.synth_spec import SR_TAGS, spec_from_config, standard_config, stored_layout

logger = logging.getLogger(__name__)

#: Bump when what demo_assets writes changes: a stamp with another version is regenerated.
DEMO_ASSETS_VERSION = 1
STAMP = "DEMO_ASSETS.json"


@dataclass(frozen=True)
class DemoVoice:
    """One demo voice and the random features its index is built from."""

    name: str
    version: str  # "v1" | "v2"
    sr_tag: str  # "32k" | "40k" | "48k"
    if_f0: bool
    index_vectors: int
    index_std: float

    @property
    def feature_dim(self) -> int:
        return 256 if self.version == "v1" else 768


#: Index features: N(0, 1) for v2 (HuBERT layer-12 features of random weights have std ~1) and
#: N(0, 0.6^2) for v1 (final_proj output, std ~0.57), as many as the parity assets use.
DEMO_VOICES = (
    DemoVoice("demo_v2_40k_f0", "v2", "40k", True, 600, 1.0),
    DemoVoice("demo_v1_48k_f0", "v1", "48k", True, 800, 0.6),
    DemoVoice("demo_v2_32k_nof0", "v2", "32k", False, 600, 1.0),
)
TONE_RATES = (16000, 48000)
TONE_SECONDS = 2.0


# ---------------------------------------------------------------------------- random streams
def key_rng(seed: int, asset: str, key: str) -> np.random.Generator:
    """Independent PCG64 stream for one tensor of one asset."""
    digest = hashlib.sha256(f"rvc_lab-demo|{int(seed)}|{asset}|{key}".encode()).digest()
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int.from_bytes(digest[:16], "little"))))


def _uniform(rng: np.random.Generator, shape: tuple, bound: float, center: float = 0.0) -> np.ndarray:
    return center + bound * (2.0 * rng.random(shape) - 1.0)


def _normal(rng: np.random.Generator, shape: tuple, std: float) -> np.ndarray:
    """N(0, std^2) by Box-Muller from ``Generator.random()`` (stable across numpy versions)."""
    n = int(np.prod(shape))
    half = (n + 1) // 2
    u1 = 1.0 - rng.random(half)  # (0, 1]: finite log
    u2 = rng.random(half)
    r = np.sqrt(-2.0 * np.log(u1))
    z = np.concatenate([r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)])[:n]
    return (std * z).reshape(shape)


# ---------------------------------------------------------------------------- generator weights
def _generator_key_stream(seed: int, label: str, key: str) -> np.random.Generator:
    """Independent PCG64 stream per tensor, so values don't depend on which other tensors exist."""
    digest = hashlib.sha256(f"rvc_lab|{seed}|{label}|{key}".encode()).digest()
    words = np.frombuffer(digest[:16], dtype="<u4")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words.tolist())))


def _uniform_between(rng: np.random.Generator, shape: tuple, low: float, high: float) -> np.ndarray:
    return low + (high - low) * rng.random(shape)


def random_synthesizer_weights(
    version: str, sr_tag: str, if_f0: bool, seed: int, n_speakers: int = 1, *, config: list | None = None
) -> dict[str, torch.Tensor]:
    """Seeded random weights in the stored layout of an exported voice (``weight_g``/``weight_v``).

    Scales follow PyTorch's default initialisation (weights and biases U(+-1/sqrt(fan_in)),
    embeddings N(0, 1), relative-position embeddings N(0, 1/head_dim)); LayerNorm parameters are
    perturbed around identity (gamma 1+U(+-0.1), beta U(+-0.1)) and weight-norm gains are
    ||v|| x U(0.9, 1.1), so that every parameter matters.  Values are rounded to float16 (what an
    exported file stores) and returned as float32.

    Parameters
    ----------
    version : {"v1", "v2"}
    sr_tag : {"32k", "40k", "48k"}
    if_f0 : bool
    seed : int
    n_speakers : int
        Rows of ``emb_g.weight``.
    config : list, optional
        A non-standard 18-item config (e.g. a tiny generator for fast tests); default: upstream's
        standard config for ``version`` x ``sr_tag``.  Its sampling rate must match ``sr_tag``.

    Returns
    -------
    dict[str, Tensor]
        Deterministic for (version, sr_tag, if_f0, seed, n_speakers); each tensor has its own stream.
    """
    if sr_tag not in SR_TAGS:
        raise ValueError(f"sr_tag must be one of {sorted(SR_TAGS)}, got {sr_tag!r}")
    if config is None:
        config = standard_config(version, sr_tag, n_speakers=n_speakers)
    spec = spec_from_config(config, version, if_f0, n_speakers=n_speakers)
    if spec.sampling_rate != SR_TAGS[sr_tag]:
        raise ValueError(f"config sampling rate {spec.sampling_rate} does not match sr_tag {sr_tag!r}")
    layout = stored_layout(spec)
    label = f"{version}-{sr_tag}-{'f0' if if_f0 else 'nof0'}"
    values: dict[str, np.ndarray] = {}
    # Weight-norm gains depend on their direction tensors: draw those first.
    for key in sorted(layout, key=lambda k: layout[k].init == "wn_g"):
        ts = layout[key]
        rng = _generator_key_stream(seed, label, key)
        if ts.init == "uniform":
            bound = 1.0 / math.sqrt(ts.fan_in)
            a = _uniform_between(rng, ts.shape, -bound, bound)
        elif ts.init == "normal":
            a = _normal(rng, ts.shape, ts.std)
        elif ts.init == "ln_gamma":
            a = 1.0 + _uniform_between(rng, ts.shape, -0.1, 0.1)
        elif ts.init == "ln_beta":
            a = _uniform_between(rng, ts.shape, -0.1, 0.1)
        elif ts.init == "wn_g":
            v = values[ts.of].astype(np.float64)
            norm = np.sqrt((v.reshape(v.shape[0], -1) ** 2).sum(axis=1)).reshape(ts.shape)
            a = norm * _uniform_between(rng, ts.shape, 0.9, 1.1)
        else:  # pragma: no cover - layout and this switch are written together
            raise AssertionError(ts.init)
        values[key] = a.astype(np.float16)
    return {k: torch.from_numpy(values[k].astype(np.float32)) for k in layout}


def _fp16(a: np.ndarray) -> torch.Tensor:
    """float32 tensor holding fp16-representable values (what an fp16 file stores)."""
    return torch.from_numpy(a.astype(np.float16).astype(np.float32))


# ---------------------------------------------------------------------------- the assets
def seeded_hubert_state(seed: int) -> dict[str, torch.Tensor]:
    """Random HuBERT-base weights (our module's names), PyTorch-default scales, norms near identity.

    Linear/Conv weights and biases U(+-1/sqrt(fan_in)) with fan_in = size(1) * kernel;
    Group/LayerNorm weight 1+U(+-0.1), bias U(+-0.1); values rounded through fp16.
    """
    from torch import nn


    with torch.device("meta"):
        model = HubertBase()
    state: dict[str, torch.Tensor] = {}
    for mod_name, module in model.named_modules():
        params = dict(module.named_parameters(recurse=False))
        if not params:
            continue
        norm = isinstance(module, (nn.LayerNorm, nn.GroupNorm))
        weight_shape = tuple(params["weight"].shape) if "weight" in params else None
        for pname, p in params.items():
            key = f"{mod_name}.{pname}"
            rng = key_rng(seed, "hubert", key)
            shape = tuple(p.shape)
            if norm:
                values = _uniform(rng, shape, 0.1, 1.0 if pname == "weight" else 0.0)
            elif pname in ("weight", "bias") and weight_shape is not None and len(weight_shape) >= 2:
                fan_in = weight_shape[1] * int(np.prod(weight_shape[2:]))
                values = _uniform(rng, shape, 1.0 / math.sqrt(fan_in))
            else:  # a parameter kind this generator does not know: fail loudly, never guess
                raise TypeError(f"no random-init rule for {key} ({type(module).__name__})")
            state[key] = _fp16(values)
    if set(state) != set(model.state_dict()):
        raise TypeError("HubertBase has buffers or parameters the demo generator does not cover")
    return state


def seeded_hubert(seed: int):
    """``HubertBase`` carrying :func:`seeded_hubert_state` (eval, fp32)."""
    with torch.device("meta"):
        model = HubertBase()
    model.load_state_dict(seeded_hubert_state(seed), strict=True, assign=True)
    return model.eval()


def seeded_index_vectors(seed: int, voice: DemoVoice) -> np.ndarray:
    """float32 [index_vectors, feature_dim] N(0, index_std^2) "training features" of a voice."""
    rng = key_rng(seed, "index", voice.name)
    return (_normal(rng, (voice.index_vectors, voice.feature_dim), 1.0) * voice.index_std).astype(np.float32)


def tone(sr: int, seconds: float = TONE_SECONDS) -> np.ndarray:
    """A voiced-like test tone: harmonic complex, f0 gliding 140 -> 240 Hz with 5 Hz vibrato.

    Harmonics with 1/k amplitudes, all below min(6 kHz, 0.45 sr), 50 ms raised-cosine fades, peak
    0.5.  Computed from the analytic phase at each rate, so the 16 kHz and 48 kHz versions are
    the same signal.  Returns float32 [round(seconds * sr)].
    """
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    f0 = 140.0 + 100.0 * t / seconds + 3.0 * np.sin(2 * np.pi * 5.0 * t)
    # phase = 2 pi * integral of f0: closed form of the terms above
    phase = 2 * np.pi * (140.0 * t + 50.0 * t**2 / seconds - 3.0 / (2 * np.pi * 5.0) * (np.cos(2 * np.pi * 5.0 * t) - 1))
    top = min(6000.0, 0.45 * sr)
    y = np.zeros(n)
    for k in range(1, int(top // f0.max()) + 1):  # every harmonic stays below ``top`` throughout
        y += np.sin(k * phase) / k
    fade = int(0.05 * sr)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    y[:fade] *= ramp
    y[-fade:] *= ramp[::-1]
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def _relpaths() -> dict[str, str]:
    rel = {"hubert": "hubert/hubert_base.pt", "rmvpe": "rmvpe/rmvpe.pt"}
    for v in DEMO_VOICES:
        rel[v.name] = f"weights/{v.name}.pth"
        rel[f"{v.name}_index"] = f"indices/{ivf_index_filename(v.index_vectors, v.name, v.version)}"
    for sr in TONE_RATES:
        rel[f"tone_{sr // 1000}k"] = f"audio/tone_{sr // 1000}k.wav"
    return rel


def demo_assets(outdir: str | os.PathLike, seed: int = 0, force: bool = False) -> dict[str, Path]:
    """Write (or find) the seeded demo assets under ``outdir``.

    Parameters
    ----------
    outdir : path-like
        Created if missing.
    seed : int
        Same seed -> same tensors (see module doc).
    force : bool
        Regenerate even when a matching stamp exists.

    Returns
    -------
    dict[str, Path]
        ``"hubert"``, ``"rmvpe"``, one entry per voice name (``"demo_v2_40k_f0"``, ...), its index
        as ``"<voice>_index"``, and ``"tone_16k"``/``"tone_48k"``.

    Notes
    -----
    Idempotent: when ``DEMO_ASSETS.json`` records the same seed and format version and every file
    exists, nothing is written.  Each file is written atomically and the stamp last, so an
    interrupted run is simply redone.  Takes about 5 s on 2 cores and ~540 MB (HuBERT 190 MB, RMVPE 181 MB, voices 55 MB each).
    """
    out = Path(outdir)
    rel = _relpaths()
    paths = {k: out / r for k, r in rel.items()}
    stamp = out / STAMP
    if not force and _stamp_matches(stamp, seed, rel) and all(p.is_file() for p in paths.values()):
        logger.debug("demo assets for seed %d already in %s", seed, out)
        return paths


    out.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    logger.info("writing seed-%d demo assets to %s", seed, out)

    paths["hubert"].parent.mkdir(parents=True, exist_ok=True)
    write_fairseq_checkpoint(seeded_hubert(seed), paths["hubert"])

    paths["rmvpe"].parent.mkdir(parents=True, exist_ok=True)
    write_rmvpe(random_rmvpe_weights(_sub_seed(seed, "rmvpe")), paths["rmvpe"])

    for v in DEMO_VOICES:
        config = voice_config(v.version, v.sr_tag)
        weights = random_synthesizer_weights(v.version, v.sr_tag, v.if_f0, _sub_seed(seed, v.name),
                                             n_speakers=int(config[15]))
        paths[v.name].parent.mkdir(parents=True, exist_ok=True)
        write_voice(paths[v.name], weights, config, v.version, v.sr_tag, v.if_f0,
                    info=f"rvc_lab demo voice, random weights (seed {seed}); not a trained model")
        build_ivf_flat_index(seeded_index_vectors(seed, v), paths[f"{v.name}_index"],
                             shuffle_seed=_sub_seed(seed, f"{v.name}-shuffle"))

    for sr in TONE_RATES:
        write_wav_atomic(paths[f"tone_{sr // 1000}k"], tone(sr), sr, subtype="PCM_16")

    record = {"seed": int(seed), "version": DEMO_ASSETS_VERSION, "files": rel,
              "note": "random weights: for testing file formats and code paths, not for real conversion"}
    write_text_atomic(stamp, json.dumps(record, indent=2) + "\n")
    return paths


def default_cache_dir() -> Path:
    """Where generated assets are kept: ``$RVC_LAB_CACHE``, else ``<repo>/.cache`` in a writable
    checkout (git-ignored), else ``~/.cache/rvc_lab``."""
    if os.environ.get("RVC_LAB_CACHE"):
        return Path(os.environ["RVC_LAB_CACHE"])
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").exists() and os.access(repo, os.W_OK):
        return repo / ".cache"
    return Path.home() / ".cache" / "rvc_lab"


def cached_demo_assets(seed: int = 0, cache_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """:func:`demo_assets` in ``<cache>/demo-assets-seed<seed>`` (written on first use)."""
    return demo_assets(Path(cache_dir or default_cache_dir()) / f"demo-assets-seed{seed}", seed=seed)


def _sub_seed(seed: int, what: str) -> int:
    """A per-asset integer seed for generators that take one (RMVPE, synthesizer, shuffles)."""
    return int.from_bytes(hashlib.sha256(f"rvc_lab-demo|{int(seed)}|{what}".encode()).digest()[:4], "little")


def _stamp_matches(stamp: Path, seed: int, rel: dict) -> bool:
    try:
        info = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    return info.get("seed") == int(seed) and info.get("version") == DEMO_ASSETS_VERSION and info.get("files") == rel
