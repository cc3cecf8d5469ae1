"""The lifecycle of one JACK client (JACK-Client's ``jack.Client``), shared by its owners.

The daemon's MIDI output (:mod:`ai_band.playback.outputs.jack`) and the test and
benchmark recorders (:mod:`ai_band.testing.recorder`,
:mod:`ai_band.testing.audio_recorder`) each own one client. They share how
it is activated, how xruns and a server shutdown are noted, and how it is
closed exactly once (JACK API: ``jack_deactivate`` then ``jack_client_close``;
neither may be called once the server has shut the client down).

JACK2 (1.9.21) ends a client's process thread in ``jack_deactivate`` with
``pthread_cancel``, and that thread is cancellable anywhere
(``PTHREAD_CANCEL_ASYNCHRONOUS``). Cancelled while it runs the Python
callback, it dies holding the GIL and the whole process hangs (seen in CI: a
recorder's close, its thread "active+gil" and gone). So the callback is gated:
:meth:`JackClientOwner.close` closes the gate, waits for a callback under way
to return, and only then deactivates; the thread then spends the cycles left
in JACK's own code.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

import jack

__all__ = ["JackClientOwner"]

logger = logging.getLogger(__name__)

#: Seconds :meth:`JackClientOwner.close` waits for a process callback under way to return.
CALLBACK_WAIT_S = 0.5


class JackClientOwner:
    """Base of a class that owns one ``jack.Client``.

    A subclass opens its client with :meth:`_open`, sets up its ports
    and state, then calls :meth:`_activate` with its process callback.  It may
    extend :meth:`_on_shutdown` (calling ``super()``); the callback runs in
    JACK's notification thread.
    """

    _client: jack.Client
    _closed: bool
    _shutdown_reason: str | None
    _xruns: int

    def _open(self, client_name: str, servername: str | None, error: type[Exception]) -> None:
        """Open a client (never starting a server) and take it over: not closed, no xruns, no shutdown yet.

        Args:
            client_name: JACK client name; JACK appends ``-01`` etc. if it is taken.
            servername: the server; ``None`` uses ``$JACK_DEFAULT_SERVER`` or the default.
            error: the owner's subsystem error, raised with the reason.

        Raises:
            error: no JACK server is reachable.
        """
        try:
            client = jack.Client(client_name, no_start_server=True, servername=servername)
        except jack.JackError as exc:
            server = servername or os.environ.get("JACK_DEFAULT_SERVER") or "default"
            raise error(f"cannot open JACK client {client_name!r} on server {server!r}: "
                        f"{exc} (is a JACK server running?)") from exc
        self._client = client
        self._closed = False
        self._shutdown_reason = None
        self._xruns = 0
        self._gate_open = True  # the process callback may run (closed by close())
        self._in_process = False  # the process callback is running

    def _activate(self, process: Callable[[int], None]) -> None:
        """Set the process, xrun and shutdown callbacks and activate the client.

        Args:
            process: called by JACK's process thread with the period's frame count.
        """
        def gated(frames: int) -> None:
            if not self._gate_open:
                return
            self._in_process = True
            try:
                process(frames)
            finally:
                self._in_process = False

        self._client.set_process_callback(gated)
        self._client.set_xrun_callback(self._on_xrun)
        self._client.set_shutdown_callback(self._on_shutdown)
        self._client.activate()

    def _on_xrun(self, delayed_usecs: float) -> None:
        self._xruns += 1

    def _on_shutdown(self, status: jack.Status, reason: str) -> None:
        self._shutdown_reason = reason or "JACK server shut down"

    @property
    def name(self) -> str:
        """The actual JACK client name (JACK appends ``-01`` etc. to a taken name)."""
        return self._client.name

    @property
    def xruns(self) -> int:
        """Number of xruns the JACK server reported since the client opened."""
        return self._xruns

    @property
    def shutdown_reason(self) -> str | None:
        """Why the JACK server dropped this client, or ``None`` while it is fine."""
        return self._shutdown_reason

    @property
    def closed(self) -> bool:
        """:meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Stop the process callback (waiting for one under way), deactivate and close the client. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._gate_open = False  # out of Python before jack_deactivate cancels the thread (module docstring)
        deadline = time.monotonic() + CALLBACK_WAIT_S
        while self._in_process and time.monotonic() < deadline:
            time.sleep(0.0005)
        try:
            if self._shutdown_reason is None:
                self._client.deactivate()
            self._client.close()
        except jack.JackError as exc:
            logger.debug("Closing JACK client %s: %s", self._client.name, exc)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
