"""HTTP load while the band plays: job-status polls and WAV downloads against the real daemon (issue 17, item 4).

What it does, per run:
  * starts a private JACK server (dummy driver) and the daemon as its own
    process (``ai-band run``, JACK MIDI, OSC and HTTP on 127.0.0.1, free ports);
  * a simulated DAW host (:class:`ai_band.host.HostSimulator`) plays at 120 bpm,
    a 4-bar job rendered to WAV is armed (``POST /api/jobs/{id}/play``) and plays
    in a loop all along;
  * ``--procs`` load processes (a lean HTTP/1.1 keep-alive client on asyncio
    streams, :class:`RawHttp`; default 2, the machine has 2 cores) run ``--pollers`` clients in all, each polling ``GET /api/jobs/{id}``
    every ``--poll-interval-ms`` (100: 200 clients offer 2,000 requests/s; on
    absolute deadlines, a poll that comes back late is not made up; 0 polls
    back to back, to find the ceiling) on its own keep-alive connection, and
    ``--downloaders`` clients
    downloading the job's ``mix.wav`` in a loop (each download checked for its
    length), for ``--seconds``;
  * with ``--websockets N``, N WebSocket handshakes to ``/api/events`` as the
    load starts (200 at a time), those accepted held open, never read (nor
    answering pings), to the end; the daemon's count of open streams is read
    from ``/metrics`` once a second (its maximum reported);
  * the daemon's VmRSS is read before, every 0.5 s during (peak) and after.

Figures: job-status requests/s, their latency p50/p99/max (send to last body
byte, in the client), the daemon's CPU (cores, ms per request), downloads/s and MiB/s, errors, RSS before/peak/after,
and the band's timing under the load from the scheduler's own counters in
``/api/status`` (note groups later than 0.5/1/2/5 ms, the latest one, notes
dropped late, JACK xruns), before minus after.  ``--tempo-lock`` runs the
tempo-lock benchmark (bench/tempo_lock.py: its own JACK server, daemon,
simulated host and frame-accurate recorder) once instead, with the same load
against its daemon, and prints its figures and checks.  Goal: >= 2,000 job-status
requests/s, p99 < 50 ms.  Exit code 1 if a goal is missed.

Usage: python -m bench.http_load [--seconds 60] [--runs 3] [--pollers 200] [--downloaders 20]
       [--procs 2] [--poll-interval-ms 100] [--websockets 0] [--tempo-lock [--realtime]] [--json bench/results/http_load.json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import random
import socket
import statistics
import tempfile
import threading
import time
import urllib.request
from array import array
from pathlib import Path

from ai_band.host import HostSimulator
from ai_band.testing.daemonproc import DaemonProcess
from ai_band.testing.jackserver import JackServer
from bench.machine import machine_name

HTTP_LINE = r"HTTP listening on http://([\d.]+):(\d+)"
GOAL_REQUESTS_PER_S = 2000.0
GOAL_P99_MS = 50.0
#: Bytes read per step of a download.
CHUNK_BYTES = 1 << 16


def rss_mib(pid: int) -> float:
    """VmRSS of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS")


def http_json(url: str, method: str = "GET", body: dict | None = None) -> dict:
    """One JSON request with urllib (set-up and read-out only, not the load)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, method=method, data=data,
                                     headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


# -- the load, in its own processes ------------------------------------------------------------------------------

class RawHttp:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: GET, read ``Content-Length`` bytes.

    A load generator as lean as wrk's, so that the clients leave the CPU to the
    daemon (aiohttp's client costs about what its server does per request).
    Only what the daemon answers is understood: a status line, headers with
    ``Content-Length``, a body; no chunked encoding.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, sink: bool = False) -> tuple[int, int]:
        """GET ``path``; returns (status, body bytes). ``sink``: read the body in chunks, keep none of it.

        Raises:
            OSError, asyncio.IncompleteReadError, ValueError: connection or protocol trouble (the connection is closed).
        """
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        try:
            self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode())
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            status = int(lines[0].split()[1])
            length = next(int(line.split(b":", 1)[1]) for line in lines[1:]
                          if line.lower().startswith(b"content-length:"))
            if not sink:
                await self.reader.readexactly(length)
            else:
                left = length
                while left:
                    left -= len(await self.reader.read(min(left, CHUNK_BYTES)))
                    if self.reader.at_eof() and left:
                        raise asyncio.IncompleteReadError(b"", left)
            return status, length
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _flood(host: str, port: int, count: int, start_at: float, end: float) -> dict:
    """Open ``count`` WebSockets to ``/api/events`` (200 handshakes at a time) and hold those accepted until ``end``.

    Raw handshakes on asyncio streams; an accepted socket is never read (a
    stalled client: the daemon must drop it if its queue overflows).
    """
    opened: list[asyncio.StreamWriter] = []
    counts = {"ws_refused": 0, "ws_failed": 0}
    gate = asyncio.Semaphore(200)

    async def one() -> None:
        async with gate:
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError:
                counts["ws_failed"] += 1
                return
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(f"GET /api/events HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                         f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                         .encode())
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                status = int(head.split()[1])
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError, asyncio.TimeoutError):
                counts["ws_failed"] += 1
                writer.close()
                return
            if status == 101:
                opened.append(writer)
            else:
                counts["ws_refused"] += 1
                writer.close()

    await asyncio.sleep(max(0.0, start_at - time.time()))
    await asyncio.gather(*(one() for _ in range(count)))
    await asyncio.sleep(max(0.0, end - time.time()))
    for writer in opened:
        writer.close()
    return {**counts, "ws_opened": len(opened)}


async def _load(base: str, job_id: str, wav_url: str, wav_size: int, pollers: int, downloaders: int,
                start_at: float, seconds: float, interval_s: float, websockets: int = 0) -> dict:
    latencies = array("d")
    counts = {"polls": 0, "poll_errors": 0, "downloads": 0, "download_errors": 0, "download_bytes": 0}
    host, port = base.removeprefix("http://").rsplit(":", 1)
    status_path = f"/api/jobs/{job_id}"
    wav_path = "/" + wav_url.split("/", 3)[3]
    end = start_at + seconds

    async def poller() -> None:
        client = RawHttp(host, int(port))
        # spread the clients' first polls over one interval, as clients started at random would be
        due = start_at + random.random() * interval_s
        while True:
            await asyncio.sleep(max(0.0, due - time.time()))
            if time.time() >= end:
                break
            due = max(due + interval_s, time.time())  # absolute deadlines; a late poll is not made up
            t0 = time.perf_counter()
            try:
                status, _ = await asyncio.wait_for(client.get(status_path), 30)
                ok = status == 200
            except (OSError, ValueError, StopIteration, asyncio.IncompleteReadError, asyncio.TimeoutError):
                ok = False
            latencies.append(time.perf_counter() - t0)
            counts["polls" if ok else "poll_errors"] += 1
        client.close()

    async def downloader() -> None:
        client = RawHttp(host, int(port))
        await asyncio.sleep(max(0.0, start_at - time.time()))
        while time.time() < end:
            try:
                status, got = await asyncio.wait_for(client.get(wav_path, sink=True), 30)
                ok = status == 200 and got == wav_size
            except (OSError, ValueError, StopIteration, asyncio.IncompleteReadError, asyncio.TimeoutError):
                ok, got = False, 0
            counts["download_bytes"] += got
            counts["downloads" if ok else "download_errors"] += 1
        client.close()

    flood = [_flood(host, int(port), websockets, start_at, end)] if websockets else []
    results = await asyncio.gather(*(poller() for _ in range(pollers)), *(downloader() for _ in range(downloaders)),
                                   *flood)
    ws = results[-1] if flood else {"ws_opened": 0, "ws_refused": 0, "ws_failed": 0}
    return {**counts, **ws, "latencies": latencies.tobytes()}


def _load_process(args: tuple) -> dict:
    """One load process (``multiprocessing`` target); adds the CPU seconds it used (``client_cpu_s``)."""
    t0 = time.process_time()
    result = asyncio.run(_load(*args))
    return {**result, "client_cpu_s": time.process_time() - t0}


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank of sorted ``values``."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def late_figures(status: dict) -> dict:
    """The scheduler's and the output's lateness counters of a ``/api/status``."""
    playback = status.get("playback", {})
    output = playback.get("output", {})
    return {"late_over_ms": dict(playback.get("late_over_ms", {})), "max_late_ms": playback.get("max_late_ms"),
            "late_dropped": playback.get("late_dropped", 0), "groups_sent": playback.get("groups_sent", 0),
            "xruns": output.get("xruns", 0), "late_messages": output.get("late_messages", 0)}


def stream_counters(base: str) -> dict[str, float]:
    """``ai_band_http_event_streams_events_total`` by event, from ``/metrics``."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as response:
        text = response.read().decode()
    return {sample.labels["event"]: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == "ai_band_http_event_streams_events_total"}


def open_streams(base: str) -> float:
    """``ai_band_http_event_streams`` (streams open now), from ``/metrics``."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("ai_band_http_event_streams "):
                return float(line.split()[1])
    raise OSError("no ai_band_http_event_streams in /metrics")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def render_job(base: str) -> dict:
    """Generate a 4-bar job with a WAV mix over HTTP and wait for it; returns its ``GET /api/jobs/{id}`` view."""
    job = http_json(f"{base}/api/generate", "POST", {
        "id": "load", "chords": "| C | Am | F | G |", "style": "rock", "bpm": 120, "bars": 4,
        "render": "mid,wav", "seed": 11})
    deadline = time.monotonic() + 120
    while job["state"] not in ("done", "failed", "cancelled"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"job not done: {job}")
        time.sleep(0.1)
        job = http_json(f"{base}/api/jobs/{job['id']}")
    if job["state"] != "done":
        raise RuntimeError(f"job {job['state']}: {job['error']}")
    return job


def load_daemon(base: str, pid: int, job: dict, seconds: float, pollers: int, downloaders: int, procs: int,
                interval_s: float, websockets: int = 0) -> dict:
    """Load the daemon at ``base`` (process ``pid``) for ``seconds``; return the figures."""
    mix = next(f for f in job["files"] if f["part"] == "mix")
    before = late_figures(http_json(f"{base}/api/status"))
    rss_before = rss_mib(pid)
    peak = [rss_before]
    sampling = threading.Event()
    streams_open = [0.0]

    def sample() -> None:
        n = 0
        while not sampling.wait(0.5):
            peak.append(rss_mib(pid))
            n += 1
            if websockets and n % 2 == 0:  # once a second: the streams open, by the daemon's gauge
                try:
                    streams_open.append(open_streams(base))
                except OSError:
                    pass

    sampler = threading.Thread(target=sample, daemon=True)
    start_at = time.time() + 3.0  # the load processes start and connect first
    work = [(base, job["id"], mix["url"], mix["size"], p, d, start_at, seconds, interval_s,
             websockets if i == procs - 1 else 0)
            for i, (p, d) in enumerate(zip(_split(pollers, procs), _split(downloaders, procs)))]
    sampler.start()
    cpu_before = cpu_s(pid)
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        results = pool.map(_load_process, work)
    cpu_used = cpu_s(pid) - cpu_before
    sampling.set()
    sampler.join()
    status = http_json(f"{base}/api/status")
    after = late_figures(status)
    streams = stream_counters(base)
    time.sleep(1.0)
    rss_after = rss_mib(pid)
    latencies = sorted(x for r in results for x in array("d", r["latencies"]))
    total = {k: sum(r[k] for r in results) for k in results[0] if k != "latencies"}
    return {
        "seconds": seconds, "pollers": pollers, "downloaders": downloaders, "procs": procs,
        "poll_interval_ms": interval_s * 1000.0,
        "offered_requests_per_s": pollers / interval_s if interval_s else None,
        "status_requests_per_s": total["polls"] / seconds,
        "status_p50_ms": percentile(latencies, 0.50) * 1000.0,
        "status_p99_ms": percentile(latencies, 0.99) * 1000.0,
        "status_max_ms": latencies[-1] * 1000.0 if latencies else float("nan"),
        "poll_errors": total["poll_errors"],
        "downloads_per_s": total["downloads"] / seconds,
        "download_mib_per_s": total["download_bytes"] / seconds / (1 << 20),
        "download_errors": total["download_errors"],
        "wav_bytes": mix["size"],
        "websockets": websockets, "ws_opened": total["ws_opened"], "ws_refused": total["ws_refused"],
        "ws_failed": total["ws_failed"], "ws_refused_by_daemon": streams.get("refused"),
        "ws_open_max": max(streams_open),
        "daemon_cpu_share": cpu_used / (seconds + 3.0),
        "clients_cpu_share": total["client_cpu_s"] / (seconds + 3.0),
        "daemon_cpu_ms_per_request": cpu_used * 1000.0 / max(1, total["polls"] + total["downloads"]),
        "rss_mib_before": rss_before, "rss_mib_peak": max(peak), "rss_mib_after": rss_after,
        "playing_job": status["playback"].get("current_job"),
        "late_groups_over_ms": {b: after["late_over_ms"].get(b, 0) - before["late_over_ms"].get(b, 0)
                                for b in after["late_over_ms"]},
        "groups_sent": after["groups_sent"] - before["groups_sent"],
        "max_late_ms_since_start": after["max_late_ms"],
        "late_dropped_notes": after["late_dropped"] - before["late_dropped"],
        "xruns": after["xruns"] - before["xruns"],
        "output_late_messages": after["late_messages"] - before["late_messages"],
        "loadavg_after": os.getloadavg()[0],
    }


def one_run(jack: JackServer, seconds: float, pollers: int, downloaders: int, procs: int,
            interval_s: float, websockets: int = 0) -> dict:
    """Start a daemon, play a rendered job, load it, measure, stop it."""
    env = {**jack.env(), "AI_BAND_HTTP_PORT": "0"}
    with tempfile.TemporaryDirectory() as out:
        daemon = DaemonProcess(Path(out), env=env).start()
        try:
            match = daemon.wait_for_log(HTTP_LINE, 20)
            if match is None:
                raise RuntimeError("no HTTP line:\n" + daemon.log_text())
            base = f"http://{match.group(1)}:{match.group(2)}"
            job = render_job(base)
            with HostSimulator(("127.0.0.1", daemon.port), rate_hz=25.0, jitter_ms=10.0, seed=5) as host:
                host.play()
                time.sleep(2.0)  # the clock model fills its window
                http_json(f"{base}/api/jobs/{job['id']}/play", "POST")
                time.sleep(2.0)  # armed at the next bar line, playing
                figures = load_daemon(base, daemon.proc.pid, job, seconds, pollers, downloaders,  # type: ignore[union-attr]
                                      procs, interval_s, websockets)
                host.stop()
            return figures
        finally:
            code, _ = daemon.terminate()
            if code != 0:
                print(f"daemon exit code {code}:\n" + "\n".join(daemon.lines[-30:]))


def free_tcp_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def daemon_pid_with(variable: str) -> int:
    """The pid of the ``ai_band run`` process whose environment holds ``variable`` (``NAME=value``)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if b"ai_band" in (entry / "cmdline").read_bytes() and \
                    variable.encode() in (entry / "environ").read_bytes().split(b"\0"):
                return int(entry.name)
        except OSError:
            continue
    raise RuntimeError(f"no ai_band process with {variable}")


def tempo_lock_run(seconds: float, pollers: int, downloaders: int, procs: int, interval_s: float,
                   jack_realtime: bool = False) -> dict:
    """The tempo-lock benchmark (bench/tempo_lock.py, frame-accurate recording) with the load beside it.

    ``bench.tempo_lock.run`` starts its own JACK server and daemon; the daemon
    takes its HTTP port from ``AI_BAND_HTTP_PORT``, set in this process'
    environment (which its child inherits) to a free port, so the load can find
    it. The load starts once a WAV job is rendered (the first seconds of the
    tempo-lock run) and lasts ``seconds - 10``; the tempo-lock run plays for ``seconds``.
    ``jack_realtime``: its JACK server (and the daemon's process thread) with
    real-time scheduling, as ``bench.tempo_lock --realtime``.
    """
    from bench import tempo_lock

    port = free_tcp_port()
    variable = f"AI_BAND_HTTP_PORT={port}"
    os.environ["AI_BAND_HTTP_PORT"] = str(port)
    base = f"http://127.0.0.1:{port}"
    out: dict = {}

    def lock() -> None:
        try:
            out["tempo_lock"] = tempo_lock.run(seconds, 10.0, 25.0, "rock", jack_realtime=jack_realtime)
        except Exception as exc:  # noqa: BLE001 - reported with the figures
            out["tempo_lock_error"] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=lock, name="tempo-lock")
    thread.start()
    deadline = time.monotonic() + 60
    while True:
        try:
            http_json(f"{base}/health")
            break
        except OSError:
            if time.monotonic() > deadline or not thread.is_alive():
                thread.join()
                raise RuntimeError(f"the tempo-lock daemon's HTTP never answered: {out}")
            time.sleep(0.2)
    job = render_job(base)
    out["load"] = load_daemon(base, daemon_pid_with(variable), job, max(10.0, seconds - 10.0), pollers,
                              downloaders, procs, interval_s)
    thread.join()
    del os.environ["AI_BAND_HTTP_PORT"]
    return out


def main_tempo_lock(args: argparse.Namespace) -> int:
    """``--tempo-lock``: one tempo-lock run with the load; prints both sets of figures."""
    out = tempo_lock_run(args.seconds, args.pollers, args.downloaders, args.procs, args.poll_interval_ms / 1000.0,
                         args.realtime)
    load = out["load"]
    print(f"load: {load['status_requests_per_s']:.0f} req/s, p50 {load['status_p50_ms']:.1f} ms, "
          f"p99 {load['status_p99_ms']:.1f} ms, {load['poll_errors']} errors; {load['downloads_per_s']:.1f} "
          f"downloads/s; RSS {load['rss_mib_before']:.0f} -> peak {load['rss_mib_peak']:.0f} MiB; "
          f"late groups {load['late_groups_over_ms']}, xruns {load['xruns']}; load {load['loadavg_after']:.1f}")
    figures = out.get("tempo_lock")
    if figures is None:
        print("tempo lock failed to run:", out.get("tempo_lock_error"))
        return 1
    for key, value in figures.items():
        if key != "checks":
            print(f"tempo_lock {key}: {value}")
    for key, ok in figures["checks"].items():
        print(f"tempo_lock check {key}: {'ok' if ok else 'FAILED'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine_name(), **out}, indent=2, default=str) + "\n")
    return 0 if figures["pass"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pollers", type=int, default=200)
    parser.add_argument("--downloaders", type=int, default=20)
    parser.add_argument("--procs", type=int, default=2, help="load processes")
    parser.add_argument("--poll-interval-ms", type=float, default=100.0,
                        help="each poller's period (absolute deadlines); 0: back to back (saturation)")
    parser.add_argument("--websockets", type=int, default=0,
                        help="also open this many WebSockets to /api/events (never read) during the load")
    parser.add_argument("--realtime", action="store_true",
                        help="with --tempo-lock: JACK with real-time scheduling (as bench.tempo_lock --realtime)")
    parser.add_argument("--tempo-lock", action="store_true",
                        help="instead: run bench/tempo_lock.py (--seconds of play) with the load beside it, once")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.tempo_lock:
        return main_tempo_lock(args)
    runs = []
    with JackServer() as jack:
        for i in range(args.runs):
            run = one_run(jack, args.seconds, args.pollers, args.downloaders, args.procs,
                          args.poll_interval_ms / 1000.0, args.websockets)
            runs.append(run)
            print(f"run {i + 1}: {run['status_requests_per_s']:.0f} req/s, p50 {run['status_p50_ms']:.1f} ms, "
                  f"p99 {run['status_p99_ms']:.1f} ms, max {run['status_max_ms']:.0f} ms, "
                  f"{run['poll_errors']} errors; {run['downloads_per_s']:.1f} downloads/s "
                  f"({run['download_mib_per_s']:.0f} MiB/s, {run['download_errors']} errors); "
                  f"RSS {run['rss_mib_before']:.0f} -> peak {run['rss_mib_peak']:.0f} -> "
                  f"{run['rss_mib_after']:.0f} MiB; late groups {run['late_groups_over_ms']} of "
                  f"{run['groups_sent']}, dropped {run['late_dropped_notes']}, xruns {run['xruns']}, "
                  f"max late {run['max_late_ms_since_start']} ms; daemon CPU {run['daemon_cpu_share']:.2f} cores, "
                  f"{run['daemon_cpu_ms_per_request']:.2f} ms/request; "
                  + (f"WebSockets {run['ws_opened']} accepted (at most {run['ws_open_max']:.0f} open at once), "
                     f"{run['ws_refused']} refused "
                     f"({run['ws_refused_by_daemon']} by the daemon's count), {run['ws_failed']} failed; "
                     if args.websockets else "")
                  + f"clients {run['clients_cpu_share']:.2f} cores; load {run['loadavg_after']:.1f}", flush=True)
    result = {"machine": machine_name(), "runs": runs,
              "median_status_requests_per_s": statistics.median(r["status_requests_per_s"] for r in runs),
              "median_status_p99_ms": statistics.median(r["status_p99_ms"] for r in runs)}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    ok = (result["median_status_requests_per_s"] >= GOAL_REQUESTS_PER_S
          and result["median_status_p99_ms"] < GOAL_P99_MS)
    print(f"median: {result['median_status_requests_per_s']:.0f} req/s (goal >= {GOAL_REQUESTS_PER_S:.0f}), "
          f"p99 {result['median_status_p99_ms']:.1f} ms (goal < {GOAL_P99_MS:.0f}): {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
