"""ai_band.system.jackclient.JackClientOwner on a real JACK server: close waits for a callback under way."""

from __future__ import annotations

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
