"""The MIDI output interface: one virtual output port, in the manner of mido's ports.

An :class:`Output` is opened by its back-end (construction or an ``open``
function), sends raw MIDI messages at CLOCK_MONOTONIC times, sends note-offs
and All Notes Off for what it knows is sounding, and closes (idempotent).
Like mido's ``BaseOutput``, the public methods check, lock and track the
sounding notes; a back-end overrides only the underscored methods
(:meth:`Output._send`, :meth:`Output._close`, and for a timed output
:meth:`Output._take_back`).

Back-ends:

* :mod:`ai_band.playback.outputs.jack` (JACK-Client): one JACK client holds
  every port; **timed**: each message is written at the frame it is due.
* :mod:`ai_band.playback.outputs.rtmidi` (python-rtmidi): ALSA sequencer,
  CoreMIDI or JACK; **untimed**: a message goes out when it is sent, so the
  caller sends it when it is due (:attr:`Output.timed` is False).

Note tracking follows MIDI 1.0: a note-off is 0x8n, or 0x9n with velocity 0;
All Notes Off is control change 123, All Sound Off control change 120.

The first thing a port writes is :data:`RESET_MESSAGES` (:meth:`Output.reset_channels`):
on every channel Reset All Controllers (CC 121), Sustain off (CC 64 = 0) and
All Notes Off (CC 123), so a synth left with notes hanging (the daemon was
killed, or the JACK server died under it) is silenced before anything else.

An output's MIDI system may go away and come back (a JACK server restart):
:attr:`Output.link` says whether it is there (:class:`Link`); while it is not,
sends are dropped and counted, never raised.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar, Self

__all__ = [
    "CC_ALL_NOTES_OFF", "CC_ALL_SOUND_OFF", "CC_RESET_ALL_CONTROLLERS", "CC_SUSTAIN", "CONTROL_CHANGE",
    "NOTE_OFF", "NOTE_ON", "PROGRAM_CHANGE", "RESET_MESSAGES",
    "Link", "LinkListener", "Message", "Output", "QueuedMessage", "due_ns",
]

NOTE_OFF = 0x80
NOTE_ON = 0x90
CONTROL_CHANGE = 0xB0
PROGRAM_CHANGE = 0xC0
CC_SUSTAIN = 64
CC_ALL_SOUND_OFF = 120
CC_RESET_ALL_CONTROLLERS = 121
CC_ALL_NOTES_OFF = 123

#: What a port writes first, at open and after its MIDI system came back: on
#: each channel 0..15, in this order, Reset All Controllers (CC 121, MIDI 1.0
#: channel mode message; RP-015 has it release the sustain pedal, keep
#: programs and volumes), Sustain off (CC 64 = 0, for receivers that do not
#: follow RP-015 on that point) and All Notes Off (CC 123).  The pedals go up
#: first because MIDI 1.0 has a note ended by All Notes Off sound on while
#: the sustain pedal is down.  48 messages, 144 bytes.
RESET_MESSAGES: tuple[bytes, ...] = tuple(
    bytes((CONTROL_CHANGE | channel, controller, 0))
    for channel in range(16)
    for controller in (CC_RESET_ALL_CONTROLLERS, CC_SUSTAIN, CC_ALL_NOTES_OFF)
)

#: One complete MIDI message, status byte first, each byte 0..255 (MIDI 1.0).
Message = bytes | tuple[int, ...] | list[int]

#: A message queued by a timed output: (due time in CLOCK_MONOTONIC ns, 0 = at once; MIDI bytes).
QueuedMessage = tuple[int, bytes]


def due_ns(at_s: float) -> int:
    """CLOCK_MONOTONIC seconds as the ns a timed output queues a message for.

    The one conversion :meth:`Output.send` and the scheduler's retiming
    (:meth:`Output.retime` keys) both use, so that their times match exactly.
    """
    return int(at_s * 1e9)


@dataclass(frozen=True)
class Link:
    """Whether an output's MIDI system is there to write to.

    Attributes:
        state: ``"ok"`` (messages go out), ``"lost"`` (the MIDI system went
            away, e.g. the JACK server stopped: sends are dropped and counted)
            or ``"closed"`` (:meth:`Output.close` was called).
        since_s: CLOCK_MONOTONIC seconds when it entered that state.
        reason: why it was lost (the JACK server's words), else ``None``.
        restores: how many times it came back since the output opened.
    """

    state: str
    since_s: float
    reason: str | None = None
    restores: int = 0


#: Called with the new :class:`Link` when an output's MIDI system goes or comes
#: back; from a back-end thread (never the scheduler's), so it must be quick.
LinkListener = Callable[[Link], None]


def _is_note_message(data: bytes) -> bool:
    return data[0] & 0xF0 in (NOTE_ON, NOTE_OFF)


class Output(ABC):
    """One virtual MIDI output port that remembers the notes it has sounding.

    Args:
        part: the part it plays (``drums``, ``bass``, ...); also the port's short name.
        name: the port's full system name, e.g. ``ai-band:bass`` on JACK.

    Thread-safe: one lock per output; the scheduler thread is the only
    sender during playback.  Usable as a context manager (closes on exit).
    """

    #: Messages sent with ``at_s`` are written at that time (JACK: at that
    #: frame); False: they go out at once, so send each when it is due.
    timed: ClassVar[bool] = False

    def __init__(self, part: str, name: str) -> None:
        self.part = part
        self.name = name
        #: Messages handed to the back-end since the output opened.
        self.sent_messages = 0
        self._lock = threading.Lock()
        self._sounding: set[tuple[int, int]] = set()
        self._closed = False
        self._opened_s = time.monotonic()
        #: This port's latency offset, ns: a timed output writes each message
        #: this much later than it is due (negative: earlier), to line the
        #: part up with a synth's or the DAW's input latency (``[playback]
        #: part_offsets_ms``, ``/band/offset``).  Untimed outputs ignore it.
        self.offset_ns = 0

    # -- back-end ------------------------------------------------------------
    @abstractmethod
    def _send(self, data: bytes, at_s: float | None) -> None:
        """Hand one message to the port (caller holds the lock).

        Args:
            data: the MIDI bytes, status first.
            at_s: CLOCK_MONOTONIC seconds when it is due; ``None``: at once.
                An untimed back-end ignores it.
        """

    @abstractmethod
    def _close(self) -> None:
        """Close the port (after the last note-offs; called once)."""

    def _take_back(self, keep: Callable[[bytes], bool]) -> list[QueuedMessage]:
        """Take back queued messages not yet written for which ``keep`` is false, in queue order.

        An untimed output queues nothing: nothing to take back.
        """
        return []

    def _forget_notes(self) -> None:
        """Forget what is sounding (the MIDI system that got the note-ons is gone): no note-offs for them."""
        with self._lock:
            self._sounding.clear()

    # -- interface -----------------------------------------------------------
    @property
    def closed(self) -> bool:
        """:meth:`close` was called."""
        return self._closed

    @property
    def link(self) -> Link:
        """Whether the MIDI system is there (:class:`Link`).

        This base: ``ok`` from opening until :meth:`close`; a back-end whose
        MIDI system can go away (JACK) overrides it.
        """
        return Link("closed" if self._closed else "ok", self._opened_s)

    def add_link_listener(self, listener: LinkListener) -> None:
        """Call ``listener`` whenever :attr:`link` changes state (lost, restored); once per listener.

        This base never changes state, so never calls it.  After a restore a
        timed output comes back held (:meth:`hold`, nothing of its queue is
        written): the listener that takes playback over calls :meth:`resume`.
        """

    def reset_channels(self) -> None:
        """Send :data:`RESET_MESSAGES` now (all notes off, controllers reset, on every channel).

        A back-end where a new port has no reader yet (JACK) overrides this to
        write them first to its first reader instead.
        """
        with self._lock:
            if self._closed:
                return
            for data in RESET_MESSAGES:
                self._put(data, None)

    @property
    def sounding(self) -> frozenset[tuple[int, int]]:
        """The (channel 0..15, pitch 0..127) pairs sounding once everything queued is out."""
        with self._lock:
            return frozenset(self._sounding)

    def _put(self, data: bytes, at_s: float | None) -> None:
        self._send(data, at_s)
        self.sent_messages += 1

    def send(self, message: Message, at_s: float | None = None) -> None:
        """Send one raw MIDI message at a time, tracking notes; nothing once closed.

        A note-on for a note already sounding is preceded by its note-off
        (retrigger); a note-off for a note not sounding is not sent.

        Args:
            message: MIDI bytes, status first (MIDI 1.0).
            at_s: CLOCK_MONOTONIC seconds when it is due.  A timed output
                writes it then (a past time: as soon as it can); an untimed
                one sends at once.  ``None``: at once.  Send in time order:
                a message waits behind the ones sent before it.
        """
        data = bytes(message)
        status = data[0] & 0xF0
        channel = data[0] & 0x0F
        with self._lock:
            if self._closed:
                return
            if status == NOTE_ON and data[2] > 0:
                key = (channel, data[1])
                if key in self._sounding:
                    self._put(bytes((NOTE_OFF | channel, data[1], 0)), at_s)
                self._sounding.add(key)
            elif status == NOTE_OFF or (status == NOTE_ON and data[2] == 0):
                key = (channel, data[1])
                if key not in self._sounding:
                    return
                self._sounding.discard(key)
            self._put(data, at_s)

    def _take_back_notes(self) -> None:
        """Take back queued note messages not yet written (caller holds the lock).

        The note tracking is rolled back message by message, newest first, so
        afterwards it again says what is sounding at the output.
        """
        for _at_ns, data in reversed(self._take_back(keep=lambda data: not _is_note_message(data))):
            key = (data[0] & 0x0F, data[1])
            if data[0] & 0xF0 == NOTE_ON and data[2] > 0:
                self._sounding.discard(key)
            else:
                self._sounding.add(key)

    def all_notes_off(self, at_s: float | None = None) -> int:
        """A note-off for every note sounding, then All Notes Off on each of their channels.

        MIDI 1.0: All Notes Off is control change 123 (value 0); it follows the
        note-offs, for a receiver that lost one.

        Args:
            at_s: ``None``: now; on a timed output the note messages queued
                for later are first taken back (those note-ons never sound).
                A CLOCK_MONOTONIC time in seconds: the messages are due then,
                after whatever is queued before it (a change of job on a bar line).

        Returns:
            How many note-offs were sent.
        """
        with self._lock:
            if self._closed:
                return 0
            if at_s is None:
                self._take_back_notes()
            notes = sorted(self._sounding)
            for channel, pitch in notes:
                self._put(bytes((NOTE_OFF | channel, pitch, 0)), at_s)
            for channel in sorted({channel for channel, _pitch in notes}):
                self._put(bytes((CONTROL_CHANGE | channel, CC_ALL_NOTES_OFF, 0)), at_s)
            self._sounding.clear()
        return len(notes)

    def panic(self) -> None:
        """:meth:`all_notes_off` now, then All Notes Off and All Sound Off (CC 123, 120) on all 16 channels."""
        self.all_notes_off()
        with self._lock:
            if self._closed:
                return
            for channel in range(16):
                self._put(bytes((CONTROL_CHANGE | channel, CC_ALL_NOTES_OFF, 0)), None)
                self._put(bytes((CONTROL_CHANGE | channel, CC_ALL_SOUND_OFF, 0)), None)

    def hold(self) -> None:
        """Timed outputs: write nothing from now on, keep what is queued, until :meth:`resume`.

        Untimed outputs queue nothing: a no-op there.
        """

    def resume(self) -> None:
        """Undo :meth:`hold`."""

    def retime(self, moves: dict[int, int]) -> int:
        """Timed outputs: move queued messages due at one time to another.

        Args:
            moves: CLOCK_MONOTONIC ns a message was queued for (:func:`due_ns`
                of the ``at_s`` given to :meth:`send`) -> the ns it is now due.
                Map times monotonically: the queue stays in time order.

        Returns:
            How many messages moved; 0 on an untimed output (it queues nothing).
        """
        return 0

    def stats(self) -> dict:
        """JSON-ready counters of the back-end; at least ``timed`` (see :attr:`timed`)."""
        return {"timed": self.timed}

    def write_log(self) -> dict | None:
        """JSON-ready record of what the back-end wrote when (diagnostics), or ``None`` if it keeps none."""
        return None

    def close(self) -> None:
        """Send :meth:`all_notes_off`, let it go out, close the port; idempotent."""
        if self._closed:
            return
        try:
            self.resume()
            self.all_notes_off()
        finally:
            with self._lock:
                self._closed = True
            self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {self.name!r} {state}>"
