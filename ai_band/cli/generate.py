"""``ai-band generate``: one generation into files, offline (the same work as a daemon job).

Everything is checked before anything is written: the config (``--config``
and ``AI_BAND_*`` variables), the request (as ``/band/generate`` checks it),
the output folder and the job id.  A job folder this command created is
removed again if writing fails half-way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ai_band.cli.common import add_config_arg, setup_logging
from ai_band.config.shipped import BIT_DEPTHS, LOG_LEVELS, SAMPLE_RATES_HZ

#: The chord sheet of a request without one (``GenerationRequest.chords``; a test keeps them equal).
DEFAULT_CHORDS = "C Am F G"

#: (flag, request key, help); every key of ``/band/generate`` but ``play``.
REQUEST_FLAGS = (
    ("--chords", "chords", 'chord sheet, e.g. "| Cmaj7 | Am7 | Dm7 G7 |"; optional with --prompt or with '
                           f'--sections covering every section (default: {DEFAULT_CHORDS}, as over OSC)'),
    ("--style", "style", "style name; `ai-band styles` lists them (default: the prompt's, else rock)"),
    ("--key", "key", "key, e.g. C, Am, F#m, D dorian (default: inferred from the chords)"),
    ("--bpm", "bpm", "tempo, quarter notes per minute, 20..400 (default: the style's)"),
    ("--bars", "bars", "number of bars, 1..512 (default: the chord sheets' length)"),
    ("--ts", "ts", "time signature, e.g. 4/4, 6/8 (default: the style's)"),
    ("--parts", "parts", "comma list, e.g. drums,bass,keys (default: the style's)"),
    ("--seed", "seed", "random seed 0..2147483647; the same seed gives the same notes (default: derived "
                       "from the request)"),
    ("--humanize", "humanize", "timing and velocity looseness 0..1 (default: the style's)"),
    ("--swing", "swing", "0..1 (default: the style's)"),
    ("--prompt", "prompt", 'text prompt, e.g. "sad slow jazz ballad in D minor"; explicit flags win '
                           "(default: none)"),
    ("--energy", "energy", "0..1: density, velocity, fills (default: the style's)"),
    ("--complexity", "complexity", "0..1: rhythmic and harmonic elaboration (default: the style's)"),
    ("--structure", "structure", 'section order, e.g. "intro verse chorus verse chorus outro" or AABA '
                                 "(default: the --sections in order, else one looping section)"),
    ("--sections", "sections", 'JSON object: section -> chord sheet, e.g. \'{"verse": "C Am F G"}\' '
                               "(default: every section plays --chords)"),
    ("--duration", "duration", "length in seconds, 1..600, instead of --bars (default: none)"),
    ("--programs", "programs", "GM program 0..127 per part, e.g. bass=33,keys=4 (default: the style's)"),
    ("--channels", "channels", "MIDI channel 1..16 per part, e.g. bass=2,keys=3 (default: the style's)"),
    ("--render", "render", "output formats: mid,wav,flac; MIDI files are always written (default: mid)"),
    ("--stems", "stems", "1: also one audio file per part (default: 0)"),
    ("--sample-rate", "sample_rate", f"{' or '.join(map(str, SAMPLE_RATES_HZ))} Hz "
                                     f"(default: the config's [render] sample_rate, ${{render.sample_rate}})"),
    ("--bit-depth", "bit_depth", f"{' or '.join(map(str, BIT_DEPTHS))} "
                                 f"(default: the config's [render] bit_depth, ${{render.bit_depth}})"),
    ("--id", "id", "request id stored with the job (default: empty)"),
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``generate`` and its flags (the keys of ``/band/generate``)."""
    gen = sub.add_parser("generate", help="generate one arrangement into MIDI (and audio) files, offline",
                         description="Generate one arrangement into a job folder <output>/<job id>: a .mid file "
                                     "per part, full.mid, job.json, and with --render wav/flac the audio.")
    request = gen.add_argument_group("request", "the keys of /band/generate; what is left out comes from the "
                                                "prompt, the style or the chords")
    for flag, key, text in REQUEST_FLAGS:
        request.add_argument(flag, dest=key, help=text)
    out = gen.add_argument_group("output")
    out.add_argument("-o", "--output", required=True, type=Path, metavar="FOLDER",
                     help="where the job folder goes (created if missing)")
    out.add_argument("--job-id", help="name of the job folder (default: a new id, e.g. 20261121-141502-3fa2)")
    out.add_argument("--force", action="store_true", help="write into an existing --job-id folder")
    add_config_arg(out)
    out.add_argument("--log-level", choices=LOG_LEVELS, default="warning", help="how much to log on stderr")
    gen.set_defaults(func=cmd_generate)


def _flag_error(exc: Exception, field: str) -> str:
    """A RequestError's text with the field named as the flag: ``--bpm: must be in 20..400, got 999``."""
    text = str(exc)
    if text.startswith(f"{field}: "):
        text = text[len(field) + 2:]
    base, _, item = field.partition(".")
    flag = "--" + {"duration_s": "duration"}.get(base, base).replace("_", "-")
    return f"{flag} ({item}): {text}" if item else f"{flag}: {text}"


def _job_dir(args: argparse.Namespace) -> tuple[Path, bool]:
    """Check ``-o`` and ``--job-id``; create the job folder; return (folder, created here).

    Raises:
        UsageError: ``-o`` is (inside) a file or cannot be created; the job id is
            not a plain folder name; the job folder exists and ``--force`` is not given.
    """
    from ai_band.errors import UsageError
    from ai_band.jobs.work import new_job_id

    job_id = args.job_id if args.job_id is not None else new_job_id()
    if not job_id or job_id in (".", "..") or "/" in job_id or "\0" in job_id or len(job_id) > 128:
        raise UsageError(f"--job-id must be a plain folder name (1..128 characters, no '/', not '.' or '..'), "
                         f"got {job_id!r}")
    root = args.output.expanduser()
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"-o {args.output}: {existing} is not a folder")
    job_dir = root / job_id
    if job_dir.exists() and not args.force:
        raise UsageError(f"job folder {job_dir} exists; choose another --job-id or add --force to overwrite it")
    try:
        job_dir.mkdir(parents=True, exist_ok=args.force)
    except OSError as exc:
        raise UsageError(f"-o {args.output}: cannot create {exc.filename or job_dir}: {exc.strerror or exc}") from None
    return job_dir, not args.force or not any(job_dir.iterdir())


def cmd_generate(args: argparse.Namespace) -> int:
    """``ai-band generate``: one generation into files, offline (same work as a daemon job)."""
    import gc
    import os

    # One job, then the process ends: the cyclic collector's passes over the objects the
    # imports create (the generator, mido; numpy, scipy for audio) free nothing and cost
    # ~10 ms of a MIDI job, ~75 ms with audio. Memory is freed by reference counting as ever.
    gc.disable()
    # Nothing here calls BLAS, but numpy's and scipy's OpenBLAS each start a thread per CPU
    # when imported, which spin for ~250 ms of CPU in all (on two cores). Unless the user
    # set it: one thread (OpenBLAS reads this when numpy and scipy load, below).
    blas_set = "OPENBLAS_NUM_THREADS" not in os.environ
    if blas_set:
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        return _generate(args)
    finally:
        gc.enable()
        if blas_set:  # the environment as found (main() may be called in-process)
            os.environ.pop("OPENBLAS_NUM_THREADS", None)


def _generate(args: argparse.Namespace) -> int:
    """:func:`cmd_generate` with the cyclic garbage collector off and one OpenBLAS thread."""
    import shutil

    from ai_band.cli.common import config_given, load
    from ai_band.errors import RequestError, UsageError
    from ai_band.generate.pipeline import validate_request
    from ai_band.jobs.work import produce
    from ai_band.request import AUDIO_FORMATS, parse_request

    setup_logging(args.log_level)
    # The config matters for audio ([render]); otherwise only a --config file or AI_BAND_*
    # variables need checking: with neither, the shipped defaults need no loading.
    config = load(args) if args.render is not None or config_given(args) else None
    raw = {key: getattr(args, key) for _, key, _ in REQUEST_FLAGS if getattr(args, key) is not None}
    try:
        request = parse_request(raw)
        validate_request(request)
    except RequestError as exc:
        raise UsageError(_flag_error(exc, exc.field)) from None
    audio_formats = tuple(f for f in (request.render or ()) if f in AUDIO_FORMATS)
    renderer = None
    if audio_formats:  # the renderer (engine, SoundFont) is checked before any file is written
        from ai_band.render.audio import AudioRenderer
        from ai_band.render.audio_job import render_audio

        # Every CPU; the SoundFont loads while the notes are generated and written.
        renderer = AudioRenderer(config.render.engine, config.render.soundfont, threads=0, background=True)
    job_dir, created = _job_dir(args)
    try:
        arrangement, files, generation_ms = produce(request, job_dir)
        written = list(files.items())
        if renderer is not None:
            audio_files, audio = render_audio(renderer, arrangement, job_dir, audio_formats, request.stems,
                                              config.render, request.sample_rate, request.bit_depth)
            written += audio_files
            print(f"audio: {audio['engine']}, {audio['sample_rate']} Hz / {audio['bit_depth']} bit, "
                  f"{audio['loudness_lufs']} LUFS, true peak {audio['true_peak_dbtp']} dBTP, "
                  f"{audio['realtime_ratio']}x real time")
    except BaseException:
        if created:
            shutil.rmtree(job_dir, ignore_errors=True)
        raise
    finally:
        if renderer is not None:
            renderer.close()
    print(f"style {arrangement.style}, key {arrangement.key}, {arrangement.bpm:g} bpm, "
          f"{arrangement.ts_num}/{arrangement.ts_den}, {arrangement.bars} bars, seed {arrangement.seed}, "
          f"generated in {generation_ms:.1f} ms")
    for part in arrangement.parts:
        print(f"  {part.name:7s} program {part.program:3d} channel {part.channel + 1:2d}: {len(part.notes)} notes")
    for name, path in written:
        print(f"{name}\t{path}")
    return 0
