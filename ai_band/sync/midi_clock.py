"""The ``midi-clock`` source: the band follows MIDI clock, Start/Continue/Stop and Song Position Pointer.

What comes in (MIDI 1.0 Detailed Specification 4.2, "System Real Time
Messages" and "Song Position Pointer"), on the input port ``ai-band:clock-in``:

* **Timing Clock** ``0xF8``, 24 per quarter note.  The tick times go into a
  :class:`~ai_band.sync.clock_model.ClockModel` (least squares over the last
  3 quarter notes, a parabola through a tempo ramp, a real tempo change
  followed from its third tick): tempo and the fitted time of every tick.
* **Start** ``0xFA``: play from position 0 at the next clock.
* **Continue** ``0xFB``: play at the next clock from the position the last
  Song Position Pointer set, else from where the clock stopped (the ticks
  counted since the last Start or SPP).
* **Stop** ``0xFC``: stop at once, at the time the Stop came.
* **Song Position Pointer** ``0xF2`` (14 bits, LSB first, in sixteenths
  "MIDI beats" of 6 clocks): the position of the next Continue.  Sent while
  stopped, as MIDI 1.0 says; an SPP while running is counted
  (``spp_while_running``) and kept for the next Continue, which then relocates.

Position: tick ``i`` after a Start or Continue (the first is ``i = 0``) is at
``p0 + i / 24`` quarter notes, ``p0`` being 0 (Start) or the SPP position.
When the clock already runs (gear and DAWs that send clock while stopped),
the run is published at the Start or Continue itself, anchored on the time
the model predicts for the next tick, so the first notes are handed over
before they are due; otherwise at the first tick, and notes due at it go
out late (up to ``late_drop_s`` of the scheduler, else dropped).
MIDI clock has no meter and no bar line: bar lines fall on multiples of the
bar of the context's meter from position 0 (``[sync] ts_num``/``ts_den``, or
the plugin's last ``/band/transport``), so Start and SPP 0 are bar 1.

**JACK** (the daemon's ports on JACK): :class:`MidiClockSource` is a
:class:`~ai_band.playback.outputs.jack.ProcessHook` of the daemon's
:class:`~ai_band.playback.outputs.jack.JackMidiClient` with its own input
port.  Each event's time is ``start_ns + offset / rate``: the frame the
sender wrote it at, on the same timeline as the band's ports, so a sender
writing clock at exact frames is followed to within the model's fit.  When
the client skipped periods (the server dropped it for a cycle: its input
events are lost), the next tick late by whole periods counts the ticks lost.  The
process thread publishes only when needed: a start, stop or relocation (a new
run, published in the period the message came in), or when the published
snapshot puts the newest tick more than :data:`REANCHOR_S` off the fit, now
or one quarter note later (a re-anchor in the same run: tempo and phase
follow the fit; the scheduler moves what it has queued).

**ALSA sequencer / CoreMIDI** (the ports not on JACK): a python-rtmidi
virtual input named ``clock-in`` (client ``ai-band-clock``), timing messages
not filtered (``ignore_types(timing=False)``).  A tick's time is when
python-rtmidi's callback thread gets it (``time.monotonic()``), so the
MIDI system's delivery jitter adds to the sender's; the model smooths both.
The timeout is checked from :meth:`MidiClockSource.poll` then (~10 Hz).

Bad input: never a crash or a hanging note; each kind is counted in
``/band/status`` ``sync.counters`` and logged at most once a second (counted
where it happens, logged from :meth:`MidiClockSource.poll`):

* ``clock_without_start``: a clock begins (after silence) with no Start or
  Continue: the tempo is measured and shown, the band stays stopped (normal
  for gear that sends clock while stopped; counted once per stretch of clock);
* ``clock_out_of_range``: a clock much faster than ``max_bpm`` (e.g. ten times
  the tempo) or a fitted tempo outside ``min_bpm`` .. ``max_bpm``: not
  followed; a band playing stops at once (counted once per stretch);
* ``clock_timeout``: no clock for ``timeout_s`` while playing (the clock
  stopped without a Stop): the band stops;
* ``spp_out_of_range``: an SPP with a data byte of 0x80 or more (a position
  beyond 14 bits): ignored;
* ``malformed``: a message of the wrong length (a truncated SPP, clock with
  trailing bytes): ignored;
* ``running_status``: an event starting with a data byte (running status or
  stray data: JACK MIDI events carry their status byte): ignored;
* ``sysex``: system exclusive on the clock port: ignored;
* ``spp_while_running``: see above;
* ``ignored``: anything else (notes, controllers, MTC, Song Select...);
  Active Sensing ``0xFE`` is dropped without a count.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from typing import Any

from ai_band.errors import SyncError
from ai_band.sync.clock_model import (CLOCKS_PER_QUARTER, CONTINUE, SONG_POSITION, START, STOP, TIMING_CLOCK,
                                      ClockModel)
from ai_band.sync.source import Publish, SyncContext, SyncSource
from ai_band.transport import TransportSnapshot

__all__ = ["MidiClockSource", "REANCHOR_S", "ODD_KINDS"]

log = logging.getLogger(__name__)

ACTIVE_SENSING = 0xFE
SYSEX = 0xF0

#: Republish when the published snapshot puts the newest tick, or the position
#: a quarter note after it, more than this far (seconds) from the clock model's fit.
REANCHOR_S = 0.0001

#: Bad input, counted by kind (module docstring).  Every key exists from the
#: start: the process thread never adds one while :meth:`MidiClockSource.poll` reads them.
ODD_KINDS = ("clock_without_start", "clock_out_of_range", "clock_timeout", "spp_out_of_range",
             "malformed", "running_status", "sysex", "spp_while_running", "ignored")

#: Transport events followed (not bad input).
EVENT_KINDS = ("ticks", "starts", "continues", "stops", "spp", "relocations", "reanchors",
               "tempo_changes", "phase_steps", "outliers", "gaps", "missed_ticks")

_MESSAGES = {
    "clock_without_start": "clock without Start or Continue: tempo measured, the band stays stopped "
                           "(%d times since the last report)",
    "clock_out_of_range": "clock outside %g..%g bpm (or far too fast): not followed, the band stops "
                          "(%d times since the last report)",
    "clock_timeout": "no MIDI clock for %g s while playing: the band stopped (%d times since the last report)",
    "spp_out_of_range": "Song Position Pointer with a data byte >= 0x80: ignored (%d since the last report)",
    "malformed": "malformed message on the clock port: ignored (%d since the last report)",
    "running_status": "running status or stray data bytes on the clock port: ignored (%d since the last report)",
    "sysex": "system exclusive on the clock port: ignored (%d since the last report)",
    "spp_while_running": "Song Position Pointer while running (MIDI 1.0 sends it stopped): "
                         "kept for the next Continue (%d since the last report)",
    "ignored": "messages other than clock, Start, Continue, Stop, SPP on the clock port: ignored "
               "(%d since the last report)",
}

#: Lengths of the system messages the port takes.
_LENGTHS = {TIMING_CLOCK: 1, START: 1, CONTINUE: 1, STOP: 1, SONG_POSITION: 3}

# Where the band is.
_STOPPED = "stopped"
_CUED = "cued"  # Start or Continue seen: plays from _cue_ppq at the next clock
_PLAYING = "playing"


class MidiClockSource(SyncSource):
    """Follows MIDI clock on ``ai-band:clock-in`` (see the module docstring).

    Args:
        context: the shared :class:`~ai_band.sync.source.SyncContext`: its
            ``jack_client`` (the daemon's JackMidiClient, or ``None``: a
            python-rtmidi virtual input instead), meter, and tempo (the guess
            before the clock's first interval).
        port_name: the input port's short name (``clock-in``).
        timeout_s: no clock for this long while playing stops the band, seconds.
        min_bpm: slowest clock followed, quarter notes per minute.
        max_bpm: fastest clock followed, quarter notes per minute.
        window_ticks: ticks the tempo fit spans at most (72 = 3 quarter notes).
        midi_api: the python-rtmidi API of the virtual input when the ports
            are not on JACK (``auto``, ``alsa``, ``coremidi``, ``jack``).

    Thread-safety: with JACK, the input is read, the model updated and
    snapshots published in JACK's process thread; :meth:`poll` and
    :meth:`status` only read.  With python-rtmidi, its callback thread and
    :meth:`poll` (the timeout) share a lock.
    """

    name = "midi-clock"

    def __init__(self, context: SyncContext, *, port_name: str = "clock-in", timeout_s: float = 0.3,
                 min_bpm: float = 20.0, max_bpm: float = 300.0, window_ticks: int = 72,
                 midi_api: str = "auto") -> None:
        super().__init__(context)
        if not port_name or ":" in port_name:
            raise ValueError(f"port_name must be a non-empty name without ':', got {port_name!r}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.port_name = port_name
        self.timeout_s = float(timeout_s)
        self.midi_api = midi_api
        self.model = ClockModel(window_ticks=window_ticks, min_bpm=min_bpm, max_bpm=max_bpm)
        self._port: Any = None  # jack.OwnMidiPort, set by attach()
        self._port_full_name: str | None = None
        self._ns_per_frame = 1e9 / 48000
        self._rtmidi: Any = None  # rtmidi.MidiIn when not on JACK
        self._lock = threading.Lock()  # python-rtmidi only: its thread vs poll()
        #: Transport events followed, counted where they happen.
        self.events: Counter[str] = Counter(dict.fromkeys(EVENT_KINDS, 0))
        self._odd = dict.fromkeys(ODD_KINDS, 0)
        self._odd_reported = dict(self._odd)
        self._reset()

    def _reset(self) -> None:
        """Nothing heard yet (a new port): stopped at 0, no tempo."""
        self.model.reset()
        self._state = _STOPPED
        self._cue_ppq = 0.0
        self._cue_kind = "starts"
        self._anticipated = False  # the cued run is published already (the clock was running)
        self._stop_ppq = 0.0  # where Continue without SPP resumes (the next tick's position)
        self._spp_ppq: float | None = None  # a pending Song Position Pointer
        self._run_n0 = 0  # model index of the run's first tick
        self._run_ppq0 = 0.0  # its position
        self._last_tick_s: float | None = None  # the newest tick accepted
        self._last_any_s: float | None = None  # the newest tick, in range or not
        self._out_of_range = False
        self._restarts_seen = 0
        self._last_frame: int | None = None  # JACK frame of the last period seen
        self._input_lost = False  # a period was skipped since the last tick

    # -- life cycle ---------------------------------------------------------------
    def start(self, publish: Publish) -> None:
        """Open ``ai-band:clock-in`` (a process hook on the daemon's JACK client, else a python-rtmidi virtual input).

        Raises:
            SyncError: ``sync_unavailable``: the port cannot be opened (no JACK
                client and no python-rtmidi API with virtual ports).
        """
        client = self.context.jack_client
        super().start(publish)
        if client is not None and hasattr(client, "add_process_hook"):
            self._attach_process_hook("cannot open the MIDI clock input")
            return
        try:
            self._open_rtmidi()
        except Exception as exc:  # MidiPortError, rtmidi errors: cannot run here
            super().stop()
            raise SyncError(f"the midi-clock source needs JACK or a MIDI API with virtual ports: {exc}") from exc

    def stop(self) -> None:
        """Stop following: the hook removed and the port closed; idempotent."""
        super().stop()
        if self._detach_process_hook():
            port, self._port = self._port, None
            if port is not None:
                try:
                    port.unregister()
                except Exception:  # noqa: BLE001 - the server may be gone
                    pass
        midi_in, self._rtmidi = self._rtmidi, None
        if midi_in is not None:
            midi_in.cancel_callback()
            midi_in.close_port()
            midi_in.delete()

    # -- python-rtmidi (ALSA sequencer, CoreMIDI) ---------------------------------------
    def _open_rtmidi(self) -> None:
        import rtmidi

        from ai_band.playback.outputs.rtmidi import resolve_api

        midi_in = rtmidi.MidiIn(resolve_api(self.midi_api), name="ai-band-clock")
        try:
            midi_in.ignore_types(sysex=False, timing=False, active_sense=True)
            midi_in.set_callback(self._on_rtmidi)
            midi_in.open_virtual_port(self.port_name)
        except Exception:
            midi_in.delete()
            raise
        self._rtmidi = midi_in
        self._port_full_name = f"ai-band-clock:{self.port_name}"

    def _on_rtmidi(self, event: tuple[list[int], float], _data: Any = None) -> None:
        """python-rtmidi's callback thread: one message, timed on arrival."""
        now_s = time.monotonic()
        message, _delta = event
        with self._lock:
            self._on_message(bytes(message), now_s)

    # -- ProcessHook (JACK) ----------------------------------------------------------
    def attach(self, client: Any) -> None:
        """Register the input port on ``client`` (at start and after each JACK restore): a fresh state.

        A band playing when the server went stops (the new port has heard nothing).
        """
        self._port = None
        port = client.midi_inports.register(self.port_name)
        self._ns_per_frame = 1e9 / client.samplerate
        if self._state == _PLAYING:
            self._stop_at(time.monotonic())
        self._reset()
        self._port_full_name = port.name
        self._port = port

    def process(self, frames: int, frame: int, start_ns: float, writable: bool) -> None:
        """One period (JACK's process thread): read the input's events at their frames; the timeout."""
        port = self._port
        if port is None:
            return
        ns_per_frame = self._ns_per_frame
        last, self._last_frame = self._last_frame, frame
        if last is not None and frame - last > frames:
            self._input_lost = True  # periods this client never saw: their events are lost
        for offset, data in port.incoming_midi_events():
            self._on_message(bytes(data), (start_ns + offset * ns_per_frame) / 1e9)
        self._check_timeout(start_ns / 1e9)

    # -- the messages ------------------------------------------------------------------
    def _on_message(self, data: bytes, t_s: float) -> None:
        """One MIDI message that came at CLOCK_MONOTONIC ``t_s`` seconds."""
        if not data:
            self._odd["malformed"] += 1
            return
        status = data[0]
        if status < 0x80:
            self._odd["running_status"] += 1
            return
        if status == SYSEX:
            self._odd["sysex"] += 1
            return
        expected = _LENGTHS.get(status)
        if expected is None:
            if status != ACTIVE_SENSING:
                self._odd["ignored"] += 1
            return
        if len(data) != expected:
            self._odd["malformed"] += 1
            return
        if status == TIMING_CLOCK:
            self._on_tick(t_s)
        elif status == START:
            self._spp_ppq = None
            self._cue(0.0, "starts", t_s)
        elif status == CONTINUE:
            if self._state == _PLAYING and self._spp_ppq is None:
                return  # already running from where it is
            self._cue(self._spp_ppq if self._spp_ppq is not None else self._stop_ppq, "continues", t_s)
            self._spp_ppq = None
        elif status == STOP:
            self._stop_at(t_s)
        else:
            self._on_spp(data, t_s)

    def _on_spp(self, data: bytes, t_s: float) -> None:
        lsb, msb = data[1], data[2]
        if lsb > 0x7F or msb > 0x7F:
            self._odd["spp_out_of_range"] += 1
            return
        ppq = (lsb | (msb << 7)) / 4.0  # sixteenths
        self.events["spp"] += 1
        self._spp_ppq = ppq
        if self._state == _PLAYING:
            self._odd["spp_while_running"] += 1
            return
        if self._state == _CUED:
            self._cue_ppq = ppq  # Continue came first: the position it plays from
            if self._anticipated:  # published already: again, from there
                self._run_ppq0 = ppq
                self._publish_playing(self._run_n0, new_run=True)
            return
        self._stop_ppq = ppq
        self._publish_stopped(t_s, ppq)  # where a Continue plays from: a new run

    def _cue(self, ppq: float, kind: str, t_s: float) -> None:
        """Play from ``ppq`` at the next clock (``kind``: ``starts`` or ``continues``); playing: a relocation then.

        From stopped, with the clock running (a tick within two periods) at a
        tempo in range, the run is published at once, anchored on the time the
        model predicts for the next tick: the scheduler hands the first notes
        over before they are due.  The tick then re-anchors it.
        """
        was = self._state
        self._state = _CUED
        self._cue_ppq = ppq
        self._cue_kind = kind
        self._anticipated = False
        model = self.model
        period = model.period_s
        if (was != _PLAYING and model.in_range and period is not None and self._last_tick_s is not None
                and 0.0 <= t_s - self._last_tick_s < 2.0 * period):
            self._anticipated = True
            self._run_n0, self._run_ppq0 = model.index + 1, ppq
            self._publish_playing(model.index + 1, new_run=True)

    def _on_tick(self, t_s: float) -> None:
        last_any = self._last_any_s
        self._last_any_s = t_s
        model = self.model
        accepted = model.add(t_s, input_lost=self._input_lost)
        self._input_lost = False
        self.events["ticks"] += 1
        restarts = model.restarts
        if restarts != self._restarts_seen:
            self.events["tempo_changes"] += restarts - self._restarts_seen
            self._restarts_seen = restarts
        self.events["outliers"] = model.outliers
        self.events["gaps"] = model.gaps
        self.events["missed_ticks"] = model.missed_ticks
        self.events["phase_steps"] = model.phase_steps
        if not accepted or (model.bpm is not None and not model.in_range):
            if not self._out_of_range:
                self._out_of_range = True
                self._odd["clock_out_of_range"] += 1
            if self._state == _PLAYING or self._anticipated:
                self._stop_at(t_s)
            return
        self._out_of_range = False
        self._last_tick_s = t_s
        n = model.index
        if self._state == _STOPPED:
            if last_any is None or t_s - last_any > self.timeout_s:
                self._odd["clock_without_start"] += 1
            return
        if self._state == _CUED:
            self._state = _PLAYING
            self.events[self._cue_kind] += 1
            if self._anticipated:  # published at the Start/Continue: this tick re-anchors it
                self._anticipated = False
                self._run_n0, self._run_ppq0 = n, self._cue_ppq
                self._maybe_reanchor(n)
                return
            if self.snapshot.playing:
                self.events["relocations"] += 1
            self._run_n0, self._run_ppq0 = n, self._cue_ppq
            self._publish_playing(n, new_run=True)
            return
        self._maybe_reanchor(n)

    def _ppq_of(self, n: int) -> float:
        return self._run_ppq0 + (n - self._run_n0) / CLOCKS_PER_QUARTER

    def _bpm(self) -> float:
        bpm = self.model.bpm
        if bpm is None:
            bpm = self.snapshot.bpm if self.snapshot.bpm > 0 else self.context.bpm
        return bpm

    def _maybe_reanchor(self, n: int) -> None:
        snap = self.snapshot
        bpm = self._bpm()
        t_n = self.model.time_of(n)
        ppq_n = self._ppq_of(n)
        beat_s = 60.0 / bpm
        off_now = (snap.ppq_at(t_n) - ppq_n) * beat_s
        off_beat = (snap.ppq_at(t_n + beat_s) - ppq_n - 1.0) * beat_s
        meter = (self.context.ts_num, self.context.ts_den)
        if meter != (snap.ts_num, snap.ts_den):
            self._publish_playing(n, new_run=True)  # a new bar grid: the scheduler re-reads it
        elif max(abs(off_now), abs(off_beat)) > REANCHOR_S:
            self.events["reanchors"] += 1
            self._publish_playing(n, new_run=False)

    def _publish_playing(self, n: int, new_run: bool) -> None:
        prev = self.snapshot
        ppq = self._ppq_of(n)
        self.publish(TransportSnapshot(
            playing=True,
            bpm=self._bpm(),
            anchor_time_s=self.model.time_of(n),
            anchor_ppq=ppq,
            bar_start_ppq=0.0,
            ts_num=self.context.ts_num,
            ts_den=self.context.ts_den,
            run=prev.run + 1 if new_run else prev.run,
            run_start_ppq=ppq if new_run else prev.run_start_ppq,
            version=prev.version + 1,
        ))

    def _publish_stopped(self, t_s: float, ppq: float) -> None:
        prev = self.snapshot
        self.publish(TransportSnapshot(
            playing=False,
            bpm=self._bpm(),
            anchor_time_s=t_s,
            anchor_ppq=ppq,
            bar_start_ppq=0.0,
            ts_num=self.context.ts_num,
            ts_den=self.context.ts_den,
            run=prev.run + 1,
            run_start_ppq=ppq,
            version=prev.version + 1,
        ))

    def _stop_at(self, t_s: float) -> None:
        """Stop (a Stop message, a timeout, a clock out of range) at ``t_s``; the position stays for Continue."""
        if self._state == _PLAYING:
            self._stop_ppq = self._ppq_of(self.model.index) + 1.0 / CLOCKS_PER_QUARTER
            self.events["stops"] += 1
            self._state = _STOPPED
            self._publish_stopped(t_s, self._stop_ppq)
        elif self._state == _CUED and self._anticipated:  # stopped before its first clock
            self._anticipated = False
            self._state = _STOPPED
            self._publish_stopped(t_s, self._cue_ppq)
        else:
            self._state = _STOPPED

    def _check_timeout(self, now_s: float) -> None:
        if ((self._state == _PLAYING or (self._state == _CUED and self._anticipated))
                and self._last_tick_s is not None and now_s - self._last_tick_s > self.timeout_s):
            self._odd["clock_timeout"] += 1
            self._stop_at(now_s)

    # -- event loop ---------------------------------------------------------------------
    def poll(self, now_s: float) -> None:
        """Log and count the bad input seen since the last call (at most once a second per kind); the
        timeout of a python-rtmidi input."""
        if self._rtmidi is not None:
            with self._lock:
                self._check_timeout(now_s)
        for kind in ODD_KINDS:
            seen = self._odd[kind]
            new = seen - self._odd_reported[kind]
            if new <= 0:
                continue
            self._odd_reported[kind] = seen
            if kind == "clock_out_of_range":
                self.note(kind, _MESSAGES[kind], self.model.min_bpm, self.model.max_bpm, new)
            elif kind == "clock_timeout":
                self.note(kind, _MESSAGES[kind], self.timeout_s, new)
            elif kind == "clock_without_start":
                self.note(kind, _MESSAGES[kind], new, level=logging.INFO)
            else:
                self.note(kind, _MESSAGES[kind], new)
            self.counters[kind] += new - 1

    @property
    def locked(self) -> bool:
        """Playing on a clock whose tempo is known and in range."""
        return self.snapshot.playing and self.model.in_range

    @property
    def jitter_ms(self) -> float | None:
        """Peak |residual| of the ticks in the tempo fit, ms (``None`` before 8 ticks)."""
        jitter_s = self.model.jitter_s
        return None if jitter_s is None else jitter_s * 1000.0

    @property
    def port(self) -> str | None:
        """The input's full name (``ai-band:clock-in`` on JACK), or ``None`` before it is open."""
        return self._port_full_name

    def status(self, now_s: float) -> dict:
        """The base status plus ``port``, ``state``, ``clock_bpm`` (measured, also while stopped), ``events``."""
        status = super().status(now_s)
        status["port"] = self.port
        status["state"] = self._state
        bpm = self.model.bpm
        status["clock_bpm"] = None if bpm is None or not math.isfinite(bpm) else round(bpm, 4)
        status["events"] = dict(self.events)
        return status

    def __repr__(self) -> str:
        return f"<MidiClockSource {self._state} run={self.snapshot.run}>"
