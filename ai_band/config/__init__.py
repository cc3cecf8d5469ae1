"""Configuration: defaults, the TOML file, command-line overrides; validated once.

``config/ai-band.toml`` documents every key with its default; the schema
below is the source of truth and a test keeps the two identical.  Loading
collects every problem before raising, so a user fixes the file in one go
(as Mopidy's ``deserialize`` returns ``(result, errors)``).
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ai_band.errors import ConfigError
from ai_band.request import KNOWN_PARTS

MIDI_APIS = ("auto", "alsa", "jack", "coremidi")
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class DaemonSection:
    """[daemon]: identity, files and logging."""

    name: str = "ai-band"
    output_dir: str = "~/ai-band"
    log_level: str = "info"
    nice: int = -10
    avoid_worker_cpus: bool = True


@dataclass(frozen=True)
class OscSection:
    """[osc]: the UDP endpoint the plugin talks to."""

    host: str = "0.0.0.0"
    port: int = 9100
    max_clients: int = 32


@dataclass(frozen=True)
class ZeroconfSection:
    """[zeroconf]: mDNS/DNS-SD advertisement of ``_osc._udp``."""

    enabled: bool = True
    interfaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class MidiSection:
    """[midi]: virtual output ports."""

    api: str = "auto"
    client_name: str = "ai-band"
    parts: tuple[str, ...] = KNOWN_PARTS


@dataclass(frozen=True)
class PlaybackSection:
    """[playback]: the tempo-locked scheduler."""

    output_offset_ms: float = 0.0
    late_drop_ms: float = 25.0
    spin_ms: float = 1.5
    lookahead_ms: float = 80.0
    jack_rtprio: int = 10
    jack_write_log: str = ""


@dataclass(frozen=True)
class TransportSection:
    """[transport]: the host clock model."""

    window_s: float = 6.0
    relocate_threshold_ms: float = 40.0
    timeout_ms: float = 1000.0


@dataclass(frozen=True)
class GenerationSection:
    """[generation]: worker processes."""

    workers: int = 1
    max_queued: int = 16


@dataclass(frozen=True)
class RenderSection:
    """[render]: WAV/FLAC rendering."""

    engine: str = "auto"
    soundfont: str = ""
    sample_rate: int = 44100
    bit_depth: int = 16
    target_lufs: float = -14.0
    true_peak_dbtp: float = -1.0
    tail_s: float = 2.0
    workers: int = 1
    nice: int = 10
    cpus: int = 0


@dataclass(frozen=True)
class PreviewSection:
    """[preview]: live audio preview through PortAudio (sounddevice)."""

    device: str = ""
    latency: str = "high"


@dataclass(frozen=True)
class Config:
    """The whole validated configuration (immutable)."""

    daemon: DaemonSection = field(default_factory=DaemonSection)
    osc: OscSection = field(default_factory=OscSection)
    zeroconf: ZeroconfSection = field(default_factory=ZeroconfSection)
    midi: MidiSection = field(default_factory=MidiSection)
    playback: PlaybackSection = field(default_factory=PlaybackSection)
    transport: TransportSection = field(default_factory=TransportSection)
    generation: GenerationSection = field(default_factory=GenerationSection)
    render: RenderSection = field(default_factory=RenderSection)
    preview: PreviewSection = field(default_factory=PreviewSection)

    @property
    def output_path(self) -> Path:
        """``daemon.output_dir`` with ``~`` expanded."""
        return Path(self.daemon.output_dir).expanduser()


def _ranged(lo: float, hi: float):
    def check(v: Any) -> str | None:
        return None if lo <= v <= hi else f"must be in {lo:g}..{hi:g}, got {v!r}"

    return check


def _choice(choices: tuple[str, ...]):
    def check(v: Any) -> str | None:
        return None if v in choices else f"must be one of {', '.join(choices)}, got {v!r}"

    return check


def _host(v: str) -> str | None:
    try:
        ipaddress.ip_address(v)
    except ValueError:
        return f"must be an IP address such as 0.0.0.0 or 127.0.0.1, got {v!r}"
    return None


def _hosts(v: tuple[str, ...]) -> str | None:
    for item in v:
        problem = _host(item)
        if problem:
            return problem
    return None


def _parts(v: tuple[str, ...]) -> str | None:
    unknown = [p for p in v if p not in KNOWN_PARTS]
    if unknown:
        return f"unknown part(s) {', '.join(unknown)}; known: {', '.join(KNOWN_PARTS)}"
    if not v or len(set(v)) != len(v):
        return "must list at least one part, each once"
    return None


def _nonempty(v: str) -> str | None:
    return None if v.strip() else "must not be empty"


#: (section, key) -> extra check beyond the type; returns an error text or None.
CHECKS = {
    ("daemon", "name"): _nonempty,
    ("daemon", "output_dir"): _nonempty,
    ("daemon", "log_level"): _choice(LOG_LEVELS),
    ("daemon", "nice"): _ranged(-20, 19),
    ("osc", "host"): _host,
    ("osc", "port"): _ranged(0, 65535),
    ("osc", "max_clients"): _ranged(1, 1024),
    ("zeroconf", "interfaces"): _hosts,
    ("midi", "api"): _choice(MIDI_APIS),
    ("midi", "client_name"): _nonempty,
    ("midi", "parts"): _parts,
    ("playback", "output_offset_ms"): _ranged(-50, 50),
    ("playback", "late_drop_ms"): _ranged(1, 1000),
    ("playback", "spin_ms"): _ranged(0, 20),
    ("playback", "lookahead_ms"): _ranged(0, 100),
    ("playback", "jack_rtprio"): _ranged(0, 99),
    ("transport", "window_s"): _ranged(0.5, 60),
    ("transport", "relocate_threshold_ms"): _ranged(5, 1000),
    ("transport", "timeout_ms"): _ranged(100, 60000),
    ("generation", "workers"): _ranged(1, 32),
    ("generation", "max_queued"): _ranged(1, 10000),
    ("render", "engine"): _choice(("auto", "fluidsynth", "numpy")),
    ("render", "sample_rate"): _choice((44100, 48000)),
    ("render", "bit_depth"): _choice((16, 24)),
    ("render", "target_lufs"): _ranged(-40, -5),
    ("render", "true_peak_dbtp"): _ranged(-12, 0),
    ("render", "tail_s"): _ranged(0, 10),
    ("render", "workers"): _ranged(1, 8),
    ("render", "nice"): _ranged(0, 19),
    ("render", "cpus"): _ranged(0, 256),
    ("preview", "latency"): _choice(("low", "high")),
}


def _coerce(value: Any, default: Any) -> tuple[Any, str | None]:
    kind = type(default)
    if kind is bool:
        return (value, None) if isinstance(value, bool) else (value, f"must be true or false, got {value!r}")
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return (value, None) if ok else (value, f"must be an integer, got {value!r}")
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return (float(value), None) if ok else (value, f"must be a number, got {value!r}")
    if kind is str:
        return (value, None) if isinstance(value, str) else (value, f"must be a string, got {value!r}")
    if kind is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value), None
        return value, f"must be a list of strings, got {value!r}"
    raise TypeError(kind)


def build_config(data: Mapping[str, Any], source: str = "config") -> Config:
    """Validate a nested mapping ``{section: {key: value}}`` into a :class:`Config`.

    Raises:
        ConfigError: listing every unknown section/key (with a "did you mean"
            hint) and every invalid value, each prefixed with ``source``.
    """
    errors: list[str] = []
    sections: dict[str, Any] = {}
    known_sections = {f.name: f for f in dataclasses.fields(Config)}
    for name in data:
        if name not in known_sections:
            hint = difflib.get_close_matches(name, known_sections, n=1)
            errors.append(f"{source}: unknown section [{name}]" + (f"; did you mean [{hint[0]}]?" if hint else ""))
    for name, f in known_sections.items():
        section_cls = f.default_factory  # type: ignore[misc]
        defaults = section_cls()
        given = data.get(name, {})
        if not isinstance(given, Mapping):
            errors.append(f"{source}: [{name}] must be a table")
            continue
        values = {}
        key_fields = {kf.name for kf in dataclasses.fields(section_cls)}
        for key, value in given.items():
            if key not in key_fields:
                hint = difflib.get_close_matches(key, key_fields, n=1)
                errors.append(f"{source}: unknown key {name}.{key}" + (f"; did you mean {hint[0]!r}?" if hint else ""))
                continue
            value, problem = _coerce(value, getattr(defaults, key))
            if problem is None and (check := CHECKS.get((name, key))):
                problem = check(value)
            if problem:
                errors.append(f"{source}: {name}.{key} {problem}")
            else:
                values[key] = value
        sections[name] = dataclasses.replace(defaults, **values)
    if errors:
        raise ConfigError(errors)
    return Config(**sections)


def load_config(path: Path | None = None, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Config:
    """Read the TOML file (if any), apply command-line overrides, validate once.

    Args:
        path: a TOML file; None uses built-in defaults only.
        overrides: ``{section: {key: value}}`` from command-line flags; they win over the file.

    Raises:
        ConfigError: unreadable file, TOML syntax error, or invalid values (all reported).
    """
    data: dict[str, dict[str, Any]] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{path}: {exc}"]) from exc
    for section, values in (overrides or {}).items():
        merged = dict(data.get(section, {}))
        merged.update(values)
        data[section] = merged
    return build_config(data, str(path) if path else "config")


def config_as_dict(config: Config) -> dict[str, dict[str, Any]]:
    """The configuration as plain nested values (tuples become lists)."""
    out = {}
    for f in dataclasses.fields(config):
        section = getattr(config, f.name)
        out[f.name] = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(section).items()}
    return out
