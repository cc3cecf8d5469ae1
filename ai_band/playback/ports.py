"""The daemon's virtual MIDI output ports: one :class:`~ai_band.playback.output.Output` per part.

:func:`open_ports` picks the back-end from ``[midi] api``: on JACK one client
holds every port (:mod:`ai_band.playback.outputs.jack`, JACK-Client, timed):
``ai-band:drums``, ``ai-band:bass``, ...; on ALSA and CoreMIDI python-rtmidi
opens them (:mod:`ai_band.playback.outputs.rtmidi`, untimed), one client per
port.  :class:`PortSet` is a plain collection of the outputs; what it does to
all of them goes through the output interface only.

The ports' MIDI system may go and come back (a JACK server restart,
:mod:`ai_band.playback.outputs.jack`): :meth:`PortSet.state_dict` reports it
for ``/band/status``, :meth:`PortSet.require_available` refuses playback
while it is gone, and :meth:`PortSet.add_listener` tells the scheduler.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping

from ai_band.errors import MidiUnavailableError
from ai_band.playback.output import Link, LinkListener, Output

__all__ = ["PortSet", "open_ports"]

log = logging.getLogger(__name__)


class PortSet(Mapping[str, Output]):
    """The open outputs, one per part: a read-only mapping part -> :class:`Output`, in order.

    Args:
        outputs: the outputs, each with its ``part``.
    """

    def __init__(self, outputs: Iterable[Output]) -> None:
        self._outputs = {output.part: output for output in outputs}
        self._listeners: list[LinkListener] = []
        self._listeners_lock = threading.Lock()
        #: How many times the ports' MIDI system came back (the highest :attr:`Link.restores`).
        self.restores = 0
        for output in self._outputs.values():
            output.add_link_listener(self._on_link)

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

    # -- the MIDI system coming and going -------------------------------------
    def link(self) -> Link:
        """The ports' :class:`Link` as one: the worst state of any (lost > closed > ok), since its latest change."""
        links = [output.link for output in self._outputs.values()]
        if not links:
            return Link("closed", 0.0)
        rank = {"ok": 0, "closed": 1, "lost": 2}
        worst = max(links, key=lambda link: (rank.get(link.state, 2), link.since_s))
        same = [link for link in links if link.state == worst.state]
        return Link(worst.state, max(link.since_s for link in same), worst.reason,
                    max(link.restores for link in links))

    @property
    def available(self) -> bool:
        """Every port's MIDI system is there (:attr:`Link.state` ``ok``): what is sent goes out."""
        return bool(self._outputs) and all(output.link.state == "ok" for output in self._outputs.values())

    def require_available(self) -> None:
        """Raise unless :attr:`available`.

        Raises:
            MidiUnavailableError: the MIDI system is gone (with why and for how long); code ``midi_unavailable``.
        """
        link = self.link()
        if link.state != "ok":
            why = f": {link.reason}" if link.reason else ""
            raise MidiUnavailableError(f"MIDI output {link.state} for {time.monotonic() - link.since_s:.1f} s{why}; "
                                       "playback resumes when it returns")

    def state_dict(self) -> dict:
        """JSON-ready MIDI state for ``/band/status``.

        Returns:
            ``{"state": "ok" | "lost" | "closed", "since_s": seconds in that
            state, "reason": why lost or None, "restores": times it came back,
            "dropped_messages": sends dropped while lost, "send_errors": sends
            the back-end refused}``.
        """
        link = self.link()
        stats = self.stats()
        return {"state": link.state, "since_s": round(max(0.0, time.monotonic() - link.since_s), 3),
                "reason": link.reason, "restores": link.restores,
                "dropped_messages": stats.get("dropped_messages", 0), "send_errors": stats.get("send_errors", 0)}

    def add_listener(self, listener: LinkListener) -> None:
        """Call ``listener(link)`` (from a back-end thread) when the ports' MIDI system goes or comes back.

        Restored timed ports come back held (:meth:`hold`): a listener takes
        playback over and calls :meth:`resume`; with no listener the ports
        resume by themselves.
        """
        with self._listeners_lock:
            self._listeners.append(listener)

    def _on_link(self, link: Link) -> None:
        if link.state == "ok":
            self.restores = max(self.restores, link.restores)
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(link)
            except Exception:  # noqa: BLE001 - a back-end thread must survive its listeners
                log.exception("MIDI link listener failed")
        if link.state == "ok" and not listeners:
            self.resume()

    def reset_channels(self) -> None:
        """:meth:`Output.reset_channels` on every output (all notes off, controllers reset, every channel)."""
        for output in self._outputs.values():
            output.reset_channels()

    # -- collection -----------------------------------------------------------
    @property
    def jack_client(self):  # -> JackMidiClient | None (JACK imported only where used)
        """The one :class:`~ai_band.playback.outputs.jack.JackMidiClient` holding every port, or ``None``.

        ``None`` when the ports are not on JACK (or not one client's): the
        sync sources and the clock port that need JACK's process callback
        (:meth:`JackMidiClient.add_process_hook`) are then unavailable.
        """
        clients = {id(c): c for c in (getattr(o, "client", None) for o in self._outputs.values())}
        if len(clients) != 1:
            return None
        (client,) = clients.values()
        return client if hasattr(client, "add_process_hook") else None

    def names(self) -> dict[str, str]:
        """Part -> the port's full system name (e.g. ``ai-band:bass`` on JACK)."""
        return {part: output.name for part, output in self._outputs.items()}

    def stats(self) -> dict:
        """The back-ends' JSON-ready counters merged (:meth:`Output.stats`; ports of one client report the same)."""
        merged: dict = {}
        send_errors = 0
        for output in self._outputs.values():
            stats = output.stats()
            send_errors += stats.get("send_errors", 0)
            merged.update(stats)
        if send_errors:
            merged["send_errors"] = send_errors
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
               jack_rtprio: int = 0, jack_write_log_size: int = 0, reconnect_s: float = 1.0) -> PortSet:
    """Open one output per part on the MIDI system ``api_name``; the first thing each writes is a reset.

    The reset is :data:`~ai_band.playback.output.RESET_MESSAGES` on every
    channel (:meth:`PortSet.reset_channels`).  On JACK a new port has no
    reader yet, so it writes them when it first has one (and again after the
    server came back).

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
        reconnect_s: JACK only: once the server has gone, try to reach a new
            one this often (seconds), and recreate the ports under the same names.

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
                                            write_log_size=jack_write_log_size, reconnect_s=reconnect_s)
    else:
        outputs = rtmidi_outputs.open_outputs(parts, api, client_name)
    ports = PortSet(outputs.values())
    ports.reset_channels()
    log.info("MIDI ports: %s", ", ".join(ports.names().values()))
    return ports


def set_part_offsets(ports: PortSet, offsets_ms: dict[str, float]) -> list[str]:
    """Set each named part's latency offset (:attr:`Output.offset_ns`), ms -> ns.

    Args:
        ports: the open ports.
        offsets_ms: part -> offset in ms (-100..100; positive: later); parts not given keep theirs.

    Returns:
        The parts given that have no port, or whose port is untimed (the offset
        cannot apply there; ALSA and CoreMIDI ports send when due): logged by the caller.
    """
    ignored = []
    for part, ms in offsets_ms.items():
        output = ports.get(part)
        if output is None or not output.timed:
            ignored.append(part)
            continue
        output.offset_ns = round(ms * 1e6)
    return ignored

