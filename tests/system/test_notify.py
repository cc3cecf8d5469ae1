"""sd_notify(3) from :mod:`ai_band.system.notify` onto a real ``AF_UNIX`` datagram socket.

The daemon's use of it (READY order, watchdog period, a stalled playback
thread) is tested on the real daemon in ``tests/test_service_start.py``.
"""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import pytest

from ai_band.system.notify import WATCHDOG_PINGS_PER_TIMEOUT, Notifier, watchdog_interval_s


@pytest.mark.parametrize(("environ", "expected_s"), [
    ({}, None),
    ({"WATCHDOG_USEC": ""}, None),
    ({"WATCHDOG_USEC": "3000000"}, 1.0),
    ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "4242"}, 1.0),  # this process, see pid= below
    ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"}, None),  # another process's watchdog
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "-5"}, None),
    ({"WATCHDOG_USEC": "10s"}, None),
    ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "x"}, None),
])
def test_watchdog_interval_follows_sd_watchdog_enabled(environ, expected_s):
    assert watchdog_interval_s(environ, pid=4242) == expected_s


def test_the_interval_is_a_third_of_the_timeout():
    assert WATCHDOG_PINGS_PER_TIMEOUT == 3
    assert watchdog_interval_s({"WATCHDOG_USEC": "1500000"}, pid=1) == pytest.approx(0.5)


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A bound datagram socket named by ``NOTIFY_SOCKET`` (as systemd passes it)."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(1.0)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    """Every datagram waiting on ``sock``."""
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        return out
    finally:
        sock.settimeout(1.0)


def test_each_message_is_one_datagram_in_the_protocols_form(notify_socket):
    notifier = Notifier()
    assert notifier.enabled and notifier.watchdog_interval_s is None
    notifier.status("starting")
    notifier.extend_timeout(2.5, "opening ports")
    notifier.ready("listening")
    notifier.watchdog()
    notifier.stopping()
    notifier.close()
    notifier.watchdog()  # after close: nothing, no error
    assert received(notify_socket) == [
        "STATUS=starting",
        "EXTEND_TIMEOUT_USEC=2500000\nSTATUS=opening ports",
        "READY=1\nSTATUS=listening",
        "WATCHDOG=1",
        "STOPPING=1\nSTATUS=stopping",
    ]


def test_status_is_sent_only_when_it_changes(notify_socket):
    notifier = Notifier()
    for text in ("idle", "idle", "playing job a", "playing job a", "idle"):
        notifier.status(text)
    assert received(notify_socket) == ["STATUS=idle", "STATUS=playing job a", "STATUS=idle"]


def test_an_abstract_socket_name_works(monkeypatch):
    name = f"ai-band-test-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    try:
        Notifier().ready("up")
        assert sock.recv(4096) == b"READY=1\nSTATUS=up"
    finally:
        sock.close()


def test_without_notify_socket_nothing_is_sent_and_nothing_fails(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled
    notifier.ready("up")
    notifier.watchdog()
    notifier.close()


def test_a_missing_socket_is_logged_not_raised(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens.sock"))
    with caplog.at_level(logging.WARNING, logger="ai_band.system.notify"):
        notifier = Notifier()
    assert not notifier.enabled
    assert "no notifications" in caplog.text
    notifier.ready("up")


def test_a_reader_that_does_not_read_never_blocks_the_sender(notify_socket, caplog):
    # A Unix datagram socket queues /proc/sys/net/unix/max_dgram_qlen datagrams (10 by
    # default); a blocking sender would then wait for ever, on the daemon's event loop.
    notifier = Notifier()
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="ai_band.system.notify"):
        for _ in range(2000):
            notifier.watchdog()
    assert time.monotonic() - t0 < 1.0
    assert caplog.text.count("systemd notification dropped") == 1, caplog.text
    waiting = received(notify_socket)
    assert 0 < len(waiting) < 2000 and set(waiting) == {"WATCHDOG=1"}
