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

Python threads share the GIL: the callback can still wait a few milliseconds for it while the
worker runs pure-Python code.  torch and numpy release the GIL in their kernels, which is where
the converter spends its time.
"""
from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from rvc_lab.errors import RVCLabError

log = logging.getLogger(__name__)

#: Shown when PortAudio cannot be loaded; sounddevice's wheels bundle it on Windows and macOS only.
PORTAUDIO_FIX = ("install the PortAudio library: `sudo apt-get install libportaudio2` (Debian/Ubuntu), "
                 "`sudo dnf install portaudio` (Fedora), `brew install portaudio` (macOS)")


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


@dataclass
class _Counters:
    """Event counts.  Each field has a single writer thread, so plain ints are safe under the GIL."""

    callbacks: int = 0          # callback calls (callback thread)
    late_blocks: int = 0        # callbacks after priming that played silence (callback thread)
    dropped_inputs: int = 0     # input blocks lost because the input queue was full (callback thread)
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
        :class:`~rvc_lab.convert.streaming.StreamGeometry`: ``sr``, ``block_frame``,
        ``algorithmic_latency_s``) and ``update(**settings)``; or a zero-argument factory
        returning one.  A factory is called at every :meth:`start`, so a restarted stream begins
        with empty buffers instead of the tail of the previous session.
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

    Examples
    --------
    >>> with LiveConverter(lambda: StreamingConverter(models, settings, 48000)) as live:  # doctest: +SKIP
    ...     live.update(pitch=12)
    ...     time.sleep(30)
    ...     print(live.stats())
    """

    def __init__(self, converter, input_device=None, output_device=None, channels: int | tuple[int, int] = 1,
                 stream_factory: Callable[..., Any] | None = None, *, latency: float | str | None = None,
                 delay_blocks: int = 1, queue_blocks: int | None = None):
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
        if stream_factory is None:
            stream_factory = load_sounddevice().Stream
        self._stream_factory = stream_factory

        self.stream = None
        self.last_error: BaseException | None = None
        self._counters = _Counters()
        self._worker: threading.Thread | None = None
        self._stop_event = threading.Event()
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

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "LiveConverter":
        """Build the converter (factory), start the worker, open and start the stream."""
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
        self._in_queue = queue.Queue(maxsize=self.queue_blocks)
        self._out_queue = collections.deque()
        self._stop_event.clear()
        self._worker = threading.Thread(target=self._work, name="rvc-lab-live-worker", daemon=True)
        self._worker.start()
        try:
            self.stream = self._stream_factory(
                samplerate=int(g.sr), blocksize=self._block_frame, channels=self.channels, dtype="float32",
                callback=self._callback, device=(self.input_device, self.output_device), latency=self.latency)
            self.stream.start()
        except Exception as exc:
            self._stop_worker()
            self._close_stream()
            raise LiveAudioError(f"could not open the audio stream (input {self.input_device!r}, output "
                                 f"{self.output_device!r}, {g.sr} Hz, block {self._block_frame}): {exc}") from exc
        log.info("live stream started: %d Hz, block %d samples, channels %s, latency %.0f ms",
                 g.sr, self._block_frame, self.channels, 1000 * self.latency_s()["total_latency_s"])
        return self

    def stop(self) -> None:
        """Stop and close the stream, then stop and join the worker.  Safe to call twice."""
        try:
            self._close_stream()
        finally:
            self._stop_worker()

    def _close_stream(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
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

    # ------------------------------------------------------------------ threads
    def _callback(self, indata, outdata, frames, time_info, status) -> None:
        """PortAudio callback: queue the input, play the block whose turn it is.  Never waits."""
        c = self._counters
        seq = c.callbacks
        c.callbacks += 1
        if status:
            c.status_flags += 1
            self._last_status = status
        try:
            # indata is PortAudio's buffer, reused after we return: keep a copy.
            self._in_queue.put_nowait((seq, np.array(indata, dtype=np.float32, copy=True)))
        except queue.Full:
            c.dropped_inputs += 1
        turn = seq - self.delay_blocks
        block = None
        out = self._out_queue
        while out and out[0][0] < turn:
            out.popleft()
            c.stale_outputs += 1
        if out and out[0][0] == turn:
            block = out.popleft()[1]
        if block is None or block.shape[0] != frames:
            outdata.fill(0)
            if turn >= 0:  # the first delay_blocks callbacks have nothing to play yet: not late
                c.late_blocks += 1
        else:
            outdata[:] = block[:, None]

    def _work(self) -> None:
        """Worker thread: convert queued input blocks in order until stopped."""
        c = self._counters
        conv = self.converter
        while True:
            item = self._in_queue.get()
            if item is None or self._stop_event.is_set():
                return
            seq, block = item
            t0 = time.perf_counter()
            try:
                with self._converter_lock:
                    y = conv.process_block(block)
                y = np.asarray(y, dtype=np.float32).reshape(-1)
                if y.shape[0] != self._block_frame:
                    raise ValueError(f"converter returned {y.shape[0]} samples for a {self._block_frame}-sample block")
            except Exception as exc:  # a bad block must not end the session: it plays as silence
                c.worker_errors += 1
                self.last_error = exc
                if c.worker_errors == 1:
                    log.exception("live block %d failed; playing silence for it", seq)
                else:
                    log.warning("live block %d failed: %s", seq, exc)
                continue
            dt = time.perf_counter() - t0
            c.process_max_s = max(c.process_max_s, dt)
            c.process_total_s += dt
            self._out_queue.append((seq, y))
            c.converted += 1  # after the append: converted blocks are always available to the callback

    # ------------------------------------------------------------------ reporting
    def latency_s(self) -> dict[str, float]:
        """Latency figures in seconds.

        Returns
        -------
        dict
            ``algorithmic_latency_s`` (block + crossfade + SOLA search, from the converter),
            ``queue_latency_s`` (``delay_blocks`` blocks: the price of converting off the callback),
            ``device_input_latency_s`` / ``device_output_latency_s`` (``stream.latency`` as PortAudio
            reports it; 0 before :meth:`start`), ``total_latency_s`` (their sum: capture to playback).
        """
        conv = self.converter
        if conv is None:
            algorithmic = queue_latency = 0.0
        else:
            g = conv.geometry
            algorithmic = float(g.algorithmic_latency_s)
            queue_latency = self.delay_blocks * g.block_frame / g.sr
        dev_in, dev_out = _device_latency_s(getattr(self.stream, "latency", None))
        return {
            "algorithmic_latency_s": algorithmic,
            "queue_latency_s": queue_latency,
            "device_input_latency_s": dev_in,
            "device_output_latency_s": dev_out,
            "total_latency_s": algorithmic + queue_latency + dev_in + dev_out,
        }

    def stats(self) -> dict[str, Any]:
        """Counters and latency of the current (or last) session.

        Returns
        -------
        dict
            ``callbacks``, ``converted``, ``late_blocks`` (callbacks after the first
            ``delay_blocks`` that played silence because their block was not converted in time),
            ``dropped_inputs`` (input queue full), ``stale_outputs`` (converted too late, discarded),
            ``worker_errors``, ``status_flags`` (PortAudio over/underflow reports) and
            ``last_status``, ``process_max_ms`` / ``process_mean_ms`` (converter time per block),
            ``block_ms``, ``running``, plus the figures of :meth:`latency_s`.
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
            "stale_outputs": c.stale_outputs,
            "worker_errors": c.worker_errors,
            "status_flags": c.status_flags,
            "last_status": None if self._last_status is None else str(self._last_status),
            "block_ms": block_ms,
            "process_max_ms": 1000 * c.process_max_s,
            "process_mean_ms": 1000 * c.process_total_s / c.converted if c.converted else 0.0,
            **self.latency_s(),
        }
