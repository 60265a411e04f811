"""The JACK audio server from outside: start a dummy-driver server, find and connect ports.

A JACK server with the ``dummy`` driver is a real audio server that needs no sound card:
``jackd --no-realtime -d dummy -r 48000 -p 480`` runs its clock from a timer, and PortAudio's
JACK host API (``libportaudio2``) opens streams on it like on any other server.  Tests, the
latency notebook panel and ``bench/live_soak.py`` start a private one (own server name, so
several can run on one machine), and ``rvc-lab live --jack-loopback`` connects a stream's own
output ports to its input ports to measure the round trip.

Everything here drives the command-line tools of Debian's ``jackd2`` package (``jackd``,
``jack_lsp``, ``jack_connect``, ``jack_disconnect``, ``jack_bufsize``); every call takes the
server name, passed to the tools as ``JACK_DEFAULT_SERVER`` (PortAudio reads the same variable
when it initialises, see :func:`rvc_lab.live.rescan_devices`).
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from rvc_lab.errors import RVCLabError

log = logging.getLogger(__name__)

#: How to get the JACK tools, for error messages.
JACK_FIX = ("install JACK: `sudo apt-get install jackd2` (Debian/Ubuntu; answer 'no' to realtime "
            "priority if asked), `sudo dnf install jack-audio-connection-kit` (Fedora), `brew install jack` (macOS)")
#: How to start a server without a sound card, for error messages.
JACK_START_HINT = "jackd --no-realtime -d dummy -r 48000 -p 480 &"

_TOOL_TIMEOUT_S = 10.0


class JackError(RVCLabError, RuntimeError):
    """The JACK tools are missing, the server does not start or answer, a port cannot be connected."""


def tool(name: str) -> str:
    """Path of a JACK command-line tool (``jackd``, ``jack_lsp``...).

    Raises
    ------
    JackError
        The tool is not installed (with :data:`JACK_FIX`).
    """
    path = shutil.which(name)
    if path is None:
        raise JackError(f"`{name}` not found: {JACK_FIX}")
    return path


def _env(server: str | None) -> dict:
    env = dict(os.environ)
    if server:
        env["JACK_DEFAULT_SERVER"] = server
    # never let a tool start a server of its own when none is running
    env["JACK_NO_START_SERVER"] = "1"
    return env


def _run(args: list[str], server: str | None, check: bool = True) -> subprocess.CompletedProcess:
    try:
        res = subprocess.run([tool(args[0]), *args[1:]], env=_env(server), capture_output=True, text=True,
                             timeout=_TOOL_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise JackError(f"`{' '.join(args)}` did not answer within {_TOOL_TIMEOUT_S:.0f} s") from exc
    if check and res.returncode != 0:
        detail = (res.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise JackError(f"`{' '.join(args)}` failed (exit {res.returncode}): {detail}")
    return res


def server_running(server: str | None = None) -> bool:
    """True when a JACK server of that name (default: ``$JACK_DEFAULT_SERVER`` or "default") answers."""
    if shutil.which("jack_lsp") is None:
        return False
    try:
        return _run(["jack_lsp"], server, check=False).returncode == 0
    except JackError:
        return False


def ports(server: str | None = None) -> list[str]:
    """Every port name of the server (``client:port``), in the server's order."""
    return [p for p in _run(["jack_lsp"], server).stdout.splitlines() if p.strip()]


def connections(server: str | None = None) -> dict[str, list[str]]:
    """Port name -> the ports it is connected to."""
    out: dict[str, list[str]] = {}
    current = None
    for line in _run(["jack_lsp", "-c"], server).stdout.splitlines():
        if not line.strip():
            continue
        if line.startswith((" ", "\t")):
            if current is not None:
                out[current].append(line.strip())
        else:
            current = line.strip()
            out[current] = []
    return out


def connect(source: str, destination: str, server: str | None = None) -> None:
    """Connect an output port to an input port."""
    _run(["jack_connect", source, destination], server)


def disconnect(source: str, destination: str, server: str | None = None, missing_ok: bool = True) -> None:
    """Remove one connection; one that is already gone is fine unless ``missing_ok`` is False."""
    res = _run(["jack_disconnect", source, destination], server, check=not missing_ok)
    if res.returncode != 0 and missing_ok:
        log.debug("jack_disconnect %s %s: %s", source, destination, res.stderr.strip())


def buffer_size(server: str | None = None) -> int:
    """The server's period in frames (``jack_bufsize`` prints ``buffer size = 480``)."""
    text = _run(["jack_bufsize"], server).stdout
    for token in text.replace("=", " ").split():
        if token.isdigit():
            return int(token)
    raise JackError(f"cannot read the buffer size from jack_bufsize: {text.strip()!r}")


def loopback(stream_ports: list[str], server: str | None = None) -> list[tuple[str, str]]:
    """Connect a client's output port ``out_k`` to its input port ``in_k`` and nothing else.

    Parameters
    ----------
    stream_ports : list of str
        The ports of one stream, e.g. ``["PortAudio:in_0", "PortAudio:out_0"]`` (see
        :func:`new_ports`); ports are paired by the number after ``in_`` / ``out_`` in order.

    Returns
    -------
    list of (str, str)
        The (output, input) pairs now connected.  Every other connection of those ports (PortAudio
        connects a stream to the ``system`` ports when it starts) is removed first, so the input
        hears only the loop.
    """
    ins = sorted((p for p in stream_ports if ":in_" in p), key=_port_number)
    outs = sorted((p for p in stream_ports if ":out_" in p), key=_port_number)
    if not ins or not outs:
        raise JackError(f"need input and output ports to loop, got {stream_ports}")
    existing = connections(server)
    for p in ins + outs:
        for other in existing.get(p, []):
            src, dst = (p, other) if p in outs else (other, p)
            disconnect(src, dst, server)
    pairs = list(zip(outs, ins))
    for src, dst in pairs:
        connect(src, dst, server)
    return pairs


def _port_number(port: str) -> int:
    tail = port.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def new_ports(before: list[str], server: str | None = None, timeout_s: float = 5.0) -> list[str]:
    """Ports that appeared since ``before`` (the ports of a stream just started); waits for them."""
    end = time.monotonic() + timeout_s
    seen = set(before)
    while True:
        fresh = [p for p in ports(server) if p not in seen]
        if fresh or time.monotonic() > end:
            return fresh
        time.sleep(0.05)


@dataclass
class JackServer:
    """A private ``jackd`` with the dummy driver (see :func:`start_dummy_server`).

    Attributes
    ----------
    name : str
        Server name (``jackd -n``); tools and PortAudio find it through ``JACK_DEFAULT_SERVER``.
    rate, period : int
        Sample rate (Hz) and period (frames).
    process : subprocess.Popen
    log_path : Path
        jackd's stdout and stderr.
    """

    name: str
    rate: int
    period: int
    process: subprocess.Popen
    log_path: Path
    _previous_env: str | None = field(default=None, repr=False)

    @property
    def period_s(self) -> float:
        return self.period / self.rate

    def running(self) -> bool:
        return self.process.poll() is None and server_running(self.name)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate jackd (SIGTERM, then SIGKILL) and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)

    def __enter__(self) -> "JackServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the starting thread's process goes (Linux), so a
    killed notebook kernel or test run leaves no server behind."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except Exception:
        pass


def start_dummy_server(name: str | None = None, rate: int = 48000, period: int = 480,
                       timeout_s: float = 15.0, log_dir: str | os.PathLike | None = None) -> JackServer:
    """Start ``jackd -n NAME --no-realtime -d dummy -r RATE -p PERIOD`` and wait until it answers.

    Parameters
    ----------
    name : str, optional
        Server name; default a fresh ``rvc-lab-<random>`` (never the user's "default" server).
    rate, period : int
        Sample rate (Hz) and period (frames): 48000 and 480 are 10 ms periods.
    timeout_s : float
        How long to wait for the server to answer ``jack_lsp``.

    The server is stopped with :meth:`JackServer.stop`; on Linux it also gets SIGTERM when the
    thread that started it ends (start it from a long-lived thread, e.g. the main one).

    Raises
    ------
    JackError
        jackd is not installed, exits, or does not answer in time (the message holds its log).
    """
    name = name or f"rvc-lab-{uuid.uuid4().hex[:8]}"
    jackd = tool("jackd")
    tool("jack_lsp")
    log_path = Path(log_dir or tempfile.gettempdir()) / f"jackd-{name}.log"
    with open(log_path, "w") as fh:
        proc = subprocess.Popen([jackd, "-n", name, "--no-realtime", "-d", "dummy", "-r", str(rate), "-p", str(period)],
                                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=_env(None),
                                preexec_fn=_die_with_parent)
    server = JackServer(name=name, rate=rate, period=period, process=proc, log_path=log_path)
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            break
        if server_running(name):
            log.info("started JACK server %r (dummy driver, %d Hz, period %d)", name, rate, period)
            return server
        time.sleep(0.1)
    server.stop()
    text = log_path.read_text(errors="replace").strip()[-600:]
    raise JackError(f"jackd did not start (exit {proc.returncode}); its log {log_path}:\n{text}")
