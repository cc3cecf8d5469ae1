"""What every transport source shares: the :class:`SyncSource` base and the :class:`SyncContext` it reads.

A source turns what it follows (``/band/transport`` messages, JACK's
transport, MIDI clock, a Link session, its own clock) into
:class:`~ai_band.transport.TransportSnapshot` s, the one host-clock model
the scheduler plays against: a linear map between CLOCK_MONOTONIC seconds
and host ppq (quarter notes), the bar grid and a ``run`` number that
changes at every discontinuity.  The :class:`~ai_band.sync.manager.SyncManager`
hands the active source's snapshots to the scheduler and renumbers the runs,
so a switch of source is a new run.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from ai_band.errors import SyncError
from ai_band.osc.logs import RateLimit, _suffix
from ai_band.transport import TransportSnapshot

__all__ = ["Publish", "SyncContext", "SyncSource"]

log = logging.getLogger(__name__)

#: Called by a source with each new snapshot, from any thread.
Publish = Callable[[TransportSnapshot], None]


@dataclass
class SyncContext:
    """What a source cannot know by itself, shared by all sources.

    A MIDI clock carries no meter and no bar line, JACK transport without a
    timebase master no tempo: they take these.  ``/band/transport`` (when OSC
    is not the source) and ``/band/tempo`` update them.

    Attributes:
        bpm: the configured tempo, quarter notes per minute (``[sync] bpm``).
        ts_num: time-signature numerator (``[sync] ts_num``, or the plugin's latest).
        ts_den: time-signature denominator, a power of two 1..64.
        jack_client: the daemon's :class:`~ai_band.playback.outputs.jack.JackMidiClient`,
            or ``None`` when the ports are not on JACK.
    """

    bpm: float = 120.0
    ts_num: int = 4
    ts_den: int = 4
    jack_client: Any = None


class SyncSource:
    """Base of a transport source: started by the manager, publishes snapshots, reports its state.

    Subclasses set :attr:`name`, implement :meth:`start` and :meth:`stop`,
    and publish through :meth:`publish`; they may override :meth:`poll`
    (called ~10 times a second on the event loop: timeouts), :meth:`status`
    and the transport commands.

    Args:
        context: the shared :class:`SyncContext`.

    Attributes:
        snapshot: the latest snapshot this source published.
        counters: bad or odd input seen, by kind (shown in ``/band/status``).
    """

    #: The name in ``[sync] source``, ``--sync`` and ``/band/sync``.
    name: ClassVar[str] = ""

    def __init__(self, context: SyncContext) -> None:
        self.context = context
        self.snapshot = TransportSnapshot(bpm=context.bpm, ts_num=context.ts_num, ts_den=context.ts_den)
        self.counters: Counter[str] = Counter()
        self._publish: Publish | None = None
        self._log_limit = RateLimit()
        self._hooked = False  # a process hook of the JACK client (see _attach_process_hook)

    # -- life cycle ------------------------------------------------------------
    def start(self, publish: Publish) -> None:
        """Begin following; publish each new snapshot with ``publish`` (any thread).

        Raises:
            SyncError: the source cannot run here (``sync_unavailable``).
        """
        self._publish = publish

    def stop(self) -> None:
        """Stop following and publishing; idempotent."""
        self._publish = None

    # -- JACK process hook (sources that read JACK in its process callback) ----------
    def _attach_process_hook(self, failure: str) -> None:
        """Add this source as a process hook of the daemon's JACK client (:attr:`SyncContext.jack_client`).

        Raises:
            SyncError: the hook cannot attach (a JACK or port error); the
                source is stopped first and the message starts with ``failure``.
        """
        try:
            self.context.jack_client.add_process_hook(self)
        except Exception as exc:  # MidiPortError and JACK errors: cannot run here
            SyncSource.stop(self)
            raise SyncError(f"{failure}: {exc}") from exc
        self._hooked = True

    def _detach_process_hook(self) -> bool:
        """Remove the hook added by :meth:`_attach_process_hook`; idempotent.

        Returns:
            True when a hook was attached (now removed), False when none was.
        """
        if not self._hooked:
            return False
        self._hooked = False
        client = self.context.jack_client
        if client is not None:
            client.remove_process_hook(self)
        return True

    def publish(self, snapshot: TransportSnapshot) -> None:
        """Keep ``snapshot`` as :attr:`snapshot` and hand it to the manager (if started)."""
        self.snapshot = snapshot
        publish = self._publish
        if publish is not None:
            publish(snapshot)

    def poll(self, now_s: float) -> None:
        """Periodic work on the event loop (~10 Hz): timeouts.  ``now_s`` is CLOCK_MONOTONIC seconds."""

    # -- bad input ----------------------------------------------------------------
    def note(self, kind: str, fmt: str, *args: Any, level: int = logging.WARNING) -> None:
        """Count one event of ``kind`` in :attr:`counters` and log it, at most once per second per kind."""
        self.counters[kind] += 1
        suppressed = self._log_limit.admit((self.name, kind))
        if suppressed is not None:
            log.log(level, "sync %s: " + fmt + _suffix(suppressed), self.name, *args)

    # -- what it knows -------------------------------------------------------------
    @property
    def locked(self) -> bool:
        """The source has what it needs to place the bar grid (e.g. a clock running at a known tempo)."""
        return self.snapshot.playing

    @property
    def jitter_ms(self) -> float | None:
        """Estimated jitter of the source's timing, ms, or ``None`` when it has no such estimate."""
        return None

    def status(self, now_s: float) -> dict:
        """JSON-ready state for ``/band/status``: source, playing, bpm, ppq, bar, meter, locked, jitter, counters."""
        snap = self.snapshot
        return {
            "source": self.name,
            "playing": snap.playing,
            "bpm": round(snap.bpm, 4),
            "ppq": round(snap.ppq_at(now_s), 6),
            "bar_start_ppq": snap.bar_start_ppq,
            "ts": f"{snap.ts_num}/{snap.ts_den}",
            "locked": self.locked,
            "jitter_ms": None if self.jitter_ms is None else round(self.jitter_ms, 4),
            "counters": dict(self.counters),
        }

    # -- commands (only some sources take them) -------------------------------------
    def set_tempo(self, bpm: float) -> None:
        """Set the tempo, quarter notes per minute (``/band/tempo``).

        Raises:
            SyncError: ``wrong_source``: this source follows a tempo, it does not set one.
        """
        raise SyncError(f"the {self.name} source follows its tempo; /band/tempo needs 'internal' or 'link'",
                        code="wrong_source")

    def start_transport(self, ppq: float | None = None) -> None:
        """Start the transport (``/band/start``), at ``ppq`` quarter notes if given, else where it stopped.

        Raises:
            SyncError: ``wrong_source``: this source follows a transport, it does not run one.
        """
        raise SyncError(f"the {self.name} source follows its transport; /band/start needs 'internal' or 'link'",
                        code="wrong_source")

    def stop_transport(self) -> None:
        """Stop the transport (``/band/stop`` with the own clock).

        Raises:
            SyncError: ``wrong_source``: this source follows a transport, it does not run one.
        """
        raise SyncError(f"the {self.name} source follows its transport", code="wrong_source")
