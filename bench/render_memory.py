#!/usr/bin/env python3
"""Render worker memory: the peak address space and RSS of real renders against :func:`estimate_render`.

Each case renders in a fresh render worker started with the daemon's own
initializer (:func:`~ai_band.render.audio_job.init_render_worker`: engine
loaded, malloc arenas limited, no ``RLIMIT_AS``), then reports the worker's
address space when ready, its peak (``VmPeak``) and peak RSS (``VmHWM``)
after the render, the growth per audio frame, and the estimate the daemon
refuses renders by (``memory_bytes``: frame buffers plus headroom).  The
per-frame constants :data:`RENDER_FRAME_BYTES` and
:data:`RENDER_PART_FRAME_BYTES` are fitted to such runs; every case's peak
growth must stay under its estimate (exit code 1 otherwise).

Usage: python -m bench.render_memory [--bars 16,48] [--parts 2,8] [--engine auto]
"""

from __future__ import annotations

import argparse
import multiprocessing
import pickle
import tempfile
from concurrent.futures import ProcessPoolExecutor

from bench.machine import machine_name

PARTS = ("drums", "bass", "keys", "pad", "melody", "arp", "guitar", "strings")


def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as status:
        for line in status:
            key = line.split(":")[0]
            if key in ("VmPeak", "VmSize", "VmHWM", "VmRSS"):
                out[key] = int(line.split()[1]) * 1024
    return out


def _render(arrangement_pickle: bytes, folder: str, render) -> tuple[dict, dict, str]:
    from ai_band.render.audio_job import run_render

    before = _status()
    status, payload = run_render("bench", arrangement_pickle, folder, ("wav", "flac"), True, None, None, render, (), None)
    return before, _status(), status if status == "ok" else f"{status}: {payload}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", default="16,48")
    parser.add_argument("--parts", default="2,8")
    parser.add_argument("--engine", default="auto")
    args = parser.parse_args(argv)

    from ai_band.config import RenderSection
    from ai_band.generate.pipeline import generate
    from ai_band.render.audio_job import estimate_render, init_render_worker
    from ai_band.request import parse_request

    print(machine_name())
    render = RenderSection(engine=args.engine, max_worker_mb=0)
    ctx = multiprocessing.get_context("forkserver")
    failed = 0
    for parts in (int(p) for p in args.parts.split(",")):
        for bars in (int(b) for b in args.bars.split(",")):
            arrangement = generate(parse_request({"chords": "| C | Am | F | G |", "style": "rock", "bpm": 120,
                                                  "bars": bars, "seed": 5, "parts": ",".join(PARTS[:parts])}))
            estimate = estimate_render(arrangement.length_ppq * 60 / arrangement.bpm, parts, ("wav", "flac"), True,
                                       render.sample_rate, render.bit_depth, render.tail_s)
            with tempfile.TemporaryDirectory() as folder, ProcessPoolExecutor(
                    1, mp_context=ctx, initializer=init_render_worker, initargs=(render, (), None)) as pool:
                before, after, outcome = pool.submit(_render, pickle.dumps(arrangement), folder, render).result()
            grown = after["VmPeak"] - before["VmSize"]
            rss = after["VmHWM"] - before["VmRSS"]
            ok = outcome == "ok" and grown <= estimate.memory_bytes
            failed += not ok
            print(f"{parts} parts, {bars:3d} bars, {estimate.frames / 1e6:.2f} M frames: ready {before['VmSize'] >> 20} MiB; "
                  f"peak +{grown >> 20} MiB address space ({grown / estimate.frames:.0f} B/frame), "
                  f"+{rss >> 20} MiB RSS ({rss / estimate.frames:.0f} B/frame); estimate +{estimate.memory_bytes >> 20} MiB"
                  f" -> {'ok' if ok else 'OVER' if outcome == 'ok' else outcome}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
