"""ai_band.jobs.lifeline with real processes: a child dies with its parent; a stop ends workers instead of waiting."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ai_band.jobs.lifeline import end_processes
from ai_band.jobs.manager import JobManager
from ai_band.request import parse_request

#: A parent that starts a child calling die_with_parent() (with prctl, or with the fallback
#: thread when argv[1] is "poll"), prints the child's pid, then waits to be killed.
PARENT = r"""
import os, sys, time
from ai_band.jobs import lifeline
if sys.argv[1] == "poll":
    sys.platform = "other"  # no prctl: the getppid() thread
pid = os.fork()
if pid == 0:
    lifeline.die_with_parent()
    time.sleep(60)
    os._exit(0)
print(pid, flush=True)
time.sleep(60)
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("mode", ["prctl", "poll"])
def test_a_child_dies_with_its_parent(mode):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    parent = subprocess.Popen([sys.executable, "-c", PARENT, mode], stdout=subprocess.PIPE, text=True, env=env)
    child = int(parent.stdout.readline())
    time.sleep(0.3)  # the child has called die_with_parent()
    assert not _gone(child)
    parent.kill()
    parent.wait(5)
    deadline = time.monotonic() + 2
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    if not _gone(child):
        os.kill(child, signal.SIGKILL)
        pytest.fail(f"the child outlived its parent ({mode})")


def test_end_processes_kills_what_ignores_sigterm():
    stubborn = subprocess.Popen([sys.executable, "-c",
                                 "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(60)"],
                                stdout=subprocess.PIPE)
    polite = subprocess.Popen([sys.executable, "-c", "import time; print(1, flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE)
    stubborn.stdout.readline(), polite.stdout.readline()  # both running, handlers set
    t0 = time.monotonic()
    killed = asyncio.run(end_processes([stubborn.pid, polite.pid], grace_s=0.3))
    took = time.monotonic() - t0
    assert killed == [stubborn.pid]
    assert stubborn.wait(1) == -signal.SIGKILL and polite.wait(1) == -signal.SIGTERM
    assert took < 1.0


def test_close_during_a_render_interrupts_it_at_once_and_removes_its_unfinished_files(tmp_path):
    fields = {"chords": "| C | Am | F | G |", "style": "rock", "bars": 128, "seed": 3, "render": "wav", "stems": 1,
              "parts": "drums,bass,keys,pad,melody,arp,guitar,strings"}

    async def run():
        jobs = JobManager(tmp_path, workers=1)
        await jobs.start()
        job = jobs.submit(parse_request(fields))
        for _ in range(1200):
            if job.state == "rendering" and job.progress > 0.5 or job.state in ("done", "failed"):
                break
            await asyncio.sleep(0.05)
        assert job.state == "rendering", (job.state, job.error)
        t0 = time.monotonic()
        await jobs.close()
        return job, time.monotonic() - t0

    job, took = asyncio.run(run())
    assert job.state == "interrupted" and job.error[0] == "interrupted"
    assert took < 2.0
    left = sorted(p.name for p in (tmp_path / job.job_id).iterdir())
    assert not [n for n in left if n.endswith((".tmp", ".wav"))], left
    assert "full.mid" in left
