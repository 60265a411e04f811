"""Upstream RVC's offline conversion (``VC.vc_single``) from a user's checkout, as one timed process.

    python bench/upstream_offline.py --checkout UPSTREAM --assets ASSETS --voice V.pth \\
        [--index I.index] --input IN.wav --output OUT.wav [--f0-method fcpe] [--pitch 0] \\
        [--index-rate 0.75] [--threads 2]

Nothing of upstream is copied: this imports ``infer/vc/modules.py`` from the checkout and calls
``VC.get_vc`` then ``VC.vc_single`` as the web UI does, with upstream's CPU float32 settings
(``configs/config.py``: x_pad 1, x_query 6, x_center 38, x_max 41, the "5G" set it picks when
``is_half`` is off).  ``ASSETS`` is a directory in upstream's ``assets/`` layout (``hubert_base/``,
``rmvpe/rmvpe.pt``), as ``../shared/parity/make_assets.py`` writes it.  The input must be a 16 kHz
mono WAV: upstream's ffmpeg decoder is replaced by a soundfile read (the same samples).  Prints one JSON line:
``load_s`` (imports and models), ``convert_s`` (``vc_single``), ``wall_s``; the caller measures the
process's peak RSS (``bench/offline_bench.py``).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
import types
from pathlib import Path


def _load_16k_wav(path, sr):
    """Stands in for upstream's ffmpeg decoder (no ffmpeg binary needed): the input is already a
    16 kHz mono WAV, which ffmpeg would pass through unchanged as float32."""
    import numpy as np
    import soundfile as sf

    audio, file_sr = sf.read(path, dtype="float32", always_2d=True)
    if file_sr != sr:
        raise SystemExit(f"{path}: {file_sr} Hz; this driver takes {sr} Hz WAV input (no resampler)")
    return np.ascontiguousarray(audio.mean(axis=1))


def main(argv=None) -> int:
    t0 = time.perf_counter()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkout", type=Path, required=True)
    p.add_argument("--assets", type=Path, required=True)
    p.add_argument("--voice", type=Path, required=True)
    p.add_argument("--index", type=Path)
    p.add_argument("--input", type=Path, required=True)
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--f0-method", default="fcpe", choices=["pm", "rmvpe", "fcpe"])
    p.add_argument("--pitch", type=int, default=0)
    p.add_argument("--index-rate", type=float, default=0.75)
    p.add_argument("--protect", type=float, default=0.33)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)

    import soundfile as sf
    import torch

    torch.set_num_threads(a.threads)
    checkout, assets = a.checkout.resolve(), a.assets.resolve()
    if not (checkout / "infer" / "vc" / "modules.py").is_file():
        raise SystemExit(f"{checkout} is not an upstream RVC checkout (no infer/vc/modules.py)")
    sys.path.insert(0, str(checkout))
    # upstream finds its files through these variables and ./i18n relative to the working directory
    os.environ["weight_root"] = str(a.voice.resolve().parent)
    os.environ["index_root"] = os.environ["outside_index_root"] = str((a.index or a.voice).resolve().parent)
    os.environ["rmvpe_root"] = str(assets / "rmvpe")
    os.chdir(checkout)
    for name in ("ffmpeg", "av"):
        # infer/audio.py imports its ffmpeg decoders at module level; the decoder is replaced
        # below (_load_16k_wav), so an empty module stands in where the package is not installed
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)
    with contextlib.redirect_stdout(io.StringIO()):
        import infer.hubert as upstream_hubert
        import infer.vc.modules as upstream_modules
        from infer.vc.modules import VC
    upstream_hubert.HUBERT_MODEL_PATH = assets / "hubert_base"  # upstream: <checkout>/assets
    upstream_modules.load_audio = _load_16k_wav
    config = types.SimpleNamespace(device=torch.device("cpu"), is_half=False, x_pad=1, x_query=6, x_center=38,
                                   x_max=41)
    vc = VC(config)
    vc.get_vc(a.voice.name)
    t1 = time.perf_counter()
    info, (sr, audio) = vc.vc_single(0, str(a.input.resolve()), a.pitch, a.f0_method,
                                     str(a.index.resolve()) if a.index else "", a.index_rate, 0, 0.25, a.protect)
    t2 = time.perf_counter()
    if audio is None:
        raise SystemExit(f"upstream vc_single failed:\n{info}")
    sf.write(a.output, audio, sr)
    print(json.dumps({"load_s": t1 - t0, "convert_s": t2 - t1, "wall_s": time.perf_counter() - t0,
                      "sample_rate": sr, "samples": int(len(audio))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
