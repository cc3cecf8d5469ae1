"""ai_band.system.jackclient.JackClientOwner on a real JACK server: close waits for a callback under way."""

from __future__ import annotations

import os
import threading
import time

import pytest

from ai_band.errors import MidiPortError
from ai_band.system.jackclient import JackClientOwner
from ai_band.testing.jackserver import JackServer

pytestmark = pytest.mark.jack


class _SlowOwner(JackClientOwner):
    """A client whose process callback, once asked, takes 50 ms (a thread descheduled mid-callback)."""

    def __init__(self, servername: str) -> None:
        self._open("aiband-owner-test", servername, MidiPortError)
        self.slow = threading.Event()
        self.entered = threading.Event()
        self.finished = 0
        self.calls_after_close = 0
        self._activate(self._process)

    def _process(self, frames: int) -> None:
        if self._closed:
            self.calls_after_close += 1
        if self.slow.is_set():
            self.slow.clear()
            self.entered.set()
            time.sleep(0.05)
            self.finished += 1


def test_close_waits_for_the_callback_under_way_and_runs_none_after(jack_server: JackServer) -> None:
    owner = _SlowOwner(jack_server.name)
    owner.slow.set()
    assert owner.entered.wait(5.0)
    owner.close()  # JACK2 cancels the process thread in jack_deactivate: not while it is in Python
    assert owner.finished == 1
    assert owner.calls_after_close == 0
    assert owner.closed
    owner.close()  # idempotent


class _Owner(JackClientOwner):
    def __init__(self, servername: str) -> None:
        self._open("aiband-owner-end", servername, MidiPortError)
        self.calls = 0
        self._activate(self._process)

    def _process(self, frames: int) -> None:
        self.calls += 1


def test_close_lets_the_process_thread_end_itself_while_another_thread_holds_the_gil(jack_server: JackServer) -> None:
    # jack_deactivate must not cancel the process thread: cancelled while it waits for the GIL
    # (held here by compile(), one long C call), it would take the GIL's mutex with it.
    source = "x = [" + ",".join(str(i) for i in range(20_000)) + "]\n"  # ~20-40 ms a compile
    stop = threading.Event()

    def hog() -> None:
        while not stop.is_set():
            compile(source, "<hog>", "exec")

    owners = []
    hogger = threading.Thread(target=hog, daemon=True)
    hogger.start()
    try:
        for _ in range(5):
            owner = _Owner(jack_server.name)
            deadline = time.monotonic() + 5.0
            while owner.calls < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert owner.calls >= 3
            t0 = time.monotonic()
            owner.close()
            owners.append((owner, time.monotonic() - t0))
    finally:
        stop.set()
        hogger.join()
    for owner, took_s in owners:
        tid = owner._process_ended
        assert tid is not None  # its last callback raised CallbackExit: JACK's End(), not a cancel
        assert not os.path.exists(f"/proc/self/task/{tid}")  # and the thread is gone
        assert took_s < 2.0, owners


class _XrunOwner(JackClientOwner):
    """A client whose xrun callback takes 200 ms (a notification under way at close)."""

    def __init__(self, servername: str) -> None:
        self._open("aiband-owner-xrun", servername, MidiPortError)
        self.entered = threading.Event()
        self.finished = 0
        self._activate(lambda frames: None)

    def _on_xrun(self, delayed_usecs: float) -> None:
        super()._on_xrun(delayed_usecs)
        self.entered.set()
        time.sleep(0.2)
        self.finished += 1


def test_close_waits_for_an_xrun_notification_under_way(jack_server: JackServer) -> None:
    # JACK2 sends xruns without waiting for the clients' replies, and jack_client_close
    # cancels the notification thread: not while it is in (or waits to enter) a Python callback.
    import jack

    owner = _XrunOwner(jack_server.name)
    assert owner._idle_syscalls  # libjack's threads were found and sampled idle (Linux)
    late = threading.Event()
    other = jack.Client("aiband-xrun-maker", no_start_server=True, servername=jack_server.name)

    @other.set_process_callback
    def process(frames: int) -> None:
        if late.is_set():
            time.sleep(0.01)  # ~7 periods late: the server reports an xrun to every client

    other.activate()
    try:
        late.set()
        assert owner.entered.wait(5.0)
        late.clear()
        t0 = time.monotonic()
        owner.close()
        took_s = time.monotonic() - t0
    finally:
        other.deactivate()
        other.close()
    assert owner.finished >= 1  # the callback ran to its end: its thread was not cancelled inside it
    assert took_s < 2.0
