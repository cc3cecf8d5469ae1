"""The daemon's CPU priority: asked for per thread (inherited by later threads), refused without privilege."""

from __future__ import annotations

import os
import resource
import threading
from pathlib import Path

import pytest

from ai_band.system.priority import name_thread, pin_threads, raise_priority, refuse_numpy_hugepages, split_cpus


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


def test_split_cpus_gives_workers_the_last_cpus_and_the_daemon_the_rest():
    allowed = sorted(os.sched_getaffinity(0))
    daemon_cpus, worker_cpus = split_cpus(0)
    if len(allowed) == 1:
        assert daemon_cpus == worker_cpus == frozenset(allowed)
        return
    assert worker_cpus == frozenset(allowed[-1:])
    assert daemon_cpus == frozenset(allowed[:-1])
    # Workers that take every CPU leave the daemon unpinned (the whole mask).
    assert split_cpus(len(allowed)) == (frozenset(allowed), frozenset(allowed))
    assert split_cpus(999) == (frozenset(allowed), frozenset(allowed))


def test_pin_threads_binds_the_calling_thread_and_its_later_threads():
    allowed = sorted(os.sched_getaffinity(0))
    target = frozenset(allowed[:1])

    def pinned_then_child() -> tuple:
        pin_threads(target)
        seen = []
        child = threading.Thread(target=lambda: seen.append(os.sched_getaffinity(0)))
        child.start()
        child.join()
        return os.sched_getaffinity(0), seen[0]

    own, child = _in_thread(pinned_then_child)["ok"]
    assert own == child == set(target)
    assert os.sched_getaffinity(0) == set(allowed)  # this thread is untouched
    assert pin_threads(frozenset()) is False


def _cpus_allowed(pid: int, tid: int | None = None) -> set[int]:
    path = Path(f"/proc/{pid}/task/{tid}/status") if tid else Path(f"/proc/{pid}/status")
    for line in path.read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            cpus: set[int] = set()
            for part in line.split(":", 1)[1].strip().split(","):
                lo, _, hi = part.partition("-")
                cpus.update(range(int(lo), int(hi or lo) + 1))
            return cpus
    raise AssertionError(f"no Cpus_allowed_list in {path}")


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_daemon_threads_stay_off_the_worker_cpus(band):
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        pytest.skip("one CPU: the daemon and its workers share it")
    daemon_cpus, worker_cpus = set(allowed[:-1]), set(allowed[-1:])
    for tid in _thread_nices(band.proc.pid):
        assert _cpus_allowed(band.proc.pid, tid) == daemon_cpus, tid
    # The generation workers (started after READY=1, warmed up) run on the worker
    # CPU, chosen explicitly: they do not inherit the daemon's mask.
    assert band.wait_for_log(r"generation: \d+ worker process\(es\) ready", timeout_s=30), band.log_text()
    workers = [pid for pid in _descendants(band.proc.pid) if _cpus_allowed(pid) == worker_cpus]
    assert workers, {pid: _cpus_allowed(pid) for pid in _descendants(band.proc.pid)}


def test_name_thread_names_the_os_thread():
    def named() -> str:
        name_thread("ai-band-test-thread-long")
        return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()

    assert _in_thread(named)["ok"] == "ai-band-test-th"  # the kernel keeps 15 bytes


def test_playback_and_jack_threads_are_named(band, osc):
    osc.send("/band/status")  # the JACK thread is named in its first callback: it has run by now
    osc.receive("/band/status", timeout=5.0)
    names = {(Path(f"/proc/{band.proc.pid}/task/{tid}/comm")).read_text().strip() for tid in _thread_nices(band.proc.pid)}
    assert {"ai-band-play", "ai-band-jack"} <= names, names


_HUGEPAGE_PROBE = r"""
import sys
import numpy as np
if sys.argv[1] == "worker":
    from ai_band.system.priority import yield_cpu
    yield_cpu(10)  # the workers' initializer
array = np.ones(16 << 20, dtype=np.uint8)  # numpy marks arrays of 4 MiB and more
address = array.ctypes.data + (8 << 20)  # the middle: numpy marks from the first whole page on
flags = None
for line in open("/proc/self/smaps"):
    head = line.split()[0]
    if "-" in head and all(c in "0123456789abcdef-" for c in head):
        start, end = (int(x, 16) for x in head.split("-"))
        inside = start <= address < end
    elif line.startswith("VmFlags:") and inside:
        flags = line.split()[1:]
print(" ".join(flags))
"""


def _array_vmflags(mode: str) -> list[str]:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _HUGEPAGE_PROBE, mode], capture_output=True, text=True,
                         check=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    return out.stdout.split()


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc")
def test_workers_keep_numpy_arrays_off_khugepaged():
    """numpy marks large arrays MADV_HUGEPAGE ("hg" in smaps); a worker's are not marked."""
    if "hg" not in _array_vmflags("plain"):
        pytest.skip("numpy does not mark arrays for huge pages here (no THP in this kernel?)")
    assert "hg" not in _array_vmflags("worker")


def test_refuse_numpy_hugepages_turns_numpy_s_switch_off():
    multiarray = pytest.importorskip("numpy._core.multiarray")  # numpy 2

    previous = multiarray._set_madvise_hugepage(True)
    try:
        assert refuse_numpy_hugepages() is True
        assert multiarray._set_madvise_hugepage(True) is False  # returns the setting it replaces
    finally:
        multiarray._set_madvise_hugepage(previous)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
def test_worker_processes_start_demoted_before_any_initializer():
    from concurrent.futures import ProcessPoolExecutor

    from ai_band.config import RenderSection
    from ai_band.jobs.manager import WorkerContext

    last_cpu = sorted(os.sched_getaffinity(0))[-1]
    context = WorkerContext(RenderSection(), worker_cpus=(last_cpu,))
    with ProcessPoolExecutor(1, mp_context=context) as pool:  # no initializer: the daemon demotes the worker
        policy = pool.submit(os.sched_getscheduler, 0).result(timeout=60)
        cpus = pool.submit(os.sched_getaffinity, 0).result(timeout=60)
    assert policy == os.SCHED_IDLE
    assert cpus == {last_cpu}
