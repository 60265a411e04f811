"""``rvc-lab convert`` (offline, upstream ``vc_single``) and ``rvc-lab stream`` (the realtime engine on a file)."""
from __future__ import annotations

import argparse
import logging
import sys

from rvc_lab.atomic import write_text_atomic
from rvc_lab.audio import load_audio, prepare_input, resample_offline, write_wav_atomic
from rvc_lab.cli.options import (
    add_offline_options,
    add_stream_options,
    add_voice_options,
    check_voice_args,
    load_models,
    noise_kwargs,
)
from rvc_lab.convert.offline import OfflineSettings, convert_offline
from rvc_lab.convert.streaming import StreamSettings, stream_file
from rvc_lab.errors import SettingsError
from rvc_lab.instrument import StageTimer, summarize_trace

log = logging.getLogger("rvc_lab")


def cmd_convert(a: argparse.Namespace) -> int:
    """Convert ``a.input`` offline and write 16-bit PCM at the voice (or ``--resample-sr``) rate."""
    settings = OfflineSettings(
        f0_method=a.f0_method, pitch=a.pitch, filter_radius=a.filter_radius, protect=a.protect,
        resample_sr=a.resample_sr, sid=a.sid, precision=a.precision, **noise_kwargs(a),
        **({"index_rate": a.index_rate} if a.index_rate is not None else {}),
        **({"rms_mix_rate": a.rms_mix} if a.rms_mix is not None else {}),
    )
    check_voice_args(a)
    audio, sr = load_audio(a.input)
    x16 = prepare_input(audio, sr)
    models = load_models(a)
    settings.validate(models.voice.n_speakers)
    result = convert_offline(models, x16, settings)
    write_wav_atomic(a.output, result.audio, result.sr, subtype="PCM_16")
    log.info("wrote %s (%d Hz, %.2f s)", a.output, result.sr, result.audio.shape[0] / result.sr)
    return 0


def cmd_stream(a: argparse.Namespace) -> int:
    """Stream ``a.input`` block by block with a simulated clock; write float32 output and the trace."""
    settings = StreamSettings(
        block_time=a.block_time, crossfade_time=a.crossfade, extra_time=a.extra_time, f0_method=a.f0_method,
        pitch=a.pitch, formant=a.formant, threshold=a.threshold, input_noise_reduce=a.input_noise_reduce,
        output_noise_reduce=a.output_noise_reduce, phase_vocoder=a.phase_vocoder, output_rate=a.output_sr,
        sid=a.sid, precision=a.precision, frontend_cache=a.frontend_cache, **noise_kwargs(a),
        **({"index_rate": a.index_rate} if a.index_rate is not None else {}),
        **({"rms_mix_rate": a.rms_mix} if a.rms_mix is not None else {}),
    )
    settings.validate()
    check_voice_args(a)
    audio, sr = file_at_stream_rate(*load_audio(a.input), a.stream_sr)
    models = load_models(a)
    timer = StageTimer(enabled=True)
    out, out_sr, conv = stream_file(models, audio, sr, settings, timer=timer, progress=sys.stderr.isatty())
    write_wav_atomic(a.output, out, out_sr, subtype="FLOAT")
    trace = timer.to_frame()
    if a.trace:
        write_text_atomic(a.trace, trace.to_csv(index=False))
    summary = summarize_trace(trace)
    log.info("wrote %s: %d blocks, load p50 %.2f p95 %.2f, %d overruns, algorithmic latency %.0f ms",
             a.output, summary["blocks"], summary["load_p50"], summary["load_p95"], summary["overruns"],
             conv.geometry.algorithmic_latency_s * 1000)
    return 0


def file_at_stream_rate(audio, sr: int, stream_sr: int):
    """A file is not a device: a rate that is not a multiple of 100 Hz (10 ms frames) is resampled.

    Returns ``(audio, rate)``: unchanged when ``sr % 100 == 0``, else resampled with soxr (as the
    offline path resamples) to ``stream_sr`` Hz, said in one log line.
    """
    if sr % 100 == 0:
        return audio, sr
    if stream_sr % 100:
        raise SettingsError(f"--stream-sr {stream_sr}: not a multiple of 100 Hz (10 ms frames)")
    log.info("input rate %d Hz is not a multiple of 100 Hz: resampled to %d Hz to stream (soxr, as offline)",
             sr, stream_sr)
    return resample_offline(audio, sr, stream_sr), stream_sr


def add_parser(sub) -> None:
    s = sub.add_parser("convert", help="offline conversion of a file (upstream vc_single)")
    s.add_argument("input")
    s.add_argument("-o", "--output", required=True)
    add_voice_options(s)
    add_offline_options(s)
    s.set_defaults(func=cmd_convert)

    s = sub.add_parser("stream", help="run the realtime engine over a file with a simulated clock")
    s.add_argument("input")
    s.add_argument("-o", "--output", required=True)
    add_voice_options(s)
    add_stream_options(s)
    s.add_argument("--stream-sr", type=int, default=48000,
                   help="rate a file whose rate is not a multiple of 100 Hz is resampled to (default 48000)")
    s.add_argument("--output-sr", choices=("stream", "model"), default="stream")
    s.add_argument("--input-noise-reduce", action="store_true")
    s.add_argument("--output-noise-reduce", action="store_true")
    s.add_argument("--phase-vocoder", action="store_true", help="phase-vocoder crossfade (classic use_pv)")
    s.add_argument("--frontend-cache", action="store_true",
                   help="reuse HuBERT's conv front-end frames of earlier blocks (approximate, see docs)")
    s.add_argument("--trace", help="write the per-block stage trace as CSV")
    s.set_defaults(func=cmd_stream, index_rate=None, rms_mix=None)
