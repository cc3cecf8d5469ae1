"""python-rtmidi outputs: virtual ports on the ALSA sequencer, CoreMIDI or JACK.

One rtmidi client per port, shown as client ``ai-band`` with one port each
(ALSA: ``ai-band:bass 128:0``; CoreMIDI: ``ai-band bass``).  Untimed: a
message goes out when it is sent (python-rtmidi has no timestamps), so the
scheduler sends each when it is due.  On JACK python-rtmidi writes each
message at offset 0 of the next period (0..1 period late) and opens one
JACK client per port; the daemon uses :mod:`ai_band.playback.outputs.jack`
there instead.

A failed send (the ALSA sequencer or the JACK server went away under
python-rtmidi) is counted in :attr:`RtMidiOutput.send_errors` and logged
once, never raised into the scheduler.  python-rtmidi cannot tell when its
MIDI system comes back, so these ports are not reopened (untested here: the
machine this was written on has no ALSA sequencer).
"""

from __future__ import annotations

import logging
import os
import sys
import time

import rtmidi

from ai_band.config.shipped import MIDI_APIS
from ai_band.errors import MidiPortError
from ai_band.playback.output import Output

__all__ = ["API_NAMES", "RtMidiOutput", "listed_port_names", "open_outputs", "resolve_api"]

log = logging.getLogger(__name__)

#: The ``[midi] api`` names (the config's allowed values).
API_NAMES = MIDI_APIS

#: python-rtmidi's JACK back-end writes its ring buffer out in the next
#: process cycle: wait this long (s) before closing so the last note-offs go out.
JACK_DRAIN_S = 0.05


def resolve_api(name: str) -> int:
    """Map ``auto|alsa|jack|coremidi`` to a python-rtmidi API constant.

    ``auto`` picks CoreMIDI on macOS, ALSA on Linux when the ALSA sequencer
    (/dev/snd/seq) exists, else JACK.

    Raises:
        MidiPortError: unknown name, or the API is not compiled into python-rtmidi.
    """
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


class RtMidiOutput(Output):
    """A python-rtmidi virtual output port (untimed: sends at once).

    Args:
        part: part name, used as the port name.
        api: python-rtmidi API constant (see :func:`resolve_api`).
        client_name: the MIDI client name.

    Raises:
        MidiPortError: the port cannot be opened.
    """

    timed = False

    def __init__(self, part: str, api: int, client_name: str = "ai-band") -> None:
        super().__init__(part, part)
        self.api = api
        #: Sends python-rtmidi refused (its MIDI system went away); dropped.
        self.send_errors = 0
        try:
            self._out = rtmidi.MidiOut(api, name=client_name)
            self._out.open_virtual_port(part)
        except (rtmidi.SystemError, rtmidi.InvalidUseError, RuntimeError) as exc:
            hint = " (is a JACK server running?)" if api == rtmidi.API_UNIX_JACK else ""
            raise MidiPortError(f"cannot open virtual MIDI port {part!r}: {exc}{hint}") from exc

    def _send(self, data: bytes, at_s: float | None) -> None:
        try:
            self._out.send_message(data)
        except (rtmidi.RtMidiError, RuntimeError, ValueError) as exc:
            self.send_errors += 1
            if self.send_errors == 1:
                log.error("MIDI port %s: send failed (%s); further failures are only counted", self.name, exc)

    def stats(self) -> dict:
        """``timed`` (False) and ``send_errors`` (sends python-rtmidi refused; :class:`~ai_band.playback.ports.PortSet` sums them)."""
        return {"timed": False, "send_errors": self.send_errors}

    def _close(self) -> None:
        if self.api == rtmidi.API_UNIX_JACK:
            time.sleep(JACK_DRAIN_S)
        self._out.close_port()
        self._out.delete()


def listed_port_names(api: int) -> list[str]:
    """The output ports the MIDI system lists (as an input sees them), e.g. ``ai-band:bass 128:0``."""
    probe = rtmidi.MidiIn(api, name="ai-band-probe")
    try:
        return list(probe.get_ports())
    finally:
        probe.delete()


def open_outputs(parts: list[str], api: int, client_name: str = "ai-band") -> dict[str, RtMidiOutput]:
    """Open one :class:`RtMidiOutput` per part and learn the system's names for them.

    Raises:
        MidiPortError: a port fails to open (those opened so far are closed).
    """
    outputs: dict[str, RtMidiOutput] = {}
    try:
        for part in parts:
            outputs[part] = RtMidiOutput(part, api, client_name)
    except MidiPortError:
        for output in outputs.values():
            output.close()
        raise
    try:
        listed = listed_port_names(api)
    except Exception:  # noqa: BLE001 - names are informative only
        return outputs
    for part, output in outputs.items():
        for name in listed:
            # ALSA: "ai-band:bass 128:0"; CoreMIDI: "ai-band bass"; JACK: "ai-band:bass".
            head = name.split(" ")[0]
            if head.startswith(client_name) and head.split(":")[-1] == part:
                output.name = head
                break
    return outputs
