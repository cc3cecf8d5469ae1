"""Shared pytest fixtures. Everything stays on loopback and on private JACK servers."""

from __future__ import annotations

import faulthandler
import json
import os
import time
from collections.abc import Iterator

import pytest

from ai_band.testing.jackserver import JackServer

# ---------------------------------------------------------------------------
# devtools fixtures: a private JACK server (dummy driver) per test module.
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jack_server() -> Iterator[JackServer]:
    """A fresh ``jackd`` with a unique name, with ``JACK_DEFAULT_SERVER`` set for the module.

    python-rtmidi has no server-name parameter, so the environment variable is
    what points its JACK ports at this server. Subprocesses get ``jack_server.env()``.
    Raises (fails the test) with an install hint if ``jackd`` is missing.
    """
    with JackServer() as server, pytest.MonkeyPatch.context() as patch:
        patch.setenv("JACK_DEFAULT_SERVER", server.name)
        yield server


# ---------------------------------------------------------------------------
# A test stuck in C code (a JACK or PortAudio call that never returns) never
# runs pytest-timeout's SIGALRM handler: the whole run would hang until CI's
# own limit, with no hint. faulthandler's watchdog thread needs no Python: past
# the timeout plus a minute it writes every thread's stack to stderr and exits.
# ---------------------------------------------------------------------------

#: Seconds past pytest-timeout's per-test timeout before the run is ended.
HARD_TIMEOUT_GRACE_S = 60


_STDERR_FD = pytest.StashKey[int]()


def pytest_configure(config: pytest.Config) -> None:
    """Keep a copy of the real stderr: during a test fd 2 is pytest's capture file, lost at exit."""
    config.stash[_STDERR_FD] = os.dup(2)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """Arm the hard watchdog for one test (setup, call and teardown)."""
    timeout_s = float(item.config.getoption("timeout", None) or item.config.getini("timeout") or 0)
    if timeout_s > 0:
        faulthandler.dump_traceback_later(timeout_s + HARD_TIMEOUT_GRACE_S, exit=True,
                                          file=item.config.stash[_STDERR_FD])
    try:
        yield
    finally:
        if timeout_s > 0:
            faulthandler.cancel_dump_traceback_later()


# ---------------------------------------------------------------------------
# daemon fixtures (lead): add below.
# ---------------------------------------------------------------------------

from pathlib import Path  # noqa: E402

from ai_band.testing.daemonproc import DaemonProcess  # noqa: E402
from ai_band.host import OscClient  # noqa: E402


@pytest.fixture(scope="module")
def band(jack_server: JackServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """The real daemon (``python -m ai_band run``) on the module's JACK server, OSC on 127.0.0.1.

    On teardown it is stopped with SIGTERM and must exit 0.
    """
    out = tmp_path_factory.mktemp("band-output")
    daemon = DaemonProcess(out, env=jack_server.env()).start()
    try:
        yield daemon
    finally:
        daemon.terminate_cleanly()


@pytest.fixture
def osc(band: DaemonProcess) -> Iterator[OscClient]:
    """An OSC client on 127.0.0.1 talking to the module's daemon."""
    with OscClient(("127.0.0.1", band.port)) as client:
        yield client


def wait_job(client: OscClient, request_id: str, timeout_s: float = 20.0) -> tuple[str, dict[str, str]]:
    """Wait for the final ``/band/job`` of ``request_id``; return (job id, {part: path})."""
    return client.wait_job(request_id, timeout_s)


def osc_status(client: OscClient) -> dict:
    """The daemon's ``/band/status`` JSON (what was buffered before is dropped)."""
    client.drain()
    return json.loads(client.request("/band/status", reply_address="/band/status", timeout=3)[0])


def osc_ack(client: OscClient, address: str, *args: object) -> list:
    """Send ``address`` and return the arguments of its ``/band/ack`` after the address (fails on ``/band/error``)."""
    client.drain()
    client.send(address, *args)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        addr, reply = client.receive(timeout=3)
        if addr == "/band/ack" and reply[0] == address:
            return reply[1:]
        if addr == "/band/error":
            pytest.fail(f"{address}: {reply}")
    pytest.fail(f"no ack for {address}")


def generate_args(**fields: object) -> list[object]:
    """Flatten request fields into /band/generate key/value arguments."""
    return [x for kv in fields.items() for x in kv]


__all__ = ["wait_job", "osc_status", "osc_ack", "generate_args", "Path", "DropoutGuard", "guard_dropouts", "recorder_on"]


class DropoutGuard:
    """Mark a failed assertion as a JACK dropout when the recorder lost periods meanwhile.

    jackd runs ``--no-realtime`` on a shared machine: now and then its dummy
    driver or a client misses a period and the MIDI of that period never
    reaches the recorder.  The recorder detects this (``missed_periods``,
    ``xruns``).  An assertion that fails while that happened is re-raised as
    ``JACK dropout: ...`` and pytest-rerunfailures reruns only those (see
    ``--only-rerun`` in pyproject.toml); any other failure fails at once.
    """

    def __init__(self, recorder, count_xruns: bool = False) -> None:
        self.recorder = recorder
        self.count_xruns = count_xruns

    def _lost(self) -> int:
        return self.recorder.missed_periods + (self.recorder.xruns if self.count_xruns else 0)

    def __enter__(self) -> "DropoutGuard":
        self.start = self._lost()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is AssertionError and self._lost() > self.start:
            raise AssertionError(
                f"JACK dropout: the recorder lost {self._lost() - self.start} period(s) during the test "
                f"(missed periods {self.recorder.missed_periods}, xruns {self.recorder.xruns}); {exc}"
            ) from exc
        return False


def guard_dropouts(test):
    """Decorator: run a test that takes a ``recorder`` fixture inside a :class:`DropoutGuard`."""
    import functools

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        with DropoutGuard(kwargs["recorder"]):
            return test(*args, **kwargs)

    return wrapper


def recorder_on(jack_server: JackServer, client_name: str, count: int = 1):
    """Context manager: a MidiRecorder on ``jack_server``, connected to ``count`` ports matching ``client_name``."""
    import contextlib

    from ai_band.testing.recorder import MidiRecorder

    @contextlib.contextmanager
    def recording():
        with MidiRecorder(servername=jack_server.name) as recorder:
            recorder.wait_for_ports(client_name, count=count, timeout_s=10)  # and connects them
            time.sleep(0.1)  # JACK applies new connections at a later cycle
            yield recorder

    return recording()


class ClientFrameTimeReadLate:
    """A ``jack.Client`` whose next ``last_frame_time`` read is descheduled for ``delay_s`` first."""

    def __init__(self, client, delay_s: float) -> None:
        self._client = client
        self.delay_s = delay_s
        self.read_at_s: float | None = None

    @property
    def last_frame_time(self) -> int:
        if self.delay_s:
            time.sleep(self.delay_s)
            self.delay_s = 0.0
            self.read_at_s = time.monotonic()
        return self._client.last_frame_time

    def __getattr__(self, name: str):
        return getattr(self._client, name)


def kick_per_beat_job(job_id: str):
    """A one-bar scheduler job: a kick on every beat (pitches 36..39 on channel 10), each a 16th long."""
    from ai_band.playback.output import NOTE_OFF, NOTE_ON
    from ai_band.playback.scheduler import PlayableJob

    offsets, groups = [], []
    for beat in range(4):
        offsets += [float(beat), beat + 0.25]
        groups += [(("drums", (NOTE_ON | 9, 36 + beat, 100)),), (("drums", (NOTE_OFF | 9, 36 + beat, 0)),)]
    return PlayableJob(job_id, 4.0, tuple(offsets), tuple(groups), {"drums": (9, 0)})
