"""The ``rvc-lab`` command (see ``rvc-lab --help`` and DESIGN.md's command-line contract)."""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from pathlib import Path

from rvc_lab.errors import RVCLabError

log = logging.getLogger("rvc_lab")


def _add_voice_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="voice .pth (v1/v2, 32k/40k/48k, f0 or not)")
    p.add_argument("--index", help="added_*.index of the voice (faiss IVF-Flat)")
    p.add_argument("--hubert", required=True, help="hubert_base.pt (fairseq checkpoint) or a Hugging Face HuBERT directory")
    p.add_argument("--rmvpe", help="rmvpe.pt (needed by --f0-method rmvpe)")
    p.add_argument("--f0-method", default="rmvpe", help="pm | harvest | dio | crepe | crepe-tiny | rmvpe | fcpe")
    p.add_argument("--pitch", type=float, default=0.0, help="transposition in semitones [f0_up_key]")
    p.add_argument("--index-rate", type=float, default=None, help="0..1 weight of retrieved features")
    p.add_argument("--rms-mix", type=float, default=None, help="0..1; 1 keeps the generator's loudness envelope")
    p.add_argument("--sid", type=int, default=0, help="speaker id")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="fp32: exact (default); bf16: faster on CPUs with AMX/AVX512-BF16, approximate")
    noise = p.add_mutually_exclusive_group()
    noise.add_argument("--seed", type=int, help="seed torch with SEED + k before the k-th generator call")
    noise.add_argument("--no-noise", action="store_true", help="generator random draws are zeros (deterministic)")


def _noise_kwargs(a) -> dict:
    return {"noise": not a.no_noise, "seed": a.seed}


def _load_models(a):
    from rvc_lab.convert.models import ConverterModels

    return ConverterModels.load(a.model, hubert=a.hubert, index=a.index, rmvpe=a.rmvpe)


def cmd_info(a) -> int:
    from rvc_lab.files.voice import load_voice

    summary = load_voice(a.model).summary()
    if a.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        width = max(len(k) for k in summary)
        for k, v in summary.items():
            print(f"{k:<{width}}  {v}")
    return 0


def cmd_demo_assets(a) -> int:
    from rvc_lab.files.synthetic import demo_assets

    paths = demo_assets(Path(a.dir), seed=a.seed)
    for name, path in paths.items():
        print(f"{name:<24} {path}")
    return 0


def cmd_convert(a) -> int:
    from rvc_lab.audio import load_audio, prepare_input, write_wav_atomic
    from rvc_lab.convert.offline import OfflineSettings, convert_offline

    settings = OfflineSettings(
        f0_method=a.f0_method, pitch=a.pitch, filter_radius=a.filter_radius, protect=a.protect,
        resample_sr=a.resample_sr, sid=a.sid, precision=a.precision, **_noise_kwargs(a),
        **({"index_rate": a.index_rate} if a.index_rate is not None else {}),
        **({"rms_mix_rate": a.rms_mix} if a.rms_mix is not None else {}),
    )
    audio, sr = load_audio(a.input)
    x16 = prepare_input(audio, sr)
    models = _load_models(a)
    settings.validate(models.voice.n_speakers)
    result = convert_offline(models, x16, settings)
    write_wav_atomic(a.output, result.audio, result.sr, subtype="PCM_16")
    log.info("wrote %s (%d Hz, %.2f s)", a.output, result.sr, result.audio.shape[0] / result.sr)
    return 0


def cmd_stream(a) -> int:
    from rvc_lab.audio import load_audio, write_wav_atomic
    from rvc_lab.convert.streaming import StreamSettings, stream_file
    from rvc_lab.instrument import StageTimer, load_summary

    settings = StreamSettings(
        block_time=a.block_time, crossfade_time=a.crossfade, extra_time=a.extra_time, f0_method=a.f0_method,
        pitch=a.pitch, formant=a.formant, threshold=a.threshold, input_noise_reduce=a.input_noise_reduce,
        output_noise_reduce=a.output_noise_reduce, phase_vocoder=a.phase_vocoder, output_rate=a.output_sr,
        sid=a.sid, precision=a.precision, frontend_cache=a.frontend_cache, **_noise_kwargs(a),
        **({"index_rate": a.index_rate} if a.index_rate is not None else {}),
        **({"rms_mix_rate": a.rms_mix} if a.rms_mix is not None else {}),
    )
    settings.validate()
    audio, sr = load_audio(a.input)
    models = _load_models(a)
    timer = StageTimer(enabled=True)
    out, out_sr, conv = stream_file(models, audio, sr, settings, timer=timer, progress=sys.stderr.isatty())
    write_wav_atomic(a.output, out, out_sr, subtype="FLOAT")
    trace = timer.to_frame()
    if a.trace:
        tmp = f"{a.trace}.tmp"
        trace.to_csv(tmp, index=False)
        os.replace(tmp, a.trace)
    summary = load_summary(trace)
    log.info("wrote %s: %d blocks, load p50 %.2f p95 %.2f, %d overruns, algorithmic latency %.0f ms",
             a.output, summary["blocks"], summary["load_p50"], summary["load_p95"], summary["overruns"],
             conv.geometry.algorithmic_latency_s * 1000)
    return 0


def cmd_f0(a) -> int:
    import numpy as np
    import pandas as pd

    from rvc_lab.audio import load_audio, prepare_input
    from rvc_lab.f0 import F0Estimator
    from rvc_lab.f0.pitch import shift_semitones

    audio, sr = load_audio(a.input)
    x16 = prepare_input(audio, sr)
    f0 = F0Estimator(a.f0_method, rmvpe_path=a.rmvpe).track(x16)
    if a.pitch:
        f0 = shift_semitones(f0, a.pitch)
    df = pd.DataFrame({"time_s": np.arange(len(f0)) * 0.01, "f0_hz": f0, "voiced": f0 > 0})
    tmp = f"{a.output}.tmp"
    df.to_csv(tmp, index=False)
    os.replace(tmp, a.output)
    log.info("wrote %s: %d frames, %d voiced", a.output, len(df), int(df.voiced.sum()))
    return 0


def cmd_f0_bench(a) -> int:
    from rvc_lab.f0bench import main_f0_bench

    return main_f0_bench(a)


def cmd_check(a) -> int:
    from rvc_lab.reference import main_check

    return main_check(a)


def cmd_reference(a) -> int:
    from rvc_lab.reference import main_reference

    return main_reference(a)


def cmd_report(a) -> int:
    from rvc_lab.report import main_report

    return main_report(a)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rvc-lab", description="RVC research and validation workbench")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("info", help="summarise and validate a voice .pth")
    s.add_argument("model")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("demo-assets", help="write seeded random-weight assets in the real file formats")
    s.add_argument("dir")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_demo_assets)

    s = sub.add_parser("convert", help="offline conversion of a file (upstream vc_single)")
    s.add_argument("input")
    s.add_argument("-o", "--output", required=True)
    _add_voice_options(s)
    s.add_argument("--filter-radius", type=int, default=3)
    s.add_argument("--protect", type=float, default=0.33)
    s.add_argument("--resample-sr", type=int, default=0)
    s.set_defaults(func=cmd_convert)

    s = sub.add_parser("stream", help="run the realtime engine over a file with a simulated clock")
    s.add_argument("input")
    s.add_argument("-o", "--output", required=True)
    _add_voice_options(s)
    s.add_argument("--block-time", type=float, default=0.25)
    s.add_argument("--crossfade", type=float, default=0.05)
    s.add_argument("--extra-time", type=float, default=2.5)
    s.add_argument("--formant", type=float, default=0.0)
    s.add_argument("--threshold", type=float, default=-60.0)
    s.add_argument("--output-sr", choices=("stream", "model"), default="stream")
    s.add_argument("--input-noise-reduce", action="store_true")
    s.add_argument("--output-noise-reduce", action="store_true")
    s.add_argument("--phase-vocoder", action="store_true", help="phase-vocoder crossfade (classic use_pv)")
    s.add_argument("--frontend-cache", action="store_true",
                   help="reuse HuBERT's conv front-end frames of earlier blocks (approximate, see docs)")
    s.add_argument("--trace", help="write the per-block stage trace as CSV")
    s.set_defaults(func=cmd_stream, index_rate=None, rms_mix=None)

    s = sub.add_parser("f0", help="F0 track of a file (10 ms hop)")
    s.add_argument("input")
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--f0-method", required=True)
    s.add_argument("--rmvpe")
    s.add_argument("--pitch", type=float, default=0.0)
    s.set_defaults(func=cmd_f0)

    from rvc_lab.f0bench import build_f0_bench_parser

    s = build_f0_bench_parser(sub.add_parser("f0-bench", help="every F0 method on the ground-truth tone suite"))
    s.set_defaults(func=cmd_f0_bench)

    s = sub.add_parser("check", help="re-run reference cases and compare (exit 0 only when all pass)")
    s.add_argument("cases_dir", nargs="?", default="reference_cases")
    s.set_defaults(func=cmd_check)

    s = sub.add_parser("reference", help="make reference cases / compare external outputs")
    s.set_defaults(func=cmd_reference)
    s.add_argument("action", choices=("make", "compare"))
    s.add_argument("rest", nargs=argparse.REMAINDER)

    s = sub.add_parser("report", help="HTML report; with no arguments runs the embedded default")
    s.add_argument("-o", "--output-dir", default="reports/default")
    s.add_argument("--model")
    s.add_argument("--index")
    s.add_argument("--hubert")
    s.add_argument("--rmvpe")
    s.add_argument("--input", help="speech/tone file to convert (default: built-in inputs)")
    s.add_argument("--quick", action="store_true", help="smaller settings (used by tests)")
    s.set_defaults(func=cmd_report)

    importlib.import_module("rvc_lab.live_cli").add_parser(sub)  # rvc-lab live
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.INFO, format="rvc-lab: %(message)s")
    # faiss logs every CPU-feature probe of its loader at INFO: noise, not information
    logging.getLogger("faiss").setLevel(logging.WARNING)
    try:
        return a.func(a) or 0
    except RVCLabError as exc:
        print(f"rvc-lab {a.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
