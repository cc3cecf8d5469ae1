"""The configuration schema: typed sections whose defaults are ``default.toml``; validated once.

Every default is declared once, in the shipped ``ai_band/config/default.toml``
(``config/ai-band.toml`` is a copy): each section class below only names its
keys and their types, and :func:`_section` fills the defaults from the file at
import (a key missing on either side is an error at import).  Values are
layered: the defaults, a TOML file, environment variables
``AI_BAND_<SECTION>_<KEY>``, command-line flags; :func:`load_config`
validates the result once and collects every problem before raising, so a user
fixes everything in one go (as Mopidy's ``deserialize`` returns
``(result, errors)``).
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ai_band.config import shipped
from ai_band.errors import ConfigError
from ai_band.model import TS_DENOMINATORS
from ai_band.request import KNOWN_PARTS
from ai_band.sync import SOURCES

#: Annotation (as written in the section classes) -> the Python type a value must have.
_KINDS: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool, "tuple[str, ...]": tuple}

_DEFAULTS = shipped.defaults()


def _coerce(value: Any, kind: type) -> tuple[Any, str | None]:
    """Check ``value`` (as TOML or a flag gives it) against ``kind``; returns (value, problem or None).

    Integers are accepted for floats; a comma string for a list of strings.
    """
    if kind is bool:
        return (value, None) if isinstance(value, bool) else (value, f"must be true or false, got {value!r}")
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return (value, None) if ok else (value, f"must be an integer, got {value!r}")
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return (float(value), None) if ok else (value, f"must be a finite number, got {value!r}")
    if kind is str:
        return (value, None) if isinstance(value, str) else (value, f"must be a string, got {value!r}")
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value), None
    return value, f"must be a list of strings, got {value!r}"


#: Keys whose values are secrets: left out of reprs, masked by :func:`config_as_dict`.
SECRETS: frozenset[tuple[str, str]] = frozenset({("osc", "token")})


def _section(name: str) -> Callable[[type], type]:
    """Class decorator: a frozen dataclass whose field defaults are ``[name]`` of ``default.toml``.

    Raises:
        RuntimeError: the file and the class name different keys, or a default has the wrong type.
    """

    def wrap(cls: type) -> type:
        table = _DEFAULTS.get(name, {})
        hints = cls.__dict__.get("__annotations__", {})
        if set(table) != set(hints):
            raise RuntimeError(f"default.toml [{name}] and {cls.__name__} name different keys: "
                               f"{sorted(set(table) ^ set(hints))}")
        for key, hint in hints.items():
            value, problem = _coerce(table[key], _KINDS[hint])
            if problem:
                raise RuntimeError(f"default.toml: {name}.{key} {problem}")
            # A secret never shows in a repr (logs, tracebacks): field(repr=False).
            setattr(cls, key, field(default=value, repr=False) if (name, key) in SECRETS else value)
        return dataclass(frozen=True)(cls)

    return wrap


@_section("daemon")
class DaemonSection:
    """[daemon]: identity, files and logging."""

    name: str
    output_dir: str
    log_level: str
    event_loop: str
    nice: int
    avoid_worker_cpus: bool


@_section("osc")
class OscSection:
    """[osc]: the UDP endpoint the plugin talks to."""

    host: str
    port: int
    max_clients: int
    max_args: int
    max_bundle_messages: int
    max_scheduled_messages: int
    max_schedule_ahead_s: float
    allow: tuple[str, ...]
    token: str
    client_timeout_s: float
    rate_messages_per_s: float
    burst_messages: int
    rate_generations_per_min: float
    rate_renders_per_min: float
    recv_buffer_bytes: int


@_section("zeroconf")
class ZeroconfSection:
    """[zeroconf]: mDNS/DNS-SD advertisement of ``_osc._udp``."""

    enabled: bool
    interfaces: tuple[str, ...]


@_section("http")
class HttpSection:
    """[http]: the HTTP server beside OSC (health, metrics, OSCQuery, files)."""

    enabled: bool
    host: str
    port: int
    max_websockets: int
    max_downloads: int

    def bind_host(self, osc_host: str) -> str:
        """The address to bind: ``host``, or the ``[osc] host`` when empty."""
        return self.host or osc_host


@_section("midi")
class MidiSection:
    """[midi]: virtual output ports."""

    api: str
    client_name: str
    parts: tuple[str, ...]
    reconnect_s: float


@_section("playback")
class PlaybackSection:
    """[playback]: the tempo-locked scheduler."""

    offset_ms: float
    part_offsets_ms: tuple[str, ...]
    late_drop_ms: float
    spin_ms: float
    lookahead_ms: float
    jack_rtprio: int
    jack_write_log: str


@_section("transport")
class TransportSection:
    """[transport]: the host clock model."""

    window_s: float
    relocate_threshold_ms: float
    timeout_ms: float


@_section("sync")
class SyncSection:
    """[sync]: what the band follows, and the MIDI clock it sends (docs/sync.md)."""

    source: str
    bpm: float
    ts_num: int
    ts_den: int
    autostart: bool
    clock_out: bool
    clock_timeout_ms: float
    link_start_stop_sync: bool
    link_join_delay_s: float


@_section("generation")
class GenerationSection:
    """[generation]: worker processes."""

    workers: int
    max_queued: int


@_section("jobs")
class JobsSection:
    """[jobs]: the job store, restarts, retention and the free-space reserve."""

    db_path: str
    on_restart: str
    max_jobs: int
    max_disk_mb: int
    keep_days: float
    min_free_mb: int


@_section("render")
class RenderSection:
    """[render]: WAV/FLAC rendering."""

    engine: str
    soundfont: str
    sample_rate: int
    bit_depth: int
    target_lufs: float
    true_peak_dbtp: float
    tail_s: float
    workers: int
    nice: int
    cpus: int
    max_worker_mb: int


@_section("preview")
class PreviewSection:
    """[preview]: live audio preview through PortAudio (sounddevice)."""

    device: str
    latency: str


@dataclass(frozen=True)
class Config:
    """The whole validated configuration (immutable)."""

    daemon: DaemonSection = field(default_factory=DaemonSection)
    osc: OscSection = field(default_factory=OscSection)
    zeroconf: ZeroconfSection = field(default_factory=ZeroconfSection)
    http: HttpSection = field(default_factory=HttpSection)
    midi: MidiSection = field(default_factory=MidiSection)
    playback: PlaybackSection = field(default_factory=PlaybackSection)
    transport: TransportSection = field(default_factory=TransportSection)
    sync: SyncSection = field(default_factory=SyncSection)
    generation: GenerationSection = field(default_factory=GenerationSection)
    jobs: JobsSection = field(default_factory=JobsSection)
    render: RenderSection = field(default_factory=RenderSection)
    preview: PreviewSection = field(default_factory=PreviewSection)

    @property
    def output_path(self) -> Path:
        """``daemon.output_dir`` with ``~`` expanded."""
        return Path(self.daemon.output_dir).expanduser()

    @property
    def jobs_db_path(self) -> Path:
        """``jobs.db_path`` with ``~`` expanded, inside :attr:`output_path` when relative or empty."""
        return self.output_path / Path(self.jobs.db_path or "jobs.sqlite3").expanduser()


def _ranged(lo: float, hi: float) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if lo <= v <= hi else f"must be in {lo:g}..{hi:g}, got {v!r}"

    return check


def _choice(choices: tuple[Any, ...]) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v in choices else f"must be one of {', '.join(map(str, choices))}, got {v!r}"

    return check


def _host(v: str) -> str | None:
    try:
        ipaddress.ip_address(v)
    except ValueError:
        return f"must be an IP address such as 0.0.0.0 or 127.0.0.1, got {v!r}"
    return None


def _host_or_empty(v: str) -> str | None:
    return None if v == "" else _host(v)


def _hosts(v: tuple[str, ...]) -> str | None:
    for item in v:
        problem = _host(item)
        if problem:
            return problem
    return None


def _networks(v: tuple[str, ...]) -> str | None:
    for item in v:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            return f"must list networks such as 127.0.0.0/8 or 192.168.1.0/24, got {item!r}"
    return None


def _token(v: str) -> str | None:
    if v and not 8 <= len(v) <= 128:
        return f"must be empty or 8..128 characters, got {len(v)}"
    return None


def _parts(v: tuple[str, ...]) -> str | None:
    unknown = [p for p in v if p not in KNOWN_PARTS]
    if unknown:
        return f"unknown part(s) {', '.join(unknown)}; known: {', '.join(KNOWN_PARTS)}"
    if not v or len(set(v)) != len(v):
        return "must list at least one part, each once"
    return None


def parse_part_offsets(entries: tuple[str, ...]) -> dict[str, float]:
    """``("bass=-4.5", "drums=2")`` -> ``{"bass": -4.5, "drums": 2.0}`` (ms).

    Raises:
        ValueError: an entry is not ``part=ms``, names an unknown part or
            twice, or its ms is not a number in -100..100.
    """
    offsets: dict[str, float] = {}
    for entry in entries:
        part, sep, value = entry.partition("=")
        part = part.strip()
        if not sep or part not in KNOWN_PARTS:
            raise ValueError(f"{entry!r} must be part=ms with a part of {', '.join(KNOWN_PARTS)}")
        if part in offsets:
            raise ValueError(f"part {part!r} given twice")
        try:
            ms = float(value)
        except ValueError:
            raise ValueError(f"{entry!r}: {value.strip()!r} is not a number of ms") from None
        if not (math.isfinite(ms) and -100.0 <= ms <= 100.0):
            raise ValueError(f"{entry!r}: offset must be in -100..100 ms")
        offsets[part] = ms
    return offsets


def _part_offsets(v: tuple[str, ...]) -> str | None:
    try:
        parse_part_offsets(v)
    except ValueError as exc:
        return str(exc)
    return None


def _nonempty(v: str) -> str | None:
    return None if v.strip() else "must not be empty"


#: (section, key) -> extra check beyond the type; returns an error text or None.
CHECKS: dict[tuple[str, str], Callable[[Any], str | None]] = {
    ("daemon", "name"): _nonempty,
    ("daemon", "output_dir"): _nonempty,
    ("daemon", "log_level"): _choice(shipped.LOG_LEVELS),
    ("daemon", "event_loop"): _choice(shipped.EVENT_LOOPS),
    ("daemon", "nice"): _ranged(-20, 19),
    ("osc", "host"): _host,
    ("osc", "port"): _ranged(0, 65535),
    ("osc", "max_clients"): _ranged(1, 1024),
    ("osc", "max_args"): _ranged(8, 16384),
    ("osc", "max_bundle_messages"): _ranged(1, 4096),
    ("osc", "max_scheduled_messages"): _ranged(0, 65536),
    ("osc", "max_schedule_ahead_s"): _ranged(0, 3600),
    ("osc", "allow"): _networks,
    ("osc", "token"): _token,
    ("osc", "client_timeout_s"): _ranged(1, 86400),
    ("osc", "rate_messages_per_s"): _ranged(1, 1e6),
    ("osc", "burst_messages"): _ranged(1, 1_000_000),
    ("osc", "rate_generations_per_min"): _ranged(0.1, 1e5),
    ("osc", "rate_renders_per_min"): _ranged(0.1, 1e5),
    ("osc", "recv_buffer_bytes"): _ranged(0, 1 << 30),
    ("zeroconf", "interfaces"): _hosts,
    ("http", "host"): _host_or_empty,
    ("http", "port"): _ranged(0, 65535),
    ("http", "max_websockets"): _ranged(1, 10000),
    ("http", "max_downloads"): _ranged(1, 1000),
    ("midi", "api"): _choice(shipped.MIDI_APIS),
    ("midi", "client_name"): _nonempty,
    ("midi", "parts"): _parts,
    ("midi", "reconnect_s"): _ranged(0.05, 60),
    ("playback", "offset_ms"): _ranged(-100, 100),
    ("playback", "part_offsets_ms"): _part_offsets,
    ("playback", "late_drop_ms"): _ranged(1, 1000),
    ("playback", "spin_ms"): _ranged(0, 20),
    ("playback", "lookahead_ms"): _ranged(0, 100),
    ("playback", "jack_rtprio"): _ranged(0, 99),
    ("sync", "source"): _choice(SOURCES),
    ("sync", "bpm"): _ranged(20, 300),
    ("sync", "ts_num"): _ranged(1, 64),
    ("sync", "ts_den"): _choice(TS_DENOMINATORS),
    ("sync", "clock_timeout_ms"): _ranged(50, 5000),
    ("sync", "link_join_delay_s"): _ranged(0, 5),
    ("transport", "window_s"): _ranged(0.5, 60),
    ("transport", "relocate_threshold_ms"): _ranged(5, 1000),
    ("transport", "timeout_ms"): _ranged(100, 60000),
    ("generation", "workers"): _ranged(1, 32),
    ("generation", "max_queued"): _ranged(1, 10000),
    ("jobs", "on_restart"): _choice(shipped.JOB_RESTART_MODES),
    ("jobs", "max_jobs"): _ranged(0, 1_000_000),
    ("jobs", "max_disk_mb"): _ranged(0, 1 << 30),
    ("jobs", "keep_days"): _ranged(0, 36500),
    ("jobs", "min_free_mb"): _ranged(0, 1 << 20),
    ("render", "engine"): _choice(shipped.RENDER_ENGINES),
    ("render", "sample_rate"): _choice(shipped.SAMPLE_RATES_HZ),
    ("render", "bit_depth"): _choice(shipped.BIT_DEPTHS),
    ("render", "target_lufs"): _ranged(-40, -5),
    ("render", "true_peak_dbtp"): _ranged(-12, 0),
    ("render", "tail_s"): _ranged(0, 10),
    ("render", "workers"): _ranged(1, 8),
    ("render", "nice"): _ranged(0, 19),
    ("render", "cpus"): _ranged(0, 256),
    ("render", "max_worker_mb"): _ranged(0, 1 << 24),
    ("preview", "latency"): _choice(shipped.PREVIEW_LATENCIES),
}

#: Section name -> its class, in file order.
SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]


def _kind(section: str, key: str) -> type:
    hint = SECTIONS[section].__annotations__[key]
    return _KINDS[hint]


def _hint(word: str, known: Any, form: str = "{!r}") -> str:
    """``"; did you mean 'port'?"`` for the closest known word, or ``""``."""
    match = difflib.get_close_matches(word, known, n=1)
    return f"; did you mean {form.format(match[0])}?" if match else ""


def build_config(data: Mapping[str, Any], source: str = "config",
                 origins: Mapping[tuple[str, str], str] | None = None) -> Config:
    """Validate a nested mapping ``{section: {key: value}}`` into a :class:`Config`.

    Args:
        data: the values given; missing keys keep their defaults.
        source: where the values came from (a file name), prefixed to each error.
        origins: ``(section, key) -> where that value came from`` (an environment
            variable, the command line), overriding ``source`` for that key.

    Raises:
        ConfigError: listing every unknown section/key (with a "did you mean"
            hint) and every invalid value, each prefixed with where it came from.
    """
    errors: list[str] = []
    origins = origins or {}
    sections: dict[str, Any] = {}
    for name in data:
        if name not in SECTIONS:
            errors.append(f"{source}: unknown section [{name}]" + _hint(name, SECTIONS, "[{}]"))
    for name, section_cls in SECTIONS.items():
        given = data.get(name, {})
        if not isinstance(given, Mapping):
            errors.append(f"{source}: [{name}] must be a table")
            continue
        values = {}
        for key, value in given.items():
            where = origins.get((name, key), source)
            if key not in section_cls.__annotations__:
                errors.append(f"{where}: unknown key {name}.{key}" + _hint(key, section_cls.__annotations__))
                continue
            value, problem = _coerce(value, _kind(name, key))
            if problem is None and (check := CHECKS.get((name, key))):
                problem = check(value)
            if problem:
                errors.append(f"{where}: {name}.{key} {problem}")
            else:
                values[key] = value
        sections[name] = section_cls(**values)
    if errors:
        raise ConfigError(errors)
    return Config(**sections)


def env_name(section: str, key: str) -> str:
    """The environment variable of one key: ``env_name("osc", "port")`` -> ``"AI_BAND_OSC_PORT"``."""
    return f"{shipped.ENV_PREFIX}{section}_{key}".upper()


def _parse_env(text: str, kind: type) -> tuple[Any, str | None]:
    """An environment variable's text as ``kind``; returns (value, problem or None)."""
    text = text.strip()
    if kind is bool:
        words = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}
        if text.lower() in words:
            return words[text.lower()], None
        return text, f"must be true or false (1/0, yes/no, on/off), got {text!r}"
    if kind is int:
        try:
            return int(text), None
        except ValueError:
            return text, f"must be an integer, got {text!r}"
    if kind is float:
        try:
            return float(text), None
        except ValueError:
            return text, f"must be a number, got {text!r}"
    return text, None  # str, or a comma list that _coerce splits


def env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str], str], list[str]]:
    """Read every ``AI_BAND_<SECTION>_<KEY>`` variable.

    Returns:
        ``({section: {key: value}}, {(section, key): "environment AI_BAND_..."}, errors)``;
        values are parsed to the key's type; an unknown variable or a value
        that does not parse is an error naming the variable.
    """
    known = {env_name(s, k): (s, k) for s, cls in SECTIONS.items() for k in cls.__annotations__}
    data: dict[str, dict[str, Any]] = {}
    origins: dict[tuple[str, str], str] = {}
    errors: list[str] = []
    for var in sorted(environ):
        if not var.startswith(shipped.ENV_PREFIX):
            continue
        if var not in known:
            errors.append(f"environment {var}: no such setting" + _hint(var, known))
            continue
        section, key = known[var]
        value, problem = _parse_env(environ[var], _kind(section, key))
        if problem:
            errors.append(f"environment {var}: {problem}")
            continue
        data.setdefault(section, {})[key] = value
        origins[(section, key)] = f"environment {var}"
    return data, origins, errors


def load_config(path: Path | None = None, overrides: Mapping[str, Mapping[str, Any]] | None = None,
                environ: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file (if any), then environment variables, then command-line overrides; validate once.

    Args:
        path: a TOML file; None uses the built-in defaults (``default.toml``) only.
        overrides: ``{section: {key: value}}`` from command-line flags; they win over both.
        environ: the environment (``os.environ`` when None); ``AI_BAND_<SECTION>_<KEY>``
            variables win over the file.

    Raises:
        ConfigError: unreadable file, TOML syntax error, unknown or unparsable
            environment variables, or invalid values (all reported together).
    """
    data: dict[str, dict[str, Any]] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{path}: not valid TOML: {exc}"]) from exc
    env_data, origins, errors = env_overrides(os.environ if environ is None else environ)
    flag_origins = {(s, k): "command line" for s, values in (overrides or {}).items() for k in values}
    for layer in (env_data, overrides or {}):
        for section, values in layer.items():
            given = data.setdefault(section, {})
            if isinstance(given, Mapping):  # else build_config reports "[section] must be a table"
                data[section] = {**given, **values}
    try:
        config = build_config(data, str(path) if path else "config", {**origins, **flag_origins})
    except ConfigError as exc:
        raise ConfigError(errors + exc.errors) from None
    if errors:
        raise ConfigError(errors)
    return config


def config_as_dict(config: Config) -> dict[str, dict[str, Any]]:
    """The configuration as plain nested values (tuples become lists), secrets (:data:`SECRETS`) masked as ``"***"``."""
    out = {}
    for f in dataclasses.fields(config):
        section = getattr(config, f.name)
        out[f.name] = {k: "***" if (f.name, k) in SECRETS and v else list(v) if isinstance(v, tuple) else v
                       for k, v in dataclasses.asdict(section).items()}
    return out
