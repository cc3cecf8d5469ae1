"""What the HTTP server costs the daemon: import time, start-up, memory.

Three figures, each the median of ``--runs`` runs:

* ``import_s``: wall time of ``import aiohttp.web, prometheus_client`` in a
  fresh interpreter (what :meth:`ai_band.http.server.HttpServer.start` imports
  in a thread after READY);
* ``ready_s`` with ``[http] enabled`` true and false: process start to the
  daemon's "ready" log line (the HTTP server starts after it, in the
  background, so this should not move);
* ``http_s``: process start to "HTTP listening on";
* ``rss_mib`` with HTTP on and off: the daemon's VmRSS once it is ready
  (and, with HTTP, listening and having answered 100 requests to ``/health``,
  ``/metrics``, ``/api/status`` and ``/``), after a 1 s settle.

Runs ``python -m ai_band run`` (JACK MIDI API, OSC and HTTP on 127.0.0.1,
free ports, zeroconf off) against a private JACK server.

Usage: python -m bench.http_cost [--runs 5] [--json bench/results/http_cost.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from ai_band.testing.daemonproc import DaemonProcess
from ai_band.testing.jackserver import JackServer
from bench.machine import machine_name

IMPORT_CODE = ("import time; t = time.perf_counter(); import aiohttp.web, prometheus_client; "
               "print(time.perf_counter() - t)")
HTTP_LINE = r"HTTP listening on http://([\d.]+):(\d+)"
PATHS = ("/health", "/metrics", "/api/status", "/")


def import_s() -> float:
    """Seconds to import the HTTP stack in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", IMPORT_CODE], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def rss_mib(pid: int) -> float:
    """VmRSS of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS")


def one_daemon(jack: JackServer, http: bool) -> dict[str, float | None]:
    """Start one daemon, measure, stop it."""
    env = {**jack.env(), "AI_BAND_HTTP_ENABLED": "true" if http else "false", "AI_BAND_HTTP_PORT": "0"}
    with tempfile.TemporaryDirectory() as out:
        t0 = time.monotonic()
        daemon = DaemonProcess(Path(out), env=env).start()
        ready = time.monotonic() - t0
        try:
            http_s = None
            if http:
                match = daemon.wait_for_log(HTTP_LINE, 20)
                if match is None:
                    raise RuntimeError("no HTTP line:\n" + daemon.log_text())
                http_s = time.monotonic() - t0
                base = f"http://{match.group(1)}:{match.group(2)}"
                for i in range(100):
                    with urllib.request.urlopen(base + PATHS[i % len(PATHS)], timeout=10) as response:
                        response.read()
            time.sleep(1.0)
            return {"ready_s": ready, "http_s": http_s, "rss_mib": rss_mib(daemon.proc.pid)}
        finally:
            daemon.terminate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    imports = [import_s() for _ in range(args.runs)]
    runs: dict[bool, list[dict]] = {True: [], False: []}
    with JackServer() as jack:
        for _ in range(args.runs):
            for http in (False, True):
                runs[http].append(one_daemon(jack, http))

    def med(http: bool, key: str) -> float:
        return statistics.median(r[key] for r in runs[http])

    result = {
        "machine": machine_name(),
        "runs": args.runs,
        "import_s": statistics.median(imports),
        "ready_s_http_off": med(False, "ready_s"),
        "ready_s_http_on": med(True, "ready_s"),
        "http_listening_s": med(True, "http_s"),
        "rss_mib_http_off": med(False, "rss_mib"),
        "rss_mib_http_on": med(True, "rss_mib"),
    }
    result["rss_mib_added"] = result["rss_mib_http_on"] - result["rss_mib_http_off"]
    for key, value in result.items():
        print(f"{key:20} {value:.3f}" if isinstance(value, float) else f"{key:20} {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
