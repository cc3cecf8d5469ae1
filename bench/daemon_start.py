"""Daemon start-up: whole-process time from ``exec`` to systemd's READY=1 and to the first ``/band/ping`` answer.

Each run starts ``python -m ai_band run`` (JACK MIDI API, OSC on 127.0.0.1
port 0, zeroconf on 127.0.0.1 only) against a private JACK server, as a
systemd ``Type=notify`` unit would: ``NOTIFY_SOCKET`` names a Unix datagram
socket this script binds, and the daemon sends ``READY=1`` to it (sd_notify(3)
protocol, via sdnotify).  Times, from just before ``subprocess.Popen``:

* ``ready_s``: the READY=1 datagram arrived;
* ``ping_s``: ``/band/pong`` arrived for a ``/band/ping`` sent right after READY
  (the port is read from the ``STATUS=listening on udp port N`` sent with it);
* ``zeroconf_s``: the daemon logged that the service is advertised (in the
  background after READY; for information).

Figures: the median of ``--runs`` (10) whole-process runs, and the machine.
Target: ``ready_s`` and ``ping_s`` medians <= 0.5 s (issue 14, item 8).
Exit code 1 if missed.

Usage: python -m bench.daemon_start [--runs 10] [--zeroconf-interfaces 127.0.0.1|none]
       [--json bench/results/daemon_start.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ai_band.host import OscClient
from ai_band.testing.jackserver import JackServer
from bench.machine import machine_name

#: Start-up target, seconds from process start to READY=1 and to the first OSC answer.
TARGET_S = 0.5

_STATUS_PORT_RE = re.compile(r"STATUS=listening on udp port (\d+)")
_ZEROCONF_RE = re.compile(r"zeroconf: advertising ")
_GOODBYE_RE = re.compile(r"zeroconf: goodbye sent")


@dataclasses.dataclass
class StartTiming:
    """One daemon start, seconds from just before ``Popen``.

    Attributes:
        ready_s: READY=1 received on the notify socket.
        ping_s: ``/band/pong`` received for a ping sent once READY arrived.
        zeroconf_s: the "zeroconf: advertising" log line read (``None``: not seen within the wait).
        osc_port: the UDP port from ``STATUS=``.
        notify_messages: every sd_notify datagram received, in order.
        log: the daemon's stderr lines, each with the seconds when it was read.
        exit_code: the daemon's exit code after SIGTERM.
    """

    ready_s: float
    ping_s: float
    zeroconf_s: float | None
    osc_port: int
    notify_messages: list[str]
    log: list[tuple[float, str]]
    exit_code: int | None


class NotifySocket:
    """A bound ``AF_UNIX`` datagram socket to pass as ``NOTIFY_SOCKET`` (sd_notify(3)).

    The socket file is in a new directory under the system's temporary
    directory (a Unix socket path is limited to 107 bytes).
    """

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="ai-band-notify-"))
        self.path = str(self._dir / "notify.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self.messages: list[str] = []

    def wait_for(self, field: str, timeout_s: float) -> str:
        """Wait for a datagram holding the line ``field`` (e.g. ``READY=1``); return that datagram.

        Raises:
            TimeoutError: none within ``timeout_s`` seconds.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {field} on NOTIFY_SOCKET within {timeout_s:g} s: {self.messages}")
            self._sock.settimeout(remaining)
            try:
                data = self._sock.recv(4096).decode("utf-8", "replace")
            except TimeoutError:
                continue
            self.messages.append(data)
            if field in data.splitlines():
                return data

    def drain(self) -> list[str]:
        """Read every datagram already waiting into :attr:`messages`; return them all."""
        self._sock.setblocking(False)
        try:
            while True:
                self.messages.append(self._sock.recv(4096).decode("utf-8", "replace"))
        except BlockingIOError:
            pass
        finally:
            self._sock.setblocking(True)
        return self.messages

    def close(self) -> None:
        """Close and remove the socket file."""
        self._sock.close()
        Path(self.path).unlink(missing_ok=True)
        self._dir.rmdir()

    def __enter__(self) -> "NotifySocket":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def start_daemon_timed(jack: JackServer, work_dir: Path, zeroconf_interfaces: str = "127.0.0.1",
                       extra_args: tuple[str, ...] = (), zeroconf_wait_s: float = 10.0,
                       between=None) -> StartTiming:
    """Start the daemon as a ``Type=notify`` service would, time it, stop it with SIGTERM.

    Args:
        jack: the running private JACK server.
        work_dir: an empty directory for the daemon's output.
        zeroconf_interfaces: ``--zeroconf-interfaces`` (``none`` disables it).
        extra_args: more ``ai-band run`` flags.
        zeroconf_wait_s: after READY, how long to wait for the advertising log line.
        between: called with the :class:`StartTiming` so far while the daemon runs (tests look
            around; its ``log`` grows as the daemon logs).

    Raises:
        TimeoutError: no READY=1 or no pong within 30 s / 5 s (the daemon's log in the message).
    """
    env = jack.env()
    src_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = src_root + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    args = [sys.executable, "-m", "ai_band", "run", "--osc-host", "127.0.0.1", "--osc-port", "0",
            "--output-dir", str(work_dir / "out"), "--midi-api", "jack",
            "--zeroconf-interfaces", zeroconf_interfaces, "--log-level", "info", *extra_args]
    lines: list[tuple[float, str]] = []
    with NotifySocket() as notify:
        env["NOTIFY_SOCKET"] = notify.path
        t0 = time.monotonic()
        proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, bufsize=1)

        def read() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.append((time.monotonic() - t0, line.rstrip("\n")))

        reader = threading.Thread(target=read, name="daemon-log", daemon=True)
        reader.start()
        try:
            try:
                ready = notify.wait_for("READY=1", 30.0)
            except TimeoutError as exc:
                raise TimeoutError(f"{exc}\n" + "\n".join(line for _, line in lines)) from None
            ready_s = time.monotonic() - t0
            match = _STATUS_PORT_RE.search(ready)
            if match is None:
                raise TimeoutError(f"READY=1 without the port in STATUS=: {ready!r}")
            port = int(match.group(1))
            with OscClient(("127.0.0.1", port)) as osc:
                osc.send("/band/ping", "start")
                osc.receive("/band/pong", timeout=5.0)
                ping_s = time.monotonic() - t0
            zeroconf_s = None
            if zeroconf_interfaces != "none":
                deadline = time.monotonic() + zeroconf_wait_s
                while zeroconf_s is None and time.monotonic() < deadline:
                    zeroconf_s = next((t for t, line in list(lines) if _ZEROCONF_RE.search(line)), None)
                    time.sleep(0.01)
            timing = StartTiming(ready_s, ping_s, zeroconf_s, port, notify.messages, lines, None)  # log: live
            if between is not None:
                between(timing)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            reader.join(2.0)
            notify.drain()
    timing.log = list(lines)
    timing.notify_messages = list(notify.messages)
    timing.exit_code = proc.returncode
    return timing


def run(runs: int, zeroconf_interfaces: str) -> dict:
    """Start the daemon ``runs`` times against one private JACK server; return the figures."""
    timings: list[StartTiming] = []
    with JackServer() as jack, tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            work = Path(tmp) / f"run{i}"
            work.mkdir()
            timing = start_daemon_timed(jack, work, zeroconf_interfaces)
            timings.append(timing)
            zc = "-" if timing.zeroconf_s is None else f"{timing.zeroconf_s:.3f} s"
            print(f"run {i + 1:2d}: READY=1 {timing.ready_s:.3f} s, pong {timing.ping_s:.3f} s, "
                  f"zeroconf advertised {zc}, exit {timing.exit_code}", flush=True)
    ready = statistics.median(t.ready_s for t in timings)
    ping = statistics.median(t.ping_s for t in timings)
    zeroconf = [t.zeroconf_s for t in timings if t.zeroconf_s is not None]
    return {
        "machine": machine_name(),
        "runs": runs,
        "zeroconf_interfaces": zeroconf_interfaces,
        "median_ready_s": round(ready, 3),
        "median_first_pong_s": round(ping, 3),
        "median_zeroconf_advertised_s": round(statistics.median(zeroconf), 3) if zeroconf else None,
        "ready_s": [round(t.ready_s, 3) for t in timings],
        "first_pong_s": [round(t.ping_s, 3) for t in timings],
        "target_s": TARGET_S,
        "met": ready <= TARGET_S and ping <= TARGET_S,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.daemon_start``; returns 0 when the medians meet the target, else 1."""
    parser = argparse.ArgumentParser(prog="python -m bench.daemon_start", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="whole-process runs (the median is reported)")
    parser.add_argument("--zeroconf-interfaces", default="127.0.0.1", help="passed to ai-band run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    figures = run(args.runs, args.zeroconf_interfaces)
    print(f"machine: {figures['machine']}")
    print(f"median of {args.runs}: READY=1 {figures['median_ready_s']:.3f} s, first pong "
          f"{figures['median_first_pong_s']:.3f} s (target <= {TARGET_S} s), zeroconf advertised "
          f"{figures['median_zeroconf_advertised_s']} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print("daemon start: OK" if figures["met"] else "daemon start: target missed")
    return 0 if figures["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
