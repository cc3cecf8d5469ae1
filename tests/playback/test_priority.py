"""The daemon's CPU priority: asked for per thread (inherited by later threads), refused without privilege."""

from __future__ import annotations

import os
import resource
import threading
from pathlib import Path

import pytest

from daemon.priority import raise_priority


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
    result = _in_thread(lambda: raise_priority(5))  # raising a nice value is always allowed
    assert result["ok"] is True
    assert result["nice"] == 5
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before


def test_higher_priority_when_allowed_else_a_clear_refusal():
    result = _in_thread(lambda: raise_priority(-10))
    if _may_lower_nice():
        assert result["ok"] is True
        assert result["nice"] == -10
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


def test_threads_started_afterwards_inherit_it():
    def nice_of_child_thread() -> int:
        raise_priority(7)
        seen = []
        child = threading.Thread(target=lambda: seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
        child.start()
        child.join()
        return seen[0]

    assert _in_thread(nice_of_child_thread)["ok"] == 7


def test_every_daemon_thread_runs_at_configured_nice(band):
    if not _may_lower_nice():
        pytest.skip("needs CAP_SYS_NICE or RLIMIT_NICE to lower a nice value")
    # [daemon] nice = -10 by default: set in the main thread before any other thread
    # starts, so the playback thread, the asyncio loop and the JACK client threads all have it.
    nices = _thread_nices(band.proc.pid)
    assert len(nices) >= 4, nices  # main, playback, executor and the JACK client's threads
    assert set(nices.values()) == {-10}, nices
