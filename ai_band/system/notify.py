"""systemd's notification protocol (sd_notify(3)) for a ``Type=notify`` unit with ``WatchdogSec=``.

:class:`Notifier` sends ``READY=1``, ``STATUS=``, ``EXTEND_TIMEOUT_USEC=``,
``WATCHDOG=1`` and ``STOPPING=1`` datagrams to ``$NOTIFY_SOCKET`` through the
`sdnotify` library; without that variable (not under systemd) every call does
nothing.  :func:`watchdog_interval_s` reads ``$WATCHDOG_USEC`` and
``$WATCHDOG_PID`` the way ``sd_watchdog_enabled(3)`` does.

A notification never stalls the daemon: the socket is non-blocking, and a
datagram systemd has no room for is dropped and logged once (systemd reads its
socket at once; a test that does not read it would otherwise block the event
loop after ``/proc/sys/net/unix/max_dgram_qlen`` datagrams, 10 by default).

Which process may send is the unit's ``NotifyAccess=main``: the daemon's own
PID; the generation workers inherit ``$NOTIFY_SOCKET`` but never send.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import sdnotify

__all__ = ["WATCHDOG_PINGS_PER_TIMEOUT", "Notifier", "watchdog_interval_s"]

log = logging.getLogger(__name__)

#: ``WATCHDOG=1`` is sent this many times per ``WatchdogSec=`` (sd_watchdog_enabled(3)
#: advises at least twice; three leaves room for one late ping).
WATCHDOG_PINGS_PER_TIMEOUT = 3


def watchdog_interval_s(environ: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """The period of ``WATCHDOG=1`` pings systemd expects from this process, or None.

    As ``sd_watchdog_enabled(3)``: ``$WATCHDOG_USEC`` is the timeout in
    microseconds (a positive integer); ``$WATCHDOG_PID``, when set, names the
    one process that must ping (another process, e.g. a worker that inherited
    the environment, must not).

    Args:
        environ: the environment (``os.environ`` by default).
        pid: this process's id (``os.getpid()`` by default).

    Returns:
        ``WATCHDOG_USEC / 1e6 / WATCHDOG_PINGS_PER_TIMEOUT`` seconds; None when
        no watchdog is asked for, it is for another process, or a value is not
        a positive integer (logged).
    """
    env = os.environ if environ is None else environ
    usec_text = env.get("WATCHDOG_USEC")
    if not usec_text:
        return None
    pid_text = env.get("WATCHDOG_PID")
    try:
        usec = int(usec_text)
        watch_pid = int(pid_text) if pid_text else None
    except ValueError:
        log.warning("systemd watchdog: WATCHDOG_USEC=%r / WATCHDOG_PID=%r are not integers: no pings",
                    usec_text, pid_text)
        return None
    if usec <= 0 or (watch_pid is not None and watch_pid <= 0):
        log.warning("systemd watchdog: WATCHDOG_USEC=%d / WATCHDOG_PID=%s must be positive: no pings", usec, pid_text)
        return None
    if watch_pid is not None and watch_pid != (os.getpid() if pid is None else pid):
        return None
    return usec / 1e6 / WATCHDOG_PINGS_PER_TIMEOUT


class Notifier:
    """Notifications to systemd over ``$NOTIFY_SOCKET``; every method is a no-op without it.

    Attributes:
        enabled: ``$NOTIFY_SOCKET`` is set and its socket could be opened.
        watchdog_interval_s: seconds between ``WATCHDOG=1`` pings (:func:`watchdog_interval_s`), or None.
    """

    def __init__(self) -> None:
        self._sd: sdnotify.SystemdNotifier | None = None
        self._last_status: str | None = None
        self._dropped = 0
        self.watchdog_interval_s = watchdog_interval_s()
        address = os.environ.get("NOTIFY_SOCKET")
        if address:
            try:
                self._sd = sdnotify.SystemdNotifier(debug=True)  # connects to $NOTIFY_SOCKET
                self._sd.socket.setblocking(False)
            except OSError as exc:
                log.warning("systemd notify socket %s: %s: no notifications", address, exc.strerror or exc)
                self._sd = None
        self.enabled = self._sd is not None

    def _send(self, *lines: str) -> None:
        if self._sd is None:
            return
        try:
            self._sd.notify("\n".join(lines))
        except OSError as exc:
            self._dropped += 1
            if self._dropped == 1:
                log.warning("systemd notification dropped (%s); later drops are not logged", exc.strerror or exc)

    def status(self, text: str) -> None:
        """``STATUS=text`` (shown by ``systemctl status``); sent only when it changed."""
        if text != self._last_status:
            self._last_status = text
            self._send(f"STATUS={text}")

    def extend_timeout(self, seconds: float, text: str) -> None:
        """``EXTEND_TIMEOUT_USEC=`` with ``STATUS=text``: the current start (or stop) step may take ``seconds`` more.

        systemd then lets the start-up run at least ``seconds`` from now even
        past ``TimeoutStartSec=`` (it never shortens the timeout).
        """
        self._last_status = text
        self._send(f"EXTEND_TIMEOUT_USEC={round(seconds * 1e6)}", f"STATUS={text}")

    def ready(self, text: str) -> None:
        """``READY=1`` with ``STATUS=text``: the service is up (``systemctl start`` returns)."""
        self._last_status = text
        self._send("READY=1", f"STATUS={text}")

    def watchdog(self) -> None:
        """``WATCHDOG=1``: the service is alive; systemd restarts it if none comes within ``WatchdogSec=``."""
        self._send("WATCHDOG=1")

    def stopping(self, text: str = "stopping") -> None:
        """``STOPPING=1`` with ``STATUS=text``: a graceful stop has begun."""
        self._last_status = text
        self._send("STOPPING=1", f"STATUS={text}")

    def close(self) -> None:
        """Close the socket; later calls do nothing.  Idempotent."""
        if self._sd is not None:
            self._sd.socket.close()
            self._sd = None
            self.enabled = False
