"""ai-band: a real-time OSC/MIDI band daemon that plays along with a DAW.

The path of a request, module by module::

    osc/server.py          UDP datagrams in (kernel arrival times), OSC 1.0 decoding
    osc/api.py             the /band/* handlers: transport -> transport.py, generate -> jobs/
    request.py             raw key/values -> GenerationRequest (validated once, for OSC and the CLI)
    jobs/manager.py        jobs in worker processes: generate/ -> model.Arrangement -> render/
    generate/              styles, song form, the part generators (generate/parts/), groove
    model.py               Note, Part, Arrangement, TimeSignature, the PARTS table
    transport.py           the host's clock: CLOCK_MONOTONIC seconds <-> ppq
    playback/scheduler.py  tempo-locked playback thread: Arrangement + transport -> timed MIDI
    playback/output.py     the MIDI output interface; playback/outputs/{jack,rtmidi}.py behind it

Beside it: ``service.py`` (components started in order, stopped in reverse),
``config/`` (defaults, file, environment, flags), ``discovery.py`` (zeroconf),
``render/`` (MIDI files, WAV/FLAC), ``preview/`` (audio preview), ``system/``
(process priority, heap, JACK client ownership), ``host.py`` (a simulated DAW
transport, ``ai-band host``), ``cli/`` (one module per command), ``errors.py``
(``BandError`` and one subclass per subsystem). ``testing/`` holds the tools of
the tests and benchmarks and is not shipped.

Units: positions and durations in quarter notes (ppq, as JUCE's AudioPlayHead),
times in CLOCK_MONOTONIC seconds, MIDI values 0..127, channels 0..15.
"""


#: The release (PEP 440); pyproject.toml reads it from here.
__version__ = "0.1.0"
