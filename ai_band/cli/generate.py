"""``ai-band generate``: one generation into files, offline (the same work as a daemon job)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ai_band.cli.common import setup_logging


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``generate`` and its flags (the keys of ``/band/generate``)."""
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



GENERATE_KEYS = (
    "id", "chords", "key", "style", "bpm", "bars", "ts", "parts", "seed", "humanize", "swing",
    "prompt", "energy", "complexity", "structure", "sections", "duration", "programs", "channels",
    "render", "stems", "sample_rate", "bit_depth",
)


def cmd_generate(args: argparse.Namespace) -> int:
    """``ai-band generate``: one generation into files, offline (same work as a daemon job)."""
    from ai_band.config import load_config
    from ai_band.generate.pipeline import validate_request
    from ai_band.request import parse_request
    from ai_band.jobs.work import new_job_id, produce
    from ai_band.render.audio_job import AUDIO_FORMATS, render_audio

    setup_logging(args.log_level or "warning")
    raw = {key: getattr(args, key) for key in GENERATE_KEYS if getattr(args, key) is not None}
    request = parse_request(raw)
    validate_request(request)
    job_dir = Path(args.output).expanduser() / (args.job_id or new_job_id())
    arrangement, files, generation_ms = produce(request, job_dir)
    written = list(files.items())
    audio_formats = tuple(f for f in (request.render or ()) if f in AUDIO_FORMATS)
    if audio_formats:
        config = load_config(args.config)
        audio_files, audio = render_audio(None, arrangement, job_dir, audio_formats, request.stems, config.render,
                                          request.sample_rate, request.bit_depth)
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


