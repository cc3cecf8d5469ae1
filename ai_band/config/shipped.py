"""The shipped defaults (``default.toml``, package data) and the sets of allowed values.

This module is light (the file is read on first use, with ``tomllib`` and
``importlib.resources``) so the command line builds its parser without it and
shows every default in ``--help`` without loading the validating schema
(:mod:`ai_band.config.schema`).
"""

from __future__ import annotations

import functools

#: Package-data file holding every default; ``config/ai-band.toml`` is a copy of it.
DEFAULT_FILE = "default.toml"

#: Prefix of the environment variables that override the file: ``AI_BAND_<SECTION>_<KEY>``.
ENV_PREFIX = "AI_BAND_"

#: ``[midi] api``: auto, ALSA sequencer or CoreMIDI (python-rtmidi), or one JACK client.
MIDI_APIS = ("auto", "alsa", "jack", "coremidi")

#: ``[daemon] log_level``: Python logging level names, lower case.
LOG_LEVELS = ("debug", "info", "warning", "error")

#: ``[daemon] event_loop``: uvloop when it is installed (``auto``), or the one named.
EVENT_LOOPS = ("auto", "asyncio", "uvloop")

#: ``[render] engine``: FluidSynth with a GM SoundFont, the built-in numpy synthesizer, or auto.
RENDER_ENGINES = ("auto", "fluidsynth", "numpy")

#: ``[render] sample_rate``: audio sample rates in Hz.
SAMPLE_RATES_HZ = (44100, 48000)

#: ``[render] bit_depth``: audio sample sizes in bits (PCM).
BIT_DEPTHS = (16, 24)

#: ``[jobs] on_restart``: what becomes of jobs queued or running when the daemon stopped.
JOB_RESTART_MODES = ("interrupt", "requeue")

#: ``[preview] latency``: PortAudio's latency hints.
PREVIEW_LATENCIES = ("low", "high")


def default_text() -> str:
    """The text of the shipped ``default.toml`` (comments included)."""
    from importlib import resources

    return resources.files(__package__).joinpath(DEFAULT_FILE).read_text(encoding="utf-8")


@functools.cache
def _defaults() -> dict[str, dict[str, object]]:
    import tomllib

    return tomllib.loads(default_text())


def defaults() -> dict[str, dict[str, object]]:
    """Every default as ``{section: {key: value}}`` (TOML types; a fresh copy each call)."""
    return {section: dict(values) for section, values in _defaults().items()}


def default(section: str, key: str) -> object:
    """One default, e.g. ``default("osc", "port")`` -> 9100.

    Raises:
        KeyError: no such section or key in ``default.toml``.
    """
    return _defaults()[section][key]
