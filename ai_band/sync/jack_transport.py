"""The ``jack`` source: the band follows the JACK transport, frame-exact.

JACK's transport is one position for every client of a server: rolling or
stopped, the transport frame, and, when some client is *timebase master*
(Ardour, Qtractor, Hydrogen, ...), bar/beat/tick, tempo and meter
(``jack_position_t``).  :class:`JackTransportSource` reads it in the daemon's
own JACK process callback (a :class:`~ai_band.playback.outputs.jack.ProcessHook`
of :class:`~ai_band.playback.outputs.jack.JackMidiClient`), every period,
with ``jack_transport_query`` (realtime-safe; from the process thread it
describes the first frame of the current cycle).  Each snapshot it publishes
is anchored on that period: ``anchor_time_s`` is the period's start as the
client writes its ports (``start_ns``), ``anchor_ppq`` the position at the
period's transport frame.  A note at ``ppq`` is then due
``(ppq - anchor_ppq) / k`` frames after the anchor (``k`` quarter notes per
frame), and the client writes it at the nearest frame: the band is as
frame-exact as the transport.

Position in quarter notes (ppq):

* **With a timebase master** (``JackPositionBBT`` valid), from bar, beat and
  tick: ``ppq = ((bar - 1) * beats_per_bar + beat - 1 + tick / ticks_per_beat)
  * 4 / beat_type``.  JACK's beat is the ``beat_type`` note of the meter
  (``transport.h``: bar, beat "1-based", tick "0 .. ticks_per_beat - 1";
  jack2's ``example-clients/transport.c`` counts beats of ``beat_type`` and
  ``beats_per_minute`` of those beats), so the tempo in quarter notes per
  minute is ``beats_per_minute * 4 / beat_type`` (6/8 at 120 beats per
  minute: 60 quarter notes a minute).  Ardour sets ``beats_per_minute`` from
  its tempo's own note type, which is the meter's in the usual case.  The
  bar is used, not ``bar_start_tick``: Ardour leaves that field unset (its
  ``timebase_callback``: "XXX still need to set bar_start_tick"); the bar
  lines fall on ``(bar - 1) * bar length``.  ``bbt_offset`` is honoured
  (``JackBBTFrameOffset``: the BBT describes a frame that many frames before
  the cycle's).

  The tick is an integer (1920 a beat in Ardour and ``jack_transport``):
  12.5 frames at 120 bpm and 48 kHz, far coarser than a frame.  Masters
  compute it by truncation, so each period says the true position at the
  period's frame lies in ``[bbt, bbt + 1 tick)``.  Within a constant-tempo
  segment the source keeps the intersection of these intervals, carried
  back to the segment's first frame, and plays the middle of it: after a few
  dozen periods the position is known to within a frame.  A period whose
  interval misses the kept one by more than :data:`JUMP_TICKS` ticks and
  :data:`SLIP_PERIODS` periods is a jump of the master's position (a new
  run).  By less: once, a period in which the master's BBT and the frame are
  out of step (around an overrun the engine's frame can move on without the
  master's callback having seen it), skipped; twice in a row, a master that
  does not truncate or drifts (``jack_transport``'s own ``master`` adds
  whole ticks per period and falls behind): the interval starts again from
  that period, counted as ``bbt_drift``.  A BBT repeated unchanged while the
  frame moved on (the master missed a cycle) is skipped too.

* **Without a master**: ``ppq = frame / frame_rate * bpm / 60`` with the
  context's tempo (``[sync] bpm``, ``/band/tempo``), meter from the context,
  bar lines from frame 0.  A tempo change of the context while rolling keeps
  the position continuous; the next start or locate derives it from the
  frame again.

What starts a new run (the scheduler takes back what it queued and re-reads
the position): the transport starting or stopping, a locate or a loop (the
transport frame more than :data:`SLIP_PERIODS` periods from where the frame
time predicts; followed in the period it happens: smaller differences are
the transport slipping against the frame time around a driver overrun, see
:data:`SLIP_PERIODS`), a meter change, a master appearing or going, a jump in the
master's BBT.  A tempo change keeps the position continuous when the master's
BBT agrees (else it is a jump).  Besides those the source publishes only when
the published snapshot would put this period's position more than
:data:`REANCHOR_FRAMES` frames off: the client's estimate of when periods
start moves a little (it follows the earliest of its last 16 wake-ups), and the
tick intervals narrow; the scheduler then moves what it has queued
(``RETIME_MIN_NS`` in :mod:`ai_band.playback.scheduler`).

What bounds the exactness: the JACK output writes a message due at ``t`` at
the frame nearest ``t`` from *its current* estimate of the period's start,
and the source anchors on the estimate of the period it ran in.  When the
estimate moves in between (every few periods by microseconds; by up to
milliseconds when the output starts a new timeline after a driver overrun),
the source re-anchors at the end of that period and the scheduler moves what
it has queued, but the notes written in that very period land off by the
move.  On a quiet machine with a realtime server that keeps the p99 within a
frame; under load (hundreds of overruns a minute) it does not
(``python -m bench.sync_jack``, bench/README.md).  Writing notes due by JACK
frame instead of by time would remove it (not done: the output takes times).

A transport started or moved by someone else cannot be anticipated: notes due
in the first lookahead after a start or a locate are handed over late and go
out late (or dropped after ``late_drop_s``), as with any source.

The process hook only reads and publishes; odd input is counted there in
plain integers and logged from :meth:`JackTransportSource.poll` on the event
loop (``jumps``: the transport started, stopped or jumped again within
:data:`JUMP_BURST_PERIODS` periods of the last time; ``bbt_invalid``: BBT fields out of range, ignored;
``bbt_drift``: see above).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import jack

from ai_band.errors import SyncError
from ai_band.model import TS_DENOMINATORS
from ai_band.sync.source import Publish, SyncContext, SyncSource
from ai_band.transport import TransportSnapshot

__all__ = ["JackTransportSource", "REANCHOR_FRAMES", "JUMP_TICKS"]

#: Republish when the published snapshot puts the current period's position
#: more than this many frames off (time drift of the period estimate, a
#: narrower tick interval).  A quarter frame keeps the nearest frame right.
REANCHOR_FRAMES = 0.25

#: A master's BBT further than this many ticks, and than :data:`SLIP_PERIODS`
#: periods, from what the kept interval allows is a jump of its position (a
#: new run); closer, a period out of step (skipped) or, twice in a row, a
#: master that rounds or drifts (``bbt_drift``: the interval starts again).
JUMP_TICKS = 2.0

#: BBT this close (ticks) to the kept interval agrees with it (float rounding).
BBT_EPSILON_TICKS = 0.01

#: A transport jump within this many periods of the last one is counted as
#: odd input (``jumps``): a transport that jumps every period.
JUMP_BURST_PERIODS = 4

#: Around a driver overrun the JACK frame time and the transport frame fall
#: out of step (JACK2 1.9.21, dummy driver, ``--no-realtime``: for one period
#: by up to 4 periods, then back; or for good, by 1 to 4 periods, when the
#: transport lost cycles the frame time counted).  A difference of at most
#: this many periods is a *slip*: a period that shows it is skipped, and if the
#: next shows the same difference the run goes on from the transport's new
#: place (re-anchored, not a new run).  A larger difference is a locate,
#: followed in the period it shows.  A real locate by less than this
#: (21 ms at 64 frames / 48 kHz) is followed a period late, as a slip.
SLIP_PERIODS = 16

#: Tempo (quarter notes per minute) accepted from a master; outside: ``bbt_invalid``.
MAX_BPM = 1000.0

_ROLLING = jack.ROLLING
_BBT = jack._lib.JackPositionBBT
_BBT_OFFSET = jack._lib.JackBBTFrameOffset

#: What :meth:`JackTransportSource._read_bbt` returns for BBT fields out of range.
_INVALID: Any = object()

#: The transport events :attr:`JackTransportSource.events` counts: starts, stops,
#: locates (and loop jumps), tempo and meter changes, re-anchors, transport
#: glitches and slips against the frame time, master BBT out of step or repeated.
EVENT_KINDS = ("starts", "stops", "locates", "tempo_changes", "meter_changes", "reanchors",
               "glitches", "slips", "bbt_glitches", "bbt_repeated")

#: Messages for the odd-input kinds counted in the process thread.
_ODD_MESSAGES = {
    "jumps": "transport started, stopped or jumped again within %d periods (%d times since the last report)",
    "bbt_invalid": "timebase master's BBT out of range, ignored (%d periods since the last report)",
    "bbt_drift": "timebase master's BBT disagrees with its frames by up to %d ticks; "
                 "position re-read from it (%d times since the last report)",
}


class JackTransportSource(SyncSource):
    """Follows the JACK transport of the daemon's JACK client (see the module docstring).

    Args:
        context: the shared :class:`~ai_band.sync.source.SyncContext`; its
            ``jack_client`` must be the daemon's
            :class:`~ai_band.playback.outputs.jack.JackMidiClient`; its
            ``bpm``, ``ts_num`` and ``ts_den`` are used without a timebase master.

    No options of its own.  Thread-safety: :meth:`process` runs in JACK's
    process thread and publishes from there (the scheduler's
    ``set_transport`` is thread-safe); the rest on the event loop.
    """

    name = "jack"

    def __init__(self, context: SyncContext) -> None:
        super().__init__(context)
        self._client: Any = None  # jack.Client, set by attach()
        self._pos: Any = None  # our own jack_position_t (JACK-Client's is shared with other callers)
        self._rate = 48000
        #: Transport events followed (not odd input), counted in the process thread.  Every key
        #: exists from the start: the process thread never adds one while ``status`` copies them.
        self.events: Counter[str] = Counter(dict.fromkeys(EVENT_KINDS, 0))
        # Odd input counted in the process thread, reported by poll().
        self._odd = {"jumps": 0, "bbt_invalid": 0, "bbt_drift": 0}
        self._odd_reported = dict(self._odd)
        self._drift_ticks_max = 0.0
        self._reset_model()

    # -- life cycle ---------------------------------------------------------------
    def start(self, publish: Publish) -> None:
        """Hook into the daemon's JACK client and follow its transport from the next period.

        Raises:
            SyncError: ``sync_unavailable``: the ports are not on JACK, or the hook cannot attach.
        """
        client = self.context.jack_client
        if client is None or not hasattr(client, "add_process_hook"):
            raise SyncError("the jack source needs the JACK MIDI output ([playback] backend = \"jack\")")
        super().start(publish)
        self._attach_process_hook("cannot follow the JACK transport")

    def stop(self) -> None:
        """Stop following (removes the process hook); idempotent."""
        super().stop()
        self._detach_process_hook()

    # -- ProcessHook ----------------------------------------------------------------
    def attach(self, client: jack.Client) -> None:
        """Take ``client`` (at start and after each JACK restore): a fresh model, a new run at the next period."""
        self._client = None  # the process thread skips periods until the model is fresh
        self._pos = jack._ffi.new("jack_position_t*")
        self._rate = client.samplerate
        self._reset_model()
        self._client = client

    def _reset_model(self) -> None:
        self._last_jf: int | None = None  # JACK frame time of the last period seen
        self._last_tf = 0  # transport frame then
        self._last_rolling = False
        self._last_jump_jf = -(1 << 62)
        # The position model of the current segment: ppq at transport frame _seg_tf lies in
        # [_lo, _hi); _k quarter notes per frame; meter; master or not.
        self._seg_tf = 0
        self._lo = self._hi = 0.0
        self._k = 0.0
        self._tick_qn = 0.0  # one master tick in quarter notes (0: no master)
        self._master = False
        self._ts = (self.context.ts_num, self.context.ts_den)
        self._bpm = self.context.bpm
        self._bar_start_ppq = 0.0
        self._last_bbt: Any = None  # the last valid BBT read (kept over invalid periods)
        self._last_followed: tuple | None = None  # the BBT last fed to _follow_bbt
        self._run_offset = 0  # JACK frame time - transport frame in this run (mod 2**32)
        self._bbt_disagreed = False  # the last BBT followed disagreed with the interval kept
        self._slip = 0  # the small difference from that offset seen in the last period (0: none)

    def process(self, frames: int, frame: int, start_ns: float, writable: bool) -> None:
        """One period (JACK's process thread): read the transport, publish if anything changed."""
        client = self._client
        pos = self._pos
        if client is None or pos is None:
            return
        state = jack._lib.jack_transport_query(client._ptr, pos)
        rolling = state == _ROLLING
        tf = pos.frame
        last_jf = self._last_jf
        first = last_jf is None
        self._last_jf = frame
        bbt = self._read_bbt(pos) if pos.valid & _BBT else None
        if bbt is _INVALID:
            # Out of range: ignored.  With a master, its last segment goes on; else the frame rules.
            bbt = self._last_bbt if self._master else None
        self._last_bbt = bbt
        if first:
            self._begin(rolling, tf, frame, start_ns, bbt)
            self._last_tf, self._last_rolling = tf, rolling
            return
        was_rolling, last_tf = self._last_rolling, self._last_tf
        self._last_tf, self._last_rolling = tf, rolling
        if rolling != was_rolling:
            self.events["starts" if rolling else "stops"] += 1
            self._jumped(frame, frames)
            self._begin(rolling, tf, frame, start_ns, bbt)
            return
        if not rolling:
            if tf != last_tf:
                self.events["locates"] += 1
                self._jumped(frame, frames)
                self._begin(False, tf, frame, start_ns, bbt)
            elif (self._master_changed(bbt) or self._meter_changed(bbt)
                  or abs((bbt[2] if bbt is not None else self.context.bpm) - self._bpm) > 1e-9):
                self._begin(False, tf, frame, start_ns, bbt)  # what a start would play from
            return
        diff = ((frame - tf - self._run_offset + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
        if diff:
            if abs(diff) > SLIP_PERIODS * frames:
                self.events["locates"] += 1
                self._jumped(frame, frames)
                self._begin(True, tf, frame, start_ns, bbt)
                return
            if diff != self._slip:
                # Out of step with the frame time by a little: wait a period (a glitch that reverts).
                self._slip = diff
                self.events["glitches"] += 1
                return
            # The same for two periods: the transport slipped (it lost or gained periods against
            # the frame time around an overrun): the same run, re-anchored.
            self.events["slips"] += 1
            self._run_offset = (frame - tf) & 0xFFFFFFFF
        self._slip = 0
        if self._master_changed(bbt) or self._meter_changed(bbt):
            if bbt is not None and self._meter_changed(bbt) and not self._master_changed(bbt):
                self.events["meter_changes"] += 1
            self._begin(True, tf, frame, start_ns, bbt)
            return
        if bbt is not None:
            if not self._stale(bbt):
                self._last_followed = bbt
                if not self._follow_bbt(tf, bbt, frames):
                    self.events["locates"] += 1
                    self._jumped(frame, frames)
                    self._begin(True, tf, frame, start_ns, bbt)
                    return
        elif abs(self.context.bpm - self._bpm) > 1e-9:
            self.events["tempo_changes"] += 1
            ppq = self._ppq_at(tf)
            self._new_segment(tf, ppq, ppq, self.context.bpm)
        self._maybe_reanchor(tf, frame, start_ns)

    def _jumped(self, frame: int, frames: int) -> None:
        """A discontinuity (start, stop, locate) at JACK frame ``frame``: odd if the last was only periods ago."""
        if frame - self._last_jump_jf <= JUMP_BURST_PERIODS * frames:
            self._odd["jumps"] += 1
        self._last_jump_jf = frame

    # -- the model ----------------------------------------------------------------
    def _read_bbt(self, pos: Any) -> tuple | None:
        """The master's position as ``(ppq, tick_qn, qn_bpm, ts_num, ts_den, bar_start_ppq, bbt_offset)``.

        :data:`_INVALID` (and counted as ``bbt_invalid``) when a field is out of range.
        """
        bar, beat, tick = pos.bar, pos.beat, pos.tick
        bpb, beat_type, tpb, bpm = pos.beats_per_bar, pos.beat_type, pos.ticks_per_beat, pos.beats_per_minute
        ts_num = round(bpb)
        ts_den = round(beat_type)
        if not (bar >= 1 and ts_num >= 1 and abs(bpb - ts_num) < 1e-6 and 1 <= beat <= ts_num
                and ts_den in TS_DENOMINATORS and abs(beat_type - ts_den) < 1e-6
                and math.isfinite(tpb) and tpb >= 1.0 and 0 <= tick < tpb
                and math.isfinite(bpm) and 0.0 < bpm * 4.0 / ts_den <= MAX_BPM):
            self._odd["bbt_invalid"] += 1
            return _INVALID
        unit = 4.0 / ts_den
        bar_start_ppq = (bar - 1) * ts_num * unit
        ppq = bar_start_ppq + (beat - 1 + tick / tpb) * unit
        offset = pos.bbt_offset if pos.valid & _BBT_OFFSET else 0
        return ppq, unit / tpb, bpm * unit, ts_num, ts_den, bar_start_ppq, offset

    def _stale(self, bbt: tuple) -> bool:
        """The master wrote no new BBT this period: the same as the last one followed (the frame moved on).

        A master whose callback missed a cycle leaves its last BBT under the
        new frame (seen with a Python master on a ``--no-realtime`` server);
        at a very slow tempo a BBT may also repeat.  Either way it says nothing new.
        """
        last = self._last_followed
        if last is not None and last[:3] == bbt[:3] and last[6] == bbt[6]:
            self.events["bbt_repeated"] += 1
            return True
        return False

    def _master_changed(self, bbt: tuple | None) -> bool:
        return (bbt is not None) != self._master

    def _meter_changed(self, bbt: tuple | None) -> bool:
        if bbt is None:
            return (self.context.ts_num, self.context.ts_den) != self._ts
        return (bbt[3], bbt[4]) != self._ts

    def _ppq_at(self, tf: int) -> float:
        """The model's position at transport frame ``tf``, quarter notes (the middle of the interval)."""
        return (self._lo + self._hi) / 2.0 + (tf - self._seg_tf) * self._k

    def _new_segment(self, tf: int, lo: float, hi: float, bpm: float) -> None:
        self._seg_tf, self._lo, self._hi = tf, lo, hi
        self._bpm = bpm
        self._k = bpm / 60.0 / self._rate

    def _follow_bbt(self, tf: int, bbt: tuple, frames: int) -> bool:
        """Narrow the position interval with this period's BBT; False when it is a jump (a new run)."""
        ppq, tick_qn, bpm, _num, _den, _bar_start, offset = bbt
        if abs(bpm - self._bpm) > 1e-9:
            self.events["tempo_changes"] += 1
            # Continuous at this frame if the BBT agrees: carry the interval over to the new tempo.
            dt = tf - self._seg_tf
            self._new_segment(tf, self._lo + dt * self._k, self._hi + dt * self._k, bpm)
        self._tick_qn = tick_qn
        back = (tf - offset - self._seg_tf) * self._k
        lo_i = ppq - back
        hi_i = lo_i + tick_qn
        gap = max(lo_i - self._hi, self._lo - hi_i)  # > 0: the intervals are apart by that much (qn)
        if gap > SLIP_PERIODS * frames * self._k and gap > JUMP_TICKS * tick_qn:
            return False
        if gap > BBT_EPSILON_TICKS * tick_qn:
            if not self._bbt_disagreed:
                # One period out of step (the master's callback and the frame apart around an
                # overrun): skip it.
                self._bbt_disagreed = True
                self.events["bbt_glitches"] += 1
                return True
            # Two in a row: the master's position moved against its frames (it rounds, drifts, or
            # nudged its map): go on from what it says now.
            self._odd["bbt_drift"] += 1
            self._drift_ticks_max = max(self._drift_ticks_max, gap / tick_qn)
            lo, hi = lo_i, hi_i
        else:
            lo, hi = max(self._lo, lo_i), min(self._hi, hi_i)
            if lo >= hi:  # apart by rounding only
                lo, hi = lo_i, hi_i
        self._bbt_disagreed = False
        self._lo, self._hi = lo, hi
        return True

    def _begin(self, rolling: bool, tf: int, jf: int, start_ns: float, bbt: tuple | None) -> None:
        """A new run at this period: the model from this frame (BBT or frame), published at once."""
        self._master = bbt is not None
        if bbt is not None:
            ppq, tick_qn, bpm, num, den, bar_start, offset = bbt
            self._ts = (num, den)
            self._tick_qn = tick_qn
            self._bar_start_ppq = bar_start
            self._new_segment(tf, 0.0, 0.0, bpm)
            back = (tf - offset - tf) * self._k
            self._lo, self._hi = ppq - back, ppq - back + tick_qn
        else:
            ctx = self.context
            self._ts = (ctx.ts_num, ctx.ts_den)
            self._tick_qn = 0.0
            self._bar_start_ppq = 0.0
            self._new_segment(tf, 0.0, 0.0, ctx.bpm)
            self._lo = self._hi = tf * self._k
        self._publish_now(rolling, tf, jf, start_ns, new_run=True)

    def _maybe_reanchor(self, tf: int, jf: int, start_ns: float) -> None:
        snap = self.snapshot
        ppq = self._ppq_at(tf)
        predicted = snap.anchor_ppq + (start_ns / 1e9 - snap.anchor_time_s) * snap.bpm / 60.0
        if abs(predicted - ppq) > REANCHOR_FRAMES * self._k or snap.bpm != self._bpm:
            self.events["reanchors"] += 1
            self._publish_now(True, tf, jf, start_ns, new_run=False)

    def _publish_now(self, rolling: bool, tf: int, jf: int, start_ns: float, new_run: bool) -> None:
        prev = self.snapshot
        ppq = self._ppq_at(tf)
        num, den = self._ts
        run = prev.run + 1 if new_run else prev.run
        self._run_offset = (jf - tf) & 0xFFFFFFFF
        self._slip = 0
        self.publish(TransportSnapshot(
            playing=rolling,
            bpm=self._bpm,
            anchor_time_s=start_ns / 1e9,
            anchor_ppq=ppq,
            bar_start_ppq=self._bar_start_ppq,
            ts_num=num,
            ts_den=den,
            run=run,
            run_start_ppq=ppq if new_run else prev.run_start_ppq,
            version=prev.version + 1,
        ))

    # -- event loop ---------------------------------------------------------------------
    def poll(self, now_s: float) -> None:
        """Log and count the odd input the process thread saw since the last call (at most once a second per kind)."""
        for kind, seen in list(self._odd.items()):
            new = seen - self._odd_reported[kind]
            if new <= 0:
                continue
            self._odd_reported[kind] = seen
            if kind == "jumps":
                self.note(kind, _ODD_MESSAGES[kind], JUMP_BURST_PERIODS, new)
            elif kind == "bbt_drift":
                self.note(kind, _ODD_MESSAGES[kind], math.ceil(self._drift_ticks_max), new)
            else:
                self.note(kind, _ODD_MESSAGES[kind], new)
            self.counters[kind] += new - 1

    @property
    def jitter_ms(self) -> float | None:
        """0: JACK's transport is exact to the frame (the period estimate's drift is followed, not jitter)."""
        return 0.0 if self._hooked else None

    def status(self, now_s: float) -> dict:
        """The base status plus ``master`` (a timebase master's BBT is followed) and the ``events`` followed."""
        status = super().status(now_s)
        status["master"] = self._master
        status["events"] = dict(self.events)
        return status

    def __repr__(self) -> str:
        return f"<JackTransportSource master={self._master} run={self.snapshot.run}>"

