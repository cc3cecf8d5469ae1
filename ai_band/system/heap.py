"""Keeping the garbage collector's pauses out of live playback.

CPython's cyclic garbage collector runs in whichever thread happens to
allocate when a generation's threshold is crossed, and holds the GIL for the
whole collection.  A full (generation 2) collection walks every tracked
object: in a daemon that keeps its recent jobs (tens of thousands of
:class:`~ai_band.model.Note` objects each) it took long enough to
make the playback thread's note-ons several milliseconds late, measured with
``bench/tempo_lock.py --render-load`` (``daemon_max_late_ms`` 17-25 ms).

:func:`settle` is called when long-lived objects have just been created (after
start-up, when a job is armed): it collects
what is garbage now, then moves every surviving object to the collector's
permanent generation (:func:`gc.freeze`), so later collections only walk the
objects made since.  Frozen objects are still freed by reference counting
when a job is dropped; only reference cycles among them would outlive it,
and jobs, arrangements and playable jobs hold none.
"""

from __future__ import annotations

import gc
import time
from collections import deque

__all__ = ["GcLog", "settle"]


def settle() -> None:
    """Collect the garbage made since the last call, then freeze the survivors.

    Cost: one collection of the objects made since the previous call (about a
    millisecond for a new 8-part, 64-bar arrangement); the frozen ones are
    not walked.  Call it from the event-loop thread, never from the playback
    thread.
    """
    gc.collect()
    gc.freeze()


class GcLog:
    """Every garbage collection's generation, start and duration, for the diagnostics of late notes.

    Kept with ``[playback] jack_write_log`` (the write log's ``"gc"``): a
    collection holds the GIL, so a JACK process callback that waits for it
    writes late.

    Args:
        size: collections kept (oldest dropped first).
    """

    def __init__(self, size: int = 20_000) -> None:
        self.entries: deque[tuple[int, int, float, int]] = deque(maxlen=size)
        self._started_ns = 0

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started_ns = time.monotonic_ns()
        else:
            now_ns = time.monotonic_ns()
            self.entries.append((info["generation"], self._started_ns,
                                 round((now_ns - self._started_ns) / 1000.0, 1), info["collected"]))

    def install(self) -> GcLog:
        """Start recording (``gc.callbacks``); returns self."""
        gc.callbacks.append(self._callback)
        return self

    def uninstall(self) -> None:
        """Stop recording; idempotent."""
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def record(self) -> list[tuple[int, int, float, int]]:
        """``[(generation, CLOCK_MONOTONIC ns at its start, duration us, objects collected), ...]``, oldest first."""
        return list(self.entries)
