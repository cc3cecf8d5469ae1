"""The ``internal`` source: the daemon's own clock, for a headless jam with hardware.

The daemon is the master: ``/band/tempo``, ``/band/start`` and ``/band/stop``
(or ``ai-band clock ...``) run its timeline; the MIDI clock out
(:mod:`ai_band.sync.clock_out`) sends it to gear.  A tempo change keeps the
position continuous (the scheduler retimes what it has handed over); start
and stop are new runs.  The bar grid starts at ppq 0 with the meter in the
:class:`~ai_band.sync.source.SyncContext` (``[sync] ts_num``/``ts_den``,
or the plugin's latest ``/band/transport``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace

from ai_band.errors import SyncError
from ai_band.sync.source import Publish, SyncContext, SyncSource
from ai_band.transport import TransportSnapshot

__all__ = ["InternalSource", "BPM_RANGE"]

#: Tempi the own clock runs at, quarter notes per minute (inclusive).
BPM_RANGE = (20.0, 300.0)


class InternalSource(SyncSource):
    """The daemon's own timeline.

    Args:
        context: the shared :class:`SyncContext`: the starting tempo and the meter.
        autostart: start rolling as soon as the source starts (a jam without a controller).
        clock: CLOCK_MONOTONIC seconds; injectable for tests.
    """

    name = "internal"

    def __init__(self, context: SyncContext, autostart: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(context)
        self.autostart = autostart
        self.clock = clock
        self._run = 0

    def start(self, publish: Publish) -> None:
        """Publish the stopped timeline at ppq 0 (rolling at once with ``autostart``)."""
        super().start(publish)
        self.publish(TransportSnapshot(playing=False, bpm=self.context.bpm, anchor_time_s=self.clock(),
                                       ts_num=self.context.ts_num, ts_den=self.context.ts_den, run=self._run))
        if self.autostart:
            self.start_transport()

    @property
    def locked(self) -> bool:
        """Always: the own clock needs nothing from outside."""
        return True

    @property
    def jitter_ms(self) -> float | None:
        """0: the timeline is exact (what the output makes of it is measured at the ports)."""
        return 0.0

    def set_tempo(self, bpm: float) -> None:
        """Change the tempo at once, keeping the position continuous.

        Raises:
            SyncError: ``bad_value``: ``bpm`` outside :data:`BPM_RANGE` or not finite.
        """
        lo, hi = BPM_RANGE
        if not (isinstance(bpm, (int, float)) and math.isfinite(bpm) and lo <= bpm <= hi):
            raise SyncError(f"tempo must be {lo:g}..{hi:g} bpm, got {bpm!r}", code="bad_value")
        now_s = self.clock()
        snap = self.snapshot
        self.context.bpm = float(bpm)
        self.publish(replace(snap, bpm=float(bpm), anchor_time_s=now_s, anchor_ppq=snap.ppq_at(now_s),
                             version=snap.version + 1))

    def start_transport(self, ppq: float | None = None) -> None:
        """Roll from ``ppq`` (quarter notes; default: where it stopped), now; a new run.

        A no-op while rolling unless ``ppq`` is given (a locate).
        """
        snap = self.snapshot
        if snap.playing and ppq is None:
            return
        now_s = self.clock()
        at_ppq = snap.ppq_at(now_s) if ppq is None else float(ppq)
        self._run += 1
        self.publish(TransportSnapshot(playing=True, bpm=snap.bpm, anchor_time_s=now_s, anchor_ppq=at_ppq,
                                       bar_start_ppq=0.0, ts_num=self.context.ts_num, ts_den=self.context.ts_den,
                                       run=self._run, run_start_ppq=at_ppq, version=snap.version + 1))

    def stop_transport(self) -> None:
        """Stop where it is (a new run); a no-op when stopped."""
        snap = self.snapshot
        if not snap.playing:
            return
        now_s = self.clock()
        self._run += 1
        self.publish(replace(snap, playing=False, anchor_time_s=now_s, anchor_ppq=snap.ppq_at(now_s),
                             run=self._run, version=snap.version + 1))
