"""CPU priority and placement: the daemon's threads up, its worker processes down.

Up: :func:`raise_priority` (nice), :func:`make_realtime` (``SCHED_FIFO`` for
the JACK process thread), :func:`pin_threads` (the CPUs the workers leave).
Down: :func:`demote_process` and :func:`yield_cpu` put a generation or render
worker on the workers' CPUs (:func:`split_cpus`), under ``SCHED_IDLE`` and in
the idle I/O class.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

__all__ = ["SWITCH_INTERVAL_S", "demote_process", "idle_io", "make_realtime", "name_thread", "pin_threads",
           "raise_priority", "refuse_numpy_hugepages", "set_numpy_hugepages", "split_cpus", "usable_cpus",
           "yield_cpu"]

log = logging.getLogger(__name__)

#: GIL switch interval for the daemon (``sys.setswitchinterval``), s: the
#: longest a busy thread running Python keeps the GIL while the JACK process
#: callback or the scheduler thread waits for it. CPython's default, 5 ms, is
#: more than three 64-frame periods at 48 kHz, and would delay a MIDI event
#: by as much.
SWITCH_INTERVAL_S = 0.0005


def raise_priority(nice: int) -> bool:
    """Give the calling thread, and the threads it starts afterwards, the CPU priority ``nice``.

    The daemon calls it before it starts any thread; the test rig's MIDI
    recorder process does too (:mod:`ai_band.testing.recorder_process`).
    On Linux a nice value belongs to a thread (``setpriority(PRIO_PROCESS,
    tid)``) and new threads inherit it, so in the daemon the playback thread,
    the asyncio loop and the JACK client threads of the MIDI ports all get
    it.  All of them, not the playback thread alone: it often waits for the GIL, and a thread holding the GIL at a lower
    priority would make it wait longer (priority inversion).  Generation and
    render workers drop to ``SCHED_IDLE`` in their initializer regardless.

    Under the kernel's fair scheduler a thread at nice -10 weighs about ten
    times one at 0, so it gets a CPU ahead of ordinary work when it wakes for
    a deadline.  Measured with ``bench/tempo_lock.py --render-load`` at nice
    0, the playback thread waited up to 25 ms in the run queue.  Lowering a
    nice value needs ``CAP_SYS_NICE`` or an ``RLIMIT_NICE`` (systemd:
    ``LimitNICE=``); without it the priority stays as it is and a line is logged.

    Args:
        nice: the nice value to ask for, -20 (highest priority) .. 19.

    Returns:
        True if the priority was set.
    """
    if not hasattr(os, "setpriority"):
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError as exc:
        log.info("CPU priority stays as it is (nice %d refused: %s); allow it with "
                 "CAP_SYS_NICE or LimitNICE=%d in the systemd unit", nice, exc.strerror, nice)
        return False
    log.debug("this thread and the threads it starts run at nice %d", nice)
    return True


_POLICY_NAMES = {getattr(os, name): name for name in ("SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH",
                                                       "SCHED_IDLE") if hasattr(os, name)}


def make_realtime(rtprio: int) -> str:
    """Make the calling thread ``SCHED_FIFO`` at ``rtprio`` (0: leave it) unless it is realtime already.

    The JACK client's process thread calls it (:class:`ai_band.playback.outputs.jack.JackMidiClient`):
    a realtime JACK server makes its clients' threads realtime, one started
    ``--no-realtime`` does not.  Needs ``CAP_SYS_NICE`` or an ``RLIMIT_RTPRIO``
    of at least ``rtprio``; refused, it logs and leaves the thread as it is.

    Args:
        rtprio: ``SCHED_FIFO`` priority, 1..99; 0 = only report.

    Returns:
        The thread's scheduling afterwards, e.g. ``"SCHED_FIFO 10"`` or ``"SCHED_OTHER"``.
    """
    if not hasattr(os, "sched_setscheduler"):
        return "unknown"
    policy = os.sched_getscheduler(0)
    if rtprio > 0 and policy not in (os.SCHED_FIFO, os.SCHED_RR):
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(rtprio))
        except OSError as exc:
            log.info("the JACK process thread stays %s (SCHED_FIFO %d refused: %s); allow it with "
                     "LimitRTPRIO=%d in the systemd unit, or the audio group's rtprio",
                     _POLICY_NAMES.get(policy, policy), rtprio, exc.strerror, rtprio)
        policy = os.sched_getscheduler(0)
    if policy in (os.SCHED_FIFO, os.SCHED_RR):
        return f"{_POLICY_NAMES[policy]} {os.sched_getparam(0).sched_priority}"
    return str(_POLICY_NAMES.get(policy, policy))


def usable_cpus() -> int:
    """How many CPUs this process may run on: its affinity mask (Linux), else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def split_cpus(worker_cpus: int = 0) -> tuple[frozenset[int], frozenset[int]]:
    """Share this process's CPUs between the daemon's threads and its worker processes.

    Args:
        worker_cpus: how many CPUs generation and render workers get (the
            ``[render] cpus`` setting); 0 = all but one (at least one).

    Returns:
        ``(daemon_cpus, worker_cpus)``: the workers get the last CPUs of the
        process's affinity mask, the daemon the others; on one CPU, or where
        the workers take them all, both are the whole mask.  Both are empty
        where CPU affinity is not available (not Linux).
    """
    if not hasattr(os, "sched_getaffinity"):
        return frozenset(), frozenset()
    allowed = sorted(os.sched_getaffinity(0))
    keep = min(len(allowed), worker_cpus if worker_cpus > 0 else max(1, len(allowed) - 1))
    workers = frozenset(allowed[len(allowed) - keep:])
    return frozenset(allowed[:len(allowed) - keep]) or frozenset(allowed), workers


def pin_threads(cpus: frozenset[int]) -> bool:
    """Run the calling thread, and the threads it starts afterwards, on ``cpus`` only.

    The daemon calls it before it starts any thread, with the CPUs its
    workers leave free (:func:`split_cpus`).  Why: Linux places a waking
    thread preferably on a CPU that runs only ``SCHED_IDLE`` tasks, i.e. on a
    render worker's CPU, where it must first preempt the worker; under a
    non-preemptible kernel (``PREEMPT_NONE``), and in a VM, that wake-up can
    come late (our reading of the measurements, not traced in the kernel).
    Measured with ``bench/tempo_lock.py --render-load`` on 2 vCPUs: 3 of 5
    runs met every bound unpinned, 17 of 20 pinned (README, audio section).

    Args:
        cpus: CPU numbers; empty = leave the affinity as it is.

    Returns:
        True if the affinity was set.
    """
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return False
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as exc:
        log.info("CPU affinity stays as it is (%s refused: %s)", sorted(cpus), exc.strerror)
        return False
    log.debug("this thread and the threads it starts run on CPUs %s", sorted(cpus))
    return True


def idle_io(pid: int = 0) -> None:
    """Linux: put process ``pid``'s disk I/O (0: this thread's) in the idle class (``ionice -c3``); best effort.

    A render writes and fsyncs hundreds of MB (mix and stems); in the idle
    class that writeback yields to everything else.  ``ioprio_set(2)`` has no
    Python binding, so it is called through libc.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import platform

        syscall = {"x86_64": 251, "aarch64": 30}.get(platform.machine())
        if syscall is None:
            return
        ioprio_class_idle, ioprio_who_process = 3, 1
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syscall(syscall, ioprio_who_process, pid, ioprio_class_idle << 13) != 0:
            log.debug("ioprio_set failed: errno %d", ctypes.get_errno())
    except OSError as exc:
        log.debug("ioprio_set unavailable: %s", exc)


def demote_process(pid: int, nice: int, cpus: int = 0, worker_cpus: tuple[int, ...] = ()) -> None:
    """Give process ``pid`` (0: the calling thread) a worker's place: the workers' CPUs, ``SCHED_IDLE``, idle I/O.

    Args:
        pid: a process id (for a process with one thread, as a worker just
            started is) or 0 for the calling thread; threads it creates
            afterwards inherit all three.
        nice: the nice value (0..19) used where ``SCHED_IDLE`` is refused.
        cpus: how many CPUs the workers get (``[render] cpus``; 0 = all but one).
        worker_cpus: the workers' CPU numbers, if already chosen: the daemon
            chooses them (:func:`split_cpus`) before it pins itself elsewhere
            (:func:`pin_threads`), so a worker must not take its set from the
            affinity it inherited.  Empty: chosen from ``cpus``.

    Best effort: what the system refuses is logged at debug level and left.
    See :func:`yield_cpu` for why.
    """
    if hasattr(os, "sched_setaffinity"):
        chosen = set(worker_cpus) if worker_cpus else set(split_cpus(cpus)[1])
        try:
            os.sched_setaffinity(pid, chosen)
        except OSError as exc:
            log.debug("could not restrict the worker's CPUs: %s", exc)
    idle_io(pid)
    try:
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
        return
    except (AttributeError, OSError) as exc:
        log.debug("SCHED_IDLE unavailable (%s); using nice %d", exc, nice)
    try:
        # Absolute, not os.nice()'s increment: the worker may have inherited the daemon's -10.
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError:
        pass


def yield_cpu(nice: int, cpus: int = 0, worker_cpus: tuple[int, ...] = ()) -> None:
    """Make this worker (and the threads it starts later) run only on CPU nobody else wants.

    Two measures, both measured with the tempo-lock benchmark on 2 cores:
    the worker keeps ``cpus`` CPUs (0 = all but one), so one CPU always stays
    free for JACK and the MIDI scheduler; and Linux ``SCHED_IDLE``: the worker
    runs only when no other task wants a CPU and is preempted at once when
    JACK's or the scheduler's threads wake up.  Elsewhere (or if refused) fall
    back to ``nice``.  Threads created afterwards inherit both.  ``worker_cpus``,
    if given, are the CPUs to use (see :func:`demote_process`).  And numpy
    stops marking the worker's arrays for huge pages, which kept the kernel's
    khugepaged busy on the daemon's CPU (:func:`refuse_numpy_hugepages`).

    The initializer of generation and render workers.  The daemon has
    already done the first three from outside the moment the worker started
    (:class:`ai_band.jobs.manager.WorkerContext`); this repeats them for
    workers started some other way.

    Args:
        nice: the nice value (0..19) used where ``SCHED_IDLE`` is refused.
        cpus: how many CPUs the workers get (``[render] cpus``; 0 = all but one).
        worker_cpus: the workers' CPU numbers, if already chosen.
    """
    refuse_numpy_hugepages()
    demote_process(0, nice, cpus, worker_cpus)


def refuse_numpy_hugepages() -> bool:
    """Stop numpy from asking Linux for transparent huge pages in this process; best effort.

    numpy (>= 1.20, on Linux) marks the memory of every large array
    ``madvise(MADV_HUGEPAGE)``.  Where the kernel's THP mode is ``madvise``
    (Debian's default), that puts the process on khugepaged's list, and the
    kernel thread khugepaged later collapses its pages into huge pages, on
    whichever CPU it happens to run, in kernel code that yields only now and
    then.  Traced with ftrace on the 2-vCPU VM named in the README (Linux 6.18,
    ``PREEMPT_NONE``): while a render on the second CPU held ~350 MB of such
    arrays, khugepaged ran 5-8 ms at a stretch on the first, and a
    ``SCHED_FIFO`` thread there (the daemon's or JACK's, were they
    realtime) waited all that time.  Without the mark the pages stay small
    (more page faults, taken by the render process on its own CPU) and
    khugepaged has nothing of ours to do.

    The render and generation workers call it in their initializer, the daemon
    before it starts its components.  numpy's own switch is
    ``NUMPY_MADVISE_HUGEPAGE=0``, read once at import; this sets the same
    flag at run time (``numpy._core.multiarray._set_madvise_hugepage``,
    ``numpy.core`` before numpy 2).

    Returns:
        True if numpy no longer marks its arrays; False where numpy has no
        such switch (not Linux, or numpy < 1.20).
    """
    return set_numpy_hugepages(False)


def set_numpy_hugepages(enabled: bool) -> bool:
    """Turn numpy's huge-page marking of large arrays on or off in this process (Linux).

    See :func:`refuse_numpy_hugepages` for why the daemon turns it off;
    ``bench/cpu_stalls.py`` turns it back on to measure what it costs.

    Args:
        enabled: True = numpy's default (mark large arrays ``MADV_HUGEPAGE``).

    Returns:
        True if the switch was set; False where numpy has none (not Linux,
        or numpy < 1.20).
    """
    if not sys.platform.startswith("linux"):
        return False
    import importlib

    for name in ("numpy._core.multiarray", "numpy.core.multiarray"):  # numpy 2, numpy 1
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        setter = getattr(module, "_set_madvise_hugepage", None)
        if setter is not None:
            setter(enabled)
            return True
    return False


def name_thread(name: str) -> None:
    """Give the calling OS thread a name (Linux ``prctl(PR_SET_NAME)``, 15 bytes at most); best effort.

    Python does not name OS threads, so without it every thread of the daemon
    shows as ``python3`` in ``top -H``, ``ps -L`` and ``/proc/<pid>/task/*/comm``.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_name = 15
        libc.prctl(pr_set_name, name.encode("utf-8")[:15], 0, 0, 0)
    except (OSError, AttributeError) as exc:
        log.debug("cannot name the thread %r: %s", name, exc)
