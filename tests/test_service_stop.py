"""Stopping the real daemon mid-render: SIGTERM exits 0 within 5 s and leaves no debris; SIGKILL leaves no process.

The daemon runs as ``ai-band run`` in its own process (:class:`DaemonProcess`)
on a private JACK server; its processes are found by scanning ``/proc`` (each
process's parent pid and start time, so a pid reused after the kill is not
mistaken for one of the daemon's).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from ai_band.host import OscClient
from ai_band.testing.daemonproc import DaemonProcess
from tests.conftest import generate_args

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="scans /proc (Linux)")

#: Eight parts, 192 bars, wav and flac with stems: a render of about a minute, far longer than the 5 s stop.
LONG_RENDER = dict(chords="| C | Am | F | G |", style="rock", bpm=120, bars=192, seed=5, render="wav,flac", stems=1,
                   parts="drums,bass,keys,pad,melody,arp,guitar,strings")

AUDIO_SUFFIXES = (".wav", ".flac")


def _stat(pid: int) -> tuple[int, int] | None:
    """``(parent pid, start time in clock ticks)`` of a live process, or None once it is gone (or a zombie)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "; comm may hold spaces
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """Every live process whose chain of parents leads to ``root``: ``{pid: start time}``."""
    children: dict[int, list[int]] = {}
    started: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            children.setdefault(stat[0], []).append(int(entry))
            started[int(entry)] = stat[1]
    found: dict[int, int] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = started[child]
            todo.append(child)
    return found


def survivors(processes: dict[int, int]) -> list[int]:
    """The pids of ``processes`` still alive (same pid and start time)."""
    return [pid for pid, start in processes.items() if (stat := _stat(pid)) is not None and stat[1] == start]


def start_long_job(daemon: DaemonProcess, client: OscClient, request_id: str, stage: str) -> str:
    """Ask for :data:`LONG_RENDER`; return the job id once it is at ``stage``.

    ``stage``: ``"generating"`` (the generation worker is at work), or
    ``"rendering"`` (audio being rendered: progress past 0.5).
    """
    client.send("/band/generate", *generate_args(id=request_id, **LONG_RENDER))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        address, args = client.receive(timeout=deadline - time.monotonic())
        if address == "/band/error":
            pytest.fail(f"refused: {args}")
        if address == "/band/job" and args[3] == request_id:
            assert args[1] in ("queued", "generating", "rendering"), (args, daemon.log_text())
            if args[1] == stage and (stage == "generating" or args[2] > 0.5):
                return args[0]
    pytest.fail(f"the job did not reach {stage}:\n" + daemon.log_text())


@pytest.mark.parametrize("stage", ["generating", "rendering"])
def test_sigterm_mid_job_exits_0_within_5_s_and_leaves_no_partial_files(jack_server, tmp_path, stage):
    with DaemonProcess(tmp_path, env=jack_server.env()) as daemon, OscClient(("127.0.0.1", daemon.port)) as client:
        job_id = start_long_job(daemon, client, f"term-{stage}", stage)
        processes = descendants(daemon.proc.pid)
        assert len(processes) >= 3, processes  # forkserver, resource tracker, workers
        code, took = daemon.terminate(signal.SIGTERM)
        print(f"SIGTERM while {stage}: exit {code} after {took:.2f} s")
        assert code == 0, daemon.log_text()
        assert took < 5.0, daemon.log_text()
        assert f"job {job_id} cancelled" in daemon.log_text()
        job_dir = tmp_path / job_id
        left = sorted(p.name for p in job_dir.iterdir()) if job_dir.exists() else []
        assert not [n for n in left if n.endswith(".tmp") or n.endswith(AUDIO_SUFFIXES)], left
        if stage == "rendering":
            assert "full.mid" in left and "job.json" in left  # what the generation finished stays
        deadline = time.monotonic() + 3
        while survivors(processes) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not survivors(processes), (survivors(processes), processes)


@pytest.mark.parametrize("stage", ["generating", "rendering"])
def test_sigkill_mid_job_leaves_no_worker_forkserver_or_resource_tracker(jack_server, tmp_path, stage):
    with DaemonProcess(tmp_path, env=jack_server.env()) as daemon, OscClient(("127.0.0.1", daemon.port)) as client:
        start_long_job(daemon, client, f"kill-{stage}", stage)
        processes = descendants(daemon.proc.pid)
        assert len(processes) >= 3, processes
        daemon.proc.kill()
        daemon.proc.wait(5)
        t0 = time.monotonic()
        while survivors(processes) and time.monotonic() - t0 < 3:
            time.sleep(0.05)
        took = time.monotonic() - t0
        left = survivors(processes)
        for pid in left:  # leave nothing behind for the next test, whatever the outcome
            os.kill(pid, signal.SIGKILL)
        print(f"SIGKILL while {stage}: {len(processes)} processes gone after {took:.2f} s")
        assert not left, f"{len(left)} of {len(processes)} processes outlived the daemon by 3 s"
