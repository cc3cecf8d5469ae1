"""Tools to drive and observe the daemon as a DAW would; used by ``make demo``, tests and bench.

Nothing here is imported by the daemon itself.

Cheat-sheet::

    from ai_band.testing.jackserver import JackServer, jackd_path
    from ai_band.testing.recorder import MidiRecorder, RecordedEvent
    from ai_band.host import HostClock, HostSimulator, OscClient

    with JackServer() as jack_server:                 # private jackd (dummy driver)
        with MidiRecorder(jack_server.name) as rec:   # frame-accurate JACK MIDI capture
            rec.connect("ai-band")                    # every ai-band*:* MIDI output
            with HostSimulator(("127.0.0.1", 9000)) as host:   # /band/transport at 25 Hz
                host.play()
                ...
            rec.note_ons("drums"), rec.hanging_notes()

Times are seconds on CLOCK_MONOTONIC (``time.monotonic()``) unless a name says
otherwise; musical positions are ppq (quarter notes), as in JUCE's
``AudioPlayHead::PositionInfo``.
"""
