"""Jobs survive restarts: the real daemon SIGKILLed at each stage of a job, then started again on the same folder.

Each test runs ``ai-band run`` in its own process (:class:`DaemonProcess`) on
a private JACK server, kills it with a real SIGKILL (or SIGTERM) while a job
is queued, generating, rendering or done, reads the job store (a real SQLite
file) back, checks that no process of the daemon outlived it (``/proc``), and
starts a second daemon on the same output folder: finished jobs are listed
and playable, jobs that were running are ``interrupted`` (or run again with
``[jobs] on_restart = "requeue"``), no ``*.tmp`` is left and no row points at
a missing file.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from ai_band.host import OscClient
from ai_band.testing.daemonproc import DaemonProcess
from tests.conftest import generate_args
from tests.test_service_stop import descendants, survivors

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="scans /proc (Linux)")

PARTS = "drums,bass,keys,pad,melody,arp,guitar,strings"
#: A MIDI job whose generation takes a second or more (the longest arrangement there is).
LONG_GENERATION = dict(chords="| C | Am | F | G |", style="rock", bpm=120, bars=512, seed=3, parts=PARTS)
#: A render of ten seconds or more in a render worker (8 parts, 32 bars, WAV with stems).
LONG_RENDER = dict(chords="| C | Am | F | G |", style="rock", bpm=120, bars=32, seed=5, render="wav", stems=1,
                   parts=PARTS)
SMALL = dict(chords="| C | G |", style="rock", bars=4, seed=1)

#: Seconds the daemon's processes get to be gone after it ends (see :meth:`Session.kill`).
EXIT_WAIT_S = 15.0


def _describe(pid: int) -> str:
    """A live process's command line, state and pending signals (for a failure message)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
        status = {k: v.strip() for k, _, v in (line.partition(":") for line in
                                              Path(f"/proc/{pid}/status").read_text().splitlines())}
    except OSError:
        return "gone"
    return f"{cmdline!r} state {status.get('State')} pending {status.get('ShdPnd')}/{status.get('SigPnd')}"


class Session:
    """One daemon on ``out`` and an OSC client that has said hello."""

    def __init__(self, jack_server, out: Path, env: dict[str, str] | None = None) -> None:
        self.daemon = DaemonProcess(out, env={**jack_server.env(), **(env or {})}).start()
        self.client = OscClient(("127.0.0.1", self.daemon.port))
        self.client.send("/band/hello", "restart-test", self.client.port)
        self.client.receive("/band/welcome", timeout=5)
        self._kept: list[tuple[str, list]] = []  # messages about other requests (wait_state)

    def generate(self, request_id: str, fields: dict) -> None:
        self.client.send("/band/generate", *generate_args(id=request_id, **fields))

    def wait_state(self, request_id: str, states: tuple[str, ...], timeout_s: float = 120) -> str:
        """Wait for a ``/band/job`` of ``request_id`` in one of ``states``; return the job id.

        Messages about other requests are kept for their own wait: the daemon may
        announce a later request's ``queued`` before an earlier one's ``generating``.
        """
        deadline = time.monotonic() + timeout_s
        kept, self._kept = self._kept, []
        while time.monotonic() < deadline:
            if kept:
                address, args = kept.pop(0)
            else:
                address, args = self.client.receive(timeout=deadline - time.monotonic())
            if address == "/band/error" and args[0] == request_id:
                pytest.fail(f"{request_id} refused: {args}")
            if address != "/band/job" or args[3] != request_id:
                self._kept.append((address, args))
                continue
            if args[1] in states:
                self._kept.extend(kept)
                return args[0]
            assert args[1] not in ("failed", "cancelled"), (args, self.daemon.log_text())
        pytest.fail(f"{request_id} never reached {states}:\n" + self.daemon.log_text())

    def status(self) -> dict:
        self.client.drain()
        self.client.send("/band/status")
        return json.loads(self.client.receive("/band/status", timeout=5)[1][0])

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig``; wait for the daemon to end and for every process it started to be gone.

        They are killed within milliseconds (``PR_SET_PDEATHSIG``), but a
        worker runs at idle priority (``SCHED_IDLE``), and on a machine loaded
        by other work it may wait seconds for the CPU time its exit takes:
        :data:`EXIT_WAIT_S` allows for that.
        """
        processes = descendants(self.daemon.proc.pid)
        assert processes, "the daemon has no worker processes"
        self.client.close()
        if sig == signal.SIGKILL:
            self.daemon.proc.kill()
            self.daemon.proc.wait(5)
        else:
            self.daemon.terminate_cleanly(sig)
        t0 = time.monotonic()
        while survivors(processes) and time.monotonic() < t0 + EXIT_WAIT_S:
            time.sleep(0.05)
        left = {pid: _describe(pid) for pid in survivors(processes)}
        for pid in left:  # leave nothing behind for the next test, whatever the outcome
            os.kill(pid, signal.SIGKILL)
        print(f"{sig.name}: {len(processes)} processes of the daemon gone after {time.monotonic() - t0:.2f} s")
        assert not left, f"{len(left)} of {len(processes)} processes outlived the daemon by {EXIT_WAIT_S} s: {left}"

    def close(self) -> None:
        self.client.close()
        self.daemon.terminate_cleanly()


def stored(out: Path) -> dict[str, tuple[str, str | None, list]]:
    """The job store read with plain sqlite3: ``{job id: (state, error code, files)}``."""
    db = sqlite3.connect(out / "jobs.sqlite3")
    try:
        return {job_id: (state, code, json.loads(files))
                for job_id, state, code, files in db.execute("SELECT id, state, error_code, files FROM jobs")}
    finally:
        db.close()


def stored_state(out: Path, job_id: str, want: str, timeout_s: float = 5.0) -> str | None:
    """The job's stored state once it is ``want``, or the last one seen after ``timeout_s``.

    The store is written by its own thread after the state change the OSC
    client sees (writes stay off the event loop), so a row may trail the event.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        state = stored(out).get(job_id, (None,))[0]
        if state == want or time.monotonic() > deadline:
            return state
        time.sleep(0.02)


def check_consistent(out: Path) -> None:
    """No ``*.tmp`` under ``out``; every file a row lists exists, with the size stored."""
    assert not list(out.rglob("*.tmp"))
    for job_id, (_, _, files) in stored(out).items():
        for _part, path, size in files:
            assert Path(path).stat().st_size == size, (job_id, path)


def plant_tmp(out: Path, job_id: str) -> Path:
    """A ``*.tmp`` as a write cut short by the kill leaves it (the kill may or may not have left a real one)."""
    folder = out / job_id
    folder.mkdir(exist_ok=True)
    temp = folder / "tmpkilled.tmp"
    temp.write_bytes(b"\0" * 4096)
    return temp


def play_is_accepted(session: Session, job_id: str) -> None:
    """``/band/play <job_id>`` is acknowledged and the scheduler arms that job."""
    session.client.send("/band/play", job_id)
    address, args = session.client.receive(timeout=5)
    while address not in ("/band/ack", "/band/error"):
        address, args = session.client.receive(timeout=5)
    assert (address, args[:2]) == ("/band/ack", ["/band/play", job_id]), (address, args)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        playback = session.status()["playback"]
        if job_id in (playback["pending_job"], playback["current_job"]):
            return
        time.sleep(0.05)
    pytest.fail(f"{job_id} was not armed: {playback}")


@pytest.mark.parametrize("stage", ["queued", "generating", "rendering", "done"])
def test_sigkill_at_each_stage_then_restart(jack_server, tmp_path, stage):
    out = tmp_path / "out"
    first = Session(jack_server, out)
    try:
        first.generate("earlier", SMALL)
        earlier = first.wait_state("earlier", ("done",))
        expect = {earlier: "done"}
        if stage == "queued":
            first.generate("big-1", LONG_GENERATION)
            first.generate("big-2", LONG_GENERATION)
            first.generate("waiting", SMALL)
            first.wait_state("big-1", ("generating",))
            victim = first.wait_state("waiting", ("queued",))
            time.sleep(0.3)  # still queued behind two long generations; its row is written
            assert stored_state(out, victim, "queued") == "queued"
        elif stage == "generating":
            first.generate("gen", LONG_GENERATION)
            victim = first.wait_state("gen", ("generating",))
            time.sleep(0.2)
            assert stored_state(out, victim, "generating") == "generating"
        elif stage == "rendering":
            first.generate("render", LONG_RENDER)
            victim = first.wait_state("render", ("rendering",))
            assert stored_state(out, victim, "rendering") == "rendering"
        else:
            first.generate("done", LONG_RENDER | {"bars": 4})
            victim = first.wait_state("done", ("done",))
            time.sleep(0.2)
            assert stored_state(out, victim, "done") == "done"
        expect[victim] = "done" if stage == "done" else "interrupted"
    finally:
        first.kill(signal.SIGKILL)
    temp = plant_tmp(out, victim)
    before = stored(out)
    assert before[earlier][0] == "done"

    second = Session(jack_server, out)
    try:
        assert second.daemon.wait_for_log(r"job store .*: \d+ job\(s\) restored", 5), second.daemon.log_text()
        assert second.daemon.wait_for_log(r"\d+ \*\.tmp file\(s\) swept", 1)
        assert not temp.exists()
        jobs = {job["id"]: job for job in second.status()["jobs"]}
        for job_id, state in expect.items():
            assert jobs[job_id]["state"] == state, jobs[job_id]
        if stage != "done":
            assert jobs[victim]["error"][0] == "interrupted"
            if stage == "rendering":  # the MIDI files the generation finished stay listed
                assert {"full", "job"} <= {part for part, _ in jobs[victim]["files"]}
            second.client.send("/band/play", victim)
            ref, code, message = second.client.receive("/band/error", timeout=5)[1]
            assert (ref, code) == (victim, "unknown_job") and "interrupted" in message
        after = stored(out)
        assert {job_id: after[job_id][0] for job_id in expect} == expect
        check_consistent(out)
        for job_id, state in expect.items():
            if state == "done":
                play_is_accepted(second, job_id)  # the arrangement comes back from arrangement.json
    finally:
        second.close()


def test_sigterm_mid_render_stores_the_job_interrupted_and_the_restart_lists_it(jack_server, tmp_path):
    out = tmp_path / "out"
    first = Session(jack_server, out)
    try:
        first.generate("render", LONG_RENDER)
        victim = first.wait_state("render", ("rendering",))
    finally:
        first.kill(signal.SIGTERM)
    assert stored(out)[victim][:2] == ("interrupted", "interrupted")
    second = Session(jack_server, out)
    try:
        (job,) = [j for j in second.status()["jobs"] if j["id"] == victim]
        assert job["state"] == "interrupted"
        check_consistent(out)
    finally:
        second.close()


def test_requeue_runs_interrupted_jobs_again_after_the_restart(jack_server, tmp_path):
    out = tmp_path / "out"
    first = Session(jack_server, out)
    try:
        first.generate("big", LONG_GENERATION)
        big = first.wait_state("big", ("generating",))
        first.generate("small", SMALL)
        small = first.wait_state("small", ("queued",))
        time.sleep(0.2)
    finally:
        first.kill(signal.SIGKILL)
    assert {job_id: row[0] for job_id, row in stored(out).items()} == {big: "generating", small: "queued"}
    second = Session(jack_server, out, env={"AI_BAND_JOBS_ON_RESTART": "requeue"})
    try:
        assert second.daemon.wait_for_log(r"2 job\(s\) restored \(0 interrupted, 2 queued again", 5)
        second.client.send("/band/cancel", big)  # both run again, in order: let the small one through
        deadline = time.monotonic() + 180  # a loaded machine starves the idle-priority workers
        while time.monotonic() < deadline:
            jobs = {j["id"]: j for j in second.status()["jobs"]}
            if jobs[small]["state"] in ("done", "failed"):
                break
            time.sleep(0.2)
        assert jobs[small]["state"] == "done", (jobs, second.daemon.log_text())
        assert jobs[big]["state"] == "cancelled"
        assert {job_id: row[0] for job_id, row in stored(out).items()} == {big: "cancelled", small: "done"}
        check_consistent(out)
        play_is_accepted(second, small)
    finally:
        second.close()


def test_the_issues_512_bar_render_is_refused_too_large_over_osc(jack_server, tmp_path):
    session = Session(jack_server, tmp_path / "out")
    try:
        session.generate("huge", dict(LONG_GENERATION, render="wav,flac", stems=1))
        ref, code, message = session.client.receive("/band/error", timeout=5)[1]
        assert (ref, code) == ("huge", "too_large")
        assert "MiB of memory" in message and "max_worker_mb" in message
        assert not [p for p in (tmp_path / "out").iterdir() if p.is_dir()]  # nothing started
    finally:
        session.close()
