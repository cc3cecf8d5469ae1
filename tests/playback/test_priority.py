"""The playback thread's CPU priority: asked for per thread, refused without privilege, never fatal."""

from __future__ import annotations

import os
import resource
import threading
from pathlib import Path

import pytest

from daemon.playback.scheduler import raise_thread_priority


def _in_thread(fn):
    result: dict = {}

    def run() -> None:
        result["ok"] = fn()
        result["tid"] = threading.get_native_id()
        result["nice"] = os.getpriority(os.PRIO_PROCESS, result["tid"])

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return result


def _may_lower_nice() -> bool:
    soft, _ = resource.getrlimit(resource.RLIMIT_NICE)
    return os.geteuid() == 0 or soft == resource.RLIM_INFINITY or soft >= 30  # 20 - (-10)


def test_only_the_calling_thread_changes():
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    result = _in_thread(lambda: raise_thread_priority(5))  # raising a nice value is always allowed
    assert result["ok"] is True
    assert result["nice"] == 5
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before


def test_higher_priority_when_allowed_else_a_clear_refusal():
    result = _in_thread(lambda: raise_thread_priority(-10))
    if _may_lower_nice():
        assert result == {**result, "ok": True, "nice": -10}
    else:
        assert result["ok"] is False
        assert result["nice"] == os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _thread_nices(pid: int) -> dict[int, int]:
    """tid -> nice value of every thread of ``pid``."""
    nices = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        nices[int(task.name)] = int(fields[16])  # field 19 of stat: nice
    return nices


def test_daemon_playback_thread_runs_at_configured_nice(band):
    if not _may_lower_nice():
        pytest.skip("needs CAP_SYS_NICE or RLIMIT_NICE to lower a nice value")
    nices = _thread_nices(band.proc.pid)
    # Only the playback thread asks for nice -10 (config default); the main thread,
    # the asyncio loop and the JACK client threads keep the process's priority.
    assert sorted(nices.values()).count(-10) == 1, nices
    assert nices[band.proc.pid] == 0
