"""A live session from the outside: check devices before anything loads, measure the round trip.

Used by ``rvc-lab live``, the notebook panels (:func:`loopback_measurement`) and ``bench/live_soak.py``; the driver itself
is :class:`rvc_lab.live.LiveConverter`, the signal processing :mod:`rvc_lab.metrics.latency`.

Latency measurement (:func:`measure_latency`): the stream's output plays noise bursts
(:func:`~rvc_lab.metrics.latency.noise_bursts`) through a loopback — a JACK connection from
the stream's output port to its input port, or a user's cable or virtual device — while the
conversion of what comes back is recorded where it would have been played.  Two delays come
out of one run:

* the **device loop**: bursts played -> bursts captured (PortAudio's buffering, the server, the
  cable), always by cross-correlation;
* the **round trip**: bursts played -> their conversion at the output, i.e. capture to playback
  of the chain as a user hears it (device loop + queue + the converter's own delay).  For
  passthrough (and trained voices) by cross-correlation; for random-weight voices, whose output
  is noise unrelated to the input, by the onsets of the output's energy envelope behind the
  silence gate.

The gate compares the round trip with :func:`rvc_lab.live.latency_budget`'s formula.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np

from rvc_lab import jack
from rvc_lab.errors import SettingsError
from rvc_lab.files.safe_load import require_file
from rvc_lab.live import LiveAudioError, LiveConverter, latency_budget, load_sounddevice, rescan_devices
from rvc_lab.metrics.latency import BurstTrain, LatencyEstimate, latency_line, noise_bursts, onset_delays, xcorr_delays
from rvc_lab.perf import anon_rss_mb, rss_mb

log = logging.getLogger(__name__)

#: Agreement asked of the bursts: cross-correlation is sample-exact (2 ms as rvc-next's check);
#: energy onsets move with the SOLA offset of the block they fall in (one 10 ms search window).
AGREE_MS = {"xcorr": 2.0, "onset": 10.0}
#: Bursts a measurement plays, and the fewest that must come back.
DEFAULT_BURSTS = 8
MIN_BURSTS = 4
#: Silence gate used for measuring a conversion when the user left it off (dBFS; bursts are -18).
MEASURE_THRESHOLD_DB = -40.0

NO_DEVICE_FIX = (f"start an audio server (without a sound card: `{jack.JACK_START_HINT}`) or connect a device, "
                 "then see `rvc-lab live --list-devices`")


# ------------------------------------------------------------------------------------ devices
@dataclass(frozen=True)
class DeviceChoice:
    """Input and output device checked for a stream.

    Attributes
    ----------
    input, output : int
        PortAudio device indices.
    input_name, output_name, hostapi : str
    sample_rate : int
        The stream rate (Hz) both devices accept.
    """

    input: int
    output: int
    input_name: str
    output_name: str
    hostapi: str
    sample_rate: int

    @property
    def is_jack(self) -> bool:
        return "JACK" in self.hostapi


def _resolve(sd, spec, kind: str) -> dict:
    try:
        if spec is None:
            info = sd.query_devices(kind=kind)
        else:
            info = sd.query_devices(int(spec) if str(spec).isdigit() else spec, kind=kind)
    except (ValueError, sd.PortAudioError) as exc:
        if spec is None:
            raise LiveAudioError(f"no default {kind} device: {NO_DEVICE_FIX}") from exc
        raise LiveAudioError(f"no {kind} device matches {spec!r} ({exc}); "
                             "`rvc-lab live --list-devices` shows the devices PortAudio sees") from exc
    return info


def check_devices(input_device=None, output_device=None, sample_rate: int | None = None,
                  channels: tuple[int, int] = (1, 1)) -> DeviceChoice:
    """Resolve and check both devices for a float32 duplex stream; nothing is opened.

    Parameters
    ----------
    input_device, output_device : int or str, optional
        Index or name substring; None: PortAudio's default.
    sample_rate : int, optional
        Stream rate (Hz); default the input device's default rate.  Must be a multiple of 100
        (the converter works in 10 ms frames).
    channels : (int, int)
        Input and output channel counts.

    Raises
    ------
    LiveAudioError
        PortAudio missing, no device at all (no audio server), a device not found, too few
        channels, a rate the device (or the server) refuses; each with the fix.
    """
    sd = load_sounddevice()
    if len(sd.query_devices()) == 0:
        raise LiveAudioError(f"PortAudio sees no audio device at all (no audio server is running): {NO_DEVICE_FIX}")
    din = _resolve(sd, input_device, "input")
    dout = _resolve(sd, output_device, "output")
    rate = int(sample_rate or round(din["default_samplerate"]))
    if rate % 100:
        raise LiveAudioError(f"sample rate {rate} Hz is not a multiple of 100 Hz (the converter works in 10 ms "
                             "frames): pass --sample-rate 48000 (or 44100, 40000, 32000, 16000)")
    for info, kind, n in ((din, "input", channels[0]), (dout, "output", channels[1])):
        have = int(info[f"max_{kind}_channels"])
        if n > have:
            raise LiveAudioError(f"{kind} device {info['name']!r} has {have} {kind} channel(s), {n} asked: "
                                 f"pass --channels {max(1, min(have, n))}")
    for info, kind, check, n in ((din, "input", sd.check_input_settings, channels[0]),
                                 (dout, "output", sd.check_output_settings, channels[1])):
        try:
            check(device=info["index"], channels=n, samplerate=rate, dtype="float32")
        except sd.PortAudioError as exc:
            default = int(round(info["default_samplerate"]))
            hint = (f"pass --sample-rate {default} (the device's rate"
                    + ("; a JACK server runs only at the rate it was started with)" if "JACK" in _hostapi(sd, info) else ")"))
            raise LiveAudioError(f"{kind} device {info['name']!r} refuses {rate} Hz, {n} channel(s) ({exc}): {hint}") from exc
    return DeviceChoice(input=int(din["index"]), output=int(dout["index"]), input_name=din["name"],
                        output_name=dout["name"], hostapi=_hostapi(sd, dout), sample_rate=rate)


def _hostapi(sd, info: dict) -> str:
    return str(sd.query_hostapis(info["hostapi"])["name"])


def check_model_files(model=None, hubert=None, index=None, rmvpe=None, f0_method: str = "rmvpe") -> None:
    """Every file a conversion needs exists and is a non-empty file, before any model loads.

    Raises
    ------
    SettingsError
        ``--model`` / ``--hubert`` missing, or rmvpe asked without ``--rmvpe``.
    ModelFileError
        A path that does not exist, is not a file (a HuBERT directory is fine) or is empty
        (:func:`rvc_lab.files.safe_load.require_file`).
    """
    if not model or not hubert:
        raise SettingsError("live conversion needs --model VOICE.pth and --hubert hubert_base.pt "
                            "(or --passthrough, which needs no model)")
    if f0_method == "rmvpe" and not rmvpe:
        raise SettingsError("--f0-method rmvpe needs --rmvpe rmvpe.pt (or choose another method, e.g. --f0-method fcpe)")
    for path, what, dir_ok in ((model, "voice model", False), (hubert, "HuBERT checkpoint", True),
                               (index, "index", False), (rmvpe, "rmvpe checkpoint", False)):
        if path:
            require_file(path, what, directory_ok=dir_ok)


def jack_period_s(devices: DeviceChoice) -> float | None:
    """The JACK server's period (s) when the stream runs on JACK and ``jack_bufsize`` answers, else None."""
    if not devices.is_jack:
        return None
    try:
        return jack.buffer_size() / devices.sample_rate
    except jack.JackError as exc:
        log.info("JACK period unknown (%s)", exc)
        return None


class StreamPorts:
    """Finds the JACK ports a stream opens (those that appear when it starts) and loops them."""

    def __init__(self):
        self.before = jack.ports()
        self.ports: list[str] = []

    def loop(self) -> list[tuple[str, str]]:
        """Connect the new stream's outputs to its inputs (see :func:`rvc_lab.jack.loopback`)."""
        self.ports = jack.new_ports(self.before)
        pairs = jack.loopback(self.ports)
        log.info("JACK loopback: %s", ", ".join(f"{a} -> {b}" for a, b in pairs))
        return pairs


# ------------------------------------------------------------------------------------ latency
@dataclass
class LatencyMeasurement:
    """Result of :func:`measure_latency`.

    Attributes
    ----------
    round_trip : LatencyEstimate
        Bursts played -> their conversion at the output.
    device_loop : LatencyEstimate
        Bursts played -> bursts captured (cross-correlation).
    budget : dict
        :func:`rvc_lab.live.latency_budget` (seconds).
    period_s : float
        The gate's tolerance: the JACK period on JACK, else the block (PortAudio does not report
        a device period).
    passed : bool
    reason : str
    lost_to_late_blocks : int
        Bursts not counted because a late block (played silence) cut into them.
    train : BurstTrain
    captured, played : np.ndarray
        The probe's recordings (float32, the train's time origin).
    """

    round_trip: LatencyEstimate
    device_loop: LatencyEstimate
    budget: dict
    period_s: float
    passed: bool
    reason: str
    lost_to_late_blocks: int
    train: BurstTrain
    captured: np.ndarray = field(repr=False)
    played: np.ndarray = field(repr=False)

    @property
    def formula_ms(self) -> float:
        return 1000.0 * self.budget["formula_s"]

    @property
    def line(self) -> str:
        """``measured latency: M ms (formula F ms, period P ms, bursts N/K agree within D ms)``."""
        return latency_line(self.round_trip, self.formula_ms, 1000.0 * self.period_s)

    def budget_lines(self) -> list[str]:
        """The budget as reported and as measured, one part per line (ms)."""
        b = {k: 1000.0 * v for k, v in self.budget.items()}
        loop = self.device_loop.measured_ms
        total = self.round_trip.measured_ms
        lines = [
            f"formula: device in {b['device_input_s']:.1f} + device out {b['device_output_s']:.1f} (PortAudio's figures)"
            + (f" + block {b['block_s']:.1f}" if b["block_s"] else " (they hold the block's buffering)")
            + f" + queue {b['queue_s']:.1f} + chain {b['chain_s']:.1f} = {b['formula_s']:.1f} ms",
            f"upstream's displayed delay: {b['upstream_displayed_s']:.1f} ms (output latency + block + crossfade + 10 ms; "
            "no queue)",
            f"measured: device loop {loop:.1f} ms (reported in + out {b['device_input_s'] + b['device_output_s']:.1f}),"
            f" converter {total - loop:.1f} ms (queue {b['queue_s']:.1f} + algorithmic {total - loop - b['queue_s']:.1f};"
            f" formula chain {b['chain_s']:.1f}), round trip {total:.1f} ms",
        ]
        if self.lost_to_late_blocks:
            lines.append(f"{self.lost_to_late_blocks} burst(s) not counted: a late block played silence over them")
        return lines


def burst_train_for(budget: dict, sr: int, n_bursts: int = DEFAULT_BURSTS, seed: int = 0) -> BurstTrain:
    """A burst train whose spacing leaves room for the expected round trip (twice the formula)."""
    expected = budget["formula_s"]
    burst_s = 0.2
    interval = max(1.0, 2.0 * expected + burst_s)
    return noise_bursts(sr, n_bursts=n_bursts, burst_s=burst_s, interval_s=interval, lead_s=0.5,
                        tail_s=interval, seed=seed)


def measure_latency(live: LiveConverter, *, method: str, period_s: float | None = None,
                    block_in_device_latency: bool, n_bursts: int = DEFAULT_BURSTS, seed: int = 0,
                    timeout_s: float | None = None, max_rounds: int = 3) -> LatencyMeasurement:
    """Play bursts through the running session's loopback and measure device loop and round trip.

    Parameters
    ----------
    live : LiveConverter
        Started, its output looped back to its input.
    method : {"xcorr", "onset"}
        Round-trip detector: "xcorr" for passthrough (or trained voices), "onset" for outputs
        that follow the bursts only in loudness (random-weight voices behind the silence gate).
    period_s : float, optional
        The gate's tolerance; default one block.
    block_in_device_latency : bool
        Passed to :func:`rvc_lab.live.latency_budget` (True on JACK, measured).
    n_bursts : int
        Bursts per round.
    seed : int
        Burst noise seed (round r uses ``seed + r``).
    timeout_s : float, optional
        Longest wait for one round's probe (default: three times its length + 10 s).
    max_rounds : int
        When late blocks (silence played) cut into bursts and fewer than ``n_bursts`` were found,
        another round of ``n_bursts`` is played, up to this many rounds: a converter that
        sometimes misses its turn still gets measured, and the count says how many were lost.

    Returns
    -------
    LatencyMeasurement
        Bursts of all rounds; ``train``, ``captured`` and ``played`` are the first round's.
    """
    if method not in AGREE_MS:
        raise SettingsError(f"method {method!r}: use 'xcorr' or 'onset'")
    conv = live.converter
    g = conv.geometry
    budget = latency_budget(conv, live.stream_latency(), live.delay_blocks,
                            block_in_device_latency=block_in_device_latency)
    block_s = g.block_frame / g.sr
    period = float(period_s) if period_s else block_s
    rounds = []
    for r in range(max(1, int(max_rounds))):
        rounds.append(_probe_round(live, budget, method, period, n_bursts, seed + r, timeout_s))
        found = sum(rt.n_found for _, _, rt, _, _ in rounds)
        lost = sum(n for *_, n in rounds)
        if lost == 0 or found >= n_bursts:
            break
    train, probe, _, _, _ = rounds[0]
    loop = _combine([lp for _, _, _, lp, _ in rounds])
    rt = _combine([rt for _, _, rt, _, _ in rounds])
    passed, reason = rt.gate(1000.0 * budget["formula_s"], 1000.0 * period, AGREE_MS[method], MIN_BURSTS)
    if not passed and lost:
        reason = (f"{reason.split(': is the output')[0]}; {lost} burst(s) fell on late blocks: the converter did not "
                  "keep up (see the load in the summary)")
    return LatencyMeasurement(round_trip=rt, device_loop=loop, budget=budget, period_s=period, passed=passed,
                              reason=reason, lost_to_late_blocks=lost, train=train, captured=probe.captured,
                              played=probe.played)


def _probe_round(live, budget, method, period, n_bursts, seed, timeout_s):
    """One train of bursts: (train, probe, round-trip estimate, device-loop estimate, bursts lost to late blocks)."""
    g = live.converter.geometry
    train = burst_train_for(budget, g.sr, n_bursts, seed)
    probe = live.start_probe(train.signal)
    length_s = train.signal.shape[0] / g.sr
    if not probe.wait(timeout_s if timeout_s is not None else 3 * length_s + 10):
        live.end_probe()
        raise LiveAudioError(f"the probe signal ({length_s:.1f} s) did not finish playing: is the stream running?")
    live.end_probe()
    window = int((train.onsets[1] - train.onsets[0]) if train.n_bursts > 1 else g.sr) - train.length
    max_delay = max(window, 1)
    loop = xcorr_delays(probe.captured, train, 0, max_delay)
    if method == "xcorr":
        rt = xcorr_delays(probe.played, train, 0, max_delay)
    else:
        rt = onset_delays(probe.played, train, 0, max_delay)
    lost = _drop_bursts_hit_by_late_blocks(rt, train, probe.late_spans(), g.sr, budget["formula_s"], period)
    return train, probe, rt, loop, lost


def _combine(estimates: list[LatencyEstimate]) -> LatencyEstimate:
    """The bursts of several rounds as one estimate."""
    first = estimates[0]
    if len(estimates) == 1:
        return first
    scores = [e.score for e in estimates]
    return LatencyEstimate(delays=np.concatenate([e.delays for e in estimates]),
                           snr_db=np.concatenate([e.snr_db for e in estimates]), sr=first.sr, method=first.method,
                           min_snr_db=first.min_snr_db, min_score=first.min_score,
                           score=None if any(s is None for s in scores) else np.concatenate(scores))


def _drop_bursts_hit_by_late_blocks(est: LatencyEstimate, train: BurstTrain, late: list[tuple[int, int]],
                                    sr: int, expected_s: float, period_s: float) -> int:
    """Mark as not found the bursts whose arrival overlaps silence played for a late block.

    The arrival is taken where the burst was found and where the formula expects it (a late
    block can wipe a burst out, and then what was "found" is something else).
    """
    if not late:
        return 0
    lost = 0
    guard = int(0.02 * sr) + int(2 * period_s * sr)
    for k in range(train.n_bursts):
        starts = [int(train.onsets[k] + expected_s * sr)]
        if np.isfinite(est.delays[k]):
            starts.append(int(train.onsets[k] + est.delays[k]))
        hit = any(s < a + train.length + guard and e > a - guard for a in starts for s, e in late)
        if hit:
            est.delays[k] = np.nan
            lost += 1
    return lost


# ------------------------------------------------------------------------------------ soak
def soak(live: LiveConverter, seconds: float, *, method: str, period_s: float | None, block_in_device_latency: bool,
         n_bursts: int = DEFAULT_BURSTS, on_row=None):
    """Measure the round trip back to back for ``seconds``, with memory, late blocks and load per window.

    Every window is one :func:`measure_latency` (``n_bursts`` bursts); the stream never stops in
    between, so the converter runs on the looped bursts the whole time.

    Parameters
    ----------
    live : LiveConverter
        Started, output looped to input.
    seconds : float
        Total length (windows are started while time is left).
    on_row : callable, optional
        Called with each row (a dict) as soon as its window is done (progress printing).

    Returns
    -------
    pandas.DataFrame
        One row per window: ``t_s`` (window end, s since the soak started), ``rss_mb``
        (VmRSS), ``anon_mb`` (anonymous memory: what a leak grows), ``machine_load_1min``
        (the machine's load average: other processes compete for the cores),
        ``latency_ms`` (measured round trip, median of the window's bursts), ``spread_ms``,
        ``bursts_found``, ``bursts``, ``lost_to_late``, ``device_loop_ms``, ``formula_ms``,
        ``gate`` (passed), ``late_blocks`` / ``dropped_inputs`` / ``skipped_inputs`` /
        ``status_flags`` (cumulative), ``load_p50`` / ``load_p95`` / ``load_max`` (the window's
        conversions, compute time over block time).
    """
    import time

    import pandas as pd

    rows = []
    t0 = time.monotonic()
    _, logged = live.conversion_loads(0)
    while time.monotonic() - t0 < seconds:
        m = measure_latency(live, method=method, period_s=period_s, block_in_device_latency=block_in_device_latency,
                            n_bursts=n_bursts)
        st = live.stats()
        loads, logged = live.conversion_loads(logged)
        row = {
            "t_s": time.monotonic() - t0,
            "rss_mb": rss_mb()[0],
            "anon_mb": anon_rss_mb(),
            "machine_load_1min": os.getloadavg()[0],
            "latency_ms": m.round_trip.measured_ms,
            "spread_ms": m.round_trip.spread_ms,
            "bursts_found": m.round_trip.n_found,
            "bursts": m.round_trip.n_bursts,
            "lost_to_late": m.lost_to_late_blocks,
            "device_loop_ms": m.device_loop.measured_ms,
            "formula_ms": m.formula_ms,
            "gate": m.passed,
            "late_blocks": st["late_blocks"],
            "dropped_inputs": st["dropped_inputs"],
            "skipped_inputs": st["skipped_inputs"],
            "status_flags": st["status_flags"],
            "load_p50": float(np.percentile(loads, 50)) if loads.size else float("nan"),
            "load_p95": float(np.percentile(loads, 95)) if loads.size else float("nan"),
            "load_max": float(loads.max()) if loads.size else float("nan"),
        }
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------ notebooks
_PRIVATE_JACK = None


def private_jack_server():
    """A dummy-driver JACK server of this process, started on first use and stopped at exit.

    PortAudio is re-initialised to see it.  For notebooks and tools that want a real audio
    server without a sound card (a loop of software latency only).
    """
    global _PRIVATE_JACK
    if _PRIVATE_JACK is None or not _PRIVATE_JACK.running():
        import atexit

        server = jack.start_dummy_server()
        rescan_devices(jack_server=server.name)

        def stop():
            load_sounddevice()._terminate()  # PortAudio's JACK client goes before the server
            server.stop()

        atexit.register(stop)
        _PRIVATE_JACK = server
    return _PRIVATE_JACK


def loopback_measurement(converter, *, device=None, delay_blocks: int = 1, n_bursts: int = DEFAULT_BURSTS,
                         method: str | None = None, jack_loopback: bool | None = None) -> LatencyMeasurement:
    """Open a session on a loopback, measure the round trip, close it.

    Parameters
    ----------
    converter
        A :class:`~rvc_lab.convert.streaming.StreamingConverter` (its output rate is the stream
        rate) or a :class:`~rvc_lab.live.PassthroughConverter`.
    device : int or str, optional
        A PortAudio device whose output is looped to its input (a cable, a virtual device).
        None: :func:`private_jack_server`, whose stream ports are connected to each other.
    delay_blocks : int
        The live queue.
    method : {"xcorr", "onset"}, optional
        Default: "xcorr" for a passthrough, "onset" for a conversion.
    jack_loopback : bool, optional
        Connect the stream's JACK output ports to its input ports (:class:`StreamPorts`);
        default: on the private server only.

    Returns
    -------
    LatencyMeasurement
    """
    if device is None:
        private_jack_server()
    sr = converter.geometry.sr
    devices = check_devices(device, device, sample_rate=sr)
    if method is None:
        method = "onset" if getattr(converter, "settings", None) is not None else "xcorr"
    lc = LiveConverter(converter, devices.input, devices.output, delay_blocks=delay_blocks,
                       block_in_device_latency=devices.is_jack)
    if jack_loopback is None:
        jack_loopback = device is None
    ports = StreamPorts() if devices.is_jack and jack_loopback else None
    with lc:
        if ports is not None:
            ports.loop()
        return measure_latency(lc, method=method, period_s=jack_period_s(devices),
                               block_in_device_latency=devices.is_jack, n_bursts=n_bursts)
