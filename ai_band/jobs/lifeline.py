"""Worker processes live no longer than the daemon, and a stop does not wait for them.

The processes behind the worker pools form a chain: the daemon starts the
``forkserver`` (and multiprocessing's resource tracker); the forkserver forks
the generation and render workers.  Each worker holds the forkserver's
"alive" pipe (CPython sends it to every child it forks), so the forkserver
lives while any worker lives, and all of them hold the resource tracker's
pipe, so it lives while any of them does.  Measured after a SIGKILL of the
daemon mid-render: the forkserver, the tracker and both workers lived on and
the render finished.  The fix makes each link die with the one before it:

- the forkserver dies with the daemon: it imports :mod:`ai_band.jobs.forkserver_lifeline`
  at start (the forkserver's ``preload`` list, set by :func:`start_forkserver`),
  which calls :func:`die_with_parent`;
- every worker dies with the forkserver: the pools' initializers call
  :func:`die_with_parent`;
- the tracker then reads end-of-file on its pipe and exits by itself.

:func:`die_with_parent` is Linux's ``prctl(PR_SET_PDEATHSIG, SIGKILL)``
(prctl(2)) through ctypes; elsewhere a daemon thread polls ``os.getppid()``.
A graceful stop ends the workers with :func:`end_processes` instead of
waiting for their jobs to finish.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import multiprocessing.forkserver
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable

log = logging.getLogger(__name__)

#: prctl(2) option number of ``PR_SET_PDEATHSIG`` (linux/prctl.h).
PR_SET_PDEATHSIG = 1

#: How often the fallback thread (systems without prctl) checks its parent, seconds.
PARENT_POLL_S = 0.25

#: Module the forkserver imports at start: it calls :func:`die_with_parent`.
FORKSERVER_MODULE = "ai_band.jobs.forkserver_lifeline"


def die_with_parent() -> None:
    """Have this process killed (SIGKILL) as soon as its parent process ends.

    On Linux the kernel does it (``PR_SET_PDEATHSIG``: sent when the thread that
    forked this process ends; the forkserver and the daemon's ``start`` fork
    from their main threads).  If the parent already died before the call (the
    process was re-parented), the process exits at once.  Elsewhere, or if
    prctl fails, a daemon thread polls ``os.getppid()`` every
    :data:`PARENT_POLL_S` seconds and kills the process when it changes.
    Never raises.
    """
    parent = os.getppid()
    if parent == 1:
        os._exit(1)  # orphaned already (re-parented to init)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent:  # the parent died between getppid() and prctl()
                    os._exit(1)
                return
            log.debug("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        except (OSError, AttributeError) as exc:
            log.debug("prctl unavailable: %s", exc)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def start_forkserver() -> None:
    """Start multiprocessing's forkserver (if not running) so that it dies with this process.

    Adds :data:`FORKSERVER_MODULE` to the forkserver's preload modules (kept:
    ``__main__``, the default); they are read only when the forkserver starts,
    so call this before anything else starts it.  Idempotent.
    """
    preload = list(getattr(multiprocessing.forkserver._forkserver, "_preload_modules", ["__main__"]))
    if FORKSERVER_MODULE not in preload:
        multiprocessing.forkserver.set_forkserver_preload([*preload, FORKSERVER_MODULE])
    multiprocessing.forkserver.ensure_running()


def _alive(pid: int) -> bool:
    """Whether the process runs: exists and is not a zombie (where ``/proc`` tells; a zombie has ended)."""
    try:
        stat = open(f"/proc/{pid}/stat", "rb").read()  # noqa: SIM115 - tiny read
        return stat[stat.rindex(b")") + 2:][:1] != b"Z"
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return False
    except (OSError, ValueError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


async def end_processes(pids: Iterable[int], grace_s: float = 1.0, poll_s: float = 0.02) -> list[int]:
    """SIGTERM the processes, SIGKILL those still alive after ``grace_s`` seconds; never blocks the loop.

    Args:
        pids: worker process ids (not necessarily this process's children: the
            forkserver's children are reaped by the forkserver).
        grace_s: seconds between SIGTERM and SIGKILL.
        poll_s: how often liveness is checked, seconds.

    Returns:
        The pids that needed SIGKILL.
    """
    pids = [pid for pid in pids if pid]
    _signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while (alive := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
        await asyncio.sleep(poll_s)
    if alive:
        _signal_all(alive, signal.SIGKILL)
        deadline = time.monotonic() + grace_s
        while any(_alive(pid) for pid in alive) and time.monotonic() < deadline:
            await asyncio.sleep(poll_s)
    return alive
