"""The live (sounddevice) driver, against a fake PortAudio stream and a stand-in converter.

The driver is under test, not the model: the converter is a small object with the
``process_block`` / ``geometry`` / ``update`` interface of ``StreamingConverter`` whose output is
a known function of its input, so every played block can be traced back to the input block it
came from.  ``FakeStream`` has ``sounddevice.Stream``'s constructor and calls the callback from
its own thread like PortAudio does, faster than real time.  Between callbacks it runs a hook in
which the tests decide how much "time" passes (e.g. until the worker has caught up), which makes
the late/dropped/stale counts exact instead of dependent on the machine's load.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from rvc_lab import live
from rvc_lab.convert.streaming import StreamGeometry, StreamSettings
from rvc_lab.live import LiveAudioError, LiveConverter

SR = 16000
# 10 ms blocks at 16 kHz: 160 samples; crossfade 10 ms, no extra context.
GEOMETRY = StreamGeometry.from_settings(StreamSettings(block_time=0.01, crossfade_time=0.01, extra_time=0.0), SR)
WAIT_S = 10.0  # generous upper bound for any wait: reaching it means a deadlock, and the test fails


def expected_output(block: np.ndarray, pitch: float = 0.0) -> np.ndarray:
    """The stand-in's conversion: mono mix, reversed, squashed, offset so it is never silent."""
    x = block.mean(axis=1, dtype=np.float32) if block.ndim == 2 else block
    return (0.5 * np.tanh(x[::-1]) + 0.3 + 0.01 * pitch).astype(np.float32)


class StandInConverter:
    """``StreamingConverter``'s interface with a cheap, traceable conversion.

    Parameters
    ----------
    slow_block : int, optional
        Index (in processing order) of a block that holds the worker until :attr:`release` is set.
    failing_block : int, optional
        Index of a block whose conversion raises.
    work_s : float
        Sleep per block (widens the window in which a concurrent ``update`` would be caught).
    """

    geometry = GEOMETRY

    def __init__(self, slow_block=None, failing_block=None, work_s=0.0):
        self.slow_block, self.failing_block, self.work_s = slow_block, failing_block, work_s
        self.pitch = 0.0
        self.inputs: list[np.ndarray] = []  # blocks in the order process_block got them
        self.pitches: list[float] = []      # the pitch each block was converted with
        self.attempts = 0
        self.busy = False
        self.concurrent_updates = 0
        self.settings_changed_mid_block = 0
        self.updates: list[int] = []        # len(inputs) at each update
        self.slow_started = threading.Event()
        self.release = threading.Event()
        self.released_in_time = None
        self.slow_duration_s = None
        self.slow_t0 = None

    def process_block(self, block: np.ndarray) -> np.ndarray:
        self.busy = True
        k = self.attempts
        self.attempts += 1
        try:
            pitch = self.pitch
            if k == self.slow_block:
                t0 = self.slow_t0 = time.perf_counter()
                self.slow_started.set()
                self.released_in_time = self.release.wait(WAIT_S)
                self.slow_duration_s = time.perf_counter() - t0
            if self.work_s:
                time.sleep(self.work_s)
            if k == self.failing_block:
                raise RuntimeError("simulated conversion failure")
            if self.pitch != pitch:
                self.settings_changed_mid_block += 1
            self.inputs.append(np.array(block))
            self.pitches.append(pitch)
            return expected_output(block, pitch)
        finally:
            self.busy = False

    def update(self, **changes) -> None:
        if self.busy:
            self.concurrent_updates += 1
        unknown = set(changes) - {"pitch"}
        if unknown:
            raise ValueError(f"unknown setting {sorted(unknown)}")
        self.pitch = float(changes.get("pitch", self.pitch))
        self.updates.append(len(self.inputs))


class FakeStream:
    """``sounddevice.Stream`` stand-in: a thread that calls the callback ``n_blocks`` times.

    Each call gets fresh float32 ``indata`` [blocksize, in_channels] (seeded noise, unique per
    block) and an ``outdata`` [blocksize, out_channels] pre-filled with NaN, so a callback that
    leaves it unwritten is caught.  ``between(k)`` runs after the k-th call returns, outside
    the callback, standing for the time that passes until the next one.  Its clock (``time``,
    ``time_info.currentTime``) is a sample clock that advances one block per callback, so the
    driver's deadlines follow the fake stream's time, not the machine's.
    """

    instances: list["FakeStream"] = []

    def __init__(self, samplerate, blocksize, channels, dtype, callback, device, latency, *, n_blocks=60,
                 period_s=0.0005, between=None):
        assert dtype == "float32"
        self.samplerate, self.blocksize, self.device, self.requested_latency = samplerate, blocksize, device, latency
        self.channels = (channels, channels) if np.ndim(channels) == 0 else tuple(channels)
        self.callback, self.n_blocks, self.period_s, self.between = callback, n_blocks, period_s, between
        self.latency = (0.012, 0.034)  # what PortAudio reports for a duplex stream: (input, output) s
        self.clock_s = 0.0
        self.inputs, self.outputs, self.callback_s, self.errors = [], [], [], []
        self.done = threading.Event()
        self._stop = threading.Event()
        self.started = self.stopped = self.closed = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        FakeStream.instances.append(self)

    @property
    def time(self):
        """Like ``Pa_GetStreamTime``: the sample clock, here the last callback's block start (s)."""
        return self.clock_s

    def start(self):
        self.started = True
        self._thread.start()

    def stop(self):
        self.stopped = True
        self._stop.set()
        self._thread.join(WAIT_S)

    def close(self):
        self.closed = True

    def _run(self):
        rng = np.random.default_rng(0)
        for k in range(self.n_blocks):
            if self._stop.is_set():
                break
            indata = rng.uniform(-0.8, 0.8, (self.blocksize, self.channels[0])).astype(np.float32)
            outdata = np.full((self.blocksize, self.channels[1]), np.nan, dtype=np.float32)
            block_s = self.blocksize / self.samplerate
            self.clock_s = k * block_s  # the stream's sample clock: one block per callback
            info = SimpleNamespace(inputBufferAdcTime=(k - 1) * block_s, currentTime=k * block_s,
                                   outputBufferDacTime=(k + 1) * block_s)
            t0 = time.perf_counter()
            try:
                self.callback(indata, outdata, self.blocksize, info, 0)
            except Exception as exc:  # PortAudio would abort the stream
                self.errors.append(exc)
                break
            self.callback_s.append(time.perf_counter() - t0)
            self.inputs.append(indata.copy())  # the callback must not depend on indata surviving
            indata.fill(np.nan)  # PortAudio reuses its buffer: a driver that kept a view now sees NaN
            self.outputs.append(outdata.copy())
            if self.between is not None:
                self.between(k)
            time.sleep(self.period_s)
        self.done.set()


def fake_factory(**options):
    """A ``stream_factory`` building FakeStreams with ``options``; the last one built is ``.last``."""

    def build(**kwargs):
        build.last = FakeStream(**kwargs, **options)
        return build.last

    build.last = None
    return build


def wait_until(predicate, timeout=WAIT_S):
    """Poll ``predicate`` (the worker runs on its own thread); False when it never became true."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.0002)
    return True


def worker_caught_up(live_conv: LiveConverter) -> bool:
    """True once the worker has converted (or failed on, or skipped) every block the callback queued."""
    s = live_conv.stats()
    return s["converted"] + s["worker_errors"] + s["skipped_inputs"] == s["callbacks"] - s["dropped_inputs"]


def trace_outputs(stream: FakeStream, pitches=None):
    """Source input index of each played block: None for silence, -1 for a block matching no input."""
    expected = [expected_output(x) for x in stream.inputs]
    sources = []
    for k, out in enumerate(stream.outputs):
        assert not np.isnan(out).any(), f"callback {k} left outdata unwritten"
        assert np.all(out == out[:, :1]), f"callback {k}: output channels differ"
        mono = out[:, 0]
        if not mono.any():
            sources.append(None)
            continue
        if pitches is None:
            match = [i for i, e in enumerate(expected) if np.array_equal(mono, e)]
        else:
            match = [i for i, x in enumerate(stream.inputs)
                     if any(np.array_equal(mono, expected_output(x, p)) for p in set(pitches))]
        sources.append(match[0] if len(match) == 1 else -1)
    return sources


# ---------------------------------------------------------------------------------------- streaming
def test_every_block_plays_once_one_block_after_its_capture():
    conv = StandInConverter()
    live_conv = None

    def between(k):  # the converter keeps up: the next callback comes after it finished this block
        wait_until(lambda: worker_caught_up(live_conv))

    factory = fake_factory(n_blocks=80, between=between)
    live_conv = LiveConverter(conv, input_device=3, output_device="speakers", channels=(2, 3), stream_factory=factory)
    with live_conv:
        stream = factory.last
        assert stream.done.wait(WAIT_S)
        stats = live_conv.stats()
    assert stream.errors == []
    assert (stream.samplerate, stream.blocksize, stream.channels) == (SR, GEOMETRY.block_frame, (2, 3))
    assert stream.device == (3, "speakers")
    # the converter saw every captured block, in capture order, intact (a copy, not PortAudio's buffer)
    assert len(conv.inputs) == 80
    assert all(np.array_equal(a, b) for a, b in zip(conv.inputs, stream.inputs))
    # callback k plays the conversion of input k-1; the first callback has nothing yet (priming, not late)
    assert trace_outputs(stream) == [None] + list(range(79))
    assert stats["late_blocks"] == stats["dropped_inputs"] == stats["stale_outputs"] == stats["worker_errors"] == 0
    assert stats["callbacks"] == stats["converted"] == 80


def test_slow_block_never_blocks_the_callback_and_plays_as_counted_silence():
    slow, hold = 20, 30  # the 21st block holds the worker until 30 more callbacks have happened
    conv = StandInConverter(slow_block=slow)
    live_conv = None
    after_slow = []

    def between(k):
        if conv.slow_started.is_set() and not conv.release.is_set():
            after_slow.append(k)  # "time passes" while the worker is stuck: callbacks keep coming
            if len(after_slow) == hold:
                # keep the slow block >= 0.3 s long, so that the callback-time ratio below is
                # meaningful even when this machine preempts a callback for a few ms
                time.sleep(max(0.0, 0.3 - (time.perf_counter() - conv.slow_t0)))
                conv.release.set()
            return
        # otherwise the converter keeps up (or the slow block has just been picked up)
        wait_until(lambda: worker_caught_up(live_conv) or
                   (conv.slow_started.is_set() and not conv.release.is_set()))

    factory = fake_factory(n_blocks=90, between=between)
    live_conv = LiveConverter(conv, channels=1, stream_factory=factory, queue_blocks=4)
    live_conv.start()
    stream = factory.last
    assert stream.done.wait(WAIT_S)
    assert wait_until(lambda: worker_caught_up(live_conv))
    stats = live_conv.stats()
    live_conv.stop()
    assert stream.errors == []

    # The slow block was released by callbacks that happened while it ran: had the callback
    # waited for the converter, they could not have happened and the wait would have timed out.
    assert conv.released_in_time
    # and no callback took a noticeable part of the slow block's time
    assert max(stream.callback_s) / conv.slow_duration_s < 0.25

    sources = trace_outputs(stream)
    played = [(k, s) for k, s in enumerate(sources) if s is not None]
    assert all(s == k - 1 for k, s in played), "a played block is not the previous callback's input"
    assert len({s for _, s in played}) == len(played), "an output buffer was played twice"
    silent_after_priming = sum(s is None for s in sources[1:])
    assert stats["late_blocks"] == silent_after_priming

    # Exact accounting: the slow block s = 20 was captured at callback 20 and released after
    # callback 20 + hold.  Turns 21..20+hold had nothing to play (hold late blocks); inputs
    # 21..24 waited in the 4-block queue, 25..20+hold were dropped, so turn 21+hold (the
    # conversion of dropped input 20+hold) is late as well.  The conversion of 20 arrived after
    # its turn and was discarded; 21..24, whose turns had passed when the worker got to them,
    # were skipped rather than converted for nothing.
    queue_blocks = 4
    assert stats["late_blocks"] == hold + 1
    assert stats["dropped_inputs"] == hold - queue_blocks
    assert stats["skipped_inputs"] == queue_blocks
    assert stats["stale_outputs"] == 1
    assert stats["callbacks"] == 90 and stats["converted"] == len(conv.inputs) == 90 - hold
    # the stream is back to one-block latency after the stall
    assert sources[slow + hold + 2 :] == list(range(slow + hold + 1, 89))
    # converted outputs are either played once, discarded as stale, or still queued at the end
    assert len(played) + stats["stale_outputs"] + live_conv.delay_blocks == stats["converted"]


def test_failing_block_plays_silence_and_the_stream_goes_on():
    conv = StandInConverter(failing_block=7)
    live_conv = None
    factory = fake_factory(n_blocks=20, between=lambda k: wait_until(lambda: worker_caught_up(live_conv)))
    live_conv = LiveConverter(conv, stream_factory=factory)
    with live_conv:
        assert factory.last.done.wait(WAIT_S)
        stats = live_conv.stats()
    assert stats["worker_errors"] == 1 and isinstance(live_conv.last_error, RuntimeError)
    expected = [None] + list(range(19))
    expected[8] = None  # the conversion of input 7 failed
    assert trace_outputs(factory.last) == expected
    assert stats["late_blocks"] == 1


def test_updates_are_applied_between_blocks():
    conv = StandInConverter(work_s=0.0005)
    factory = fake_factory(n_blocks=200, period_s=0.0002)
    live_conv = LiveConverter(conv, stream_factory=factory)
    with live_conv:
        stream = factory.last
        n = 0
        while not stream.done.is_set() and n < 100:  # hammer update() while blocks are converted
            live_conv.update(pitch=float(n % 5))
            n += 1
        assert stream.done.wait(WAIT_S)
        with pytest.raises(ValueError):
            live_conv.update(formant=2)  # the converter's own validation reaches the caller
    assert n > 0 and len(conv.updates) == n
    assert conv.concurrent_updates == 0 and conv.settings_changed_mid_block == 0
    # every played block is the conversion of one input with the pitch in force for that block
    for k, src in enumerate(trace_outputs(stream, pitches=conv.pitches)):
        assert src is None or src == k - 1


def test_factory_builds_a_fresh_converter_per_start_and_keeps_settings():
    built = []

    def make():
        built.append(StandInConverter())
        return built[-1]

    factory = fake_factory(n_blocks=5)
    live_conv = LiveConverter(make, stream_factory=factory)
    assert built == []  # nothing is built before start
    live_conv.update(pitch=3)
    for _ in range(2):
        live_conv.start()
        assert factory.last.done.wait(WAIT_S)
        assert wait_until(lambda: worker_caught_up(live_conv))
        live_conv.stop()
    assert len(built) == 2 and built[0] is not built[1]
    assert [c.pitch for c in built] == [3.0, 3.0]
    assert live_conv.stats()["callbacks"] == 5  # counters restart with each session


def test_stop_closes_the_stream_and_joins_the_worker():
    conv = StandInConverter()
    factory = fake_factory(n_blocks=10_000)
    live_conv = LiveConverter(conv, stream_factory=factory)
    live_conv.start()
    worker = live_conv._worker
    assert live_conv.running and worker.is_alive()
    assert wait_until(lambda: live_conv.stats()["callbacks"] > 10)
    live_conv.stop()
    assert not worker.is_alive() and not live_conv.running
    assert factory.last.stopped and factory.last.closed
    live_conv.stop()  # a second stop is harmless
    assert live_conv.stats()["running"] is False


def test_latency_includes_the_algorithm_the_queue_and_the_devices():
    factory = fake_factory(n_blocks=1)
    live_conv = LiveConverter(StandInConverter(), stream_factory=factory, delay_blocks=2)
    with live_conv:
        lat = live_conv.stats()
    block_s = GEOMETRY.block_frame / SR
    assert lat["algorithmic_latency_s"] == pytest.approx(GEOMETRY.algorithmic_latency_s)
    assert lat["queue_latency_s"] == pytest.approx(2 * block_s)
    assert (lat["device_input_latency_s"], lat["device_output_latency_s"]) == (0.012, 0.034)
    assert lat["total_latency_s"] == pytest.approx(GEOMETRY.algorithmic_latency_s + 2 * block_s + 0.046)


def test_stream_that_fails_to_open_raises_a_clear_error_and_leaves_no_worker():
    def broken(**kwargs):
        raise RuntimeError("Error opening Stream: Invalid device")

    live_conv = LiveConverter(StandInConverter(), input_device=99, stream_factory=broken)
    with pytest.raises(LiveAudioError, match="could not open the audio stream.*99.*Invalid device"):
        live_conv.start()
    assert not live_conv.running


# ---------------------------------------------------------------------------------------- missing deps
class _PortAudioMissing(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``import sounddevice`` fail as it does when libportaudio2 is not installed."""

    def find_spec(self, name, path=None, target=None):
        return importlib.machinery.ModuleSpec(name, self) if name == "sounddevice" else None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise OSError("PortAudio library not found")


def test_missing_portaudio_names_the_fix(monkeypatch):
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_PortAudioMissing(), *sys.meta_path])
    with pytest.raises(LiveAudioError, match="libportaudio2") as info:
        LiveConverter(StandInConverter())
    assert "PortAudio library not found" in str(info.value)


def test_missing_sounddevice_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # makes `import sounddevice` raise ImportError
    with pytest.raises(LiveAudioError, match=r"pip install 'rvc_lab\[live\]'"):
        LiveConverter(StandInConverter())
    with pytest.raises(LiveAudioError, match="sounddevice"):
        live.list_devices()


def test_real_sounddevice_import_works_or_explains_itself():
    """This environment's own sounddevice: either importable, or an error saying what to install."""
    try:
        sd = live.load_sounddevice()
    except LiveAudioError as exc:
        assert "libportaudio2" in str(exc) or "pip install" in str(exc)
    else:
        assert callable(sd.Stream)
