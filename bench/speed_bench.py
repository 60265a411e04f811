"""Streaming speed against upstream, fast modes with their fidelity cost, scaling and memory (issue 6).

    .venv/bin/python bench/speed_bench.py --out bench-out [--threads 2] [--blocks 30] [--quick]

Writes CSV tables and PNG figures under ``--out`` and prints the tables:

1. ``exact.csv``     exact mode (fp32), and bf16 in the same run, per block at upstream's
                     configurations, on the parity assets (the seeded full-size weights
                     upstream's goldens were made with) when ``../shared/parity`` exists, else
                     on the demo assets; upstream (measured or stored, ms), ours (median, p95),
                     ratio, error against upstream's golden output of a full run of the case
                     (relative L2, SOLA offsets equal).
2. ``kernels.csv``   stage kernels before/after: loaded fp32 modules vs the fp32 and bf16 runtime copies,
                     interleaved, with their relative difference.
3. ``flops.csv``     FLOPs of each model stage per block, achieved GFLOP/s and the fraction of
                     the measured matrix-product peak: why 3x upstream in exact fp32 is or is not
                     reachable.
4. ``modes.csv``     fast modes against exact at upstream's defaults and at the low-latency
                     target (block 0.10 s, crossfade 0.05 s, extra 0.5 s, fcpe): speed-up and
                     fidelity (features rel L2, output rel L2 / SNR / MCD / F0 correlation after
                     delay alignment).  Input: speech (``rvc_lab.speech``).
5. ``scaling.csv``, ``scaling_fit.csv``, ``scaling.png``: cost vs extra_time and block_time,
                     both precisions, with the least-squares cost model.
6. ``memory.csv``, ``memory.png``: RSS over a simulated ``--memory-minutes`` stream.

``--upstream-checkout PATH`` (an upstream RVC checkout, e.g. one fetched from
RVC-Project/Retrieval-based-Voice-Conversion-WebUI) runs upstream's own ``RVC.infer`` on the
same 16 kHz ring right after each rvc_lab block, in this process, on the same assets and torch
(``bench/upstream_realtime.py``; needs transformers, the ``dev`` extra): ``upstream_ms`` is then
measured.  Without it, ``upstream_ms`` is the figure stored in
:data:`rvc_lab.perf.UPSTREAM_BLOCK_MS` (``../shared/parity/README.md``, taken with another torch
build: not comparable, see the README), or what ``--upstream JSON`` gives.

Every table compares configurations measured side by side in one run (blocks interleaved):
absolute times drift with machine load, ratios much less.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

# Side-by-side runs keep many configurations alive at once; oneDNN's cache of compiled
# convolution kernels (1024 by default, one per shape and dtype) then thrashes and every block
# pays for recompiling its kernels (+50-100 % per block in a 16-configuration sweep).  A single
# stream needs a few hundred entries.  Must be set before oneDNN creates its first kernel.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16384")

import numpy as np
import pandas as pd
import torch
from parity_assets import PARITY  # bench/parity_assets.py: this script's folder is on sys.path

from rvc_lab import perf
from rvc_lab.atomic import write_bytes_atomic, write_text_atomic
from rvc_lab.instrument import summarize_trace
from rvc_lab.metrics.spectral import rel_l2

log = logging.getLogger("speed_bench")

PARITY_CASES = {
    # name in UPSTREAM_BLOCK_MS: (golden case, input, StreamSettings of the case)
    "defaults": ("realtime_v2_40k_rmvpe_synth_dev48k", "synth_48k.wav",
                 dict(f0_method="rmvpe", pitch=3, formant=0.0, index_rate=0.5, rms_mix_rate=0.0, block_time=0.25,
                      crossfade_time=0.05, extra_time=2.5, threshold=-60)),
    "fcpe_formant": ("realtime_v2_40k_fcpe_speech_dev48k_formant", "speech_48k.wav",
                     dict(f0_method="fcpe", pitch=-2, formant=2.0, index_rate=0.0, rms_mix_rate=0.5, block_time=0.2,
                          crossfade_time=0.08, extra_time=1.5, threshold=-45)),
}

MODES = {
    "exact": {},
    "frontend_cache": {"frontend_cache": True},
    "bf16": {"precision": "bf16"},
    "bf16+frontend_cache": {"precision": "bf16", "frontend_cache": True},
}

TARGET = dict(block_time=0.10, crossfade_time=0.05, extra_time=0.5, f0_method="fcpe")


def _print(title: str, df: pd.DataFrame, cols=None) -> None:
    print(f"\n## {title}")
    with pd.option_context("display.width", 250, "display.max_columns", 40, "display.precision", 4):
        print((df[cols] if cols else df).to_string(index=False), flush=True)


def _asset_paths(parity: Path | None) -> tuple[dict, Path | None]:
    """Voice, HuBERT, index and RMVPE paths: the parity assets when generated, else the demo ones."""
    if parity is not None:
        if PARITY.generated():
            return PARITY.model_paths(), PARITY.root
        log.warning("parity assets not generated (%s): using the demo assets", PARITY.root)
    from rvc_lab.files.synthetic import cached_demo_assets

    p = cached_demo_assets(seed=0)
    return dict(model=p["demo_v2_40k_f0"], hubert=p["hubert"], index=p["demo_v2_40k_f0_index"], rmvpe=p["rmvpe"]), None


def _models(paths: dict, backend: str = "torch"):
    from rvc_lab.convert.models import ConverterModels

    return ConverterModels.load(**paths, backend=backend)


def _precision_bundles(paths: dict, precisions) -> dict:
    """{"<backend> <precision> bundle": ConverterModels} of fp16/bf16 bundles (exported once into the cache).

    A runtime that has no kernels for the precision (ONNX Runtime's CPU provider and bf16
    convolutions: the manifest says ``supported: false``) is left out with a line saying so."""
    from rvc_lab.errors import SettingsError
    from rvc_lab.export.backends import models_from_bundle
    from rvc_lab.export.bundle import cached_bundle

    out = {}
    for precision in precisions:
        try:
            bundle = cached_bundle(paths["model"], paths["hubert"], paths.get("index"), precision=precision,
                                   rmvpe=paths.get("rmvpe"))
        except Exception as err:  # a bench row lost, not the whole run: say why
            print(f"{precision} bundle left out: export failed: {type(err).__name__}: {err}")
            continue
        for backend in ("torchscript", "onnx"):
            try:
                out[f"{backend} {precision} bundle"] = models_from_bundle(bundle, backend)
            except SettingsError as err:
                print(f"{backend} {precision} bundle left out: {err}")
    return out


def _upstream_timer(checkout: Path, assets: Path, times: dict, names):
    """``on_block`` hook: upstream's ``RVC.infer`` on the 16 kHz ring of each block of the
    configurations ``names``; ms per block in ``times[name]``."""
    from upstream_realtime import UpstreamRealtime

    voice, index = PARITY.voice(), PARITY.index()
    runners = {}

    def on_block(name, conv):
        if name not in names:
            return
        if name not in runners:
            s = conv.settings
            runners[name] = UpstreamRealtime(checkout, assets, voice, index, pitch=s.pitch, formant=s.formant,
                                             index_rate=s.index_rate, f0_method=s.f0_method)
            times[name] = []
        ring = conv.input_wav_res.clone()
        t = time.perf_counter()
        runners[name].infer(ring, conv.geometry)
        times[name].append(1000 * (time.perf_counter() - t))

    return on_block


def exact_table(models, assets: Path | None, parity: Path | None, upstream: dict, blocks: int, warmup: int,
                sr: int, checkout: Path | None = None, backends: dict | None = None) -> pd.DataFrame:
    """Exact mode (and bf16, in the same run) at upstream's configurations; parity error from a
    full run of the golden case.

    With ``checkout`` (an upstream RVC checkout) and the parity assets, upstream's ``RVC.infer``
    runs on the same 16 kHz ring right after each of rvc_lab's blocks (``upstream_ms`` is then
    its median, ``upstream_source`` says "measured"); otherwise ``upstream_ms`` is the stored figure.
    ``backends`` ({name: ConverterModels of an exported fp32 bundle}) adds one fp32 row per backend
    and configuration, measured in the same interleaved run.
    """
    from dataclasses import replace

    import soundfile as sf

    from rvc_lab.audio import load_audio
    from rvc_lab.convert.streaming import StreamSettings, stream_file
    from rvc_lab.cpu import has_native_bf16
    from rvc_lab.instrument import StageTimer

    backends = backends or {}
    with_bf16 = has_native_bf16()
    if not with_bf16:
        print("bf16 left out of this table: this CPU has no AMX-BF16 / AVX512-BF16 (emulated bf16 ran 7-9x "
              "slower than fp32 per block on a Zen 3 EPYC)")
    settings, rows, inputs, cases, run_models = {}, {}, {}, {}, {}
    for key, (case, wav, kw) in PARITY_CASES.items():
        conf = f"{case} (block {kw['block_time']}, extra {kw['extra_time']}, {kw['f0_method']})"
        if assets is not None:
            inputs[key] = load_audio(assets / "audio" / wav)[0]
        variants = [("torch", "fp32")] + [("torch", "bf16")] * with_bf16 + [(b, "fp32") for b in backends]
        for backend, precision in variants:
            name = key + ("" if backend == "torch" else f"+{backend}") + ("" if precision == "fp32" else f"+{precision}")
            settings[name] = StreamSettings(noise=True, seed=0, precision=precision, **kw)
            cases[name] = key
            run_models[name] = backends.get(backend, models)
            rows[name] = {"configuration": conf, "backend": backend, "precision": precision,
                          "upstream_ms": upstream.get(key, float("nan")), "upstream_source": "stored"}
    audio = inputs.get("defaults", perf.harmonic_glide(10.0, sr))
    upstream_times: dict = {}
    hook = None
    if checkout is not None:
        if assets is None:
            raise SystemExit("--upstream-checkout needs the parity assets (../shared/parity and make_assets.py)")
        # upstream once per configuration, after its exact-mode block
        hook = _upstream_timer(checkout, assets / "assets", upstream_times, set(PARITY_CASES))
    runs = perf.run_side_by_side(run_models, settings, audio, sr, blocks=warmup + blocks, on_block=hook)
    for name, run in runs.items():
        if cases[name] in upstream_times:
            times = upstream_times[cases[name]][warmup:]
            rows[name].update(upstream_ms=float(np.median(times)), upstream_p95_ms=float(np.percentile(times, 95)),
                              upstream_source="measured")
        s = summarize_trace(run["trace"], warmup)
        rows[name].update(rvc_lab_ms=s["median_ms"], rvc_lab_p95_ms=s["p95_ms"], load_p95=s["load_p95"],
                          ratio=rows[name]["upstream_ms"] / s["median_ms"],
                          **{k: s.get(k, float("nan")) for k in ("content_features_ms", "f0_ms", "generator_ms")})
        if assets is not None and parity is not None:
            case = PARITY_CASES[cases[name]][0]
            golden, _ = sf.read(parity / "cases" / f"{case}__zero" / "out.wav", dtype="float32")
            with np.load(parity / "cases" / f"{case}__zero" / "data.npz") as z:
                offsets = z["sola_offset"]
            out, _, conv = stream_file(run_models[name], inputs[cases[name]], sr, replace(settings[name], noise=False, seed=None),
                                       timer=StageTimer())
            got = conv.timer.to_frame()["sola_offset"].to_numpy()
            n = min(out.shape[0], golden.shape[0])
            rows[name]["parity_rel_l2"] = rel_l2(out[:n], golden[:n])
            rows[name]["sola_offsets_equal"] = bool(np.array_equal(got, offsets))
    return pd.DataFrame(rows.values())


def kernel_table(models, repeats: int = 7) -> pd.DataFrame:
    """Stage kernels: loaded modules (fp32) vs the runtime copies of each precision, interleaved."""
    from rvc_lab.convert import runtime, stages

    wav = torch.from_numpy(perf.harmonic_glide(2.81, 16000))
    p_len, feats = 281, torch.randn(1, 281, models.voice.feature_dim, generator=torch.Generator().manual_seed(0)) * 0.5
    pitch = torch.full((1, p_len), 100, dtype=torch.long)
    pitchf = torch.full((1, p_len), 200.0)

    def hubert(precision):
        return stages.content_features(models.encoder, wav, models.voice.version, precision)

    def generator(precision):
        return stages.run_generator(models.net_g, feats, p_len, pitch, pitchf, 0, skip_head=250, return_length=30,
                                    return_length2=30, noise=False, precision=precision)

    rows = []
    for label, fn in (("HuBERT v2, 2.81 s", hubert), ("generator, p_len 281 / decode 30", generator)):
        with runtime.loaded_models():
            ref = fn("fp32")
        outs = {p: fn(p) for p in runtime.PRECISIONS}
        times = {"loaded": [], **{p: [] for p in runtime.PRECISIONS}}
        for _ in range(repeats):
            with runtime.loaded_models():
                t = time.perf_counter()
                fn("fp32")
                times["loaded"].append(time.perf_counter() - t)
            for p in runtime.PRECISIONS:
                t = time.perf_counter()
                fn(p)
                times[p].append(time.perf_counter() - t)
        base = np.median(times["loaded"])
        for p in runtime.PRECISIONS:
            rows.append({"stage": label, "precision": p, "loaded_fp32_ms": 1000 * base,
                         "runtime_ms": 1000 * np.median(times[p]), "speedup": base / np.median(times[p]),
                         "rel_diff": rel_l2(outs[p].numpy(), ref.numpy())})
    return pd.DataFrame(rows)


def fma_peak_gflops(threads: int) -> float:
    """fp32 FMA peak of ``threads`` cores from ``bench/fma_peak.cpp`` (compiled here with g++ -O3
    -march=native): a kernel of exactly known FLOPs, the ceiling no GEMM or convolution passes.
    NaN (with a log line) when g++ is missing; a failed build raises."""
    import shutil
    import subprocess
    import tempfile

    src = Path(__file__).with_name("fma_peak.cpp")
    if shutil.which("g++") is None:
        log.warning("g++ not found: no FMA peak (bash scripts/system-packages.sh installs it)")
        return float("nan")
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "fma_peak"
        subprocess.run(["g++", "-O3", "-march=native", "-pthread", str(src), "-o", str(exe)], check=True)
        out = subprocess.run([str(exe), str(threads), "1.0"], check=True, capture_output=True, text=True).stdout
    print(out.strip())
    return float(out.strip().splitlines()[-1].split()[3])


#: The stages' own kernel shapes: (label, FLOP, callable building the op) at upstream's defaults
#: (2.81 s ring: HuBERT T = 140; generator stage 1 of v2 40k: 128 channels over 31 x 100 samples).
def _stage_kernel_shapes():
    lin_x, lin_w = torch.randn(140, 768), torch.randn(3072, 768)
    shapes = [("HuBERT feed-forward linear 140x768 @ 768x3072", 2 * 140 * 768 * 3072,
               lambda: torch.nn.functional.linear(lin_x, lin_w))]
    for c, k, d, length in ((512, 3, 1, 4495), (256, 11, 5, 310), (128, 7, 3, 3100), (64, 11, 1, 6200),
                            (32, 3, 1, 12400)):
        conv = torch.nn.Conv1d(c, c, k, dilation=d, padding=(k - 1) * d // 2)
        x = torch.randn(1, c, length)
        shapes.append((f"conv1d {c}->{c} k{k} d{d} over {length}", 2 * c * c * k * length, lambda conv=conv, x=x: conv(x)))
    return shapes


def kernel_shape_table(repeats: int = 20) -> pd.DataFrame:
    """Best-of-``repeats`` GFLOP/s of square GEMMs and of the stages' own shapes (torch, fp32)."""
    rows = []
    for n in (1024, 2048):
        rows.append({"kernel": f"GEMM {n}x{n}x{n}", "gflop_per_s": perf.peak_gflops(size=n, repeats=repeats)})
    with torch.no_grad():
        for label, flops, fn in _stage_kernel_shapes():
            fn()
            best = min(_time(fn) for _ in range(repeats))
            rows.append({"kernel": label, "gflop_per_s": flops / best / 1e9})
    return pd.DataFrame(rows)


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def flops_table(models, configs: dict, sr: int, fma_peak: float, kernels: pd.DataFrame) -> pd.DataFrame:
    """FLOPs per stage and block, counted twice (torch's counter, the hand count of
    :mod:`rvc_lab.flop_model`), achieved GFLOP/s where measured, and the floors at the FMA peak
    and at the best GEMM: how far fp32 can go on this CPU.

    ``configs``: ``{label: (StreamSettings, measured row or {})}``; a measured row has
    ``<stage>_ms``, ``rvc_lab_ms`` and ``upstream_ms`` (the exact table's).
    """
    from rvc_lab import flop_model
    from rvc_lab.convert.streaming import StreamingConverter

    gemm = float(kernels.loc[kernels["kernel"].str.startswith("GEMM"), "gflop_per_s"].max())
    rows = []
    for label, (settings, measured) in configs.items():
        counts = perf.flop_counts(models, settings, sr)
        conv = StreamingConverter(models, settings, sr)
        g, ring = conv.geometry, conv.input_wav_res.shape[0]  # 16 kHz samples HuBERT sees per block
        hand = {"content_features": flop_model.hubert_flops(ring, models.voice.version)["total"],
                "generator": flop_model.generator_flops(models.net_g.spec, ring // 160, g.skip_head,
                                                        g.return_length)["total"]}
        block_ms = 1000 * settings.block_time
        for stage, flops in list(counts.items()) + [("total (model stages)", None)]:
            if flops is None:  # the block: the sum of the stages' best counts
                best = sum(hand.get(k, c) for k, c in counts.items())
                ms = measured.get("rvc_lab_ms", float("nan"))
            else:
                best = hand.get(stage, flops)  # the counter misses CPU attention: the hand count when there is one
                ms = measured.get(f"{stage}_ms", float("nan"))
            rows.append({"configuration": label, "stage": stage,
                         "counted_gflop": (flops if flops is not None else sum(counts.values())) / 1e9,
                         "hand_gflop": hand[stage] / 1e9 if stage in hand else float("nan"),
                         "median_ms": ms, "gflop_per_s": best / 1e6 / ms,
                         "fraction_of_fma_peak": best / 1e6 / ms / fma_peak,
                         "floor_ms_at_fma_peak": best / 1e6 / fma_peak, "floor_ms_at_gemm": best / 1e6 / gemm,
                         "floor_load_at_fma_peak": best / 1e6 / fma_peak / block_ms,
                         "upstream_ms": measured.get("upstream_ms", float("nan"))})
    df = pd.DataFrame(rows)
    df["fma_peak_gflop_per_s"], df["gemm_gflop_per_s"] = fma_peak, gemm
    # the best ratio over upstream that exact fp32 could reach if every model stage ran at the best
    # GEMM's rate and everything around the models cost nothing
    df["ratio_bound_at_gemm"] = df["upstream_ms"] / df["floor_ms_at_gemm"]
    return df


def modes_tables(models, sr: int, warmup: int, quick: bool, which=("defaults", "target")) -> pd.DataFrame:
    from rvc_lab.convert.streaming import StreamSettings
    from rvc_lab.files.synthetic import default_cache_dir
    from rvc_lab.speech import speech_input

    speech = speech_input(cache_dir=default_cache_dir() / "speech", sr=sr).audio
    out = []
    for key, label, base_kw, extra_modes in (
        ("defaults", "upstream defaults (0.25/0.05/2.5, rmvpe)", perf.UPSTREAM_DEFAULTS,
         {"extra_time=1.0": {"extra_time": 1.0}, "bf16+frontend_cache, extra_time=1.0":
          {"precision": "bf16", "frontend_cache": True, "extra_time": 1.0}}),
        ("target", "low-latency target (0.10/0.05/0.5, fcpe)", TARGET,
         {"bf16, extra_time=0.3": {"precision": "bf16", "extra_time": 0.3},
          "bf16, extra_time=1.0": {"precision": "bf16", "extra_time": 1.0}}),
    ):
        if key not in which:
            continue
        modes = {**MODES, **({} if quick else extra_modes)}
        base = StreamSettings(noise=False, index_rate=0.5, **base_kw)
        t = perf.mode_table(models, modes, speech, sr, base, warmup=warmup)
        t.insert(0, "configuration", label)
        out.append(t)
    return pd.concat(out, ignore_index=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for CSV and PNG output")
    p.add_argument("--blocks", type=int, default=30, help="measured blocks per configuration (after warm-up)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sr", type=int, default=48000, help="stream (device) rate")
    p.add_argument("--upstream-checkout", type=Path,
                   help="upstream RVC checkout: run its RVC.infer beside rvc_lab, block by block (needs transformers)")
    p.add_argument("--upstream", help="JSON {configuration: upstream ms per block} to compare with "
                                      "when no checkout is given")
    p.add_argument("--memory-minutes", type=float, default=10.0, help="simulated stream length of the memory run")
    p.add_argument("--skip", nargs="*", default=[], choices=["exact", "kernels", "flops", "modes", "scaling", "memory"])
    p.add_argument("--backends", nargs="*", default=[], choices=["torch", "torchscript", "onnx"],
                   help="exported backends measured beside eager torch in the exact table (fp32 bundles, "
                        "exported once into the cache)")
    p.add_argument("--bundle-precisions", nargs="*", default=[], choices=["fp16", "bf16"],
                   help="also time fp16/bf16 bundles (TorchScript and, where its CPU kernels exist, ONNX Runtime) "
                        "in the exact table: rows '<backend> <precision> bundle', error against the fp32 golden")
    p.add_argument("--quick", action="store_true", help="fewer scaling points and modes (a smoke run)")
    p.add_argument("--mode-configs", nargs="+", default=["defaults", "target"], choices=["defaults", "target"],
                   help="configurations of the fast-mode table")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    upstream = dict(perf.UPSTREAM_BLOCK_MS)
    if a.upstream:
        upstream.update(json.loads(Path(a.upstream).read_text()))
    parity = Path(__file__).resolve().parents[2] / "shared" / "parity"
    parity = parity if parity.is_dir() else None
    paths, assets = _asset_paths(parity)
    models = _models(paths)
    backends = {b: _models(paths, b) for b in a.backends if b != "torch"}
    if "onnx" in backends:
        # each stage on the runtime that ran it fastest here: ONNX Runtime for HuBERT and RMVPE,
        # torch (oneDNN) for the generator
        from dataclasses import replace

        backends["onnx encoder+rmvpe, torch generator"] = replace(backends["onnx"], net_g=models.net_g, _f0={})
    backends.update(_precision_bundles(paths, a.bundle_precisions))
    from rvc_lab.cpu import cpu_description

    print(cpu_description())
    # the tables below run on the CPU; a CUDA run (fp16/bf16 on the device) is not written yet
    print(f"CUDA: {torch.cuda.get_device_name(0)} present, not used by these tables" if torch.cuda.is_available()
          else "CUDA: no device; CPU figures only")
    print(f"threads {a.threads}, stream rate {a.sr} Hz, assets: {'parity (seed 1234)' if assets else 'demo (seed 0)'}")
    from rvc_lab import perf_plots
    from rvc_lab.plots import figure_to_png

    exact_row = {}
    if "exact" not in a.skip:
        t = exact_table(models, assets, parity, upstream, a.blocks, a.warmup, a.sr, a.upstream_checkout, backends)
        write_text_atomic(out / "exact.csv", t.to_csv(index=False))
        _print("exact mode vs upstream (ms per block)", t)
        exact_row = t.iloc[0].to_dict()
    if "kernels" not in a.skip:
        t = kernel_table(models)
        write_text_atomic(out / "kernels.csv", t.to_csv(index=False))
        _print("stage kernels: loaded fp32 modules vs runtime copies per precision", t)
    if "flops" not in a.skip and exact_row:
        kernels = kernel_shape_table()
        write_text_atomic(out / "kernel_shapes.csv", kernels.to_csv(index=False))
        _print("GFLOP/s of square GEMMs and of the stages' own shapes (fp32)", kernels)
        from rvc_lab.convert.streaming import StreamSettings

        configs = {"upstream defaults (0.25/0.05/2.5, rmvpe)":
                   (StreamSettings(noise=False, **perf.UPSTREAM_DEFAULTS, index_rate=0.5), exact_row),
                   "low-latency target (0.10/0.05/0.5, fcpe)": (StreamSettings(noise=False, **TARGET), {})}
        t = flops_table(models, configs, a.sr, fma_peak_gflops(a.threads), kernels)
        write_text_atomic(out / "flops.csv", t.to_csv(index=False))
        _print("FLOPs and efficiency at upstream defaults (exact mode)", t)
    if "modes" not in a.skip:
        t = modes_tables(models, a.sr, a.warmup, a.quick, a.mode_configs)
        write_text_atomic(out / "modes.csv", t.to_csv(index=False))
        _print("fast modes vs exact", t, ["configuration", "mode", "median_ms", "p95_ms", "load_p95", "speedup",
                                           "content_features_ms", "f0_ms", "generator_ms", "feat_rel_l2", "rel_l2",
                                           "snr_db", "mcd_db", "f0_corr", "f0_raw_pitch_accuracy"])
        for conf, d in t.groupby("configuration", sort=False):
            fig = perf_plots.plot_mode_stages(d.reset_index(drop=True), title=conf)
            write_bytes_atomic(out / f"modes_{'target' if 'target' in conf else 'defaults'}.png", figure_to_png(fig))
    if "scaling" not in a.skip:
        kw = dict(extra_times=(0.5, 2.5, 5.0), block_times=(0.1, 0.5)) if a.quick else {}
        t = perf.scaling_table(models, blocks=a.blocks, warmup=a.warmup, sr=a.sr, **kw)
        fit = perf.fit_cost_model(t)
        write_text_atomic(out / "scaling.csv", t.to_csv(index=False))
        write_text_atomic(out / "scaling_fit.csv", fit.to_csv())
        _print("scaling (ms per block)", t, ["precision", "sweep", "block_time", "extra_time", "context_s", "decoded_s",
                                             "median_ms", "p95_ms", "load_p95"])
        _print("cost model: ms = fixed + a*context_s + b*decoded_s", fit.reset_index(names="precision"))
        for prec in fit.index:
            at = {b: perf.max_realtime_extra(fit, prec, b) for b in (0.10, 0.25)}
            print(f"{prec}: longest real-time extra_time (same F0 method) at block 0.10 s: {at[0.10]:.2f} s; "
                  f"at 0.25 s: {at[0.25]:.2f} s")
        write_bytes_atomic(out / "scaling.png", figure_to_png(perf_plots.plot_scaling(t, fit, title=f"{a.threads} threads")))
    if "memory" not in a.skip:
        from rvc_lab.convert.streaming import StreamSettings

        s = StreamSettings(noise=True, seed=0, index_rate=0.5, block_time=0.25, extra_time=1.0, f0_method="fcpe",
                           precision="bf16", frontend_cache=True)
        t = perf.memory_trace(models, s, a.memory_minutes * 60, a.sr, every=40)
        write_text_atomic(out / "memory.csv", t.to_csv(index=False))
        first = t[t["audio_s"] >= 10].iloc[0]  # after warm-up allocations
        last = t.iloc[-1]
        print(f"\n## memory: RSS {first.rss_mb:.0f} MiB after 10 s, {last.rss_mb:.0f} MiB after "
              f"{last.audio_s / 60:.1f} min ({last.rss_mb - first.rss_mb:+.1f} MiB); peak {last.peak_rss_mb:.0f} MiB")
        fig = perf_plots.plot_memory(t, title="bf16 + frontend cache, block 0.25 s")
        write_bytes_atomic(out / "memory.png", figure_to_png(fig))
    return 0


if __name__ == "__main__":
    sys.exit(main())
