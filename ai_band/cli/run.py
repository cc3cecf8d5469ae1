"""``ai-band run``: serve until SIGTERM or SIGINT; flags override the config file and the environment."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ai_band.cli.common import add_config_arg, setup_logging
from ai_band.config.shipped import LOG_LEVELS, MIDI_APIS
from ai_band.sync import SOURCES


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``run`` and its flags (each overrides one config key; defaults from default.toml)."""
    run = sub.add_parser("run", help="run the daemon in the foreground",
                         description="Run the daemon in the foreground until SIGTERM or SIGINT. Each flag overrides "
                                     "one key of the config file and of the AI_BAND_<SECTION>_<KEY> variables.")
    add_config_arg(run)

    def was(section: str, key: str) -> str:
        return f"(default: [{section}] {key}, ${{{section}.{key}}})"

    run.add_argument("--name", help=f"instance name advertised over zeroconf {was('daemon', 'name')}")
    run.add_argument("--osc-host", help=f"address to bind, e.g. 0.0.0.0 or 127.0.0.1 {was('osc', 'host')}")
    run.add_argument("--osc-port", type=int,
                     help=f"UDP port; 0 takes a free port and logs it {was('osc', 'port')}")
    run.add_argument("--output-dir", help=f"where job folders with .mid files go {was('daemon', 'output_dir')}")
    run.add_argument("--midi-api", choices=MIDI_APIS,
                     help="MIDI system for the virtual ports (jack: one JACK client, frame-accurate; "
                          f"alsa/coremidi: python-rtmidi) {was('midi', 'api')}")
    run.add_argument("--zeroconf-interfaces", metavar="LIST|all|none",
                     help="comma list of interface IPv4 addresses to advertise on, 'all', or 'none' "
                          "(default: [zeroconf] enabled and interfaces, all)")
    run.add_argument("--log-level", choices=LOG_LEVELS, help=was("daemon", "log_level"))
    run.add_argument("--sync", choices=SOURCES,
                     help=f"what the band follows (docs/sync.md) {was('sync', 'source')}")
    run.add_argument("--jack-write-log", metavar="PATH",
                     help="diagnostics: on stop, write the JACK frame of every note-on written (JSON) "
                          "(default: [playback] jack_write_log, off)")
    run.set_defaults(func=cmd_run)


def _run_overrides(args: argparse.Namespace) -> dict[str, dict]:
    over: dict[str, dict] = {}

    def put(section: str, key: str, value: object) -> None:
        if value is not None:
            over.setdefault(section, {})[key] = value

    put("daemon", "name", args.name)
    put("daemon", "output_dir", args.output_dir)
    put("daemon", "log_level", args.log_level)
    put("osc", "host", args.osc_host)
    put("osc", "port", args.osc_port)
    put("midi", "api", args.midi_api)
    put("playback", "jack_write_log", args.jack_write_log)
    put("sync", "source", args.sync)
    if args.zeroconf_interfaces is not None:
        if args.zeroconf_interfaces.strip().lower() == "none":
            put("zeroconf", "enabled", False)
        elif args.zeroconf_interfaces.strip().lower() != "all":
            put("zeroconf", "interfaces", args.zeroconf_interfaces)
    return over


def cmd_run(args: argparse.Namespace) -> int:
    """``ai-band run``: serve until SIGTERM or SIGINT."""
    import asyncio
    import logging

    from ai_band import __version__
    from ai_band.cli.common import load
    from ai_band.service import BandDaemon

    config = load(args, _run_overrides(args))
    setup_logging(args.log_level or config.daemon.log_level)
    loop_factory, loop_name = event_loop(config.daemon.event_loop)
    logging.getLogger("ai_band").info("ai-band %s starting (config: %s; event loop: %s)", __version__,
                                      args.config or "built-in defaults", loop_name)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(BandDaemon(config).run())
    return 0


def event_loop(choice: str) -> tuple[Callable[[], object] | None, str]:
    """The event loop for ``[daemon] event_loop``: ``(loop factory or None for asyncio's, its name)``.

    ``auto`` takes uvloop (libuv's loop, the one uvicorn prefers) when it
    imports, else asyncio's own; ``uvloop`` insists on it.

    Raises:
        UsageError: ``uvloop`` was asked for and is not installed.
    """
    if choice == "asyncio":
        return None, "asyncio"
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            from ai_band.errors import UsageError

            raise UsageError("[daemon] event_loop = 'uvloop', but uvloop is not installed "
                             "(pip install uvloop; or 'auto' or 'asyncio')") from None
        return None, "asyncio"
    return uvloop.new_event_loop, f"uvloop {uvloop.__version__}"
