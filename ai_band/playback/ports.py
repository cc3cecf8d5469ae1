"""The daemon's virtual MIDI output ports: one :class:`~ai_band.playback.output.Output` per part.

:func:`open_ports` picks the back-end from ``[midi] api``: on JACK one client
holds every port (:mod:`ai_band.playback.outputs.jack`, JACK-Client, timed):
``ai-band:drums``, ``ai-band:bass``, ...; on ALSA and CoreMIDI python-rtmidi
opens them (:mod:`ai_band.playback.outputs.rtmidi`, untimed), one client per
port.  :class:`PortSet` is a plain collection of the outputs; what it does to
all of them goes through the output interface only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping

from ai_band.playback.output import Output

__all__ = ["PortSet", "open_ports"]

log = logging.getLogger(__name__)


class PortSet(Mapping[str, Output]):
    """The open outputs, one per part: a read-only mapping part -> :class:`Output`, in order.

    Args:
        outputs: the outputs, each with its ``part``.
    """

    def __init__(self, outputs: Iterable[Output]) -> None:
        self._outputs = {output.part: output for output in outputs}

    def __getitem__(self, part: str) -> Output:
        return self._outputs[part]

    def __iter__(self) -> Iterator[str]:
        return iter(self._outputs)

    def __len__(self) -> int:
        return len(self._outputs)

    @property
    def timed(self) -> bool:
        """Every output writes messages at the time given (:attr:`Output.timed`), none at once."""
        return bool(self._outputs) and all(output.timed for output in self._outputs.values())

    def names(self) -> dict[str, str]:
        """Part -> the port's full system name (e.g. ``ai-band:bass`` on JACK)."""
        return {part: output.name for part, output in self._outputs.items()}

    def stats(self) -> dict:
        """The back-ends' JSON-ready counters merged (:meth:`Output.stats`; ports of one client report the same)."""
        merged: dict = {}
        for output in self._outputs.values():
            merged.update(output.stats())
        merged["timed"] = self.timed
        return merged

    def write_log(self) -> dict | None:
        """The back-ends' write logs merged (:meth:`Output.write_log`), or ``None`` if none keeps one."""
        merged: dict | None = None
        for output in self._outputs.values():
            record = output.write_log()
            if record is not None:
                merged = {**(merged or {}), **record}
        return merged

    def hold(self) -> None:
        """:meth:`Output.hold` on every output."""
        for output in self._outputs.values():
            output.hold()

    def resume(self) -> None:
        """:meth:`Output.resume` on every output."""
        for output in self._outputs.values():
            output.resume()

    def retime(self, moves: dict[int, int]) -> int:
        """:meth:`Output.retime` on every output; returns how many messages moved."""
        return sum(output.retime(moves) for output in self._outputs.values())

    def all_notes_off(self, at_s: float | None = None) -> int:
        """:meth:`Output.all_notes_off` on every output; returns how many note-offs were sent."""
        return sum(output.all_notes_off(at_s) for output in self._outputs.values())

    def panic(self) -> None:
        """:meth:`Output.panic` on every output."""
        for output in self._outputs.values():
            output.panic()

    def close(self, drain_s: float = 0.05) -> None:
        """All notes off, let them go out, close every output; idempotent.

        Args:
            drain_s: wait this long (s) between the note-offs and closing, for
                them and the note-offs the scheduler sent just before to go out.
        """
        open_outputs = [output for output in self._outputs.values() if not output.closed]
        if not open_outputs:
            return
        self.resume()
        self.all_notes_off()
        time.sleep(drain_s)
        for output in open_outputs:
            try:
                output.close()
            except Exception:  # noqa: BLE001 - keep closing the others
                log.exception("closing MIDI port %s failed", output.name)


def open_ports(parts: Iterable[str], api_name: str = "auto", client_name: str = "ai-band",
               jack_rtprio: int = 0, jack_write_log_size: int = 0) -> PortSet:
    """Open one output per part on the MIDI system ``api_name``.

    Args:
        parts: part names to open ports for, in order.
        api_name: ``auto``, ``alsa``, ``jack`` or ``coremidi``
            (:func:`~ai_band.playback.outputs.rtmidi.resolve_api`).  JACK uses
            :mod:`ai_band.playback.outputs.jack`, the others python-rtmidi.
        client_name: client name of every port.
        jack_rtprio: JACK only: ``SCHED_FIFO`` priority for the client's process
            thread (see :class:`~ai_band.playback.outputs.jack.JackMidiClient`); 0 = as libjack made it.
        jack_write_log_size: JACK only: keep the frames of the last this many
            note-ons written (:meth:`PortSet.write_log`); 0 = none.

    Raises:
        MidiPortError: any port fails to open (ports opened so far are closed).
    """
    import rtmidi

    from ai_band.playback.outputs import rtmidi as rtmidi_outputs

    parts = list(parts)
    api = rtmidi_outputs.resolve_api(api_name)
    if api == rtmidi.API_UNIX_JACK:
        from ai_band.playback.outputs import jack as jack_outputs  # imports libjack

        outputs = jack_outputs.open_outputs(parts, client_name, rtprio=jack_rtprio,
                                            write_log_size=jack_write_log_size)
    else:
        outputs = rtmidi_outputs.open_outputs(parts, api, client_name)
    ports = PortSet(outputs.values())
    log.info("MIDI ports: %s", ", ".join(ports.names().values()))
    return ports
