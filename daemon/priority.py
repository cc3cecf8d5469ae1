"""CPU priority of the daemon's threads (Linux nice values)."""

from __future__ import annotations

import logging
import os
import threading

__all__ = ["raise_priority"]

log = logging.getLogger(__name__)


def raise_priority(nice: int) -> bool:
    """Give the calling thread, and the threads it starts afterwards, the CPU priority ``nice``.

    The daemon calls it before it starts any thread; the test rig's MIDI
    recorder process does too (:mod:`daemon.devtools.recorder_process`).
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
