"""Command line: ``ai-band run``, ``ai-band generate``.

Flags of ``run`` override the TOML config (``config/ai-band.toml`` documents
every key).  ``generate`` takes the same keys as ``/band/generate``.
Exit codes: 0 ok, 1 runtime failure, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from ai_band import __version__
from ai_band.config import MIDI_APIS, load_config
from ai_band.errors import BandError, ConfigError

log = logging.getLogger("ai_band")


def setup_logging(level: str) -> None:
    """Log to stderr; without timestamps under journald (it adds its own)."""
    fmt = "%(levelname)-7s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=getattr(logging, level.upper()), format=fmt, stream=sys.stderr, force=True)


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
    from ai_band.service import BandDaemon

    config = load_config(args.config, _run_overrides(args))
    setup_logging(args.log_level or config.daemon.log_level)
    log.info("ai-band %s starting (config: %s)", __version__, args.config or "built-in defaults")
    asyncio.run(BandDaemon(config).run())
    return 0


GENERATE_KEYS = (
    "id", "chords", "key", "style", "bpm", "bars", "ts", "parts", "seed", "humanize", "swing",
    "prompt", "energy", "complexity", "structure", "sections", "duration", "programs", "channels",
    "render", "stems", "sample_rate", "bit_depth",
)


def cmd_generate(args: argparse.Namespace) -> int:
    """``ai-band generate``: one generation into files, offline (same work as a daemon job)."""
    from ai_band.generate.pipeline import validate_request
    from ai_band.request import parse_request
    from ai_band.jobs.manager import new_job_id, produce
    from ai_band.render.audio_job import AUDIO_FORMATS, render_audio
    from ai_band.service import render_settings

    setup_logging(args.log_level or "warning")
    raw = {key: getattr(args, key) for key in GENERATE_KEYS if getattr(args, key) is not None}
    request = parse_request(raw)
    validate_request(request)
    job_dir = Path(args.output).expanduser() / (args.job_id or new_job_id())
    arrangement, files, generation_ms = produce(request, job_dir)
    written = list(files.items())
    audio_formats = tuple(f for f in (request.render or ()) if f in AUDIO_FORMATS)
    if audio_formats:
        from ai_band.render.audio import AudioRenderer

        config = load_config(args.config)
        settings = render_settings(config)
        renderer = AudioRenderer(settings.engine, settings.soundfont)
        try:
            audio_files, audio = render_audio(
                renderer, arrangement, job_dir, audio_formats, request.stems,
                request.sample_rate or settings.sample_rate, request.bit_depth or settings.bit_depth, settings,
            )
        finally:
            renderer.close()
        written += audio_files
        print(f"audio: {audio['engine']}, {audio['sample_rate']} Hz / {audio['bit_depth']} bit, "
              f"{audio['loudness_lufs']} LUFS, true peak {audio['true_peak_dbtp']} dBTP, "
              f"{audio['realtime_ratio']}x real time")
    print(f"style {arrangement.style}, key {arrangement.key}, {arrangement.bpm:g} bpm, "
          f"{arrangement.ts_num}/{arrangement.ts_den}, {arrangement.bars} bars, seed {arrangement.seed}, "
          f"generated in {generation_ms:.1f} ms")
    for part in arrangement.parts:
        print(f"  {part.name:7s} program {part.program:3d} channel {part.channel + 1:2d}: {len(part.notes)} notes")
    for name, path in written:
        print(f"{name}\t{path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its three subcommands."""
    parser = argparse.ArgumentParser(prog="ai-band", description="A band that plays along with your DAW.")
    parser.add_argument("--version", action="version", version=f"ai-band {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

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

    gen = sub.add_parser("generate", help="generate one arrangement into MIDI files, offline")
    gen.add_argument("--chords", required=True, help='chord sheet, e.g. "| Cmaj7 | Am7 | Dm7 G7 |"')
    gen.add_argument("--style", help="style name (ai-band generate --list-styles)")
    gen.add_argument("--key", help="key, e.g. C, Am, F#m")
    gen.add_argument("--bpm", help="tempo, quarter notes per minute")
    gen.add_argument("--bars", help="number of bars")
    gen.add_argument("--ts", help="time signature, e.g. 4/4, 6/8")
    gen.add_argument("--parts", help="comma list, e.g. drums,bass,keys")
    gen.add_argument("--seed", help="random seed; the same seed gives the same notes")
    gen.add_argument("--humanize", help="0..1")
    gen.add_argument("--swing", help="0..1")
    gen.add_argument("--prompt", help='text prompt, e.g. "sad slow jazz ballad in D minor"')
    gen.add_argument("--energy", help="0..1: density, velocity, fills")
    gen.add_argument("--complexity", help="0..1: rhythmic and harmonic elaboration")
    gen.add_argument("--structure", help='section order, e.g. "intro verse chorus verse chorus outro" or AABA')
    gen.add_argument("--sections", help='JSON object: section -> chord sheet, e.g. \'{"verse": "C Am F G"}\'')
    gen.add_argument("--duration", help="length in seconds, 1..600 (instead of --bars)")
    gen.add_argument("--programs", help="GM program per part, e.g. bass=33,keys=4")
    gen.add_argument("--channels", help="MIDI channel 1..16 per part, e.g. bass=2,keys=3")
    gen.add_argument("--render", help="output formats: mid,wav,flac (MIDI files are always written)")
    gen.add_argument("--stems", help="1: also one audio file per part")
    gen.add_argument("--sample-rate", dest="sample_rate", help="44100 or 48000 (default: the config's)")
    gen.add_argument("--bit-depth", dest="bit_depth", help="16 or 24 (default: the config's)")
    gen.add_argument("--config", type=Path, help="TOML config file ([render] settings)")
    gen.add_argument("--id", help="request id stored with the job")
    gen.add_argument("--job-id", help="folder name under the output dir (default: a new job id)")
    gen.add_argument("-o", "--output", required=True, help="output folder")
    gen.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    gen.set_defaults(func=cmd_generate)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ai-band`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"ai-band: {exc}", file=sys.stderr)
        return 2
    except BandError as exc:
        print(f"ai-band: error [{exc.code}]: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
