"""``ai-band run``: serve until SIGTERM or SIGINT; flags override the TOML config."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from ai_band import __version__
from ai_band.cli.common import setup_logging
from ai_band.config import MIDI_APIS

log = logging.getLogger("ai_band")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``run`` and its flags."""
    run = sub.add_parser("run", help="run the daemon in the foreground")
    run.add_argument("--config", type=Path, help="TOML config file (default: built-in defaults)")
    run.add_argument("--name", help="instance name advertised over zeroconf")
    run.add_argument("--osc-host", help="address to bind, e.g. 0.0.0.0 or 127.0.0.1")
    run.add_argument("--osc-port", type=int, help="UDP port; 0 takes a free port and logs it")
    run.add_argument("--output-dir", help="where job folders with .mid files go")
    run.add_argument("--midi-api", choices=MIDI_APIS, help="MIDI system for the virtual ports (jack: one JACK client, frame-accurate; alsa/coremidi: python-rtmidi)")
    run.add_argument("--zeroconf-interfaces", metavar="LIST|none",
                     help="comma list of interface IPv4 addresses to advertise on, 'all', or 'none'")
    run.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    run.add_argument("--jack-write-log", metavar="PATH",
                     help="diagnostics: on stop, write the JACK frame of every note-on written (JSON)")
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
    if args.zeroconf_interfaces is not None:
        if args.zeroconf_interfaces.strip().lower() == "none":
            put("zeroconf", "enabled", False)
        elif args.zeroconf_interfaces.strip().lower() != "all":
            put("zeroconf", "interfaces", args.zeroconf_interfaces)
    return over


def cmd_run(args: argparse.Namespace) -> int:
    """``ai-band run``: serve until SIGTERM or SIGINT."""
    from ai_band.config import load_config
    from ai_band.service import BandDaemon

    config = load_config(args.config, _run_overrides(args))
    setup_logging(args.log_level or config.daemon.log_level)
    log.info("ai-band %s starting (config: %s)", __version__, args.config or "built-in defaults")
    asyncio.run(BandDaemon(config).run())
    return 0


