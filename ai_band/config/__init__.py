"""Configuration: the shipped defaults, a TOML file, environment variables, flags; validated once.

``ai_band/config/default.toml`` (package data) declares every key and its
default; ``config/ai-band.toml`` is a copy for users to start from.  Layers,
each overriding the one before: the defaults, the ``--config`` file,
environment variables ``AI_BAND_<SECTION>_<KEY>`` (``AI_BAND_OSC_PORT=9200``),
command-line flags.

Cheat-sheet::

    from ai_band.config import load_config, Config, default
    config = load_config(Path("studio.toml"), {"osc": {"port": 0}})  # raises ConfigError, listing every problem
    config.osc.port, config.render.sample_rate
    default("osc", "port")                                           # 9100, without loading the schema

The schema (:mod:`ai_band.config.schema`) is loaded on first use of its
names, so ``from ai_band.config import default`` stays cheap for the command
line's ``--help``.
"""

from __future__ import annotations

import importlib

from ai_band.config.shipped import (
    BIT_DEPTHS,
    ENV_PREFIX,
    LOG_LEVELS,
    MIDI_APIS,
    PREVIEW_LATENCIES,
    RENDER_ENGINES,
    SAMPLE_RATES_HZ,
    default,
    default_text,
    defaults,
)

#: Names served from :mod:`ai_band.config.schema` on first use.
_SCHEMA_NAMES = (
    "Config", "DaemonSection", "OscSection", "ZeroconfSection", "HttpSection", "MidiSection", "PlaybackSection",
    "TransportSection", "SyncSection", "GenerationSection", "JobsSection", "RenderSection", "PreviewSection", "SECTIONS", "CHECKS",
    "build_config", "load_config", "config_as_dict", "env_name", "env_overrides",
)

__all__ = [
    "BIT_DEPTHS", "ENV_PREFIX", "LOG_LEVELS", "MIDI_APIS", "PREVIEW_LATENCIES", "RENDER_ENGINES",
    "SAMPLE_RATES_HZ", "default", "default_text", "defaults", *_SCHEMA_NAMES,
]


def __getattr__(name: str) -> object:
    """Load the schema module when one of its names is first asked for (PEP 562)."""
    if name in _SCHEMA_NAMES:
        return getattr(importlib.import_module("ai_band.config.schema"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
