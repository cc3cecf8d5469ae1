"""The :class:`SyncManager`: one active transport source, its snapshots to the scheduler, the clock out.

The manager owns the :class:`~ai_band.sync.osc.OscSource` for good (the
plugin's ``/band/transport`` always reaches it: with another source active
it only keeps the meter in :class:`~ai_band.sync.source.SyncContext`) and
at most one other source, started when chosen and stopped when left.
Snapshots of the active source go to the scheduler; the others' are kept
but not played.  Runs are renumbered: each source counts its own, and a
switch is itself a new run, so the scheduler re-reads the position.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ai_band.errors import BandError, SyncError
from ai_band.sync import SOURCE_CLASSES, SOURCES
from ai_band.sync.osc import OscSource
from ai_band.sync.source import SyncContext, SyncSource
from ai_band.transport import TransportSnapshot, TransportState

__all__ = ["SyncManager"]

log = logging.getLogger(__name__)


class SyncManager:
    """Runs the chosen transport source and hands its snapshots to ``set_transport``.

    Args:
        context: the shared :class:`SyncContext` (config tempo and meter, the JACK client).
        set_transport: where the active source's snapshots go (``Scheduler.set_transport``; any thread).
        osc_source: the :class:`OscSource` fed by ``/band/transport``.
        options: per source name, the keyword options its class takes (from ``[sync]``).
        clock_out: whether to open the MIDI clock output ``ai-band:clock`` (JACK only).

    Thread-safety: :meth:`start`, :meth:`switch`, :meth:`poll` and
    :meth:`stop` run on the event loop; sources may publish from any thread.
    """

    def __init__(self, context: SyncContext, set_transport: Callable[[TransportSnapshot], None],
                 osc_source: OscSource, options: dict[str, dict[str, Any]] | None = None,
                 clock_out: bool = False) -> None:
        self.context = context
        self._set_transport = set_transport
        self.osc = osc_source
        self.options = options or {}
        self.active: SyncSource = osc_source
        self._lock = threading.Lock()  # a publish vs a switch
        self._run = 0
        self._version = 0
        self._seen: tuple[int, int] | None = None  # (id of the source, its run) of the last published snapshot
        #: The snapshot the scheduler plays against (renumbered), for the clock out and the preview.
        self.snapshot = TransportSnapshot(bpm=context.bpm, ts_num=context.ts_num, ts_den=context.ts_den)
        #: Source switches done (``/band/sync``).
        self.switches = 0
        self._want_clock_out = clock_out
        self.clock_out = None

    # -- life cycle --------------------------------------------------------------
    def start(self, source: str) -> None:
        """Start the OSC source, ``source`` if another one, and the clock out.

        Raises:
            SyncError: ``source`` is unknown or cannot run here (the OSC source then stays active).
        """
        self.osc.start(self._publisher(self.osc))
        if self._want_clock_out:
            self._open_clock_out()
        if source != "osc":
            self.switch(source)

    def _open_clock_out(self) -> None:
        jack_client = self.context.jack_client
        if jack_client is None:
            log.warning("MIDI clock out needs JACK ([midi] api = \"jack\"): no clock port")
            return
        try:
            from ai_band.sync.clock_out import ClockOut

            clock_out = ClockOut(lambda: self.snapshot)
            jack_client.add_process_hook(clock_out)
        except (ImportError, BandError) as exc:
            log.error("MIDI clock out not available: %s", exc)
            return
        self.clock_out = clock_out

    def stop(self) -> None:
        """Stop every source and the clock out; idempotent."""
        if self.active is not self.osc:
            self.active.stop()
        self.osc.stop()
        if self.clock_out is not None and self.context.jack_client is not None:
            self.context.jack_client.remove_process_hook(self.clock_out)
            self.clock_out.close()
            self.clock_out = None

    def make_source(self, name: str) -> SyncSource:
        """A new, unstarted source of ``name`` with its options.

        Raises:
            SyncError: ``name`` is not one of :data:`~ai_band.sync.SOURCES` (``bad_value``),
                or its module cannot be imported (``sync_unavailable``).
        """
        if name not in SOURCE_CLASSES:
            raise SyncError(f"unknown sync source {name!r}; one of {', '.join(SOURCES)}", code="bad_value")
        module_name, _, class_name = SOURCE_CLASSES[name].partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except ImportError as exc:
            raise SyncError(f"sync source {name!r} is not available: {exc}") from exc
        return cls(self.context, **self.options.get(name, {}))

    def switch(self, name: str) -> SyncSource:
        """Make ``name`` the active source (``/band/sync``); the same name again is a no-op.

        The new source starts before the old one stops, so a source that
        cannot run leaves the old one playing.

        Raises:
            SyncError: as :meth:`make_source`, or the source's ``start`` failed.
        """
        if name == self.active.name:
            return self.active
        new = self.osc if name == "osc" else self.make_source(name)
        old = self.active
        with self._lock:
            self.active = new
        if new is not self.osc:
            try:
                new.start(self._publisher(new))
            except Exception:
                with self._lock:
                    self.active = old
                raise
        if old is not self.osc:
            old.stop()
        self.switches += 1
        log.info("sync source: %s (was %s)", name, old.name)
        self._forward(new, new.snapshot)
        return new

    # -- snapshots ----------------------------------------------------------------
    def _publisher(self, source: SyncSource) -> Callable[[TransportSnapshot], None]:
        def publish(snapshot: TransportSnapshot) -> None:
            if source is self.active:
                self._forward(source, snapshot)
        return publish

    def _forward(self, source: SyncSource, snapshot: TransportSnapshot) -> None:
        """Renumber ``snapshot`` (run, version) into the manager's sequence and hand it on."""
        with self._lock:
            if source is not self.active:
                return
            key = (id(source), snapshot.run)
            if key != self._seen:
                self._seen = key
                self._run += 1
            self._version += 1
            out = replace(snapshot, run=self._run, version=self._version)
            self.snapshot = out
        self._set_transport(out)

    def on_osc_transport(self, arrival_s: float, state: TransportState) -> tuple[TransportSnapshot, str]:
        """Feed one ``/band/transport`` to the OSC source; returns its snapshot and what happened.

        With another source active the message still updates the meter in the
        context (a MIDI clock has none) and the OSC model, nothing plays by it.
        """
        if self.active is not self.osc:
            self.context.ts_num, self.context.ts_den = state.ts_num, state.ts_den
        return self.osc.feed(arrival_s, state)

    def poll(self, now_s: float | None = None) -> None:
        """Periodic work (~10 Hz, event loop): the sources' timeouts."""
        now_s = time.monotonic() if now_s is None else now_s
        self.osc.poll(now_s)
        if self.active is not self.osc:
            self.active.poll(now_s)

    def status(self, now_s: float | None = None) -> dict:
        """JSON-ready: the active source's state (source, tempo, position, locked, jitter, counters),
        the switches, and the clock out's counters."""
        now_s = time.monotonic() if now_s is None else now_s
        out = self.active.status(now_s)
        out["sources"] = list(SOURCES)
        out["switches"] = self.switches
        if self.clock_out is not None:
            out["clock_out"] = self.clock_out.status()
        return out
