#!/usr/bin/env python3
"""Audio rendering speed: render + loudness + limiter of a 4-part, 32-bar arrangement.

Workload: ``generate(parse_request({...}))`` of style rock (default), parts
drums, bass, keys, melody, 32 bars of ``| C | Am | F | G |`` at 120 bpm,
seed 1: 64 s of music plus the 2 s tail, 44.1 kHz.  For each engine
(FluidSynth with the installed GM SoundFont, and the built-in numpy
synthesizer) one :class:`~ai_band.render.audio.AudioRenderer` is created
(the SoundFont load is timed), warmed up with one render, then
``AudioRenderer.render`` is timed ``--reps`` times with the renderer kept
warm.  File writing is not included.  The engines are interleaved, so a
noisy neighbour on a shared machine spreads over both.

Prints per engine the median and p99 render time (seconds), the real-time
ratio (music seconds / render seconds) at the median and at the worst run,
the loudness and true peak of the result and the SoundFont load time, plus
the machine (CPU model, cores, Python).  Exit code 1 when the FluidSynth
median ratio is below ``--target`` (50x real time); 2 when FluidSynth is not
available at all.

Usage: python -m bench.render_speed [--reps 15] [--style rock] [--target 50]
       [--sample-rate 44100] [--json bench/results/render_speed.json]
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
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from bench.machine import cpu_model, usable_cpus
from ai_band.errors import RenderError
from ai_band.generate.pipeline import generate
from ai_band.model import Arrangement
from ai_band.request import parse_request
from ai_band.system.priority import refuse_numpy_hugepages
from ai_band.render.audio import AudioOptions, AudioRenderer

#: Median real-time ratio FluidSynth must reach.
TARGET_RATIO = 50.0
ENGINES = ("fluidsynth", "numpy")


def workload(style: str) -> Arrangement:
    """The benchmark arrangement: 4 parts, 32 bars, 120 bpm, seed 1."""
    return generate(
        parse_request(
            {
                "chords": "| C | Am | F | G |",
                "style": style,
                "bpm": 120,
                "bars": 32,
                "parts": "drums,bass,keys,melody",
                "seed": 1,
            }
        )
    )


def machine_info() -> dict[str, object]:
    """CPU model, core counts, Python, OS, libfluidsynth and the repo revision."""
    cpu = cpu_model()
    usable = usable_cpus()
    try:
        rev = (
            subprocess.run(
                ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        rev = "unknown"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "numpy": np.__version__,
        "libfluidsynth": _fluidsynth_version(),
        "os": f"{platform.system()} {platform.release()}",
        "revision": rev,
    }


def _fluidsynth_version() -> str:
    try:
        import ctypes

        import fluidsynth

        parts = [ctypes.c_int() for _ in range(3)]
        fluidsynth._fl.fluid_version(*[ctypes.byref(p) for p in parts])
        return ".".join(str(p.value) for p in parts)
    except (ImportError, OSError, AttributeError):
        return "missing"


def summary(seconds: Sequence[float], music_s: float) -> dict[str, float]:
    """Median and p99 render time (s), real-time ratio at the median and at the worst run."""
    times = np.asarray(seconds)
    median = float(np.median(times))
    return {
        "median_s": median,
        "p99_s": float(np.percentile(times, 99)),
        "min_s": float(times.min()),
        "max_s": float(times.max()),
        "ratio_median": music_s / median,
        "ratio_worst": music_s / float(times.max()),
        "n": int(times.size),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--reps", type=int, default=15, help="timed renders per engine (default 15)"
    )
    parser.add_argument("--style", default="rock")
    parser.add_argument("--sample-rate", type=int, default=44100, choices=(44100, 48000))
    parser.add_argument(
        "--target", type=float, default=TARGET_RATIO, help="FluidSynth median x real time"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    refuse_numpy_hugepages()  # as the daemon's render workers do

    arrangement = workload(args.style)
    options = AudioOptions(sample_rate=args.sample_rate)
    renderers: dict[str, AudioRenderer] = {}
    load_s: dict[str, float] = {}
    for engine in ENGINES:
        t0 = time.perf_counter()
        try:
            renderers[engine] = AudioRenderer(engine)
        except RenderError as exc:
            print(f"{engine}: not available: {exc}")
            continue
        load_s[engine] = time.perf_counter() - t0
    if not renderers:
        return 2

    results: dict[str, dict[str, object]] = {}
    timings: dict[str, list[float]] = {engine: [] for engine in renderers}
    last = {}
    try:
        for engine, renderer in renderers.items():  # warm-up: thread pools, caches, first touch
            last[engine] = renderer.render(arrangement, options)
        for _ in range(args.reps):
            for engine, renderer in renderers.items():
                t0 = time.perf_counter()
                last[engine] = renderer.render(arrangement, options)
                timings[engine].append(time.perf_counter() - t0)
    finally:
        for renderer in renderers.values():
            renderer.close()

    music_s = next(iter(last.values())).music_s
    machine = machine_info()
    print(
        f"machine: {machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} usable), "
        f"load {machine['load_average']}, {machine['python']}, "
        f"libfluidsynth {machine['libfluidsynth']}"
    )
    print(
        f"workload: {args.style}, drums/bass/keys/melody, 32 bars at 120 bpm = "
        f"{music_s:.1f} s of music "
        f"+ {options.tail_s:g} s tail, {args.sample_rate} Hz; {args.reps} warm renders per engine"
    )
    for engine, seconds in timings.items():
        stats = summary(seconds, music_s)
        rendered = last[engine]
        results[engine] = {
            **stats,
            "load_s": load_s[engine],
            "soundfont": rendered.soundfont,
            "loudness_lufs": rendered.loudness_lufs,
            "true_peak_dbtp": rendered.true_peak_dbtp,
            "gain_db": rendered.gain_db,
            "limited": rendered.limited,
        }
        print(
            f"{engine:10s} render+loudness+limiter median {stats['median_s']:.3f} s, "
            f"p99 {stats['p99_s']:.3f} s "
            f"-> {stats['ratio_median']:.1f}x real time (worst {stats['ratio_worst']:.1f}x); "
            f"engine load {load_s[engine]:.2f} s; {rendered.loudness_lufs:.2f} LUFS, "
            f"{rendered.true_peak_dbtp:.2f} dBTP{', limited' if rendered.limited else ''}"
        )

    status = 0
    fluid = results.get("fluidsynth")
    if fluid is None:
        print("FAIL: FluidSynth is not available")
        status = 2
    elif fluid["ratio_median"] < args.target:
        print(
            f"FAIL: FluidSynth median {fluid['ratio_median']:.1f}x real time "
            f"is below {args.target:g}x"
        )
        status = 1
    else:
        print(f"ok: FluidSynth median {fluid['ratio_median']:.1f}x real time >= {args.target:g}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "machine": machine,
            "target_ratio": args.target,
            "music_s": music_s,
            "sample_rate": args.sample_rate,
            "reps": args.reps,
            "style": args.style,
            "engines": results,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
