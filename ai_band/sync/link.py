"""Ableton Link: the band joins a Link session as a peer (``[sync] source = "link"``).

Needs the optional extra ``pip install 'ai-band[link]'``, which installs
`aalink <https://github.com/artfwo/aalink>`_, an asyncio binding of Ableton's
Link library.  Link and aalink are GPL-licensed; the core of ai-band stays
MIT and imports aalink only when this source is chosen.

What the band takes from the session:

* **tempo**: the session tempo, whoever sets it (``/band/tempo`` sets it
  for every peer, :meth:`LinkSource.set_tempo`);
* **beat phase with the bar as quantum**: the quantum is the bar length in
  quarter notes from the context's meter (4/4 -> 4, 6/8 -> 3), so Link aligns
  our bar lines with every peer's bar (phase 0 at multiples of the quantum);
* **start/stop** (Link's start/stop sync, enabled): the band plays while the
  session plays; ``/band/start`` and ``/band/stop`` start and stop the session.

Mapping.  Link's timeline maps Link's host clock to beats; the band's ppq is
Link's beat (quarter notes).  On Linux Link's clock is ``CLOCK_MONOTONIC_RAW``
(``ableton/platforms/Config.hpp``), *not* the CLOCK_MONOTONIC the scheduler
runs on (they differ by an offset, here 0.2 s, and by the NTP slew rate), so
``Link.time`` is never used as a snapshot time.  aalink does not expose
"beat at a given time", only the beat *now*; the source reads the beat
between two ``time.monotonic()`` calls and takes the midpoint (the
uncertainty is half the window, a few microseconds; the shortest of
:data:`READS` windows is kept, more are taken while the thread keeps being
interrupted, and a reading still interrupted for long only counts for a new
tempo or start/stop).  A reading that differs from the published
snapshot's prediction by more than ``drift_s`` (0.1 ms: clock rate
differences, Link's clock-offset refinements) publishes a new anchor in the
same run; a beat further than ``jump_s`` from where any tempo since the
last reading could have taken it (a peer joined and shifted our timeline,
the quantum changed) starts a new run.  A tempo change is no jump, however
late it is read (the loop held up under load).

Change detection.  An asyncio task reads the session every ``interval_s``
(10 ms); aalink's tempo, start/stop and peer-count callbacks (delivered on
the event loop) trigger a reading at once, so a tempo change by another peer
reaches the scheduler within a millisecond or two and the notes already
handed to JACK are retimed.  Nothing is published while nothing changes.

The trap of a new peer taking over the session tempo.  A Link object is
created with an initial tempo; enabling it at once can make the new peer
reset the tempo of the whole session to that initial tempo (Ableton/link
issue 146, aalink issue 7, reproduced on Linux and macOS; a delay of
0.5 s between creating and enabling avoided it, 0.2 s did not).  So this
source (1) creates Link with the configured tempo, which is only the tempo
of its own timeline while it is alone, (2) enables it ``join_delay_s``
(0.5 s) later, (3) never commits a tempo, a start/stop or a beat of its own
when it joins: it only follows, and writes to the session only on an
explicit ``/band/tempo``, ``/band/start`` or ``/band/stop``; those are
refused (``not_ready``) until ``settle_s`` after enabling, when the session
has been discovered and joined.  Peers that leave are counted
(``peers_left`` in ``/band/status``) and logged at most once a second; the
band keeps playing on the session timeline it has (Link keeps it running).

What Link does not tell a peer that joins.  A session that is *already
playing* when the band joins stays "stopped" for the band until some peer
starts or stops it again (or ``/band/start``): Link passes on a peer's
start/stop state only when it differs from the one last seen from that peer,
and it first sees it before the join completes, while the state still
belongs to another session, so it is dropped, and the join then resets the
state (Link 3.1, ``Peers.hpp`` ``sawPeerOnGateway``, ``Controller.hpp``
``joinSession``; seen with aalink 0.2.3 here: still stopped 10 s after
joining a playing session).  With ``start_stop_sync = false`` the band plays
on the session timeline at all times instead.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import replace
from typing import Any

from ai_band.errors import SyncError
from ai_band.model import TimeSignature
from ai_band.sync.source import Publish, SyncContext, SyncSource

__all__ = ["LinkSource", "MIN_BPM", "MAX_BPM"]

log = logging.getLogger(__name__)

#: Link's tempo range, quarter notes per minute (Link clamps to it: ``ableton/link/Tempo.hpp``).
MIN_BPM = 20.0
MAX_BPM = 999.0

#: Beat readings per check; the one taken in the shortest window is kept...
READS = 3
#: ... and up to this many while none took less than GOOD_WINDOW_S (the thread was interrupted).
MAX_READS = 12
GOOD_WINDOW_S = 20e-6
#: A reading whose best window is over twice this (s; half-width) moves the map only with a new tempo or state.
MAX_WINDOW_S = 100e-6

_INSTALL_HINT = "the link source needs the aalink binding of Ableton Link: pip install 'ai-band[link]'"


def _import_link() -> Any:
    """aalink's ``Link`` class.

    Raises:
        SyncError: ``sync_unavailable``: aalink is not installed (or does not load).
    """
    try:
        from aalink import Link
    except ImportError as exc:
        raise SyncError(f"{_INSTALL_HINT} ({exc})", code="sync_unavailable") from exc
    return Link


class LinkSource(SyncSource):
    """Follows an Ableton Link session: tempo, bar phase, start/stop; sets them on command.

    Args:
        context: the shared :class:`~ai_band.sync.source.SyncContext`: ``bpm``
            is the tempo of the source's own timeline while no other peer is
            there (never pushed to a session it joins), ``ts_num``/``ts_den``
            give the quantum (bar length in quarter notes).
        interval_s: seconds between readings of the session (> 0, default 0.01).
        drift_s: a reading further than this from the published mapping
            (seconds) publishes a new anchor (default 0.0001).
        jump_s: a reading further than this from the published mapping
            (seconds) is a discontinuity: a new run (default 0.01).
        join_delay_s: seconds between creating the Link object and enabling
            it (the tempo trap above; default 0.5).
        settle_s: seconds after enabling before ``/band/tempo``,
            ``/band/start``, ``/band/stop`` are taken (default 1.0).
        start_stop_sync: follow and send Link's start/stop state (default
            True); when False the band plays on the timeline at all times.

    Raises:
        ValueError: an option out of range (the manager reports it as a config error).
    """

    name = "link"

    def __init__(
        self,
        context: SyncContext,
        *,
        interval_s: float = 0.01,
        drift_s: float = 0.0001,
        jump_s: float = 0.01,
        join_delay_s: float = 0.5,
        settle_s: float = 1.0,
        start_stop_sync: bool = True,
    ) -> None:
        super().__init__(context)
        for key, value, low in (("interval_s", interval_s, 0.0), ("drift_s", drift_s, 0.0),
                                ("jump_s", jump_s, 0.0)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > low):
                raise ValueError(f"link option {key} must be a number > {low:g}, not {value!r}")
        for key, value in (("join_delay_s", join_delay_s), ("settle_s", settle_s)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0.0):
                raise ValueError(f"link option {key} must be a number >= 0, not {value!r}")
        if jump_s <= drift_s:
            raise ValueError(f"link option jump_s ({jump_s}) must exceed drift_s ({drift_s})")
        self.interval_s = float(interval_s)
        self.drift_s = float(drift_s)
        self.jump_s = float(jump_s)
        self.join_delay_s = float(join_delay_s)
        self.settle_s = float(settle_s)
        self.start_stop_sync = bool(start_stop_sync)
        self._link: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._enable_handle: asyncio.TimerHandle | None = None
        self._enabled_at_s: float | None = None
        self._num_peers = 0
        self._quantum = 0.0
        self._window_s: float | None = None  # half-width of the last reading's window, s
        self._last: tuple[float, float, float] | None = None  # last reading: (time_s, beat, tempo)

    # -- life cycle ------------------------------------------------------------
    def start(self, publish: Publish) -> None:
        """Create the Link peer (enabled ``join_delay_s`` later) and follow it; call from the event loop.

        Raises:
            SyncError: ``sync_unavailable``: aalink is missing, or no event loop runs in this thread.
        """
        link_cls = _import_link()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError as exc:
            raise SyncError("the link source must be started from the running event loop",
                            code="sync_unavailable") from exc
        if self._link is not None:
            self.stop()
        super().start(publish)
        bpm = min(max(float(self.context.bpm), MIN_BPM), MAX_BPM)
        link = link_cls(bpm)  # aalink takes the running loop for its callbacks and sync futures
        self._quantum = self._context_quantum()
        link.quantum = self._quantum
        link.start_stop_sync_enabled = self.start_stop_sync
        link.add_tempo_callback(self._on_link_event)
        link.add_start_stop_callback(self._on_link_event)
        link.add_num_peers_callback(self._on_num_peers)
        self._link, self._loop = link, loop
        self._num_peers = 0
        self._enabled_at_s = None
        self._last = None
        # First snapshot: our own timeline, at once (the scheduler has a grid before the join).
        self._check(force_run=True)
        self._enable_handle = loop.call_later(self.join_delay_s, self._enable)
        self._task = loop.create_task(self._follow(), name="ai-band-link")

    def _enable(self) -> None:
        self._enable_handle = None
        if self._link is None:
            return
        self._link.enabled = True
        self._enabled_at_s = time.monotonic()
        log.info("link: enabled (quantum %g quarter notes); joining any session on the network", self._quantum)

    def stop(self) -> None:
        """Leave the session (Link disabled and released) and stop publishing; idempotent."""
        super().stop()
        if self._enable_handle is not None:
            self._enable_handle.cancel()
            self._enable_handle = None
        if self._task is not None:
            self._task.cancel()
            self._task = None
        link, self._link = self._link, None
        if link is not None:
            link.remove_tempo_callback(self._on_link_event)
            link.remove_start_stop_callback(self._on_link_event)
            link.remove_num_peers_callback(self._on_num_peers)
            link.enabled = False
            del link  # aalink's destructor joins its threads (with the interpreter lock released)
        self._enabled_at_s = None

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self._check()
            except Exception as exc:  # noqa: BLE001 - a reading must never end following
                self.note("read_errors", "reading the session failed: %s: %s", type(exc).__name__, exc,
                          level=logging.ERROR)

    # -- callbacks (on the event loop, through aalink's call_soon_threadsafe) -----
    def _on_link_event(self, _value: object) -> None:
        if self._link is not None:
            self._check()

    def _on_num_peers(self, num_peers: int) -> None:
        previous, self._num_peers = self._num_peers, int(num_peers)
        if self._num_peers < previous:
            self.note("peers_left", "%d peer(s) left the session, %d remain; playing on the session timeline",
                      previous - self._num_peers, self._num_peers, level=logging.INFO)
        elif self._num_peers > previous:
            self.counters["peers_joined"] += self._num_peers - previous
            log.info("link: %d peer(s) in the session", self._num_peers)
        if self._link is not None:
            self._check()

    # -- reading the session --------------------------------------------------------
    def _context_quantum(self) -> float:
        return TimeSignature(self.context.ts_num, self.context.ts_den).bar_length_ppq

    def _read(self) -> tuple[float, float, float, bool]:
        """One reading of the session: ``(time_s, beat, tempo_bpm, playing)``.

        ``time_s`` is CLOCK_MONOTONIC seconds at which Link was at ``beat``:
        the midpoint of the shortest of up to :data:`MAX_READS` windows
        (at least :data:`READS`; more while the thread keeps being
        interrupted, until one is under :data:`GOOD_WINDOW_S`), less half a
        microsecond (Link's clock truncates to whole microseconds).
        """
        link = self._link
        best_window = math.inf
        best_time_s = best_beat = 0.0
        for i in range(MAX_READS):
            t1 = time.monotonic()
            beat = link.beat
            t2 = time.monotonic()
            if t2 - t1 < best_window:
                best_window, best_time_s, best_beat = t2 - t1, (t1 + t2) / 2.0 - 0.5e-6, beat
            if i + 1 >= READS and best_window < GOOD_WINDOW_S:
                break
        self._window_s = best_window / 2.0
        return best_time_s, best_beat, link.tempo, (link.playing if self.start_stop_sync else True)

    def _check(self, force_run: bool = False) -> None:
        """Read the session; publish a snapshot when the tempo, playing, meter or mapping changed."""
        if self._link is None:
            return
        quantum = self._context_quantum()
        meter_changed = quantum != self._quantum
        if meter_changed:
            self._quantum = quantum
            self._link.quantum = quantum
        time_s, beat, tempo, playing = self._read()
        last, self._last = self._last, (time_s, beat, tempo)
        prev = self.snapshot
        ts = (self.context.ts_num, self.context.ts_den)
        new_run = force_run or meter_changed or playing != prev.playing or ts != (prev.ts_num, prev.ts_den)
        error_s = 0.0
        if not new_run:
            # Link's timeline runs while stopped too: compare against the running map either way.
            predicted = prev.anchor_ppq + (time_s - prev.anchor_time_s) * prev.bpm / 60.0
            error_s = (beat - predicted) * 60.0 / tempo
            # A jump is a beat that no tempo change since the last reading explains: the change
            # came at some moment in between, so the beat lies between the old and the new
            # tempo's continuation of that reading (a late reading, the loop held up, is no jump).
            last_time_s, last_beat, last_tempo = last if last is not None else (prev.anchor_time_s,
                                                                                  prev.anchor_ppq, prev.bpm)
            low, high = sorted(last_beat + (time_s - last_time_s) * bpm / 60.0 for bpm in (last_tempo, tempo))
            outside = max(low - beat, beat - high, 0.0) * 60.0 / tempo
            if outside > self.jump_s:
                new_run = True
                self.note("phase_jumps", "the session timeline jumped by %.2f ms (a peer joined or the quantum "
                          "changed); new run", error_s * 1000.0, level=logging.INFO)
            elif self._window_s > MAX_WINDOW_S and abs(tempo - prev.bpm) <= 1e-9:
                return  # a reading interrupted too long to move the map by; the next one will do
        tempo_changed = abs(tempo - prev.bpm) > 1e-9
        if not (new_run or tempo_changed or abs(error_s) > self.drift_s):
            return
        if tempo_changed and not new_run:
            self.counters["tempo_changes"] += 1
        bar_start_ppq = math.floor(beat / quantum + 1e-9) * quantum
        snap = replace(
            prev,
            playing=playing,
            bpm=tempo,
            anchor_time_s=time_s,
            anchor_ppq=beat,
            bar_start_ppq=bar_start_ppq,
            ts_num=ts[0],
            ts_den=ts[1],
            run=prev.run + (1 if new_run else 0),
            run_start_ppq=beat if new_run else prev.run_start_ppq,
            version=prev.version + 1,
        )
        self.publish(snap)

    def poll(self, now_s: float) -> None:
        """Nothing to time out: the task and Link's callbacks follow the session (see the module doc)."""

    # -- what it knows -------------------------------------------------------------
    @property
    def locked(self) -> bool:
        """Link is enabled: the session's timeline places the bar grid (alone or with peers)."""
        return self._enabled_at_s is not None

    @property
    def jitter_ms(self) -> float | None:
        """Half the window of the last beat reading, ms: how well the snapshot time is known."""
        return None if self._window_s is None else self._window_s * 1000.0

    @property
    def num_peers(self) -> int:
        """Other peers in the session (0 when alone or not enabled)."""
        return self._num_peers

    def status(self, now_s: float) -> dict:
        """The base status plus ``peers``, ``quantum``, ``enabled`` and ``start_stop_sync``."""
        out = super().status(now_s)
        out.update(peers=self._num_peers, quantum=self._quantum, enabled=self._enabled_at_s is not None,
                   start_stop_sync=self.start_stop_sync)
        return out

    # -- commands ------------------------------------------------------------------------
    def _ready(self, what: str) -> Any:
        link = self._link
        if link is None:
            raise SyncError(f"the link source is not running; {what} needs it started", code="not_ready")
        if self._enabled_at_s is None or time.monotonic() - self._enabled_at_s < self.settle_s:
            raise SyncError(f"the link source is still joining the session; retry {what} in a second "
                            "(a new peer must not override the session before it has joined it)", code="not_ready")
        return link

    def set_tempo(self, bpm: float) -> None:
        """Set the session tempo for every peer, quarter notes per minute.

        Raises:
            SyncError: ``bad_value``: ``bpm`` outside 20..999 (Link's range);
                ``not_ready``: not started, or still joining (``settle_s``).
        """
        if not (isinstance(bpm, (int, float)) and MIN_BPM <= bpm <= MAX_BPM):
            raise SyncError(f"tempo must be {MIN_BPM:g}..{MAX_BPM:g} bpm, not {bpm!r}", code="bad_value")
        self._ready("/band/tempo").tempo = float(bpm)
        self._check()

    def start_transport(self) -> None:
        """Start the session's transport (Link start/stop sync): every peer that follows it starts.

        Raises:
            SyncError: ``wrong_source`` when ``start_stop_sync`` is off; ``not_ready`` as for :meth:`set_tempo`.
        """
        self._set_playing(True, "/band/start")

    def stop_transport(self) -> None:
        """Stop the session's transport (Link start/stop sync).

        Raises:
            SyncError: ``wrong_source`` when ``start_stop_sync`` is off; ``not_ready`` as for :meth:`set_tempo`.
        """
        self._set_playing(False, "/band/stop")

    def _set_playing(self, playing: bool, what: str) -> None:
        if not self.start_stop_sync:
            raise SyncError(f"{what}: Link start/stop sync is off ([sync] link_start_stop_sync = false); "
                            "the band plays on the session timeline", code="wrong_source")
        self._ready(what).playing = playing
        self._check()
