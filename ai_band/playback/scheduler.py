"""Tempo-locked playback: a dedicated thread that sends each event when the host reaches its ppq.

The event loop never touches MIDI: it hands the scheduler transport
snapshots and commands through a thread-safe queue and an event.  Deadlines
are absolute CLOCK_MONOTONIC times, as mido's ``MidiFile.play`` uses, so
errors never accumulate.

The ports are :class:`~ai_band.playback.output.Output` s, reached only
through that interface.  On JACK they are timed
(:mod:`ai_band.playback.outputs.jack`, :attr:`Output.timed`): the thread
hands each group over ``lookahead_s`` before its deadline, with the deadline,
and the JACK process callback writes it at that frame.  A wake-up of the
thread up to ``lookahead_s`` late then costs nothing.  A transport change
(stop, relocation) takes back what was queued and not yet written; a new
tempo, or a new estimate of the host's clock, moves what was queued to its
new deadline (:meth:`Scheduler._retime`, :meth:`Output.retime`), so a long
lookahead costs no timing when the host changes tempo.  Untimed
ports (python-rtmidi on ALSA or CoreMIDI) send at once: the thread sleeps
until shortly before the deadline, then spins the last stretch (``spin_s``)
so that it is not at the mercy of timer slack.

A job's events form a periodic lattice anchored at the bar line where it was
armed: the event at arrangement offset ``x`` plays at host position
``anchor + k * length + x`` for every integer k.  Following the host is then
arithmetic: after a relocation or a host loop the next event is looked up
from the new position; a tempo change only changes the deadlines.

When the ports' MIDI system goes away (the JACK server stops) the thread
plays on, and the outputs drop and count what it sends.  When it comes back
(:meth:`PortSet.add_listener`) the ports are new, held and silent, and the
thread resumes the playing job at the host's next bar line at least
``lookahead_s`` away, as a job armed there would start: groups before it
are skipped, the job's programs are sent again, nothing is released that
the new server never heard (:meth:`Scheduler._on_restore`).
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from ai_band.model import Arrangement
from ai_band.playback.output import NOTE_OFF, NOTE_ON, PROGRAM_CHANGE, Link, due_ns
from ai_band.playback.ports import PortSet
from ai_band.system.priority import name_thread
from ai_band.transport import TransportSnapshot

log = logging.getLogger(__name__)

#: Offsets closer than this (quarter notes) are one group, dispatched together.
GROUP_EPSILON_PPQ = 1e-6


@dataclass(frozen=True)
class PlayableJob:
    """A job's notes flattened into sorted event groups for the scheduler.

    Attributes:
        job_id: the job's id.
        length_ppq: loop length in quarter notes.
        offsets: sorted distinct event offsets in quarter notes.
        groups: per offset, the events ``(part, midi bytes)``; note-offs first.
        programs: part -> (channel 0..15, GM program 0..127), sent at the job's start.
    """

    job_id: str
    length_ppq: float
    offsets: tuple[float, ...]
    groups: tuple[tuple[tuple[str, tuple[int, int, int]], ...], ...]
    programs: dict[str, tuple[int, int]]

    @classmethod
    def from_arrangement(cls, job_id: str, arrangement: Arrangement) -> "PlayableJob":
        """Flatten an arrangement; note-offs at an offset sort before note-ons there.

        Notes are clipped to the arrangement length so a loop never leaves
        one sounding.
        """
        length = arrangement.length_ppq
        raw: list[tuple[float, int, str, tuple[int, int, int]]] = []
        for part in arrangement.parts:
            ch = part.channel
            for note in part.notes:
                start = round(note.start_ppq, 6)
                end = round(min(note.end_ppq, length), 6)
                if start >= length or end <= start:
                    continue
                raw.append((start, 1, part.name, (NOTE_ON | ch, note.pitch, note.velocity)))
                off_at = end if end < length else 0.0
                raw.append((off_at, 0, part.name, (NOTE_OFF | ch, note.pitch, 0)))
        raw.sort(key=lambda e: (e[0], e[1]))
        offsets: list[float] = []
        groups: list[list[tuple[str, tuple[int, int, int]]]] = []
        for offset, _kind, part, msg in raw:
            if not offsets or offset - offsets[-1] > GROUP_EPSILON_PPQ:
                offsets.append(offset)
                groups.append([])
            groups[-1].append((part, msg))
        return cls(
            job_id=job_id,
            length_ppq=length,
            offsets=tuple(offsets),
            groups=tuple(tuple(g) for g in groups),
            programs={p.name: (p.channel, p.program) for p in arrangement.parts},
        )

    def next_at(self, anchor_ppq: float, cursor_ppq: float) -> tuple[float, int]:
        """First event group at host position >= ``cursor_ppq``.

        Returns:
            ``(host_ppq, group_index)``.  Raises ``ValueError`` for a job without events.
        """
        if not self.offsets:
            raise ValueError("job has no events")
        rel = cursor_ppq - anchor_ppq
        k = math.floor(rel / self.length_ppq)
        off = rel - k * self.length_ppq
        i = bisect.bisect_left(self.offsets, off - GROUP_EPSILON_PPQ / 2)
        if i == len(self.offsets):
            k += 1
            i = 0
        return anchor_ppq + k * self.length_ppq + self.offsets[i], i


@dataclass
class _Slot:
    job: PlayableJob
    anchor_ppq: float | None  # None: armed, waits for the transport to play


#: Groups handed over whose deadline a new snapshot moves by more than this
#: (ns) are moved in the timed outputs' queues; a quarter frame at 48 kHz, so
#: that a note stays on its nearest frame when the JACK client's estimate of
#: its period starts moves (by 3 µs in the median period where it moves, up to
#: ~60 µs, realtime server) and the ``jack`` source re-anchors (issue 16 item 2).
RETIME_MIN_NS = 5_000

#: Lateness bounds (ms) counted in :attr:`SchedulerStats.late_over_ms`, ascending.
LATE_BOUNDS_MS = (0.5, 1.0, 2.0, 5.0)

#: How many of the latest groups later than ``LATE_BOUNDS_MS[0]`` the status lists.
LATE_GROUPS_KEPT = 32


@dataclass
class SchedulerStats:
    """Counters reported in ``/band/status``."""

    groups_sent: int = 0
    notes_on: int = 0
    notes_off_released: int = 0
    late_dropped: int = 0
    max_late_ms: float = 0.0
    late_ms_recent: deque = field(default_factory=lambda: deque(maxlen=256))
    #: Groups sent later than each bound (ms) past their deadline, since start.
    late_over_ms: dict = field(default_factory=lambda: dict.fromkeys(LATE_BOUNDS_MS, 0))
    #: The greatest lateness (ms) of a group whose note-ons were dropped (kept out of :attr:`max_late_ms`).
    max_dropped_late_ms: float = 0.0
    #: The last :data:`LATE_GROUPS_KEPT` groups sent more than ``LATE_BOUNDS_MS[0]`` ms
    #: late: ``(deadline, CLOCK_MONOTONIC s; lateness, ms; note-ons dropped)``.  On JACK
    #: groups are handed over ``lookahead_s`` early, so these are few (1-5 per minute
    #: under render load) and each went out later than it was due.
    late_groups: deque = field(default_factory=lambda: deque(maxlen=LATE_GROUPS_KEPT))
    #: Groups handed over early whose deadline a later snapshot moved (tempo
    #: change, new clock estimate) and that were moved in the queues to match.
    retimed_groups: int = 0


class Scheduler:
    """Plays armed jobs on a :class:`PortSet`, locked to the host transport.

    Args:
        ports: the open virtual ports.
        offset_s: the latency offset of every port, seconds: each group is due
            this much later than its host time (negative: earlier), to line the
            band up with the DAW's or a synth's input latency (``[playback] offset_ms``).
            A port's own offset (:attr:`Output.offset_ns`, timed ports) adds to it.
        late_drop_s: note-ons later than this are skipped rather than sent
            in a burst (after a stall or a relocation).
        spin_s: how long before a deadline the thread stops sleeping and
            spins (untimed ports only).
        lookahead_s: on timed ports, hand each group over this long before
            its deadline (seconds).
        clock: CLOCK_MONOTONIC seconds; injectable for tests.

    Thread-safety: every public method may be called from any thread; only
    the scheduler thread touches the ports while it runs.
    """

    def __init__(
        self,
        ports: PortSet,
        offset_s: float = 0.0,
        late_drop_s: float = 0.025,
        spin_s: float = 0.0015,
        lookahead_s: float = 0.080,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ports = ports
        self.offset_s = offset_s
        self.late_drop_s = late_drop_s
        self.spin_s = 0.0 if ports.timed else spin_s
        self.lookahead_s = lookahead_s if ports.timed else 0.0
        self.clock = clock
        self.stats = SchedulerStats()
        self._snapshot = TransportSnapshot()
        self._commands: deque[tuple] = deque()
        self._wake = threading.Event()
        self._quit = False
        self._thread: threading.Thread | None = None
        #: CLOCK_MONOTONIC s (``time.monotonic``, not ``clock``) when the thread last began a pass
        #: of its loop; read-only outside it.  It wakes at least every 0.1 s, playing or idle, so an
        #: older value means a stalled thread (the systemd watchdog reads it, :mod:`ai_band.service`).
        self.heartbeat_s = time.monotonic()
        # State below is owned by the scheduler thread.
        self._seen_run = -1
        self._cursor_ppq = 0.0
        self._current: _Slot | None = None
        self._pending: _Slot | None = None
        self._muted: set[str] = set()
        self._status: dict = {}
        # Groups handed to timed ports and not yet due: (host ppq, deadline in
        # CLOCK_MONOTONIC ns as queued), and the snapshot they were last timed by.
        self._handed: deque[tuple[float, int]] = deque()
        self._handed_snapshot: TransportSnapshot | None = None
        self._restores_seen = ports.restores
        ports.add_listener(self._on_link)

    # -- API for the event loop ---------------------------------------------
    def start(self) -> None:
        """Start the scheduler thread."""
        self._publish_status()
        self._thread = threading.Thread(target=self._run, name="ai-band-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the thread, sending note-offs for everything sounding; idempotent."""
        self._quit = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("scheduler thread did not stop within %.1f s", timeout_s)
            self._thread = None
        self.ports.all_notes_off()

    def set_transport(self, snapshot: TransportSnapshot) -> None:
        """Hand over the latest transport snapshot (replaces the previous one).

        A new run (start, stop, relocation) holds the timed ports' output at
        once, in the caller's thread: what is queued for the old position
        must not be written while this thread wakes up to take it back
        (:meth:`_on_new_run` resumes the output).
        """
        if snapshot.run != self._snapshot.run:
            self.ports.hold()
        self._snapshot = snapshot
        self._wake.set()

    def _command(self, *cmd: object) -> None:
        self._commands.append(cmd)
        self._wake.set()

    def play(self, job: PlayableJob) -> None:
        """Arm ``job``: it starts on the host's next bar line, replacing any playing job there."""
        self._command("play", job)

    def stop_playback(self) -> None:
        """Stop the daemon's playback at once (note-offs sent); the host transport is untouched."""
        self._command("stop")

    def mute(self, part: str, muted: bool) -> None:
        """Mute or unmute a part; muting releases its sounding notes."""
        self._command("mute", part, muted)

    def panic(self) -> None:
        """Note-offs, All Notes Off and All Sound Off on every port and channel."""
        self._command("panic")

    def status(self) -> dict:
        """JSON-ready view: current and pending job, muted parts, counters."""
        return dict(self._status)

    def _on_link(self, link: Link) -> None:
        """The ports' MIDI system went or came back (a back-end thread): wake the thread to take over."""
        self._wake.set()

    # -- scheduler thread ----------------------------------------------------
    def _start_tolerance_ppq(self, snap: TransportSnapshot) -> float:
        return self.late_drop_s * snap.bpm / 60.0

    def _publish_status(self) -> None:
        s = self.stats
        recent = sorted(s.late_ms_recent)
        self._status = {
            "current_job": self._current.job.job_id if self._current else None,
            "pending_job": self._pending.job.job_id if self._pending else None,
            "pending_start_ppq": self._pending.anchor_ppq if self._pending else None,
            "muted": sorted(self._muted),
            "groups_sent": s.groups_sent,
            "notes_on": s.notes_on,
            "late_dropped": s.late_dropped,
            "max_late_ms": round(s.max_late_ms, 3),
            "median_late_ms": round(recent[len(recent) // 2], 3) if recent else None,
            "late_over_ms": {f"{bound:g}": n for bound, n in s.late_over_ms.items()},
            "max_dropped_late_ms": round(s.max_dropped_late_ms, 3),
            "retimed_groups": s.retimed_groups,
            "late_groups": [{"deadline_monotonic_s": round(deadline_s, 6), "late_ms": round(late_ms, 3),
                             "note_ons_dropped": dropped} for deadline_s, late_ms, dropped in list(s.late_groups)],
            "output": self.ports.stats(),
        }

    def _drain_commands(self, snap: TransportSnapshot, now: float) -> None:
        while self._commands:
            cmd = self._commands.popleft()
            name = cmd[0]
            if name == "play":
                job: PlayableJob = cmd[1]
                if not job.offsets:
                    log.warning("job %s has no notes; nothing to play", job.job_id)
                    continue
                anchor = snap.next_bar_ppq(snap.ppq_at(now)) if snap.playing else None
                self._pending = _Slot(job, anchor)
                log.info("job %s armed, starts at ppq %s", job.job_id, anchor)
            elif name == "stop":
                self._current = self._pending = None
                self._handed.clear()  # release_all() takes back what is queued
                self.stats.notes_off_released += self.ports.all_notes_off()
            elif name == "mute":
                part, muted = cmd[1], cmd[2]
                if muted:
                    self._muted.add(part)
                    port = self.ports.get(part)
                    if port is not None:
                        self.stats.notes_off_released += port.all_notes_off()
                else:
                    self._muted.discard(part)
            elif name == "panic":
                self.ports.panic()
        self._publish_status()

    def _on_restore(self, snap: TransportSnapshot, now: float) -> None:
        """The ports came back (new, held, silent): resume the job at the next bar line, then the ports.

        Whatever this thread queued since they came back is taken back (the
        queues keep the reset written first); the cursor moves to the host's
        next bar line at least ``lookahead_s`` (or 10 ms) ahead, so the first
        group there is handed over in time; the playing job's programs are
        sent again at once (the new server's readers may be new synths).
        """
        self._restores_seen = self.ports.restores
        self._handed.clear()
        self.stats.notes_off_released += self.ports.all_notes_off()  # only notes sent since the restore
        self.ports.resume()
        if not snap.playing:
            log.info("MIDI ports restored; playback follows the next transport start")
            return
        margin_ppq = max(self.lookahead_s, 0.010) * snap.bpm / 60.0
        self._cursor_ppq = snap.next_bar_ppq(snap.ppq_at(now) + margin_ppq)
        if self._current is not None:
            for part, (channel, program) in self._current.job.programs.items():
                port = self.ports.get(part)
                if port is not None and channel != 9:
                    port.send((PROGRAM_CHANGE | channel, program))
        log.info("MIDI ports restored; playback resumes at the bar line at ppq %.4f", self._cursor_ppq)

    def _on_new_run(self, snap: TransportSnapshot, now: float) -> None:
        self._handed.clear()  # release_all() takes back what is queued
        self.stats.notes_off_released += self.ports.all_notes_off()
        self.ports.resume()
        self._seen_run = snap.run
        if not snap.playing:
            return
        ppq_now = snap.ppq_at(now)
        self._cursor_ppq = max(snap.run_start_ppq, ppq_now - self._start_tolerance_ppq(snap))
        if self._pending is not None and self._pending.anchor_ppq is None:
            self._pending.anchor_ppq = snap.next_bar_ppq(ppq_now, self._start_tolerance_ppq(snap))
        log.debug("transport run %d at ppq %.4f", snap.run, ppq_now)

    def _next_group(self) -> tuple[float, _Slot, int] | None:
        best: tuple[float, _Slot, int] | None = None
        pending = self._pending
        if self._current is not None:
            ppq, i = self._current.job.next_at(self._current.anchor_ppq, self._cursor_ppq)
            if pending is None or pending.anchor_ppq is None or ppq < pending.anchor_ppq - GROUP_EPSILON_PPQ:
                best = (ppq, self._current, i)
        if pending is not None and pending.anchor_ppq is not None:
            ppq, i = pending.job.next_at(pending.anchor_ppq, max(self._cursor_ppq, pending.anchor_ppq))
            if best is None or ppq < best[0]:
                best = (ppq, pending, i)
        return best

    def _switch_to_pending(self, at_s: float) -> None:
        self.stats.notes_off_released += self.ports.all_notes_off(at_s)
        self._current, self._pending = self._pending, None
        for part, (channel, program) in self._current.job.programs.items():
            port = self.ports.get(part)
            if port is not None and channel != 9:
                port.send((PROGRAM_CHANGE | channel, program), at_s)
        log.info("job %s starts at ppq %.4f", self._current.job.job_id, self._current.anchor_ppq)

    def _dispatch(self, slot: _Slot, index: int, deadline_s: float) -> None:
        """Send group ``index`` of ``slot``, due at ``deadline_s`` (CLOCK_MONOTONIC s)."""
        late_s = max(0.0, self.clock() - deadline_s)
        if slot is self._pending:
            self._switch_to_pending(deadline_s)
        drop_note_ons = late_s > self.late_drop_s
        dropped = 0
        for part, msg in slot.job.groups[index]:
            port = self.ports.get(part)
            if port is None:
                continue
            if msg[0] & 0xF0 == NOTE_ON:
                if drop_note_ons:
                    dropped += 1
                    continue
                if part in self._muted:
                    continue
                self.stats.notes_on += 1
            port.send(msg, deadline_s)
        self.stats.groups_sent += 1
        stats = self.stats
        stats.late_dropped += dropped
        late_ms = late_s * 1000.0
        stats.late_ms_recent.append(late_ms)
        if drop_note_ons:
            stats.max_dropped_late_ms = max(stats.max_dropped_late_ms, late_ms)
        elif late_ms > stats.max_late_ms:
            stats.max_late_ms = late_ms
        for bound in LATE_BOUNDS_MS:
            if late_ms <= bound:
                break
            stats.late_over_ms[bound] += 1
        if late_ms > LATE_BOUNDS_MS[0]:
            stats.late_groups.append((deadline_s, late_ms, dropped))
            self._publish_status()  # at once: a stall's record must not wait for the 16th group

    def _retime(self, snap: TransportSnapshot) -> None:
        """Move the groups handed over and not yet due to their deadlines under ``snap``.

        A group is handed to the JACK client ``lookahead_s`` before its
        deadline; a snapshot that arrives meanwhile (a tempo change, or the
        clock model's new estimate of the host's clock) may move that
        deadline.  Deadlines are monotonic in ppq under every snapshot, so the
        queues stay in time order.
        """
        self._handed_snapshot = snap
        handed = self._forget_due_handed()
        if not handed or not snap.playing:
            return
        moves: dict[int, int] = {}
        for i, (ppq, old_ns) in enumerate(handed):
            new_ns = due_ns(self._deadline_s(snap, ppq))
            if abs(new_ns - old_ns) > RETIME_MIN_NS:
                moves[old_ns] = new_ns
                handed[i] = (ppq, new_ns)
        if moves and self.ports.retime(moves):
            self.stats.retimed_groups += len(moves)

    def _forget_due_handed(self) -> deque[tuple[float, int]]:
        """Drop the handed-over groups now due (written, or being written); return the rest."""
        now_ns = due_ns(self.clock())
        handed = self._handed
        while handed and handed[0][1] <= now_ns:
            handed.popleft()
        return handed

    def _deadline_s(self, snap: TransportSnapshot, ppq: float) -> float:
        """When a group at host ``ppq`` is due under ``snap``: CLOCK_MONOTONIC s, latency offset applied."""
        return snap.time_at(ppq) + self.offset_s

    def _wait(self, timeout_s: float) -> None:
        self._wake.wait(timeout_s)
        self._wake.clear()

    def _step(self) -> None:
        """One pass: react to transport and commands, then wait for or send the next group."""
        snap = self._snapshot
        now = self.clock()
        if snap.run != self._seen_run:
            self._on_new_run(snap, now)
        if self.ports.restores != self._restores_seen:
            self._on_restore(snap, now)
        if self._handed and snap is not self._handed_snapshot:
            self._retime(snap)
        if self._commands:
            self._drain_commands(snap, now)
            return
        if not snap.playing or (self._current is None and self._pending is None):
            self._wait(0.1)
            return
        nxt = self._next_group()
        if nxt is None:
            self._wait(0.1)
            return
        ppq, slot, index = nxt
        deadline = self._deadline_s(snap, ppq)
        hand_over = deadline - self.lookahead_s
        remaining = hand_over - self.clock()
        if remaining > self.spin_s:
            self._wait(min(remaining - self.spin_s, 0.1))
            return
        while self.clock() < hand_over:
            if self._snapshot is not snap or self._commands or self._quit or self.ports.restores != self._restores_seen:
                return
            time.sleep(0)
        self._dispatch(slot, index, deadline)
        self._cursor_ppq = ppq + GROUP_EPSILON_PPQ
        if self.lookahead_s > 0.0:
            self._forget_due_handed().append((ppq, due_ns(deadline)))  # pruned here too: snapshots may not come
            self._handed_snapshot = snap
        if self.stats.groups_sent % 16 == 0:
            self._publish_status()

    def _run(self) -> None:
        name_thread("ai-band-play")
        log.debug("scheduler thread started")
        while not self._quit:
            self.heartbeat_s = time.monotonic()
            try:
                self._step()
            except Exception:  # noqa: BLE001 - never die with notes sounding; drop the job instead
                log.exception("playback failed; releasing notes and dropping the playing job")
                self._current = self._pending = None
                try:
                    self.ports.all_notes_off()
                except Exception:  # noqa: BLE001
                    log.exception("releasing notes failed")
                self._wait(0.1)
        self.ports.all_notes_off()
        log.debug("scheduler thread stopped")
