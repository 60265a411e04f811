"""Options and helpers shared by the ``rvc-lab`` command modules."""
from __future__ import annotations

import argparse
import json
import os

from rvc_lab.convert.models import ConverterModels
from rvc_lab.convert.offline import OfflineSettings
from rvc_lab.convert.streaming import StreamSettings
from rvc_lab.errors import SettingsError
from rvc_lab.export.backends import BACKENDS
from rvc_lab.export.formats import require_onnx
from rvc_lab.f0.estimator import METHODS


def add_voice_options(p: argparse.ArgumentParser) -> None:
    """The voice, content-encoder, F0 and noise options of ``convert`` and ``stream``."""
    p.add_argument("--model", help="voice .pth (v1/v2, 32k/40k/48k, f0 or not); required unless --bundle")
    p.add_argument("--index", help="added_*.index of the voice (faiss IVF-Flat)")
    p.add_argument("--hubert", help="hubert_base.pt (fairseq checkpoint) or a Hugging Face HuBERT directory; "
                                    "required unless --bundle")
    p.add_argument("--backend", choices=BACKENDS, default="torch",
                   help="engine of the content encoder and generator: torch (eager, default), torchscript or "
                        "onnx (exported files; without --bundle exported once into the cache)")
    p.add_argument("--bundle", help="a folder written by rvc-lab export, instead of --model/--hubert/--index "
                                    "(needs --backend torchscript or onnx)")
    p.add_argument("--rmvpe", help="rmvpe.pt (needed by --f0-method rmvpe)")
    p.add_argument("--f0-method", default="rmvpe", choices=METHODS, help="F0 method (default rmvpe, needs --rmvpe)")
    p.add_argument("--pitch", type=float, default=0.0, help="transposition in semitones [f0_up_key]")
    p.add_argument("--index-rate", type=float, default=None, help="0..1 weight of retrieved features")
    p.add_argument("--rms-mix", type=float, default=None, help="0..1; 1 keeps the generator's loudness envelope")
    p.add_argument("--sid", type=int, default=0, help="speaker id")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="fp32: exact (default); bf16: faster on CPUs with AMX/AVX512-BF16, approximate")
    noise = p.add_mutually_exclusive_group()
    noise.add_argument("--seed", type=int, help="seed torch with SEED + k before the k-th generator call")
    noise.add_argument("--no-noise", action="store_true", help="generator random draws are zeros (deterministic)")


def add_offline_options(p: argparse.ArgumentParser) -> None:
    """The options only ``convert`` (upstream ``vc_single``) has; defaults from :class:`OfflineSettings`."""
    off = OfflineSettings()
    p.add_argument("--filter-radius", type=int, default=off.filter_radius)
    p.add_argument("--protect", type=float, default=off.protect)
    p.add_argument("--resample-sr", type=int, default=off.resample_sr)


def add_stream_options(p: argparse.ArgumentParser) -> None:
    """The block geometry and gate options of ``stream``; defaults from :class:`StreamSettings`."""
    st = StreamSettings()
    p.add_argument("--block-time", type=float, default=st.block_time)
    p.add_argument("--crossfade", type=float, default=st.crossfade_time)
    p.add_argument("--extra-time", type=float, default=st.extra_time)
    p.add_argument("--formant", type=float, default=st.formant)
    p.add_argument("--threshold", type=float, default=st.threshold)


def noise_kwargs(a: argparse.Namespace) -> dict:
    """``noise`` and ``seed`` settings fields from ``--no-noise`` / ``--seed``."""
    return {"noise": not a.no_noise, "seed": a.seed}


def check_voice_args(a: argparse.Namespace) -> None:
    """Fail before any model loads: every named file exists, and rmvpe has its ``--rmvpe`` file.

    Raises
    ------
    SettingsError
        Naming the option and the fix.
    """
    bundle = getattr(a, "bundle", None)
    backend = getattr(a, "backend", "torch")
    if bundle:
        given = [f"--{f}" for f in ("model", "hubert", "index") if getattr(a, f, None)]
        if given:
            raise SettingsError(f"give --bundle or the voice files, not both ({', '.join(given)} given with --bundle)")
        if backend == "torch":
            raise SettingsError("--bundle holds exported files: add --backend torchscript or --backend onnx")
        if not os.path.isdir(bundle):
            raise SettingsError(f"--bundle {bundle}: no such directory")
    else:
        missing = [f"--{f}" for f in ("model", "hubert") if not getattr(a, f, None)]
        if missing:
            raise SettingsError(f"{' and '.join(missing)} required (or --bundle with an exported voice)")
    if backend != "torch" and getattr(a, "precision", "fp32") != "fp32":
        raise SettingsError(f"--precision {a.precision} applies to --backend torch; exported files run at the "
                            "precision they were exported in (the bundle manifest's \"precision\")")
    if backend == "onnx":
        require_onnx()
    check_paths_exist(a, ("model", "hubert", "index", "rmvpe"))
    if getattr(a, "f0_method", None) == "rmvpe" and not getattr(a, "rmvpe", None) and not _bundle_has_rmvpe(bundle):
        raise SettingsError("--f0-method rmvpe (the default) needs --rmvpe rmvpe.pt; or choose another "
                            f"--f0-method ({', '.join(m for m in METHODS if m != 'rmvpe')})")


def check_paths_exist(a: argparse.Namespace, flags) -> None:
    """Every path option in ``flags`` that was given exists (``SettingsError`` naming the option)."""
    for flag in flags:
        path = getattr(a, flag, None)
        if path and not os.path.exists(path):
            raise SettingsError(f"--{flag} {path}: no such file or directory")


def _bundle_has_rmvpe(bundle) -> bool:
    """Whether a bundle's manifest lists an exported RMVPE (hashes are checked when it loads)."""
    if not bundle:
        return False
    try:
        with open(os.path.join(bundle, "manifest.json")) as fh:
            return bool(json.load(fh).get("models", {}).get("rmvpe"))
    except (OSError, ValueError, AttributeError):
        return False  # the loader names what is wrong with the bundle


def load_models(a: argparse.Namespace) -> ConverterModels:
    """Load the voice, encoder, index and rmvpe path named by :func:`add_voice_options`.

    ``--backend torchscript|onnx`` runs the encoder and generator from exported files: the
    ``--bundle`` given, else the voice's bundle in the cache (exported on first use).
    """
    backend = getattr(a, "backend", "torch")
    if getattr(a, "bundle", None):
        from rvc_lab.export.backends import models_from_bundle

        return models_from_bundle(a.bundle, backend, rmvpe=a.rmvpe)
    return ConverterModels.load(a.model, hubert=a.hubert, index=a.index, rmvpe=a.rmvpe, backend=backend)
