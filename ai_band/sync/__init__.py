"""Transport sources: what the band follows, and the MIDI clock it sends.

One source drives the band at a time (``[sync] source``, ``ai-band run
--sync``, ``/band/sync``); every source publishes the same
:class:`~ai_band.transport.TransportSnapshot` s to the scheduler through the
:class:`~ai_band.sync.manager.SyncManager`, so playback and the JACK output
are one path whatever the source:

=============  ====================================  ==============================
source         follows                               module
=============  ====================================  ==============================
``osc``        the plugin's ``/band/transport``      :mod:`ai_band.sync.osc`
``jack``       the JACK transport (timebase master)  :mod:`ai_band.sync.jack_transport`
``midi-clock`` MIDI clock, Start/Stop/Continue, SPP  :mod:`ai_band.sync.midi_clock`
``link``       an Ableton Link session (``[link]``)  :mod:`ai_band.sync.link`
``internal``   its own clock (``/band/tempo`` ...)   :mod:`ai_band.sync.internal`
=============  ====================================  ==============================

:mod:`ai_band.sync.clock_out` sends MIDI clock for whichever source drives the band.
docs/sync.md has a set-up per DAW and the measured figures.
"""

from __future__ import annotations

#: The sources by name, as ``module:class`` (imported only when chosen: Link's binding is an extra).
SOURCE_CLASSES: dict[str, str] = {
    "osc": "ai_band.sync.osc:OscSource",
    "jack": "ai_band.sync.jack_transport:JackTransportSource",
    "midi-clock": "ai_band.sync.midi_clock:MidiClockSource",
    "link": "ai_band.sync.link:LinkSource",
    "internal": "ai_band.sync.internal:InternalSource",
}

#: The names accepted by ``[sync] source``, ``--sync`` and ``/band/sync``.
SOURCES: tuple[str, ...] = tuple(SOURCE_CLASSES)
