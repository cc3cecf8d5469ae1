"""Run the real daemon (``python -m ai_band run``) as a child process.

Used by the tests, the benchmarks and ``make demo`` so that all of them
drive exactly what a user runs: its own process, real UDP, real MIDI ports.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Mapping, Sequence

log = logging.getLogger(__name__)

_PORT_RE = re.compile(r"OSC listening on udp [\d.]+:(\d+)")
_READY_RE = re.compile(r"ai-band \S+ ready")


class DaemonProcess:
    """``ai-band run`` in a child process, bound to 127.0.0.1 on a free port.

    Args:
        output_dir: the daemon's ``--output-dir``.
        env: environment for the child (e.g. from ``JackServer.env()``).
        extra_args: more ``ai-band run`` flags.
        zeroconf_interfaces: ``--zeroconf-interfaces`` value; ``none`` by default.
        start_timeout_s: how long to wait for the "ready" log line.

    Raises:
        RuntimeError: the daemon exited or did not become ready in time (its log is in the message).

    Attributes:
        port: the OSC UDP port, once started.
        lines: every log line the daemon printed so far (stderr).
    """

    def __init__(
        self,
        output_dir: Path,
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        zeroconf_interfaces: str = "none",
        start_timeout_s: float = 30.0,
        log_level: str = "info",
    ) -> None:
        self.output_dir = Path(output_dir)
        self.env = dict(env if env is not None else os.environ)
        self.args = [
            sys.executable, "-m", "ai_band", "run",
            "--osc-host", "127.0.0.1", "--osc-port", "0",
            "--output-dir", str(self.output_dir),
            "--midi-api", "jack",
            "--zeroconf-interfaces", zeroconf_interfaces,
            "--log-level", log_level,
            *extra_args,
        ]
        self.start_timeout_s = start_timeout_s
        self.port: int | None = None
        self.lines: list[str] = []
        self.proc: subprocess.Popen | None = None
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.rstrip("\n")
            self.lines.append(line)
            if self.port is None and (m := _PORT_RE.search(line)):
                self.port = int(m.group(1))
            if _READY_RE.search(line):
                self._ready.set()
        self._ready.set()

    def start(self) -> "DaemonProcess":
        """Start the child and wait until it logs that it is ready."""
        src_root = str(Path(__file__).resolve().parents[2])
        self.env["PYTHONPATH"] = src_root + os.pathsep + self.env.get("PYTHONPATH", "")
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        # A free HTTP port unless the test names one: daemons of several tests may run at once.
        self.env.setdefault("AI_BAND_HTTP_PORT", "0")
        self.proc = subprocess.Popen(
            self.args, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, name="daemon-log", daemon=True)
        self._reader.start()
        if not self._ready.wait(self.start_timeout_s) or self.proc.poll() is not None or self.port is None:
            self.kill()
            raise RuntimeError("ai-band did not start:\n" + self.log_text())
        return self

    def log_text(self) -> str:
        """Everything the daemon logged so far, one line per line."""
        return "\n".join(self.lines)

    def wait_for_log(self, pattern: str, timeout_s: float = 5.0) -> re.Match | None:
        """Wait until a log line matches ``pattern`` (regex); return the match or None."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                if m := regex.search(line):
                    return m
            seen = len(self.lines)
            time.sleep(0.02)
        return None

    def terminate(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> tuple[int, float]:
        """Send ``sig``, wait for exit; returns (exit code, seconds taken). Kills after the timeout."""
        assert self.proc is not None
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._reader is not None:
            self._reader.join(2.0)
        return self.proc.returncode, time.monotonic() - t0

    def terminate_cleanly(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> float:
        """Stop as :meth:`terminate` does; the daemon must exit 0.

        Returns:
            Seconds the stop took.

        Raises:
            AssertionError: another exit code (or none, after a kill); the message is the daemon's log.
        """
        code, took_s = self.terminate(sig, timeout_s)
        assert code == 0, f"exit code {code}:\n{self.log_text()}"
        return took_s

    def kill(self) -> None:
        """SIGKILL the child if it still runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> "DaemonProcess":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.terminate()
