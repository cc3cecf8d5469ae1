"""MIDI clock out: ``ai-band:clock`` sends clock, Start, Continue, Stop and Song Position Pointer.

Whatever source drives the band (the plugin over OSC, JACK transport, an
incoming MIDI clock, Link, the daemon's own clock), :class:`ClockOut`
turns the effective :class:`~ai_band.transport.TransportSnapshot` into MIDI
1.0 System Real Time messages on one JACK MIDI port, written at exact frames
in the daemon's JACK process callback (a
:class:`~ai_band.playback.outputs.jack.ProcessHook`), so gear follows the
DAW through the daemon, or the daemon's own clock.

What goes out, and when (MIDI 1.0 Detailed Specification 4.2, "System Real
Time Messages" and "Song Position Pointer"):

* **Timing Clock** ``0xF8``: 24 per quarter note, tick ``k`` at position
  ``k / 24`` quarter notes, written at the frame nearest to
  ``snapshot.time_at(k / 24)`` (the same nearest-frame rule as the band's
  ports: offset ``round((t - start_ns) * rate / 1e9)``).
* **Start / Continue**: a receiver starts "on the next Timing Clock", from
  the position its Song Position Pointer set (Start: from 0).  So clock can
  only start on a sixteenth (SPP counts sixteenths, 6 clocks each): when the
  transport starts at ppq ``p``, the first tick is at the first sixteenth at
  or after ``p`` (less :data:`START_GRACE_PPQ`: a start seen a little late
  keeps its downbeat; never before the run's ``run_start_ppq`` nor before 0:
  no clock during a count-in), and right before it, at the same frame, go SPP (``0xF2``, 14-bit
  position in sixteenths, LSB first) and Start ``0xFA`` (position 0) or
  Continue ``0xFB`` (any other).
* **Stop** ``0xFC``: when the snapshot stops, at the frame of the stop
  (the stopped snapshot's ``anchor_time_s``) or the first frame of the period
  that sees it, whichever is later.  A start that stops again before its
  first tick sends nothing.
* **Relocation**: when a new snapshot puts the position more than
  :data:`RELOCATE_TOLERANCE_PPQ` (one clock) away from where the previous one
  said it is now, Stop goes out at once, then SPP and Continue before the
  first tick at the next sixteenth, as sequencers locate a slave while
  playing.  A new ``run`` whose position continues the old one (a meter
  change, a switch of source at the same position) or a tempo change is no
  relocation: the ticks go on, the next one at its time on the new tempo.
* **Stopped**: nothing at all (``clock_while_stopped=False``, the default).
  MIDI 1.0 allows clock while stopped (to show a tempo), but many devices
  (some drum machines, older sequencers) run on clock alone, without Start.
  With ``clock_while_stopped=True`` ticks go on at the stopped snapshot's
  tempo, from the moment the stop was seen; they stop at a start, whose
  first tick is then placed as above.
* **Positions beyond SPP's range** (16383 sixteenths = 1024 bars of 4/4):
  Continue without SPP (counted in ``spp_out_of_range``); the receiver
  continues from where it was.

``process`` writes only when ``writable``.  A held period (see
:class:`~ai_band.playback.outputs.jack.JackMidiClient`) leaves the port's
buffer alone and advances nothing: the next writable period writes what fell
due meanwhile at offset 0, in order (``late_ticks`` counts ticks written
after their nearest frame).  More than :data:`MAX_LATE_TICKS` overdue ticks
(a stall of a sixteenth or more) are not sent as a burst, which would make a
receiver's tempo leap: the clock relocates instead (Stop, SPP, Continue at
the next sixteenth), counted in ``resyncs``.

After :meth:`attach` (the first time, and after the JACK server came back) the
port has new readers that know nothing: a playing transport is started again
with SPP and Continue at the next sixteenth.

Usage (the sync manager does this)::

    clock_out = ClockOut(lambda: manager.snapshot)
    jack_client.add_process_hook(clock_out)   # registers ai-band:clock
    ...
    jack_client.remove_process_hook(clock_out)
    clock_out.close()
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jack

from ai_band.sync.clock_model import CLOCKS_PER_QUARTER, CONTINUE, SONG_POSITION, START, STOP, TIMING_CLOCK
from ai_band.transport import TransportSnapshot

__all__ = ["ClockOut", "spp_message"]

#: Timing Clock messages per sixteenth: Song Position Pointer's unit ("MIDI beat").
CLOCKS_PER_SIXTEENTH = 6
#: Largest Song Position Pointer value: 14 bits, in sixteenths.
SPP_MAX = 0x3FFF

# The one-byte messages as written to the port.
TICK_MESSAGE = bytes((TIMING_CLOCK,))
START_MESSAGE = bytes((START,))
CONTINUE_MESSAGE = bytes((CONTINUE,))
STOP_MESSAGE = bytes((STOP,))

#: A new snapshot that moves the current position by more than this (quarter
#: notes; one clock) relocates the clock: Stop, SPP, Continue.
RELOCATE_TOLERANCE_PPQ = 1.0 / CLOCKS_PER_QUARTER
#: At most this many overdue ticks are written late (at offset 0 of the next
#: writable period); more (a stall of a sixteenth or longer) relocate the clock.
MAX_LATE_TICKS = CLOCKS_PER_SIXTEENTH
#: A start (or relocation) seen up to this long after a sixteenth (quarter
#: notes; one clock) still starts on that sixteenth, its first tick written
#: late; seen later, the clock starts on the next sixteenth.  So a snapshot
#: published a period after its start position (an event-loop hop) does not
#: lose the downbeat.
START_GRACE_PPQ = 1.0 / CLOCKS_PER_QUARTER
#: At most this many ticks in one period (a guard: 24 per quarter at 999 bpm
#: is 2.5 ms apart, two in a period of 2048 frames at 48 kHz).
MAX_TICKS_PER_PERIOD = 32
#: Position rounding slack when finding the next sixteenth, in sixteenths.
_SIXTEENTH_EPSILON = 1e-6

# What the receivers have been told.
_STOPPED = "stopped"  # nothing (or, with clock_while_stopped, free-running ticks)
_CUED = "cued"  # the transport plays; SPP + Start/Continue go out before the tick _next_tick
_PLAYING = "playing"  # Start/Continue sent; ticks run


def spp_message(sixteenths: int) -> bytes:
    """The Song Position Pointer message for a position in sixteenths.

    Args:
        sixteenths: position from the song's start, in sixteenth notes ("MIDI beats"), 0..16383.

    Returns:
        3 bytes: ``0xF2``, the 7 low bits, the 7 high bits (MIDI 1.0).

    Raises:
        ValueError: ``sixteenths`` is outside 0..16383.
    """
    if not 0 <= sixteenths <= SPP_MAX:
        raise ValueError(f"song position must be 0..{SPP_MAX} sixteenths, got {sixteenths}")
    return bytes((SONG_POSITION, sixteenths & 0x7F, sixteenths >> 7))


def _valid(snap: TransportSnapshot) -> bool:
    """A playing snapshot has a finite tempo > 0 and a finite anchor (else no tick can be placed).

    A stopped one is always taken: a stop is a stop.
    """
    return not snap.playing or (0.0 < snap.bpm < math.inf and math.isfinite(snap.anchor_time_s)
                                and math.isfinite(snap.anchor_ppq))


class ClockOut:
    """A :class:`~ai_band.playback.outputs.jack.ProcessHook` sending MIDI clock on its own JACK port.

    Args:
        get_snapshot: returns the band's current effective snapshot (whichever
            source drives it); called once per period from JACK's process
            thread, so it must be cheap and never block (reading an attribute).
        port_name: the short port name registered on the daemon's client
            (``clock`` gives ``ai-band:clock``).
        clock_while_stopped: send Timing Clock at the current tempo while the
            transport is stopped too (see the module docstring); default off.

    Attributes:
        ticks_sent: Timing Clock messages written.
        starts: Start messages written.
        continues: Continue messages written.
        stops: Stop messages written.
        spp_sent: Song Position Pointer messages written.
        late_ticks: ticks written after their nearest frame (held periods,
            a snapshot that arrived after its first tick was due).
        relocations: relocations sent (Stop, SPP, Continue).
        resyncs: relocations because too many ticks were overdue.
        spp_out_of_range: starts beyond SPP's range (Continue without SPP).
        held_periods: periods skipped because the output was not writable.
        write_errors: messages JACK refused (a full buffer; retried next period).
        bad_snapshots: playing snapshots ignored because their tempo or anchor
            was not a finite number (tempo > 0): the clock went on as before.

    The counters are written by the process thread only and read anywhere.
    """

    def __init__(self, get_snapshot: Callable[[], TransportSnapshot], port_name: str = "clock",
                 clock_while_stopped: bool = False) -> None:
        if not callable(get_snapshot):
            raise TypeError(f"get_snapshot must be callable, got {type(get_snapshot).__name__}")
        if not port_name or ":" in port_name:
            raise ValueError(f"port_name must be a non-empty name without ':', got {port_name!r}")
        self._get_snapshot = get_snapshot
        self.port_name = port_name
        self.clock_while_stopped = bool(clock_while_stopped)
        self._port: jack.OwnMidiPort | None = None
        self._port_name: str | None = None
        self._client: jack.Client | None = None
        self._ns_per_frame = 1e9 / 48000
        self._frames_per_ns = 48000 / 1e9
        self.ticks_sent = 0
        self.starts = 0
        self.continues = 0
        self.stops = 0
        self.spp_sent = 0
        self.late_ticks = 0
        self.relocations = 0
        self.resyncs = 0
        self.spp_out_of_range = 0
        self.held_periods = 0
        self.write_errors = 0
        self.bad_snapshots = 0
        self._last_offset = 0  # the latest offset written in this period (JACK wants them in order)
        self._reset()

    def _reset(self) -> None:
        """Forget what the receivers were told (new port or new readers): the next period starts afresh."""
        self._snap: TransportSnapshot | None = None  # the latest valid snapshot taken
        self._seen: TransportSnapshot | None = None  # the latest snapshot read (valid or not)
        self._state = _STOPPED
        self._next_tick = 0  # index of the next tick: at position _next_tick / 24 (playing)
        self._base_ns = 0.0  # tick k is due at _base_ns + k * _ns_per_tick (CLOCK_MONOTONIC ns)
        self._ns_per_tick = math.inf
        self._cue: tuple[bytes, ...] = ()  # written right before the tick _next_tick (state _CUED)

    # -- ProcessHook -----------------------------------------------------------------
    def attach(self, client: jack.Client) -> None:
        """Register the output port on ``client`` (at ``add_process_hook`` and after each JACK restore).

        Raises:
            jack.JackError: the port cannot be registered (``add_process_hook``
                turns it into :class:`~ai_band.errors.MidiPortError`).
        """
        self._port = None  # inert until registered: never the dead client's port
        rate = client.samplerate
        port = client.midi_outports.register(self.port_name)
        self._reset()
        self._ns_per_frame = 1e9 / rate
        self._frames_per_ns = rate / 1e9
        self._client = client
        self._port = port
        self._port_name = port.name  # kept: a dead client's port cannot be asked its name

    def process(self, frames: int, frame: int, start_ns: float, writable: bool) -> None:
        """Write this period's clock messages (JACK's process thread; see :class:`ProcessHook`).

        Args:
            frames: period length, frames.
            frame: JACK frame time of the period start (unwrapped; unused: times come from ``start_ns``).
            start_ns: CLOCK_MONOTONIC ns of the period start, the estimate the band's ports use.
            writable: the output buffers may be written; if not, nothing is done
                and what falls due goes out in the next writable period.
        """
        port = self._port
        if port is None:
            return
        if not writable:
            self.held_periods += 1
            return
        port.clear_buffer()
        half_frame_ns = 0.5 * self._ns_per_frame
        end_ns = start_ns + frames * self._ns_per_frame - half_frame_ns  # due before: this period
        self._last_offset = 0
        snap = self._get_snapshot()
        if snap is not self._seen:
            self._seen = snap
            if not self._follow(snap, start_ns, frames):
                self._seen = None  # a write failed: taken again next period
                return
        snap = self._snap
        if snap is None or (self._state == _STOPPED and not self.clock_while_stopped):
            return
        # Ticks due in this period (and overdue ones).
        k = self._next_tick
        base_ns, ns_per_tick = self._base_ns, self._ns_per_tick
        due_ns = base_ns + k * ns_per_tick
        if due_ns >= end_ns:
            return
        late_before_ns = start_ns - half_frame_ns  # nearest frame before this period
        if due_ns < late_before_ns - MAX_LATE_TICKS * ns_per_tick:
            # Stalled for a sixteenth or more: no burst of ticks.
            if self._state == _STOPPED:
                k = math.ceil((late_before_ns - base_ns) / ns_per_tick)  # free-running: skip ahead
            else:
                self.resyncs += 1
                if not self._relocate(snap, start_ns, frames):
                    return
                k = self._next_tick
            due_ns = base_ns + k * ns_per_tick
        frames_per_ns = self._frames_per_ns
        written = 0
        while due_ns < end_ns and written < MAX_TICKS_PER_PERIOD:
            offset = int((due_ns - start_ns) * frames_per_ns + 0.5) if due_ns > start_ns else 0
            if self._state == _CUED:
                if not self._write(port, offset, frames, self._cue):
                    break
                self._state = _PLAYING
                self._cue = ()
            if not self._write(port, offset, frames, (TICK_MESSAGE,)):
                break
            self.ticks_sent += 1
            written += 1
            if due_ns < late_before_ns:
                self.late_ticks += 1
            k += 1
            due_ns = base_ns + k * ns_per_tick
        self._next_tick = k

    # -- transport changes ---------------------------------------------------------------
    def _follow(self, snap: TransportSnapshot, start_ns: float, frames: int) -> bool:
        """Take a new snapshot: start, stop, relocate or retime; False if a write failed (nothing changed)."""
        if not _valid(snap):
            self.bad_snapshots += 1  # ignored: the ticks go on as before
            return True
        old = self._snap
        self._snap = snap
        if not snap.playing:
            if self._state == _PLAYING:
                offset = 0  # at the stop's frame, or the period's first when it is past (or unknown)
                if math.isfinite(snap.anchor_time_s):
                    ahead_frames = (snap.anchor_time_s * 1e9 - start_ns) * self._frames_per_ns
                    offset = int(min(frames, max(0.0, ahead_frames + 0.5)))
                if not self._write(self._port, offset, frames, (STOP_MESSAGE,)):
                    self._snap = old  # retried next period
                    return False
            self._state = _STOPPED
            self._cue = ()
            if self.clock_while_stopped and (old is None or old.playing or old.bpm != snap.bpm):
                # Free-running ticks at the stopped tempo, from the stop (or the tempo change) on.
                self._base_ns = start_ns
                self._next_tick = 0
                self._ns_per_tick = math.inf  # no tempo, no ticks
                if 0.0 < snap.bpm < math.inf:
                    self._ns_per_tick = 60e9 / (snap.bpm * CLOCKS_PER_QUARTER)
                    if math.isfinite(snap.anchor_time_s):
                        self._base_ns = max(start_ns, snap.anchor_time_s * 1e9)
            return True
        self._ns_per_tick = 60e9 / (snap.bpm * CLOCKS_PER_QUARTER)
        self._base_ns = snap.anchor_time_s * 1e9 - snap.anchor_ppq * CLOCKS_PER_QUARTER * self._ns_per_tick
        if self._state == _STOPPED:
            self._cue_at(snap.ppq_at(start_ns / 1e9), start_allowed=True)
            return True
        now_s = start_ns / 1e9
        if old is not None and old.playing and abs(snap.ppq_at(now_s) - old.ppq_at(now_s)) <= RELOCATE_TOLERANCE_PPQ:
            return True  # continuous: the ticks go on at the new tempo
        if not self._relocate(snap, start_ns, frames):
            self._snap = old  # retried next period
            return False
        return True

    def _relocate(self, snap: TransportSnapshot, start_ns: float, frames: int) -> bool:
        """Stop (if Start/Continue went out) at once, then cue SPP + Continue at the next sixteenth."""
        if self._state == _PLAYING:
            if not self._write(self._port, 0, frames, (STOP_MESSAGE,)):
                return False
            self.relocations += 1
        self._cue_at(snap.ppq_at(start_ns / 1e9), start_allowed=False)
        return True

    def _cue_at(self, ppq: float, start_allowed: bool) -> None:
        """Cue the first tick at the first sixteenth at or after ``ppq`` less :data:`START_GRACE_PPQ`.

        Never before the run's start (``run_start_ppq``: a start anchored
        ahead of now) nor before 0 (a count-in).

        SPP and Start (position 0, if ``start_allowed``) or Continue go out right before it.
        """
        ppq = max(ppq - START_GRACE_PPQ, self._snap.run_start_ppq if self._snap is not None else 0.0)
        sixteenths = max(0, math.ceil(ppq * 4.0 - _SIXTEENTH_EPSILON))
        self._next_tick = sixteenths * CLOCKS_PER_SIXTEENTH
        if sixteenths == 0 and start_allowed:
            self._cue = (spp_message(0), START_MESSAGE)
        elif sixteenths <= SPP_MAX:
            self._cue = (spp_message(sixteenths), CONTINUE_MESSAGE)
        else:
            self.spp_out_of_range += 1
            self._cue = (CONTINUE_MESSAGE,)
        self._state = _CUED

    def _write(self, port: jack.OwnMidiPort | None, offset: int, frames: int, messages: tuple[bytes, ...]) -> bool:
        """Write ``messages`` at ``offset`` (clamped into the period, never before the last write); count them."""
        if port is None:
            return False
        offset = min(frames - 1, max(self._last_offset, offset))
        try:
            for data in messages:
                port.write_midi_event(offset, data)
        except jack.JackError:
            self.write_errors += 1
            return False
        self._last_offset = offset
        for data in messages:
            status = data[0]
            if status == SONG_POSITION:
                self.spp_sent += 1
            elif status == START:
                self.starts += 1
            elif status == CONTINUE:
                self.continues += 1
            elif status == STOP:
                self.stops += 1
        return True

    # -- outside the process thread -----------------------------------------------------
    @property
    def port(self) -> str | None:
        """The port's full JACK name (e.g. ``ai-band:clock``), or ``None`` before :meth:`attach`."""
        return self._port_name

    def status(self) -> dict:
        """JSON-ready state for ``/band/status``: the port, what the receivers were told, the counters."""
        return {
            "port": self.port,
            "state": self._state,
            "clock_while_stopped": self.clock_while_stopped,
            "ticks_sent": self.ticks_sent,
            "starts": self.starts,
            "continues": self.continues,
            "stops": self.stops,
            "spp_sent": self.spp_sent,
            "late_ticks": self.late_ticks,
            "relocations": self.relocations,
            "resyncs": self.resyncs,
            "spp_out_of_range": self.spp_out_of_range,
            "held_periods": self.held_periods,
            "write_errors": self.write_errors,
            "bad_snapshots": self.bad_snapshots,
        }

    def close(self) -> None:
        """Unregister the port (after ``remove_process_hook``); idempotent, errors ignored (the server may be gone)."""
        port, self._port = self._port, None
        if port is not None:
            try:
                port.unregister()
            except (jack.JackError, ValueError, RuntimeError):
                pass  # the server has gone: JACK-Client no longer lists the port
