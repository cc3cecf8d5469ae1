#!/usr/bin/env python3
"""Generation speed: how long ``generate()`` takes, per style, for two workloads.

Cases (every style from ``style_names()`` at run time):

* ``small``: a 4-part (drums, bass, keys, melody -- those the style accepts)
  32-bar arrangement of ``| C | Am | F | G |``; target median <= 100 ms;
* ``song``: every part of ``KNOWN_PARTS`` the style accepts, 128 bars of an
  8-bar sheet with seventh chords and two chords a bar; target median <= 1 s.

Also timed: ``validate_request`` on a song-form request (six sections, a
16-bar sheet and a section sheet), the check every ``/band/generate`` runs on
the daemon's event loop before the job goes to a worker; target median
<= 2 ms, since the loop also keeps time for the band.

Which parts a style accepts is found by asking the generator for one bar of
each part; a part it rejects is skipped with a note (styles and parts are
still being added).  Each case is warmed up once, then timed with
``time.perf_counter`` over ``--reps-small``/``--reps-song`` repetitions with a
different seed each time, the styles interleaved so a noisy neighbour on the
shared machine spreads over all of them.  Prints median and p99 (ms) per
style and case and over all styles, plus the machine; exit code 1 when a
style's median misses its target.

Usage: python -m bench.gen_speed [--reps-small 30] [--reps-song 10]
       [--styles jazz,rock] [--json bench/results/gen_speed.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from bench.machine import cpu_model, usable_cpus
from ai_band.errors import BandError
from ai_band.generate.pipeline import generate, style_names, validate_request
from ai_band.model import Arrangement
from ai_band.request import KNOWN_PARTS, GenerationRequest, parse_request

#: Median targets per case, milliseconds.
TARGETS_MS = {"small": 100.0, "song": 1000.0}

#: Median target of one ``validate_request`` (on the daemon's event loop), milliseconds.
VALIDATE_TARGET_MS = 2.0
#: Repetitions of the validation timing.
VALIDATE_REPS = 500

SMALL_PARTS = ("drums", "bass", "keys", "melody")
SMALL_SHEET = "| C | Am | F | G |"
SMALL_BARS = 32
SONG_SHEET = "| C | Am7 | Dm7 G7 | Cmaj7 | F | Fm6 | Em7 A7 | Dm7 G7 |"
SONG_BARS = 128


def supported_parts(
    style: str, candidates: Iterable[str] = KNOWN_PARTS
) -> tuple[list[str], dict[str, str]]:
    """Parts the generator accepts for ``style``, by generating one bar of each.

    Returns:
        ``(accepted, rejected)``: the accepted part names in ``candidates``
        order, and part name -> reason for the others.
    """
    accepted: list[str] = []
    rejected: dict[str, str] = {}
    gen_logger = logging.getLogger("ai_band.generate.pipeline")
    was_disabled = gen_logger.disabled
    gen_logger.disabled = True  # a rejected part is expected here, not worth a traceback
    try:
        for part in candidates:
            try:
                generate(
                    parse_request(
                        {"chords": "| C |", "style": style, "bars": 1, "parts": part, "seed": 1}
                    )
                )
            except BandError as exc:
                rejected[part] = f"{type(exc).__name__}: {exc}"
            else:
                accepted.append(part)
    finally:
        gen_logger.disabled = was_disabled
    return accepted, rejected


def machine_info() -> dict[str, object]:
    """CPU model, core counts, Python and OS, and the repo revision."""
    cpu = cpu_model()
    usable = usable_cpus()
    try:
        rev = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
        rev = (rev + ("+dirty" if dirty else "")) or "unknown"
    except (OSError, subprocess.SubprocessError):
        rev = "unknown"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": f"{platform.system()} {platform.release()}",
        "revision": rev,
    }


def stats_ms(samples: Sequence[float]) -> dict[str, float]:
    """Median, p99 (linear interpolation), min and max of samples given in seconds, in ms."""
    ms = np.asarray(samples) * 1000.0
    return {
        "median": float(np.median(ms)),
        "p99": float(np.percentile(ms, 99)),
        "min": float(ms.min()),
        "max": float(ms.max()),
        "n": int(ms.size),
    }


def _request(style: str, case: str, parts: Sequence[str], seed: int):
    sheet, bars = (SMALL_SHEET, SMALL_BARS) if case == "small" else (SONG_SHEET, SONG_BARS)
    return parse_request(
        {"chords": sheet, "style": style, "bars": bars, "parts": ",".join(parts), "seed": seed}
    )


def _timed(request) -> tuple[float, Arrangement]:
    t0 = time.perf_counter()
    arrangement = generate(request)
    return time.perf_counter() - t0, arrangement


def time_validate(reps: int = VALIDATE_REPS) -> dict[str, float]:
    """Time ``validate_request`` on a song-form jazz request ``reps`` times (after one warm-up).

    Returns:
        :func:`stats_ms` of the samples (milliseconds).
    """
    request = GenerationRequest(
        chords="| Dm7 G7 | Cmaj7 | Am7 D7 | Gmaj7 |" * 4,
        style="jazz",
        key="C",
        structure=("intro", "verse", "chorus", "verse", "chorus", "outro"),
        sections=(("chorus", "| F | G | C | Am |" * 2),),
    )
    validate_request(request)  # warm-up: the generator's imports and caches
    samples = []
    for _ in range(reps):
        began = time.perf_counter()
        validate_request(request)
        samples.append(time.perf_counter() - began)
    return stats_ms(samples)


def run(styles: Sequence[str], reps: dict[str, int], out=sys.stdout) -> dict[str, object]:
    """Time every case; returns the JSON-ready result (see the module docstring)."""
    notes: list[str] = []
    plan: dict[tuple[str, str], list[str]] = {}
    skipped: dict[tuple[str, str], list[str]] = {}  # (part, reason) -> styles
    for style in styles:
        accepted, rejected = supported_parts(style)
        for part, why in rejected.items():
            skipped.setdefault((part, why.replace(style, "<style>")), []).append(style)
        small = [p for p in SMALL_PARTS if p in accepted]
        if not small:
            why = "; ".join(sorted(set(rejected.values())))
            notes.append(f"{style}: none of {SMALL_PARTS} accepted ({why}); style skipped")
            continue
        plan[(style, "small")] = small
        plan[(style, "song")] = accepted
    for (part, why), names in skipped.items():
        which = "every style" if len(names) == len(styles) else ", ".join(names)
        notes.append(f"part {part!r} skipped for {which} ({why})")
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in plan}
    sizes: dict[tuple[str, str], int] = {}
    for case in ("small", "song"):
        keys = []
        for key in [key for key in plan if key[1] == case]:  # warm-up: imports, caches
            try:
                _, arrangement = _timed(_request(key[0], case, plan[key], 10_000))
            except BandError as exc:
                notes.append(f"{key[0]} {case}: skipped, the generator failed: {exc}")
                del samples[key]
                continue
            sizes[key] = sum(len(p.notes) for p in arrangement.parts)
            keys.append(key)
        for rep in range(reps[case]):
            for key in keys:
                elapsed, _ = _timed(_request(key[0], case, plan[key], rep + 1))
                samples[key].append(elapsed)

    result: dict[str, object] = {
        "machine": machine_info(),
        "targets_ms": TARGETS_MS,
        "cases": {
            "small": f"{SMALL_BARS} bars of {SMALL_SHEET!r}, "
            f"parts {','.join(SMALL_PARTS)} (those accepted)",
            "song": f"{SONG_BARS} bars of {SONG_SHEET!r}, "
            f"every accepted part of {','.join(KNOWN_PARTS)}",
        },
        "styles": {},
        "overall": {},
        "notes": notes,
        "failures": [],
    }
    failures: list[str] = result["failures"]  # type: ignore[assignment]
    for (style, case), values in samples.items():
        entry = stats_ms(values)
        entry["parts"] = plan[(style, case)]
        entry["notes_generated"] = sizes[(style, case)]
        result["styles"].setdefault(style, {})[case] = entry  # type: ignore[union-attr]
        if entry["median"] > TARGETS_MS[case]:
            failures.append(
                f"{style} {case}: median {entry['median']:.1f} ms > {TARGETS_MS[case]:g} ms"
            )
    result["validate"] = time_validate()
    if result["validate"]["median"] > VALIDATE_TARGET_MS:  # type: ignore[index]
        failures.append(f"validate_request: median above {VALIDATE_TARGET_MS:g} ms")
    for case in ("small", "song"):
        pooled = [v for (s, c), values in samples.items() if c == case for v in values]
        if pooled:
            result["overall"][case] = stats_ms(pooled)  # type: ignore[index]
            if result["overall"][case]["median"] > TARGETS_MS[case]:  # type: ignore[index]
                failures.append(f"overall {case}: median above {TARGETS_MS[case]:g} ms")
    _print(result, out)
    return result


def _print(result: dict, out) -> None:
    m = result["machine"]
    print(
        f"machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), "
        f"{m['python']}, {m['os']}, rev {m['revision']}",
        file=out,
    )
    for case, text in result["cases"].items():
        print(f"  {case}: {text}; target median <= {TARGETS_MS[case]:g} ms", file=out)
    header = (
        f"{'style':<14} {'case':<6} {'parts':>5} {'notes':>6} "
        f"{'median ms':>10} {'p99 ms':>9} {'n':>4}"
    )
    print(header, file=out)
    print("-" * len(header), file=out)
    for style, cases in result["styles"].items():
        for case, e in cases.items():
            flag = "  MISS" if e["median"] > TARGETS_MS[case] else ""
            print(
                f"{style:<14} {case:<6} {len(e['parts']):>5} {e['notes_generated']:>6} "
                f"{e['median']:>10.1f} {e['p99']:>9.1f} {e['n']:>4}{flag}",
                file=out,
            )
    for case, e in result["overall"].items():
        print(
            f"{'ALL':<14} {case:<6} {'':>5} {'':>6} "
            f"{e['median']:>10.1f} {e['p99']:>9.1f} {e['n']:>4}",
            file=out,
        )
    v = result["validate"]
    print(f"validate_request (song form, on the event loop): median {v['median']:.3f} ms, "
          f"p99 {v['p99']:.3f} ms, n {v['n']}; target median <= {VALIDATE_TARGET_MS:g} ms", file=out)
    for note in result["notes"]:
        print(f"note: {note}", file=out)
    for failure in result["failures"]:
        print(f"MISSED TARGET: {failure}", file=out)
    if not result["failures"]:
        print("all medians within target", file=out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps-small", type=int, default=30, help="repetitions of the 32-bar case")
    parser.add_argument("--reps-song", type=int, default=10, help="repetitions of the 128-bar case")
    parser.add_argument("--styles", help="comma-separated styles (default: all)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    known = style_names()
    styles = [s.strip() for s in args.styles.split(",")] if args.styles else known
    unknown = [s for s in styles if s not in known]
    if unknown:
        parser.error(f"unknown style(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if args.reps_small < 1 or args.reps_song < 1:
        parser.error("repetitions must be >= 1")
    result = run(styles, {"small": args.reps_small, "song": args.reps_song})
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
