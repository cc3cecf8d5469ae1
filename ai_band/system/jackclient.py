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
recorder's close, its thread "active+gil" and gone); cancelled while it waits
for the GIL to enter the callback (another thread compiling a module holds it
for tens of milliseconds), it dies holding the GIL's mutex, with the same end
(seen in CI: the daemon's stop, its main thread in ``deactivate`` for good).
So the thread is never cancelled: :meth:`JackClientOwner.close` closes a gate,
the next callback raises ``jack.CallbackExit`` (the C callback returns
non-zero), and JACK2's process thread then deactivates the client itself and
exits (``JackClient::End``: ``fActive = false``, ``ClientDeactivate``,
``pthread_exit``). Once that thread is gone, ``jack_deactivate`` finds the
client inactive and cancels nothing.

``jack_client_close`` then cancels the client's notification thread the same
way, and that thread runs the Python xrun, shutdown and port callbacks (xruns
come often while the GIL is held long). So before the close, the inactive
client's notification callbacks are unset (JACK lets an inactive client set
callbacks) and :meth:`JackClientOwner.close` waits until that thread is back
in the system call it was idle in when the client opened (its socket read;
``/proc/self/task/<tid>/syscall``), which it is once any notification under
way or waiting for the GIL has returned (seen in a test under load: the GIL
held by a cancelled thread for good).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

import jack

__all__ = ["JackClientOwner", "open_client"]

logger = logging.getLogger(__name__)

#: Seconds :meth:`JackClientOwner.close` waits for the process thread to end by itself.
CALLBACK_WAIT_S = 0.5

#: Where Linux lists this process's threads (elsewhere close() waits :data:`THREAD_END_WAIT_S`).
_TASKS = "/proc/self/task"

#: Seconds to let the process thread finish ``JackClient::End`` where its end cannot be seen.
THREAD_END_WAIT_S = 0.05

#: Seconds :meth:`JackClientOwner.close` waits at most for that thread to be gone (Linux), after its last callback.
THREAD_END_TIMEOUT_S = 2.0

#: Seconds close() waits at most for the notification thread to be idle again (Linux; elsewhere it waits
#: :data:`NOTIFY_QUIET_WAIT_S`).
NOTIFY_QUIET_TIMEOUT_S = 1.0

#: Seconds close() lets a notification under way return where the thread's state cannot be read.
NOTIFY_QUIET_WAIT_S = 0.05

#: Notification callbacks close() unsets: libjack setters taking ``(client, callback, arg)``.
_NOTIFY_SETTERS = (
    "jack_set_xrun_callback",
    "jack_on_info_shutdown",
    "jack_set_port_registration_callback",
    "jack_set_client_registration_callback",
    "jack_set_port_connect_callback",
    "jack_set_graph_order_callback",
)

#: Seconds between two looks at a thread's state while close() waits.
_POLL_S = 0.0005


def _poll(done: Callable[[], bool], timeout_s: float) -> bool:
    """Call ``done`` every :data:`_POLL_S` until it is true (True) or ``timeout_s`` has passed (False)."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)
    return True


def _thread_ids() -> set[int]:
    """Native ids of this process's threads (Linux), or an empty set where they cannot be listed."""
    try:
        return {int(tid) for tid in os.listdir(_TASKS)}
    except OSError:
        return set()


def _syscall(tid: int) -> str | None:
    """The system call thread ``tid`` is blocked in (its number as text), ``"running"``, or None if it is gone."""
    try:
        with open(f"{_TASKS}/{tid}/syscall") as f:
            return f.read().split(" ", 1)[0].strip()
    except OSError:
        return None


def open_client(client_name: str, servername: str | None, *, use_exact_name: bool = False,
                ) -> tuple[jack.Client, dict[int, str]]:
    """Open a ``jack.Client`` (never starting a server) and note how its own threads wait when idle.

    Returns:
        The client, and ``{native thread id: system call}`` for each thread
        libjack started for it (its notification thread among them), sampled
        once none is running (at most ~20 ms); empty where threads cannot be
        listed. :meth:`JackClientOwner.close` waits for them to be back there.

    Raises:
        jack.JackError: no server is reachable.
    """
    before = _thread_ids()
    client = jack.Client(client_name, no_start_server=True, servername=servername,
                         use_exact_name=use_exact_name)
    python_threads = {thread.native_id for thread in threading.enumerate()}
    new = _thread_ids() - before - python_threads
    idle: dict[int, str] = {}
    for _ in range(40):
        idle = {tid: call for tid in new if (call := _syscall(tid)) is not None}
        if "running" not in idle.values():
            break
        time.sleep(_POLL_S)
    return client, {tid: call for tid, call in idle.items() if call != "running"}


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
            client, idle = open_client(client_name, servername)
        except jack.JackError as exc:
            server = servername or os.environ.get("JACK_DEFAULT_SERVER") or "default"
            raise error(f"cannot open JACK client {client_name!r} on server {server!r}: "
                        f"{exc} (is a JACK server running?)") from exc
        self._take(client, idle)

    def _take(self, client: jack.Client, idle_syscalls: dict[int, str]) -> None:
        """Own ``client`` (from :func:`open_client`, with its threads' idle system calls): not closed, no xruns, no shutdown."""
        self._client = client
        self._idle_syscalls = idle_syscalls
        self._closed = False
        self._shutdown_reason = None
        self._xruns = 0
        self._gate_open = True  # the process callback may run (closed by close())
        self._active = False  # activated (the process thread runs)
        self._process_ended: int | None = None  # native id of the process thread once it left for good

    def _activate(self, process: Callable[[int], None]) -> None:
        """Set the process, xrun and shutdown callbacks and activate the client.

        Args:
            process: called by JACK's process thread with the period's frame count.
        """
        def gated(frames: int) -> None:
            if not self._gate_open:  # close(): the thread ends itself (module docstring)
                self._process_ended = threading.get_native_id()
                raise jack.CallbackExit
            process(frames)

        self._client.set_process_callback(gated)
        self._client.set_xrun_callback(self._on_xrun)
        self._client.set_shutdown_callback(self._on_shutdown)
        self._client.activate()
        self._active = True

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
        self._gate_open = False  # the process thread ends itself at its next callback (module docstring)
        if self._active and self._shutdown_reason is None:
            self._wait_process_thread_end()
        try:
            if self._shutdown_reason is None:
                self._client.deactivate()
                self._quiet_notifications()
            self._client.close()
        except jack.JackError as exc:
            logger.debug("Closing JACK client %s: %s", self._client.name, exc)

    def _quiet_notifications(self) -> None:
        """Unset the inactive client's notification callbacks and wait until its threads are idle (module docstring)."""
        for setter in _NOTIFY_SETTERS:
            getattr(jack._lib, setter)(self._client._ptr, jack._ffi.NULL, jack._ffi.NULL)
        if not self._idle_syscalls:
            time.sleep(NOTIFY_QUIET_WAIT_S)
            return
        if not _poll(lambda: all(_syscall(tid) in (idle, None) for tid, idle in self._idle_syscalls.items()),
                     NOTIFY_QUIET_TIMEOUT_S):
                logger.debug("JACK client %s: notification thread still busy after %.1f s; closing anyway",
                         self._client.name, NOTIFY_QUIET_TIMEOUT_S)

    def _wait_process_thread_end(self) -> None:
        """Wait until the process thread has left its last callback (at most :data:`CALLBACK_WAIT_S`) and exited.

        A server that runs no more cycles (stalled, or gone without a
        shutdown notice) never calls back: then ``jack_deactivate`` cancels
        the thread as before, outside Python since the gate is shut.
        """
        if not _poll(lambda: self._process_ended is not None, CALLBACK_WAIT_S):
            return
        if not os.path.isdir(_TASKS):
            time.sleep(THREAD_END_WAIT_S)
            return
        task = f"{_TASKS}/{self._process_ended}"
        _poll(lambda: not os.path.exists(task), THREAD_END_TIMEOUT_S)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
