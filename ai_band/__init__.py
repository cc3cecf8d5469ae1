"""ai-band: a real-time OSC/MIDI band daemon that plays along with a DAW.

Cheat-sheet of the public API::

    from ai_band.config import load_config, Config          # TOML + flags, validated once
    from ai_band.service import BandDaemon                  # start() / run() / stop()
    from ai_band.generate.pipeline import generate, STYLES           # GenerationRequest -> Arrangement
    from ai_band.request import parse_request      # raw key/values -> GenerationRequest
    from ai_band.render.midi import write_midi_files    # Arrangement -> <part>.mid, full.mid
    from ai_band.transport import TransportModel            # host clock: monotonic s <-> ppq
    from ai_band.playback.scheduler import Scheduler        # tempo-locked playback thread
    from ai_band.playback.ports import PortSet              # one virtual MIDI port per part
    from ai_band.errors import BandError                    # root of every error

Units: positions and durations in quarter notes (ppq, as JUCE's AudioPlayHead),
times in CLOCK_MONOTONIC seconds, MIDI values 0..127, channels 0..15.
"""



def __getattr__(name: str) -> str:
    """``__version__``, looked up on first use (importlib.metadata costs ~25 ms at start-up; PEP 562)."""
    if name != "__version__":
        raise AttributeError(f"module 'ai_band' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("ai-band")
    except PackageNotFoundError:  # running from a source tree without installing
        value = "0.1.0"
    globals()["__version__"] = value
    return value
