"""``rvc-lab live``: conversion (or passthrough) on real audio devices, and measured latency.

Everything that can be wrong with the devices, the settings or the model files is checked
before any model loads (exit 2 with the fix).  While running: a status line on stderr, live
setting changes from JSON lines on stdin (``{"set": {"pitch": 2}}``; end of input leaves the
stream running), a clean stop on Ctrl-C, SIGTERM or ``--duration``, then a summary on stdout and
the per-block trace.  ``--measure-latency`` plays noise bursts through a loopback instead and
prints, as the last line on stdout::

    measured latency: M ms (formula F ms, period P ms, bursts N/K agree within D ms)

exit 0 when measured equals the formula within one period, 1 when not, 2 on an error.

``rvc-lab live`` sets ``OMP_WAIT_POLICY=PASSIVE`` before torch loads (unless it is set; see
:func:`rvc_lab.cli.main`): torch's OpenMP threads otherwise spin while they wait for each other,
and on two cores shared with the audio server and other processes that waste was measured at
10.4 s per bf16 fcpe 0.25 s block against 1.34 s passive (1.26 s with one thread), side by side in
one process on a loaded AMD EPYC machine.
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time

from rvc_lab import jack
from rvc_lab.atomic import atomic_path
from rvc_lab.cli.options import add_voice_options, check_voice_args, load_models, noise_kwargs
from rvc_lab.convert.streaming import StreamingConverter, StreamSettings
from rvc_lab.errors import RVCLabError, SettingsError
from rvc_lab.instrument import StageTimer
from rvc_lab.live import LiveConverter, PassthroughConverter, latency_budget, list_devices, load_sounddevice
from rvc_lab.live_session import (
    DEFAULT_BURSTS,
    MEASURE_THRESHOLD_DB,
    StreamPorts,
    check_devices,
    check_model_files,
    jack_period_s,
    measure_latency,
)

log = logging.getLogger("rvc_lab")

#: JSON keys accepted on stdin -> StreamSettings fields (the CLI's names and upstream-style ones).
SETTING_KEYS = {"pitch": "pitch", "formant": "formant", "index_rate": "index_rate", "rms_mix": "rms_mix_rate",
                "rms_mix_rate": "rms_mix_rate", "threshold": "threshold", "f0_method": "f0_method",
                "input_noise_reduce": "input_noise_reduce", "output_noise_reduce": "output_noise_reduce",
                "phase_vocoder": "phase_vocoder"}


def _add_stream_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--block-time", type=float, default=0.25, help="audio per block (s) [block_time]")
    p.add_argument("--crossfade", type=float, default=0.05, help="crossfade (s) [crossfade_length]")
    p.add_argument("--extra-time", type=float, default=2.5, help="past context (s) [extra_time]")
    p.add_argument("--formant", type=float, default=0.0)
    p.add_argument("--threshold", type=float, default=-60.0, help="silence gate (dB); -60 is off [threhold]")
    p.add_argument("--input-noise-reduce", action="store_true")
    p.add_argument("--output-noise-reduce", action="store_true")
    p.add_argument("--phase-vocoder", action="store_true", help="phase-vocoder crossfade (classic use_pv)")
    p.add_argument("--frontend-cache", action="store_true",
                   help="reuse HuBERT's conv front-end frames of earlier blocks (approximate)")


def add_parser(sub) -> argparse.ArgumentParser:
    """Register ``rvc-lab live`` on the sub-parsers object of ``rvc-lab``."""
    s = sub.add_parser("live", help="live conversion on audio devices (JACK, ALSA...), measured latency",
                       description="Conversion (or passthrough) on real audio devices, and measured latency.")
    add_voice_options(s)
    for action in s._actions:  # the voice files are checked by the handler: --passthrough needs none
        if action.dest in ("model", "hubert"):
            action.required = False
    _add_stream_options(s)
    d = s.add_argument_group("devices and session")
    d.add_argument("--input-device", help="PortAudio device index or name substring (default: the system's)")
    d.add_argument("--output-device", help="PortAudio device index or name substring (default: the system's)")
    d.add_argument("--sample-rate", type=int, help="stream rate in Hz (default: the input device's rate)")
    d.add_argument("--channels", type=int, default=1, help="channels opened on each device (input mixed to mono)")
    d.add_argument("--delay-blocks", type=int, default=1,
                   help="blocks between capture and playback (1: least latency; more absorbs compute jitter)")
    d.add_argument("--list-devices", action="store_true", help="print the devices PortAudio sees and exit")
    d.add_argument("--passthrough", action="store_true", help="same buffering, identity instead of the converter")
    d.add_argument("--duration", type=float, help="stop after this many seconds (default: Ctrl-C)")
    d.add_argument("--trace", help="write the per-block trace (capture -> playback timing, stages) as CSV")
    d.add_argument("--status-interval", type=float, default=None,
                   help="seconds between status lines on stderr (default 1 on a terminal, 5 otherwise)")
    m = s.add_argument_group("latency measurement")
    m.add_argument("--measure-latency", action="store_true",
                   help="play noise bursts through a loopback (cable, virtual device or --jack-loopback) and "
                        "compare the measured round trip with the formula (stdin is not read meanwhile)")
    m.add_argument("--jack-loopback", action="store_true",
                   help="on JACK: connect the stream's output ports to its input ports (and nothing else)")
    m.add_argument("--bursts", type=int, default=DEFAULT_BURSTS, help="bursts played by --measure-latency")
    m.add_argument("--latency-method", choices=("auto", "xcorr", "onset"), default="auto",
                   help="auto: cross-correlation for --passthrough, energy onsets behind the silence gate "
                        "for a conversion (random-weight voices output noise unrelated to the input)")
    s.set_defaults(func=cmd_live, index_rate=None, rms_mix=None)
    return s


# ------------------------------------------------------------------------------------ settings
def _stream_settings(a):
    s = StreamSettings(
        block_time=a.block_time, crossfade_time=a.crossfade, extra_time=a.extra_time, f0_method=a.f0_method,
        pitch=a.pitch, formant=a.formant, threshold=a.threshold, input_noise_reduce=a.input_noise_reduce,
        output_noise_reduce=a.output_noise_reduce, phase_vocoder=a.phase_vocoder, sid=a.sid,
        precision=a.precision, frontend_cache=a.frontend_cache, **noise_kwargs(a),
        **({"index_rate": a.index_rate} if a.index_rate is not None else {}),
        **({"rms_mix_rate": a.rms_mix} if a.rms_mix is not None else {}),
    )
    s.validate()
    return s


def parse_setting_line(line: str) -> dict:
    """One stdin line ``{"set": {"pitch": 2, ...}}`` -> StreamSettings changes.

    Raises
    ------
    SettingsError
        Not JSON, no ``"set"`` object, or an unknown key (naming the keys that work).
    """
    try:
        msg = json.loads(line)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"not JSON ({exc.msg}): {line.strip()[:80]!r}") from exc
    if not isinstance(msg, dict) or not isinstance(msg.get("set"), dict) or not msg["set"]:
        raise SettingsError('expected {"set": {"pitch": 2, ...}}')
    changes = {}
    for key, value in msg["set"].items():
        if key not in SETTING_KEYS:
            raise SettingsError(f"unknown setting {key!r}; live settings: {', '.join(sorted(SETTING_KEYS))}")
        changes[SETTING_KEYS[key]] = value
    return changes


class SettingsReader(threading.Thread):
    """Reads JSON lines from a text stream and applies them to a live session; EOF ends only the reader."""

    def __init__(self, live: LiveConverter, stream=None):
        super().__init__(name="rvc-lab-live-stdin", daemon=True)
        self.live = live
        self.stream = stream if stream is not None else sys.stdin
        self.applied = 0

    def run(self) -> None:
        try:
            for line in self.stream:
                if not line.strip():
                    continue
                try:
                    changes = parse_setting_line(line)
                    self.live.update(**changes)
                except (RVCLabError, ValueError, TypeError) as exc:
                    print(f"rvc-lab live: setting ignored: {exc}", file=sys.stderr, flush=True)
                    continue
                self.applied += 1
                print("rvc-lab live: set " + ", ".join(f"{k}={v}" for k, v in changes.items()), file=sys.stderr,
                      flush=True)
        except (OSError, ValueError):  # stdin closed under us
            pass
        log.debug("stdin closed: settings stay as they are, the stream goes on")


# ------------------------------------------------------------------------------------ status
def status_text(live: LiveConverter, elapsed_s: float, measured_ms: float | None = None) -> str:
    """One status line: load, late/dropped/skipped blocks, latency (formula, measured when known)."""
    st = live.stats()
    p50, p95 = live.recent_load()
    text = (f"live {elapsed_s:6.1f} s | load p50 {p50:.2f} p95 {p95:.2f} | late {st['late_blocks']} | "
            f"dropped {st['dropped_inputs']} | skipped {st['skipped_inputs']}")
    if st["status_flags"]:
        text += f" | xruns {st['status_flags']}"
    if measured_ms is not None:
        text += f" | latency {measured_ms:.0f} ms measured"
    return text


def summary_lines(live: LiveConverter, budget: dict, latency: bool = True) -> list[str]:
    """The end-of-session summary (stdout); ``latency``: include the formula's line."""
    st = live.stats()
    lines = [
        f"blocks: {st['callbacks']} callbacks, {st['converted']} converted, {st['late_blocks']} late, "
        f"{st['dropped_inputs']} dropped, {st['skipped_inputs']} skipped, {st['stale_outputs']} stale, "
        f"{st['worker_errors']} failed, {st['status_flags']} PortAudio over/underflows",
    ]
    trace = live.trace()
    if not trace.empty and "load" in trace and trace["load"].notna().any():
        load = trace["load"].dropna()
        lines.append(f"load: p50 {load.quantile(0.5):.2f} p95 {load.quantile(0.95):.2f} max {load.max():.2f} "
                     f"(block {st['block_ms']:.0f} ms; first block {load.iloc[0]:.2f})")
    if st["warm_up_ms"]:
        lines.append("warm-up: " + " / ".join(f"{t:.0f}" for t in st["warm_up_ms"]) + " ms on silence")
    if not latency:
        return lines
    b = {k: 1000.0 * v for k, v in budget.items()}
    lines.append(f"latency (formula): device in {b['device_input_s']:.1f} + out {b['device_output_s']:.1f} ms"
                 + (f" + block {b['block_s']:.1f}" if b["block_s"] else "")
                 + f" + queue {b['queue_s']:.1f} + chain {b['chain_s']:.1f} = {b['formula_s']:.1f} ms")
    return lines


# ------------------------------------------------------------------------------------ handler
def cmd_live(a) -> int:
    """Validate everything, load, run until stopped (or measure), summarise.  Exit 0/1/2."""
    if a.list_devices:
        print(list_devices())
        return 0
    if a.channels < 1:
        raise SettingsError(f"--channels {a.channels}: need at least 1")
    if a.delay_blocks < 1:
        raise SettingsError(f"--delay-blocks {a.delay_blocks}: need at least 1")
    if a.measure_latency and a.bursts < 4:
        raise SettingsError(f"--bursts {a.bursts}: the measurement needs at least 4")
    settings = None
    if not a.passthrough:
        settings = _stream_settings(a)
        if a.measure_latency:
            settings = _measurable(settings, a)
        if a.bundle or a.backend != "torch":
            check_voice_args(a)
        else:
            check_model_files(a.model, a.hubert, a.index, a.rmvpe, settings.f0_method)
    load_sounddevice()
    devices = check_devices(a.input_device, a.output_device, a.sample_rate, (a.channels, a.channels))
    if a.jack_loopback:
        if not devices.is_jack:
            raise SettingsError(f"--jack-loopback needs a JACK device; {devices.output_name!r} is on {devices.hostapi} "
                                "(see --list-devices)")
        jack.tool("jack_connect")
    log.info("devices: in %r, out %r (%s, %d Hz)", devices.input_name, devices.output_name, devices.hostapi,
             devices.sample_rate)

    factory = _converter_factory(a, settings, devices.sample_rate)
    live = LiveConverter(factory, devices.input, devices.output, (a.channels, a.channels),
                         delay_blocks=a.delay_blocks, block_in_device_latency=devices.is_jack)
    ports = StreamPorts() if a.jack_loopback else None
    stop = _StopSignal()
    interrupted = False
    try:
        live.start()
    except KeyboardInterrupt:  # during the warm-up, before any audio
        live.stop()
        stop.restore()
        print("rvc-lab live: interrupted before the stream started", file=sys.stderr)
        return 2
    try:
        if ports is not None:
            ports.loop()
        budget = latency_budget(live.converter, live.stream_latency(), live.delay_blocks,
                                block_in_device_latency=devices.is_jack)
        reader = SettingsReader(live)
        if not a.measure_latency:
            reader.start()
        result = None
        if a.measure_latency:
            try:
                result = _run_measurement(live, a, devices)
            except KeyboardInterrupt:
                interrupted = True
        else:
            _run_until_stopped(live, a)
    finally:
        live.stop()
        stop.restore()
    if a.trace:
        with atomic_path(a.trace) as tmp:
            live.trace().to_csv(tmp, index=False)
    for line in summary_lines(live, budget, latency=not a.measure_latency):
        print(line)
    if a.trace:
        print(f"trace: {a.trace}")
    if interrupted:
        print("rvc-lab live: measurement interrupted", file=sys.stderr)
        return 2
    if result is None:
        return 0
    for line in result.budget_lines():
        print(line)
    print(("gate passed: " if result.passed else "gate FAILED: ") + result.reason)
    print(result.line)
    return 0 if result.passed else 1


def _measurable(settings, a):
    """Settings a random-weight voice can be measured with: silent output between bursts."""
    from dataclasses import replace

    method = "onset" if a.latency_method == "auto" else a.latency_method
    if method != "onset":
        return settings
    if settings.rms_mix_rate >= 1:
        raise SettingsError("--measure-latency on a conversion needs --rms-mix below 1: the loudness match makes the "
                            "output silent where the gated input is (onset detection needs that)")
    if settings.threshold <= -60:
        log.info("measure-latency: silence gate at %.0f dB (bursts are -18 dBFS) so that the output is silent "
                 "between bursts", MEASURE_THRESHOLD_DB)
        settings = replace(settings, threshold=MEASURE_THRESHOLD_DB)
    return settings


def _converter_factory(a, settings, sr: int):
    if a.passthrough:
        block_time = a.block_time
        return lambda: PassthroughConverter(sr, block_time)
    models = load_models(a)
    return lambda: StreamingConverter(models, settings, sr, timer=StageTimer(enabled=True))


class _StopSignal:
    """Turns SIGTERM into the same clean stop as Ctrl-C (KeyboardInterrupt) while a session runs."""

    def __init__(self):
        self._old = None
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGTERM, self._raise)

    @staticmethod
    def _raise(signum, frame):
        raise KeyboardInterrupt

    def restore(self) -> None:
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)
            self._old = None


def _run_until_stopped(live: LiveConverter, a) -> None:
    interval = a.status_interval or (1.0 if sys.stderr.isatty() else 5.0)
    tty = sys.stderr.isatty()
    t0 = time.monotonic()
    next_status = t0 + interval
    try:
        while True:
            now = time.monotonic()
            if a.duration is not None and now - t0 >= a.duration:
                break
            if now >= next_status:
                line = status_text(live, now - t0)
                print(("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
                next_status += interval
            time.sleep(0.05)
    except KeyboardInterrupt:
        pass
    if tty:
        print(file=sys.stderr)
    log.info("stopping after %.1f s", time.monotonic() - t0)


def _run_measurement(live: LiveConverter, a, devices):
    method = a.latency_method
    if method == "auto":
        method = "xcorr" if a.passthrough else "onset"
    period = jack_period_s(devices)
    log.info("measuring: %d bursts, %s detection, period %s", a.bursts, method,
             f"{1000 * period:.1f} ms (JACK)" if period else "one block (device period unknown)")
    t0 = time.monotonic()
    result = measure_latency(live, method=method, period_s=period, block_in_device_latency=devices.is_jack,
                             n_bursts=a.bursts)
    print(status_text(live, time.monotonic() - t0, result.round_trip.measured_ms), file=sys.stderr, flush=True)
    return result
