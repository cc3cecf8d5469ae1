"""The band's playback on a private JACK server, following one sync source, with a recorder.

What the sync benchmarks (and their tests) share: the drums port of
:func:`~ai_band.playback.ports.open_ports` on JACK, a
:class:`~ai_band.playback.scheduler.Scheduler` playing against the source's
snapshots, and a :class:`~ai_band.testing.recorder_process.RecorderProcess`
(another process, so this one's GIL never delays what it records).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ai_band.playback.ports import open_ports
from ai_band.playback.scheduler import Scheduler
from ai_band.sync.source import SyncContext, SyncSource
from ai_band.testing.jackserver import JackServer
from ai_band.testing.recorder_process import RecorderProcess

#: Note-ons the JACK output keeps in its write log (frame of each, for the figures).
WRITE_LOG_SIZE = 200_000


class BandRig:
    """Ports, scheduler, a started source and a recorder of ``<client_name>:drums``.

    Args:
        server: the private JACK server (``JACK_DEFAULT_SERVER`` is set to it
            in this process: :func:`open_ports` finds the server that way).
        make_source: builds the source from the :class:`SyncContext` (its
            ``jack_client`` is the ports' client).
        bpm: the context's configured tempo, quarter notes per minute.
        client_name: the JACK client name of the band's ports.
    """

    def __init__(self, server: JackServer, make_source: Callable[[SyncContext], SyncSource],
                 bpm: float = 120.0, client_name: str = "ai-band") -> None:
        self.server = server
        os.environ["JACK_DEFAULT_SERVER"] = server.name
        self.ports = open_ports(["drums"], api_name="jack", client_name=client_name,
                                jack_write_log_size=WRITE_LOG_SIZE)
        self.scheduler = Scheduler(self.ports)
        self.source = make_source(SyncContext(bpm=bpm, jack_client=self.ports.jack_client))
        self.recorder = RecorderProcess(server.name, f"^{client_name}:drums$")
        self.scheduler.start()
        self.source.start(self.publish)

    def publish(self, snapshot) -> None:
        """Hand the source's ``snapshot`` to the scheduler (subclasses may also keep it)."""
        self.scheduler.set_transport(snapshot)

    def close(self) -> None:
        """Stop the source, the scheduler, the ports and the recorder, in reverse order of start."""
        self.source.stop()
        self.scheduler.stop()
        self.ports.close()
        self.recorder.close()

    def note_ons(self) -> list:
        """The recorded note-ons (:class:`~ai_band.testing.recorder.RecordedEvent`), in time order."""
        return [e for e in self.recorder.events() if e.is_note_on]
