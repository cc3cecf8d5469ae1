"""A private JACK server (``jackd`` with the dummy driver) for tests, demo and bench.

The server runs without realtime scheduling and without audio hardware::

    jackd --no-realtime -n NAME -d dummy -r RATE -p PERIOD

:meth:`JackServer.kill` ends it as a crash would; :meth:`JackServer.start`
then starts it again under the same name (tests of a server that comes and goes).

Clients find it by name: JACK-Client through ``jack.Client(..., servername=NAME)``,
anything else (python-rtmidi, subprocesses) through the environment variable
``JACK_DEFAULT_SERVER=NAME`` that libjack reads when a client opens.

Limitation of JACK2's libjack (checked with 1.9.21): one process talks to one
server at a time. While any JACK client of this process is open, a new client
joins *that* server whatever its ``servername``. Several servers can run at
once, but each process (test, daemon, recorder) must close its clients on one
before opening clients on another; use subprocesses to reach two at once.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from types import TracebackType
from typing import IO

import jack

logger = logging.getLogger(__name__)

_INSTALL_HINT = "install JACK2 with `apt-get install jackd2` (Debian/Ubuntu)"


class JackServerError(RuntimeError):
    """The JACK server could not be found, started or reached."""


def jackd_path() -> str:
    """Return the absolute path of the ``jackd`` binary.

    Raises:
        JackServerError: ``jackd`` is not on ``PATH``; the message says how to install it.
    """
    path = shutil.which("jackd")
    if path is None:
        raise JackServerError(f"jackd not found on PATH; {_INSTALL_HINT}")
    return path


class JackServer:
    """A ``jackd`` process with the dummy driver, started on entry and stopped on exit.

    Args:
        name: JACK server name (``-n``). ``None`` picks a unique one,
            ``aiband-<pid>-<6 random hex digits>``, so parallel test runs never
            share a server.
        rate: Sample rate in Hz (``-r``).
        period: Frames per period (``-p``); 64 frames at 48 kHz is 1.33 ms.
        start_timeout_s: How long :meth:`start` waits for the server to accept clients.
        realtime: run ``jackd --realtime`` (SCHED_FIFO, priority 70, for the
            server and its clients' process threads; needs root or an rtprio
            limit) instead of ``--no-realtime``. Tests use the default; the
            benchmark offers it as a comparison.

    Use as a context manager, or call :meth:`start` and :meth:`stop` yourself.
    """

    def __init__(
        self,
        name: str | None = None,
        rate: int = 48000,
        period: int = 64,
        start_timeout_s: float = 10.0,
        realtime: bool = False,
    ) -> None:
        if name is None:
            name = f"aiband-{os.getpid()}-{secrets.token_hex(3)}"
        if not name or "/" in name:
            raise ValueError(f"name must be a non-empty string without '/', got {name!r}")
        if rate <= 0:
            raise ValueError(f"rate must be > 0 Hz, got {rate}")
        if period <= 0:
            raise ValueError(f"period must be > 0 frames, got {period}")
        self.name: str = name
        self.rate: int = rate
        self.period: int = period
        self.start_timeout_s: float = start_timeout_s
        self.realtime: bool = realtime
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """Process id of ``jackd``, or ``None`` before :meth:`start`."""
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        """True while the ``jackd`` process started by :meth:`start` is alive."""
        return self._proc is not None and self._proc.poll() is None

    def env(self) -> dict[str, str]:
        """Return a copy of ``os.environ`` with ``JACK_DEFAULT_SERVER`` set to this server.

        Pass it to subprocesses (``subprocess.Popen(..., env=server.env())``), or
        apply it to this process (e.g. with pytest's ``monkeypatch.setenv``) before
        opening python-rtmidi JACK ports, which have no server-name parameter.
        """
        env = dict(os.environ)
        env["JACK_DEFAULT_SERVER"] = self.name
        return env

    def command(self) -> list[str]:
        """Return the ``jackd`` command line used by :meth:`start`.

        Raises:
            JackServerError: ``jackd`` is not installed.
        """
        scheduling = ["--realtime", "-P", "70"] if self.realtime else ["--no-realtime"]
        return [
            jackd_path(), *scheduling, "-n", self.name,
            "-d", "dummy", "-r", str(self.rate), "-p", str(self.period),
        ]

    def start(self) -> JackServer:
        """Start ``jackd`` and wait until a client can connect to it.

        Polls with ``jack.Client(..., no_start_server=True, servername=name)`` for up
        to ``start_timeout_s`` seconds.

        Returns:
            self, for chaining.

        Raises:
            JackServerError: ``jackd`` is missing, already started by this object,
                a server of that name already runs, jackd exited early or did not
                accept a client within ``start_timeout_s``; the message
                includes jackd's output. The process is stopped before raising.
        """
        if self._proc is not None:
            raise JackServerError(f"JACK server {self.name!r} was already started")
        cmd = self.command()
        if os.path.exists(self._socket_hint()) and self._probe():
            # Our readiness probe would connect to that server instead of ours.
            raise JackServerError(f"a JACK server named {self.name!r} is already running")
        # O_APPEND: jackd shares the file offset, and output() seeks to read.
        self._log = tempfile.TemporaryFile(mode="a+b", prefix=f"jackd-{self.name}-")
        env = self.env()
        env.pop("JACK_NO_START_SERVER", None)
        logger.debug("Starting %s", " ".join(cmd))
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env,
        )
        self._raise_priority()
        try:
            self._wait_ready()
        except BaseException as exc:
            output = self.output()
            self.stop()
            if not isinstance(exc, Exception):
                raise
            raise JackServerError(
                f"JACK server {self.name!r} failed to start ({exc}); jackd said:\n{output}"
            ) from None
        logger.info("JACK server %r running (pid %d, %d Hz, %d frames)",
                    self.name, self.pid, self.rate, self.period)
        return self

    def _raise_priority(self) -> None:
        """Give jackd more CPU share (nice -10) where allowed; best effort.

        The server stays ``--no-realtime``; on a shared 2-core machine a higher
        nice priority roughly halves the periods its dummy driver loses to
        other processes (measured: 77 -> 49 xruns in 10 s with both cores busy).
        """
        assert self._proc is not None
        try:
            os.setpriority(os.PRIO_PROCESS, self._proc.pid, -10)
        except OSError as exc:  # not root: keep the default priority
            logger.debug("could not raise jackd's priority: %s", exc)

    def _wait_ready(self) -> None:
        assert self._proc is not None
        start = time.monotonic()
        deadline = start + self.start_timeout_s
        # Waiting for the socket file first spares stderr libjack's messages about
        # failed connections; after 1 s (another layout or build) we probe regardless.
        socket_hint = self._socket_hint()
        delay_s = 0.005
        while True:
            if self._proc.poll() is not None:
                raise JackServerError(f"jackd exited with status {self._proc.returncode}")
            # The socket file also guards the probe below: while this process has
            # a client on another server, libjack would connect the probe there.
            if not os.path.exists(socket_hint) and time.monotonic() - start < 1.0:
                time.sleep(delay_s)
                continue
            if self._probe():
                return
            if time.monotonic() >= deadline:
                raise JackServerError(f"no client could connect in {self.start_timeout_s:g} s")
            # Back off: each failed attempt makes libjack print to stderr.
            delay_s = min(delay_s * 2, 0.2)
            time.sleep(delay_s)

    def _socket_hint(self) -> str:
        """Where JACK2 on Linux puts the server's socket (a hint, not relied upon)."""
        return f"/dev/shm/jack_{self.name}_{os.getuid()}_0"

    def _probe(self) -> bool:
        """True if a client can connect to a server of this name now."""
        try:
            probe = jack.Client("aiband-probe", no_start_server=True, servername=self.name)
        except jack.JackError:
            return False
        probe.close()
        return True

    def output(self) -> str:
        """Return what ``jackd`` has printed so far (stdout and stderr), or ``""``."""
        if self._log is None or self._log.closed:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop ``jackd``: SIGTERM to its pid, wait, then SIGKILL after ``timeout_s`` seconds.

        Idempotent: does nothing if never started or already stopped.
        """
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            logger.debug("Stopping JACK server %r (pid %d)", self.name, proc.pid)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning("JACK server %r (pid %d) ignored SIGTERM; killing it",
                               self.name, proc.pid)
                proc.kill()
                proc.wait()
        elif proc is not None:
            proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if proc is not None and self._registered():
            self._reclaim()

    #: JACK2's server registry in shared memory: 8 slots per machine (``MAX_SERVERS``, shm.c).
    REGISTRY = "/dev/shm/jack-shm-registry"

    def _registered(self) -> bool:
        """Whether JACK's server registry still lists this server's name (a hint: JACK2 1.9.21's layout).

        jackd leaves its slot behind when it is killed, and also (seen with
        1.9.21) when it is stopped while a client is still connected.  A
        server only reclaims a dead server's slot of its own name
        (``jack_register_server``), so every leaked slot is one server fewer
        for every test run on the machine ("Too many servers already active").
        """
        try:
            with open(self.REGISTRY, "rb") as registry:
                return f"jack-{os.getuid()}:{self.name}:".encode() in registry.read()
        except OSError:
            return False

    def _reclaim(self) -> None:
        """Start and stop a server of this name with no client: it takes over the dead slot and frees it on exit."""
        old_socket = self._socket_inode()
        try:
            proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, env=self.env())
        except (OSError, JackServerError) as exc:
            logger.debug("cannot reclaim the registry slot of %r: %s", self.name, exc)
            return
        # Registered once it has made its socket anew (it registers first).
        deadline = time.monotonic() + 2.0
        while self._socket_inode() in (None, old_socket) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        logger.debug("reclaimed the JACK registry slot of %r: %s", self.name,
                     "freed" if not self._registered() else "still listed")

    def _socket_inode(self) -> int | None:
        try:
            return os.stat(self._socket_hint()).st_ino
        except OSError:
            return None

    def kill(self) -> None:
        """Kill ``jackd`` at once (SIGKILL), as a crash would, and reap it; :meth:`start` may start it again.

        Its clients get their shutdown callbacks when their connections to
        it break.  Idempotent, like :meth:`stop`.
        """
        proc = self._proc
        if proc is not None and proc.poll() is None:
            logger.debug("Killing JACK server %r (pid %d)", self.name, proc.pid)
            proc.kill()
        self.stop()

    def __enter__(self) -> JackServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (f"JackServer(name={self.name!r}, rate={self.rate}, period={self.period}, "
                f"pid={self.pid})")
