"""Run a :class:`~rvc_lab.convert.streaming.StreamingConverter` on real audio devices.

The optional ``sounddevice`` package (extra ``rvc_lab[live]``, needs the PortAudio library)
opens one full-duplex stream whose block size is the converter's block.  Conversion never runs
in the audio callback, because a callback that blocks makes PortAudio drop audio on both sides:

* the callback copies the captured block into a bounded input queue and plays the converted
  block whose turn it is from an output queue, or silence when that block is not ready;
* a worker thread takes input blocks in order, calls ``converter.process_block`` and queues
  the results.

Every converted block is played exactly ``delay_blocks`` callbacks after its input was captured.
A block that is not ready in time plays as silence and is counted (``late_blocks``); when it
arrives later it is thrown away (``stale_outputs``) rather than played late, so a stall never
adds latency for the rest of the session and no buffer is ever played twice.  When the worker
falls so far behind that the input queue is full, the newest input is dropped and counted
(``dropped_inputs``).

Before the stream opens, the worker warms the converter up on silence
(:meth:`StreamingConverter.warm_up`), in its own thread, so the first real block runs at normal
load.  Every callback and every conversion is logged with its clock time; :meth:`LiveConverter.trace`
joins them into one row per block (when it was captured, picked up, converted, due, and whether
it played), with the converter's stage times.

**Where the latency is** (measured on a JACK server, see :func:`latency_budget`): PortAudio's
JACK host API delivers a block to the callback only when all of it has been captured, and plays
the block the callback returns over the next block: the *reported* output latency (block +
one JACK period) already holds that buffering; the converter adds its queue (``delay_blocks``
blocks) and its crossfade + SOLA search.

A :class:`LoopbackProbe` turns a session into a latency measurement: the output plays a probe
signal (noise bursts) instead of the conversion, and the callback records what came back on the
input and what it would have played; :mod:`rvc_lab.metrics.latency` finds the bursts in both.
"""
from __future__ import annotations

import collections
import logging
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

from rvc_lab.errors import RVCLabError, SettingsError

log = logging.getLogger(__name__)

#: Shown when PortAudio cannot be loaded; sounddevice's wheels bundle it on Windows and macOS only.
PORTAUDIO_FIX = ("install the PortAudio library: `sudo apt-get install libportaudio2` (Debian/Ubuntu), "
                 "`sudo dnf install portaudio` (Fedora), `brew install portaudio` (macOS)")

#: Outcome codes of a callback in the callback log.
PRIMING, LATE = -2, -1


class LiveAudioError(RVCLabError, RuntimeError):
    """Live audio cannot run: sounddevice or PortAudio is missing, or the stream failed to open."""


def load_sounddevice():
    """Import ``sounddevice``, turning a missing package or PortAudio into :class:`LiveAudioError`.

    Returns
    -------
    module
        The ``sounddevice`` module.

    Raises
    ------
    LiveAudioError
        With the command that fixes it: ``pip install 'rvc_lab[live]'`` when the package is missing,
        the PortAudio install command when the package is there but its library is not
        (sounddevice raises ``OSError('PortAudio library not found')`` at import then).
    """
    try:
        import sounddevice
    except ImportError as exc:
        raise LiveAudioError(
            "live audio needs the sounddevice package: pip install 'rvc_lab[live]' (or pip install sounddevice)"
        ) from exc
    except OSError as exc:
        raise LiveAudioError(f"sounddevice is installed but could not load PortAudio ({exc}); {PORTAUDIO_FIX}") from exc
    return sounddevice


def rescan_devices(jack_server: str | None = None):
    """Re-initialise PortAudio so that it sees audio servers started after ``import sounddevice``.

    PortAudio lists a JACK server's ports only when it initialises, and it finds the server by
    the ``JACK_DEFAULT_SERVER`` environment variable.

    Parameters
    ----------
    jack_server : str, optional
        Set ``JACK_DEFAULT_SERVER`` to this name first (a private server of
        :func:`rvc_lab.jack.start_dummy_server`).

    Returns
    -------
    module
        ``sounddevice``.
    """
    sd = load_sounddevice()
    if jack_server is not None:
        os.environ["JACK_DEFAULT_SERVER"] = jack_server
    sd._terminate()
    sd._initialize()
    return sd


def list_devices() -> str:
    """The audio devices PortAudio sees, as sounddevice prints them (index, name, host API, channels)."""
    return str(load_sounddevice().query_devices())


def _device_latency_s(latency: Any) -> tuple[float, float]:
    """(input, output) latency in s from ``stream.latency`` (a pair for duplex streams, else one float)."""
    if latency is None:
        return 0.0, 0.0
    if np.ndim(latency) == 0:
        return 0.0, float(latency)
    values = [float(v) for v in latency]
    return (values[0], values[-1]) if values else (0.0, 0.0)


def _on_jack(device, stream_factory) -> bool:
    """True when sounddevice opens ``device`` (None: the default output) on PortAudio's JACK host API."""
    try:
        sd = sys.modules.get("sounddevice")
        if sd is None or stream_factory is not sd.Stream:
            return False
        info = sd.query_devices(device, kind="output")
        return "JACK" in sd.query_hostapis(info["hostapi"])["name"]
    except Exception:  # no device information: upstream's assumption
        return False


# ------------------------------------------------------------------------------------ converters
class PassthroughConverter:
    """The identity in the converter's place: same buffering, no model (``rvc-lab live --passthrough``).

    Parameters
    ----------
    sr : int
        Stream rate (Hz).
    block_time : float
        Block length (s), rounded to whole 10 ms frames like the converter's.
    """

    def __init__(self, sr: int, block_time: float):
        zc = int(sr) // 100
        block = int(round(block_time * sr / zc)) * zc
        if block <= 0:
            raise SettingsError(f"block_time={block_time} s is shorter than one 10 ms frame")
        self.geometry = SimpleNamespace(sr=int(sr), block_frame=block, crossfade_frame=0, sola_buffer_frame=0,
                                        sola_search_frame=0, algorithmic_latency_s=block / sr)
        self.settings = None
        self.block_index = 0

    def process_block(self, block: np.ndarray) -> np.ndarray:
        """float32 [block_frame] (or [block_frame, C], mixed to mono) -> the same samples."""
        x = np.asarray(block, dtype=np.float32)
        if x.ndim == 2:
            x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
        self.block_index += 1
        return x.copy()

    def update(self, **changes) -> None:
        if changes:
            raise SettingsError(f"passthrough has no settings to change ({', '.join(changes)})")


def chain_latency_s(converter) -> float:
    """What the converter adds after a block is captured, before the queue (s).

    Upstream's terms: crossfade + SOLA search (10 ms), + min(crossfade, 40 ms) with input noise
    reduction (the denoised block is held back by the SOLA buffer).  The block's own duration is
    not here: see :func:`latency_budget`.  0 for :class:`PassthroughConverter`.
    """
    g = converter.geometry
    frames = g.crossfade_frame + g.sola_search_frame
    s = getattr(converter, "settings", None)
    if s is not None and getattr(s, "input_noise_reduce", False):
        frames += g.sola_buffer_frame
    return frames / g.sr


def latency_budget(converter, stream_latency: Any, delay_blocks: int, *, block_in_device_latency: bool) -> dict:
    """The round trip (capture to playback) as a sum of named parts, in seconds.

    Parameters
    ----------
    converter
        Has ``geometry`` (``sr``, ``block_frame``, ``crossfade_frame``, ``sola_search_frame``, ...).
    stream_latency : float or (float, float)
        ``stream.latency`` as PortAudio reports it.
    delay_blocks : int
        The live queue (callbacks between capture and playback of a block).
    block_in_device_latency : bool
        Whether PortAudio's reported latency already holds one block of buffering.  Measured on
        JACK: a duplex stream of 12000-sample blocks reports (0.0, 0.26) s and loops back in
        exactly 12480 samples (block + one 480-sample period); PortAudio adapts JACK's periods
        to the callback's block and counts that block in its output latency.  Upstream's
        displayed delay adds the block on top, which on JACK counts it twice.

    Returns
    -------
    dict
        ``device_input_s``, ``device_output_s`` (reported), ``block_s`` (the block's buffering
        when the device figures lack it, else 0), ``queue_s``, ``chain_s``
        (:func:`chain_latency_s`), ``formula_s`` (their sum) and ``upstream_displayed_s``
        (upstream's formula: output latency + block + crossfade + 10 ms [+ NR], without the queue).
    """
    g = converter.geometry
    block = g.block_frame / g.sr
    dev_in, dev_out = _device_latency_s(stream_latency)
    chain = chain_latency_s(converter)
    queue_s = delay_blocks * block
    block_s = 0.0 if block_in_device_latency else block
    return {
        "device_input_s": dev_in,
        "device_output_s": dev_out,
        "block_s": block_s,
        "queue_s": queue_s,
        "chain_s": chain,
        "formula_s": dev_in + dev_out + block_s + queue_s + chain,
        "upstream_displayed_s": dev_out + block + chain,
    }


# ------------------------------------------------------------------------------------ probe
class LoopbackProbe:
    """Plays a probe signal on the output and records both ends of the chain, from the callback.

    While active, each callback writes the next ``frames`` samples of ``signal`` to every output
    channel (in place of the conversion), appends its first input channel to :attr:`captured`
    and the block it would have played (silence when late) to :attr:`played`.  Sample ``i`` of
    all three arrays belongs to the same callback position, so a burst at ``signal[n]`` that
    comes back at ``captured[m]`` has travelled the device loop in ``m - n`` samples, and one
    found at ``played[c]`` has made the whole round trip (loop + queue + chain) in ``c - n``.

    Parameters
    ----------
    signal : np.ndarray
        float32 [N] to play once; the probe is done after the callback that plays its end.
    """

    def __init__(self, signal: np.ndarray):
        self.signal = np.ascontiguousarray(signal, dtype=np.float32)
        n = self.signal.shape[0]
        self.captured = np.zeros(n, dtype=np.float32)
        self.played = np.zeros(n, dtype=np.float32)
        self.position = 0
        self.first_callback: int | None = None
        self.done = threading.Event()
        self._late: list[tuple[int, int]] = []

    def feed(self, seq: int, indata: np.ndarray, block: np.ndarray | None, outdata: np.ndarray) -> None:
        """Callback side: play the next samples of the signal and record input and would-be output."""
        frames = outdata.shape[0]
        p = self.position
        n = min(frames, self.signal.shape[0] - p)
        if self.first_callback is None:
            self.first_callback = seq
        outdata.fill(0)
        if n > 0:
            outdata[:n] = self.signal[p : p + n, None]
            self.captured[p : p + n] = indata[:n, 0]
            if block is not None:
                self.played[p : p + n] = block[:n]
            else:
                self._late.append((p, p + n))
            self.position = p + n
        if self.position >= self.signal.shape[0]:
            self.done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the whole signal was played; False on timeout."""
        return self.done.wait(timeout)

    def late_spans(self) -> list[tuple[int, int]]:
        """[start, stop) sample spans of :attr:`played` where no converted block was ready (silence)."""
        return list(self._late)


@dataclass
class _Counters:
    """Event counts.  Each field has a single writer thread, so plain ints are safe under the GIL."""

    callbacks: int = 0          # callback calls (callback thread)
    late_blocks: int = 0        # callbacks after priming that played silence (callback thread)
    dropped_inputs: int = 0     # input blocks lost because the input queue was full (callback thread)
    skipped_inputs: int = 0     # input blocks the worker skipped: they could not be ready in time (worker)
    stale_outputs: int = 0      # converted blocks that arrived after their turn and were discarded (callback)
    status_flags: int = 0       # callbacks where PortAudio reported an over/underflow (callback thread)
    converted: int = 0          # blocks the converter returned (worker)
    worker_errors: int = 0      # process_block calls that raised (worker)
    process_max_s: float = 0.0  # slowest process_block call (worker)
    process_total_s: float = 0.0


class LiveConverter:
    """Full-duplex live conversion: device input -> converter (worker thread) -> device output.

    Parameters
    ----------
    converter : StreamingConverter or callable
        An object with ``process_block(block) -> block``, ``geometry`` (a
        :class:`~rvc_lab.convert.streaming.StreamGeometry`: ``sr``, ``block_frame``, ...) and
        ``update(**settings)``; or a zero-argument factory returning one.  A factory is called
        at every :meth:`start`, so a restarted stream begins with empty buffers instead of the
        tail of the previous session.  A ``warm_up()`` method, when there is one, is called in
        the worker thread before the stream opens.
    input_device, output_device : int or str, optional
        PortAudio device index or name substring; None uses the system default.
    channels : int or (int, int)
        Channels opened on the devices, one count for both or (input, output).  Input channels
        are mixed down by the converter; the mono result is written to every output channel.
    stream_factory : callable, optional
        Builds the stream; called with the keyword arguments of ``sounddevice.Stream``
        (``samplerate, blocksize, channels, dtype, callback, device, latency``) and must return an
        object with ``start()``, ``stop()``, ``close()`` and ``latency``.  Default
        ``sounddevice.Stream`` (imported here, so a missing PortAudio fails at construction).
    latency : float or {"low", "high"}, optional
        Passed to the stream; None keeps sounddevice's default.
    delay_blocks : int
        Callbacks between capturing a block and playing its conversion (>= 1).  The worker has
        ``delay_blocks`` block durations to convert each block; 1 is the least latency, more
        absorbs compute jitter.
    queue_blocks : int, optional
        Input queue capacity in blocks; default ``delay_blocks + 2``.  Small on purpose: a worker
        that fell behind catches up through at most this many stale blocks.
    warm_up : bool
        Warm the converter up on silence before the stream opens (when it has ``warm_up``).
    switch_interval_s : float, optional
        Python's GIL switch interval while the session runs (``sys.setswitchinterval``; restored
        at :meth:`stop`).  The callback needs the GIL, and while the worker runs Python code
        between torch kernels the callback waits up to this long for it, inside the audio
        server's cycle.  Default 1 ms (Python's is 5 ms); None leaves it alone.
    block_in_device_latency : bool, optional
        Whether PortAudio's reported latency holds the block (see :func:`latency_budget`); None:
        True on a JACK device (measured), else False (upstream's assumption).

    Examples
    --------
    >>> with LiveConverter(lambda: StreamingConverter(models, settings, 48000)) as live:  # doctest: +SKIP
    ...     live.update(pitch=12)
    ...     time.sleep(30)
    ...     print(live.stats())
    """

    def __init__(self, converter, input_device=None, output_device=None, channels: int | tuple[int, int] = 1,
                 stream_factory: Callable[..., Any] | None = None, *, latency: float | str | None = None,
                 delay_blocks: int = 1, queue_blocks: int | None = None, warm_up: bool = True,
                 switch_interval_s: float | None = 0.001, block_in_device_latency: bool | None = None):
        if hasattr(converter, "process_block"):
            self._factory, self.converter = None, converter
        elif callable(converter):
            self._factory, self.converter = converter, None
        else:
            raise TypeError("converter must have process_block(block) or be a factory returning such an object")
        in_ch, out_ch = (channels, channels) if np.ndim(channels) == 0 else tuple(channels)
        if int(in_ch) < 1 or int(out_ch) < 1:
            raise LiveAudioError(f"channels={channels!r}: need at least one input and one output channel")
        if delay_blocks < 1:
            raise LiveAudioError(f"delay_blocks={delay_blocks}: must be >= 1 (conversion runs off the callback)")
        self.channels = (int(in_ch), int(out_ch))
        self.input_device, self.output_device = input_device, output_device
        self.latency = latency
        self.delay_blocks = int(delay_blocks)
        self.queue_blocks = int(queue_blocks if queue_blocks is not None else delay_blocks + 2)
        self.warm_up = bool(warm_up)
        self.switch_interval_s = switch_interval_s
        self.block_in_device_latency = block_in_device_latency
        if stream_factory is None:
            stream_factory = load_sounddevice().Stream
        self._stream_factory = stream_factory

        self.stream = None
        self.last_error: BaseException | None = None
        self.warm_up_ms: list[float] = []
        self._counters = _Counters()
        self._worker: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._ready = threading.Event()
        self._in_queue: queue.Queue = queue.Queue(maxsize=self.queue_blocks)
        # deque: append (worker) / popleft and [0] (callback) are atomic, and the callback can
        # look at the next block's sequence number without taking it.
        self._out_queue: collections.deque = collections.deque()
        # Held by the worker around each process_block: update() waits for the block in flight,
        # so settings change between blocks, never in the middle of one.
        self._converter_lock = threading.Lock()
        self._settings: dict[str, Any] = {}  # every update, re-applied to converters a factory builds
        self._block_frame = 0
        self._last_status = None
        self._callback_log: list[tuple] = []
        self._worker_log: list[tuple] = []
        self._probe: LoopbackProbe | None = None
        self._saved_switch_interval: float | None = None
        self._stream_clock = False
        self.started_at: float | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "LiveConverter":
        """Build the converter (factory), start the worker (warm-up), open and start the stream."""
        if self.running:
            return self
        if self._factory is not None:
            conv = self._factory()
            if self._settings:
                conv.update(**self._settings)
            self.converter = conv
        g = self.converter.geometry
        self._block_frame = int(g.block_frame)
        self._counters = _Counters()
        self._callback_log = []
        self._worker_log = []
        self._in_queue = queue.Queue(maxsize=self.queue_blocks)
        self._out_queue = collections.deque()
        self._stop_event.clear()
        self._ready.clear()
        self.last_error = None
        self._worker = threading.Thread(target=self._work, name="rvc-lab-live-worker", daemon=True)
        self._worker.start()
        self._ready.wait()
        if self.last_error is not None and not self._worker.is_alive():
            self._worker = None
            raise LiveAudioError(f"the converter failed its warm-up: {self.last_error}") from self.last_error
        if self.switch_interval_s is not None:
            self._saved_switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(self.switch_interval_s)
        try:
            stream = self._stream_factory(
                samplerate=int(g.sr), blocksize=self._block_frame, channels=self.channels, dtype="float32",
                callback=self._callback, device=(self.input_device, self.output_device), latency=self.latency)
            self._stream_clock = hasattr(stream, "time")
            if self.block_in_device_latency is None:
                self.block_in_device_latency = _on_jack(self.output_device, self._stream_factory)
            self.stream = stream
            self.started_at = time.perf_counter()
            stream.start()
        except Exception as exc:
            self._stop_worker()
            self._close_stream()
            self._restore_switch_interval()
            raise LiveAudioError(f"could not open the audio stream (input {self.input_device!r}, output "
                                 f"{self.output_device!r}, {g.sr} Hz, block {self._block_frame}): {exc}") from exc
        log.info("live stream started: %d Hz, block %d samples, channels %s, delay %d block(s)%s",
                 g.sr, self._block_frame, self.channels, self.delay_blocks,
                 f", warm-up {'/'.join(f'{t:.0f}' for t in self.warm_up_ms)} ms" if self.warm_up_ms else "")
        return self

    def stop(self) -> None:
        """Stop and close the stream, then stop and join the worker.  Safe to call twice."""
        try:
            self._close_stream()
        finally:
            self._stop_worker()
            self._restore_switch_interval()

    def _restore_switch_interval(self) -> None:
        if self._saved_switch_interval is not None:
            sys.setswitchinterval(self._saved_switch_interval)
            self._saved_switch_interval = None

    def _close_stream(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            self._last_stream_latency = getattr(stream, "latency", None)
            try:
                stream.stop()
            finally:
                stream.close()

    def _stop_worker(self) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        self._stop_event.set()
        try:
            # Wakes a worker waiting on an empty queue; a full queue wakes it anyway.
            self._in_queue.put_nowait(None)
        except queue.Full:
            pass
        worker.join()

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._worker is not None

    def __enter__(self) -> "LiveConverter":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ settings
    def update(self, **changes) -> None:
        """Change live settings (``pitch``, ``index_rate``, ``f0_method``...) while streaming.

        Applied between blocks: the call waits for the block being converted, if any (never the
        audio callback, which does not take this lock).  Invalid settings raise here, from
        ``converter.update``.  With a factory the changes are also kept and applied to the
        converter of the next :meth:`start`.
        """
        if self.converter is not None:
            with self._converter_lock:
                self.converter.update(**changes)
        self._settings.update(changes)

    # ------------------------------------------------------------------ probe
    def start_probe(self, signal: np.ndarray) -> LoopbackProbe:
        """Play ``signal`` from the next callback on, recording both ends (see :class:`LoopbackProbe`)."""
        probe = LoopbackProbe(signal)
        self._probe = probe
        return probe

    def end_probe(self) -> None:
        """Go back to playing the conversion."""
        self._probe = None

    # ------------------------------------------------------------------ threads
    def _callback(self, indata, outdata, frames, time_info, status) -> None:
        """PortAudio callback: queue the input, play the block whose turn it is.  Never waits."""
        t_enter = time.perf_counter()
        # the stream's clock (PortAudio: its sample clock) when the stream has one, else the wall clock
        t_stream = float(getattr(time_info, "currentTime", 0.0)) if self._stream_clock else t_enter
        c = self._counters
        seq = c.callbacks
        c.callbacks += 1
        if status:
            c.status_flags += 1
            self._last_status = status
        queued = True
        try:
            # indata is PortAudio's buffer, reused after we return: keep a copy.
            self._in_queue.put_nowait((seq, np.array(indata, dtype=np.float32, copy=True), t_stream))
        except queue.Full:
            c.dropped_inputs += 1
            queued = False
        turn = seq - self.delay_blocks
        block = None
        out = self._out_queue
        while out and out[0][0] < turn:
            out.popleft()
            c.stale_outputs += 1
        if out and out[0][0] == turn:
            block = out.popleft()[1]
        if block is not None and block.shape[0] != frames:
            block = None
        if block is None:
            outcome = PRIMING if turn < 0 else LATE
            if turn >= 0:  # the first delay_blocks callbacks have nothing to play yet: not late
                c.late_blocks += 1
        else:
            outcome = turn
        probe = self._probe
        if probe is not None and not probe.done.is_set():
            probe.feed(seq, indata, block, outdata)
        elif block is None:
            outdata.fill(0)
        else:
            outdata[:] = block[:, None]
        self._callback_log.append((seq, t_enter, t_stream,
                                   int(bool(status)), outcome, time.perf_counter() - t_enter, queued))

    def _work(self) -> None:
        """Worker thread: warm up, then convert queued input blocks in order until stopped.

        A block that cannot be ready before its turn is skipped instead of converted: its turn
        has passed, or converting it (at the recent median time) would end after its turn while
        a newer block already waits.  Converting it anyway would only make the next block late
        too: after a stall the worker goes straight back to the newest block instead of working
        through a backlog of blocks that will all be late (measured: one 1.4 s first block
        turned into 12 late blocks that way).
        """
        c = self._counters
        conv = self.converter
        try:
            if self.warm_up and hasattr(conv, "warm_up"):
                self.warm_up_ms = list(conv.warm_up())
        except Exception as exc:
            self.last_error = exc
            self._ready.set()
            return
        self._ready.set()
        g = conv.geometry
        budget_s = self.delay_blocks * g.block_frame / g.sr
        recent: collections.deque = collections.deque(maxlen=16)
        if self.warm_up_ms:
            recent.append(self.warm_up_ms[-1] / 1000.0)
        while True:
            item = self._in_queue.get()
            if item is None or self._stop_event.is_set():
                return
            seq, block, t_captured = item
            t0 = time.perf_counter()
            now = self._now()
            due = t_captured + budget_s  # on the clock of t_captured: the callback that plays it
            expected = float(np.median(recent)) if recent else 0.0
            if now >= due or (now + expected > due and not self._in_queue.empty()):
                c.skipped_inputs += 1
                self._worker_log.append((seq, t0, t0, None))
                continue
            try:
                with self._converter_lock:
                    y = conv.process_block(block)
                y = np.asarray(y, dtype=np.float32).reshape(-1)
                if y.shape[0] != self._block_frame:
                    raise ValueError(f"converter returned {y.shape[0]} samples for a {self._block_frame}-sample block")
            except Exception as exc:  # a bad block must not end the session: it plays as silence
                c.worker_errors += 1
                self.last_error = exc
                self._worker_log.append((seq, t0, time.perf_counter(), False))
                if c.worker_errors == 1:
                    log.exception("live block %d failed; playing silence for it", seq)
                else:
                    log.warning("live block %d failed: %s", seq, exc)
                continue
            t1 = time.perf_counter()
            dt = t1 - t0
            recent.append(dt)
            c.process_max_s = max(c.process_max_s, dt)
            c.process_total_s += dt
            self._out_queue.append((seq, y))
            c.converted += 1  # after the append: converted blocks are always available to the callback
            self._worker_log.append((seq, t0, t1, True))

    def _now(self) -> float:
        """Current time on the clock the callback stamps blocks with (see :meth:`_callback`)."""
        stream = self.stream
        if self._stream_clock and stream is not None:
            try:
                return float(stream.time)
            except Exception:  # a stream being closed: any "late" answer is harmless now
                return float("inf")
        return time.perf_counter()

    # ------------------------------------------------------------------ reporting
    def stream_latency(self):
        """``stream.latency`` of the open (or last) stream, as PortAudio reports it."""
        if self.stream is not None:
            return getattr(self.stream, "latency", None)
        return getattr(self, "_last_stream_latency", None)

    def latency_s(self) -> dict[str, float]:
        """Latency figures in seconds (the formula; ``rvc-lab live --measure-latency`` measures it).

        Returns
        -------
        dict
            ``algorithmic_latency_s`` (block + crossfade + SOLA search, from the converter),
            ``queue_latency_s`` (``delay_blocks`` blocks: the price of converting off the callback),
            ``device_input_latency_s`` / ``device_output_latency_s`` (``stream.latency`` as PortAudio
            reports it; 0 before :meth:`start`), ``total_latency_s``: capture to playback, the
            block counted once (:func:`latency_budget`: on JACK it is in the device figures).
        """
        conv = self.converter
        dev_in, dev_out = _device_latency_s(self.stream_latency())
        if conv is None:
            return {"algorithmic_latency_s": 0.0, "queue_latency_s": 0.0, "device_input_latency_s": dev_in,
                    "device_output_latency_s": dev_out, "total_latency_s": dev_in + dev_out}
        g = conv.geometry
        budget = latency_budget(conv, self.stream_latency(), self.delay_blocks,
                                block_in_device_latency=bool(self.block_in_device_latency))
        return {
            "algorithmic_latency_s": float(g.algorithmic_latency_s),
            "queue_latency_s": budget["queue_s"],
            "device_input_latency_s": dev_in,
            "device_output_latency_s": dev_out,
            "total_latency_s": budget["formula_s"],
        }

    def callback_outcomes(self) -> list[int]:
        """What each callback played, in order: the sequence number of the block, :data:`LATE` or :data:`PRIMING`."""
        return [row[4] for row in self._callback_log]

    def conversion_loads(self, start: int = 0) -> tuple[np.ndarray, int]:
        """Loads (converter time / block time) of the conversions logged from position ``start`` on.

        Returns
        -------
        (np.ndarray, int)
            float64 [n] loads of successful conversions, and the position to pass next time.
        """
        rows = self._worker_log[start:]
        conv = self.converter
        if conv is None:
            return np.zeros(0), start
        block_s = conv.geometry.block_frame / conv.geometry.sr
        loads = np.array([(t1 - t0) / block_s for _, t0, t1, ok in rows if ok], dtype=np.float64)
        return loads, start + len(rows)

    def recent_load(self, blocks: int = 40) -> tuple[float, float]:
        """(p50, p95) of converter time / block time over the last ``blocks`` conversions (0, 0 before any)."""
        rows = [r for r in self._worker_log[-blocks:] if r[3]]
        conv = self.converter
        if not rows or conv is None:
            return 0.0, 0.0
        block_s = conv.geometry.block_frame / conv.geometry.sr
        load = np.array([(t1 - t0) / block_s for _, t0, t1, _ in rows])
        return float(np.percentile(load, 50)), float(np.percentile(load, 95))

    def stats(self) -> dict[str, Any]:
        """Counters and latency of the current (or last) session.

        Returns
        -------
        dict
            ``callbacks``, ``converted``, ``late_blocks`` (callbacks after the first
            ``delay_blocks`` that played silence because their block was not converted in time),
            ``dropped_inputs`` (input queue full), ``skipped_inputs`` (taken from the queue too
            late to be ready in time, not converted), ``stale_outputs`` (converted too late, discarded),
            ``worker_errors``, ``status_flags`` (PortAudio over/underflow reports) and
            ``last_status``, ``process_max_ms`` / ``process_mean_ms`` (converter time per block),
            ``block_ms``, ``running``, ``warm_up_ms``, plus the figures of :meth:`latency_s`.
        """
        c = self._counters
        conv = self.converter
        block_ms = 1000 * conv.geometry.block_frame / conv.geometry.sr if conv is not None else 0.0
        return {
            "running": self.running,
            "callbacks": c.callbacks,
            "converted": c.converted,
            "late_blocks": c.late_blocks,
            "dropped_inputs": c.dropped_inputs,
            "skipped_inputs": c.skipped_inputs,
            "stale_outputs": c.stale_outputs,
            "worker_errors": c.worker_errors,
            "status_flags": c.status_flags,
            "last_status": None if self._last_status is None else str(self._last_status),
            "block_ms": block_ms,
            "process_max_ms": 1000 * c.process_max_s,
            "process_mean_ms": 1000 * c.process_total_s / c.converted if c.converted else 0.0,
            "warm_up_ms": list(self.warm_up_ms),
            **self.latency_s(),
        }

    def trace(self):
        """One row per captured block: where its time went between the callback and its playback.

        Returns
        -------
        pandas.DataFrame
            ``block`` (capture sequence number), ``t_s`` (capture callback, s since the stream
            started), ``stream_t_s`` (the stream's clock then), ``entry_lag_ms`` (wall clock
            against stream clock at callback entry, detrended, from its smallest value: how late
            Python ran the callback; with a stream clock only), ``callback_ms`` (time spent in that callback), ``interval_ms`` (since the
            previous callback), ``pickup_ms`` (capture callback -> worker starts it: queue wait),
            ``process_ms`` (``process_block``), ``ready_ms`` (capture callback -> result queued),
            ``due_ms`` (capture callback -> the callback that plays it), ``margin_ms``
            (due - ready: negative is late), ``outcome`` ("played", "late", "dropped", "error",
            "pending"), ``status`` (PortAudio flagged an over/underflow), and the converter's
            stage columns (ms) and ``load`` (process / block) where it keeps a
            :class:`~rvc_lab.instrument.StageTimer`.
        """
        import pandas as pd

        cb = list(self._callback_log)
        wk = list(self._worker_log)
        if not cb:
            return pd.DataFrame()
        t_origin = self.started_at if self.started_at is not None else cb[0][1]
        t_cb = {seq: t for seq, t, *_ in cb}
        outcome_at = {seq: out for seq, _, _, _, out, _, _ in cb}
        done = {seq: (t0, t1, ok) for seq, t0, t1, ok in wk}
        conv = self.converter
        block_ms = 1000 * conv.geometry.block_frame / conv.geometry.sr if conv is not None else float("nan")
        rows = []
        prev_t = None
        for seq, t, t_stream, flagged, _, cb_s, queued in cb:
            due_seq = seq + self.delay_blocks
            row = {"block": seq, "t_s": t - t_origin, "stream_t_s": t_stream, "callback_ms": 1000 * cb_s,
                   "interval_ms": float("nan") if prev_t is None else 1000 * (t - prev_t), "status": bool(flagged)}
            prev_t = t
            if seq in done:
                t0, t1, ok = done[seq]
                row["pickup_ms"] = 1000 * (t0 - t)
                if ok is not None:
                    row.update(process_ms=1000 * (t1 - t0), ready_ms=1000 * (t1 - t))
                if due_seq in t_cb:
                    row["due_ms"] = 1000 * (t_cb[due_seq] - t)
                    if ok is not None:
                        row["margin_ms"] = row["due_ms"] - row["ready_ms"]
                played = outcome_at.get(due_seq)
                if ok is None:
                    row["outcome"] = "skipped"
                elif not ok:
                    row["outcome"] = "error"
                elif played is None:
                    row["outcome"] = "pending"
                else:
                    row["outcome"] = "played" if played == seq else "late"
            else:
                row["outcome"] = "pending" if queued else "dropped"
            rows.append(row)
        df = pd.DataFrame(rows)
        if self._stream_clock:
            # wall clock at callback entry against the stream's own clock: its growth is the time
            # between PortAudio stamping the callback and Python running it (the GIL wait, mostly)
            # (detrended: an audio server's sample clock drifts against the wall clock)
            ts, wall = df["stream_t_s"].to_numpy(), df["t_s"].to_numpy()
            if len(df) > 2 and np.ptp(ts) > 0:
                slope, icpt = np.polyfit(ts, wall, 1)
                lag = wall - (slope * ts + icpt)
            else:
                lag = wall - ts
            df["entry_lag_ms"] = 1000 * (lag - lag.min())
        df["load"] = df.get("process_ms", pd.Series(dtype=float)) / block_ms
        timer = getattr(conv, "timer", None)
        if timer is not None and getattr(timer, "enabled", False) and timer.rows:
            stages = timer.to_frame().drop(columns=["block_ms", "overrun"], errors="ignore")
            stages = stages.rename(columns={"block": "converter_block", "total": "converter_total_ms"})
            # the converter numbers the blocks it was given, in order: the worker's log says which they were
            order = [seq for seq, _, _, ok in wk if ok is not None][: len(stages)]
            stages = stages.iloc[: len(order)].assign(block=order)
            df = df.merge(stages, on="block", how="left")
        return df
