"""Virtual MIDI output ports, one per part.

On JACK one client holds every port (:mod:`ai_band.playback.outputs.jack`,
JACK-Client): ``ai-band:drums``, ``ai-band:bass``, ``ai-band:keys``.  On ALSA
and CoreMIDI python-rtmidi opens the ports: one rtmidi client per port, shown
as client ``ai-band`` with one port each.  :class:`PartPort` tracks the notes
it has sounding so that every note-on gets its note-off (MIDI 1.0 spec:
note-off is 0x8n or 0x9n with velocity 0; All Notes Off is CC 123, All
Sound Off is CC 120).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Callable, Iterable

from ai_band.errors import MidiPortError

if TYPE_CHECKING:
    from ai_band.playback.outputs.jack import JackMidiClient

log = logging.getLogger(__name__)

NOTE_OFF = 0x80
NOTE_ON = 0x90
CONTROL_CHANGE = 0xB0
PROGRAM_CHANGE = 0xC0
CC_ALL_SOUND_OFF = 120
CC_ALL_NOTES_OFF = 123

API_NAMES = ("auto", "alsa", "jack", "coremidi")


def due_ns(at_s: float) -> int:
    """CLOCK_MONOTONIC seconds as the ns a timed port queues a message for.

    The one conversion :meth:`PartPort.send` and the scheduler's retiming
    (:meth:`PortSet.retime` keys) both use, so that their times match exactly.
    """
    return int(at_s * 1e9)


def resolve_api(name: str) -> int:
    """Map ``auto|alsa|jack|coremidi`` to a python-rtmidi API constant.

    ``auto`` picks CoreMIDI on macOS, ALSA on Linux when the ALSA sequencer
    (/dev/snd/seq) exists, else JACK when a JACK server is reachable.

    Raises:
        MidiPortError: unknown name, or the API is not compiled into python-rtmidi.
    """
    import rtmidi

    table = {
        "alsa": rtmidi.API_LINUX_ALSA,
        "jack": rtmidi.API_UNIX_JACK,
        "coremidi": rtmidi.API_MACOSX_CORE,
    }
    compiled = set(rtmidi.get_compiled_api())
    if name == "auto":
        if sys.platform == "darwin":
            name = "coremidi"
        elif os.path.exists("/dev/snd/seq") and rtmidi.API_LINUX_ALSA in compiled:
            name = "alsa"
        else:
            name = "jack"
    if name not in table:
        raise MidiPortError(f"unknown MIDI API {name!r}; choose one of {', '.join(API_NAMES)}")
    api = table[name]
    if api not in compiled:
        raise MidiPortError(f"python-rtmidi was built without the {name} API")
    return api


class PartPort:
    """One virtual MIDI output port that remembers its sounding notes.

    Args:
        part: part name; also the port name (``drums``, ``bass``, ...).
        out: the sending side: anything with ``send_message(list of int)``
            (``rtmidi.MidiOut`` or :class:`~ai_band.playback.outputs.jack.JackPortOut`).
        full_name: the port's system name, e.g. ``ai-band:bass``.
        on_close: called once by :meth:`close` after the last note-offs
            (closes an rtmidi port); ``None`` for ports whose client closes them.

    Methods are thread-safe (one lock per port); the scheduler thread is the
    only caller during playback.
    """

    def __init__(self, part: str, out: object, full_name: str,
                 on_close: Callable[[], None] | None = None) -> None:
        self.part = part
        self._lock = threading.Lock()
        self._sounding: set[tuple[int, int]] = set()
        self.sent_messages = 0
        self._out = out
        self._on_close = on_close
        self.full_name = full_name
        #: The output writes each message at the time it is due (JACK); rtmidi
        #: outputs send at once and ignore ``at_s``.
        self.timed = hasattr(out, "unsend")

    def _send(self, message: Iterable[int], at_s: float | None = None) -> None:
        if self.timed:
            self._out.send_message(message, 0 if at_s is None else due_ns(at_s))
        else:
            self._out.send_message(message)
        self.sent_messages += 1

    def send(self, message: bytes | tuple[int, ...] | list[int], at_s: float | None = None) -> None:
        """Send one raw MIDI message (status byte first), tracking notes.

        A note-on for a note already sounding is preceded by its note-off
        (retrigger); a note-off for a note not sounding is not sent.

        Args:
            message: MIDI bytes, status first (MIDI 1.0).
            at_s: CLOCK_MONOTONIC seconds when it is due; a timed (JACK) port
                writes it at that frame, others send at once. ``None``: at once.
        """
        status = message[0] & 0xF0
        channel = message[0] & 0x0F
        with self._lock:
            if self._out is None:
                return
            if status == NOTE_ON and message[2] > 0:
                key = (channel, message[1])
                if key in self._sounding:
                    self._send([NOTE_OFF | channel, message[1], 0], at_s)
                self._sounding.add(key)
            elif status == NOTE_OFF or (status == NOTE_ON and message[2] == 0):
                key = (channel, message[1])
                if key not in self._sounding:
                    return
                self._sounding.discard(key)
            self._send(list(message), at_s)

    def _unsend_notes(self) -> int:
        """Take back queued note messages not yet written (caller holds the lock).

        The note tracking is rolled back message by message, newest first, so
        afterwards it again says what is sounding at the output.

        Returns:
            How many note-ons were taken back.
        """
        if not self.timed:
            return 0
        taken = self._out.unsend(keep=lambda data: data[0] & 0xF0 not in (NOTE_ON, NOTE_OFF))
        note_ons = 0
        for _at_ns, data in reversed(taken):
            key = (data[0] & 0x0F, data[1])
            if data[0] & 0xF0 == NOTE_ON and data[2] > 0:
                self._sounding.discard(key)
                note_ons += 1
            else:
                self._sounding.add(key)
        return note_ons

    @property
    def sounding(self) -> frozenset[tuple[int, int]]:
        """The (channel 0..15, pitch 0..127) pairs sounding once everything queued is out."""
        with self._lock:
            return frozenset(self._sounding)

    def release_all(self, at_s: float | None = None) -> int:
        """Note-offs for every sounding note; return how many were sent.

        Args:
            at_s: ``None``: now; on a timed port, note messages queued for
                later are first taken back (those note-ons never sound).
                A CLOCK_MONOTONIC time: note-offs due then, after whatever is
                queued before it (for a change of job on a bar line).
        """
        with self._lock:
            if self._out is None:
                return 0
            if at_s is None:
                self._unsend_notes()
            notes = sorted(self._sounding)
            for channel, pitch in notes:
                self._send([NOTE_OFF | channel, pitch, 0], at_s)
            self._sounding.clear()
        return len(notes)

    def panic(self) -> None:
        """Note-offs for sounding notes, then All Notes Off and All Sound Off on all 16 channels."""
        self.release_all()
        with self._lock:
            if self._out is None:
                return
            for channel in range(16):
                self._send([CONTROL_CHANGE | channel, CC_ALL_NOTES_OFF, 0])
                self._send([CONTROL_CHANGE | channel, CC_ALL_SOUND_OFF, 0])

    def close(self) -> None:
        """Release sounding notes and close the port; idempotent."""
        if self._out is None:
            return
        try:
            self.release_all()
            if self._on_close is not None:
                self._on_close()
        finally:
            with self._lock:
                self._out = None


def open_rtmidi_port(part: str, api: int, client_name: str = "ai-band") -> PartPort:
    """Open a python-rtmidi virtual output port named ``part``.

    Args:
        part: part name, used as the port name.
        api: python-rtmidi API constant (see :func:`resolve_api`).
        client_name: MIDI client name.

    Raises:
        MidiPortError: the port cannot be opened.
    """
    import rtmidi

    try:
        out = rtmidi.MidiOut(api, name=client_name)
        out.open_virtual_port(part)
    except (rtmidi.SystemError, rtmidi.InvalidUseError, RuntimeError) as exc:
        hint = " (is a JACK server running?)" if api == rtmidi.API_UNIX_JACK else ""
        raise MidiPortError(f"cannot open virtual MIDI port {part!r}: {exc}{hint}") from exc

    def close() -> None:
        out.close_port()
        out.delete()

    return PartPort(part, out, part, on_close=close)


def _listed_port_names(api: int) -> list[str]:
    import rtmidi

    probe = rtmidi.MidiIn(api, name="ai-band-probe")
    try:
        return list(probe.get_ports())
    finally:
        probe.delete()


class PortSet:
    """The daemon's virtual ports, one :class:`PartPort` per part.

    Args:
        parts: part names to open ports for, in order.
        api_name: ``auto``, ``alsa``, ``jack`` or ``coremidi``.
        client_name: client name of every port.
        jack_rtprio: JACK only: ``SCHED_FIFO`` priority for the client's process
            thread (see :class:`~ai_band.playback.outputs.jack.JackMidiClient`); 0 = as libjack made it.
        jack_write_log_size: JACK only: keep the frames of the last this many
            note-ons written (:meth:`jack_write_log`); 0 = none.

    Raises:
        MidiPortError: any port fails to open (ports opened so far are closed).
    """

    def __init__(self, parts: Iterable[str], api_name: str = "auto", client_name: str = "ai-band",
                 jack_rtprio: int = 0, jack_write_log_size: int = 0) -> None:
        import rtmidi

        self.api = resolve_api(api_name)
        self.ports: dict[str, PartPort] = {}
        self._jack: JackMidiClient | None = None
        parts = list(parts)
        if self.api == rtmidi.API_UNIX_JACK:
            from ai_band.playback.outputs.jack import JackMidiClient  # imports libjack

            self._jack = JackMidiClient(parts, client_name, rtprio=jack_rtprio, write_log_size=jack_write_log_size)
            for part, out in self._jack.outputs.items():
                self.ports[part] = PartPort(part, out, out.name)
        else:
            try:
                for part in parts:
                    self.ports[part] = open_rtmidi_port(part, self.api, client_name)
            except MidiPortError:
                self.close()
                raise
            self._discover_names(client_name)
        log.info("MIDI ports: %s", ", ".join(p.full_name for p in self.ports.values()))

    def _discover_names(self, client_name: str) -> None:
        try:
            listed = _listed_port_names(self.api)
        except Exception:  # noqa: BLE001 - names are informative only
            return
        for part, port in self.ports.items():
            for name in listed:
                # ALSA: "ai-band:bass 128:0"; CoreMIDI: "ai-band bass".
                head = name.split(" ")[0]
                if head.startswith(client_name) and head.split(":")[-1] == part:
                    port.full_name = head
                    break

    @property
    def timed(self) -> bool:
        """Messages sent with ``at_s`` are written at that time (JACK), not at once."""
        return self._jack is not None

    def output_stats(self) -> dict:
        """JSON-ready output counters: ``timed``; on JACK also ``late_messages``
        (written after they were due, at the start of a later period),
        ``skipped_periods`` (periods whose callback never ran),
        ``held_periods`` (callbacks that left the previous, late callback's
        output to its readers, their own messages going out a period later) and
        ``xruns`` (reported by the JACK server since start-up),
        ``process_thread`` (the scheduling of the client's process thread, e.g.
        ``"SCHED_FIFO 10"``; ``None`` before its first period), and once the
        server has gone ``server_gone`` (its reason, else ``None``) and
        ``dropped_messages`` (sent since then, never written)."""
        if self._jack is None:
            return {"timed": False}
        return {"timed": True, "late_messages": self._jack.late_messages,
                "skipped_periods": self._jack.skipped_periods,
                "held_periods": self._jack.held_periods, "xruns": self._jack.xruns,
                "process_thread": self._jack.process_thread,
                "dropped_messages": self._jack.dropped_messages,
                "server_gone": self._jack.shutdown_reason}

    def jack_write_log(self) -> list[tuple[int, str, int]]:
        """``(JACK frame, port name, pitch)`` of the note-ons written, oldest first; empty unless kept (JACK only)."""
        if self._jack is None or self._jack.write_log is None:
            return []
        return list(self._jack.write_log)

    def jack_write_callbacks(self) -> list[tuple[int, int, float, bool]]:
        """The callbacks that wrote the note-ons of :meth:`jack_write_log`, oldest first (JACK only).

        Each is ``(last_frame_time, frames since the server began the cycle at
        the callback's start, µs from the end of the callback before to the
        cycle's start, whether the frame time had moved on when it ended)``;
        see :attr:`~ai_band.playback.outputs.jack.JackMidiClient.write_callbacks`.
        """
        if self._jack is None or self._jack.write_callbacks is None:
            return []
        return list(self._jack.write_callbacks)

    def names(self) -> dict[str, str]:
        """Part name -> the port's full system name (e.g. ``ai-band:bass`` on JACK)."""
        return {part: port.full_name for part, port in self.ports.items()}

    def hold_output(self) -> None:
        """Timed ports: write nothing from now on, keep what is queued, until :meth:`resume_output`.

        For the moment a transport change arrives: notes already handed to
        the JACK client for the old position must not go out while the
        scheduler thread wakes up to take them back.  Untimed ports send at
        once and queue nothing: a no-op there.
        """
        if self._jack is not None:
            self._jack.paused = True

    def resume_output(self) -> None:
        """Undo :meth:`hold_output`."""
        if self._jack is not None:
            self._jack.paused = False

    def retime(self, moves: dict[int, int]) -> int:
        """Timed ports: move queued messages due at one time to another; returns how many moved.

        Args:
            moves: CLOCK_MONOTONIC ns a message was queued for -> the ns it is
                now due (:func:`due_ns` of the times given to :meth:`PartPort.send`).

        Untimed ports send at once and queue nothing: 0.
        """
        if self._jack is None:
            return 0
        return self._jack.retime(moves)

    def release_all(self, at_s: float | None = None) -> int:
        """Note-offs for every sounding note on every port; returns the count.

        ``at_s`` as in :meth:`PartPort.release_all`.
        """
        return sum(port.release_all(at_s) for port in self.ports.values())

    def panic(self) -> None:
        """Note-offs plus All Notes Off / All Sound Off on every port and channel."""
        for port in self.ports.values():
            port.panic()

    def close(self, drain_s: float = 0.05) -> None:
        """Release sounding notes, let them drain, close every port; idempotent.

        Args:
            drain_s: wait this long between the note-offs and closing. On JACK
                messages are queued and written out at the next process
                cycle; closing at once would drop them.
        """
        self.resume_output()
        self.release_all()
        if self.ports:
            time.sleep(drain_s)  # also drains note-offs the scheduler sent just before
        for port in self.ports.values():
            try:
                port.close()
            except Exception:  # noqa: BLE001 - keep closing the others
                log.exception("closing MIDI port %s failed", port.part)
        if self._jack is not None:
            self._jack.close()
