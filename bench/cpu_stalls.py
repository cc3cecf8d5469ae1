#!/usr/bin/env python3
"""What a render does to the other CPUs: timer wake-up stalls, with and without a render running.

Each CPU gets a probe process that sleeps to absolute deadlines every
1.333 ms (one 64-frame JACK period at 48 kHz) at the highest priority it may
take (``SCHED_FIFO`` 80 as root, else nice -10, else as it is) and records how
late each wake-up came.  A thread at that priority can only be held up by
the kernel (interrupts, or kernel code that does not yield: on a kernel
built without preemption, ``PREEMPT_NONE``, that is any kernel code) or by
the hypervisor taking the CPU away.  The daemon's JACK and playback threads
run at a lower priority, so they see at least these stalls.

The render is the real one: a process set up as the daemon sets up its
render workers (:func:`ai_band.system.priority.yield_cpu`: the workers' CPUs,
``SCHED_IDLE``, the idle I/O class, numpy's huge-page marking off), rendering
the ``bench/render_speed.py`` workload back to back (FluidSynth, or the numpy
synthesizer without a SoundFont).

Modes, interleaved over ``--rounds`` rounds of ``--seconds`` each:

* ``idle``: no render;
* ``render``: a render worker as the daemon starts it;
* ``render-hugepages``: the same, except that numpy marks its large arrays
  ``madvise(MADV_HUGEPAGE)`` (numpy's default, and the workers' until
  :func:`ai_band.system.priority.refuse_numpy_hugepages`), so the kernel's khugepaged
  thread collapses them into huge pages, on whatever CPU it runs.

Prints, per mode and CPU, over all rounds: wake-ups, median / p99 / p99.9 /
max lateness (ms), wake-ups more than 1 ms late and how many of those came
within 5 ms of one on every other CPU (the whole machine stopped: the
hypervisor, not this guest), plus khugepaged's CPU time and huge-page
collapses (``/proc/vmstat`` ``thp_collapse_alloc``) per mode.  Linux only.

Usage: python -m bench.cpu_stalls [--seconds 20] [--rounds 3]
       [--modes idle,render,render-hugepages] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from array import array
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from bench.machine import cpu_model, machine_name

#: Probe period, s: one JACK period of 64 frames at 48 kHz.
PERIOD_S = 64 / 48000
#: A wake-up this late counts as a stall, s.
STALL_S = 0.001
#: Stalls on every CPU within this much of each other are one machine-wide stall, s.
TOGETHER_S = 0.005
MODES = ("idle", "render", "render-hugepages")


def _probe(cpu: int, seconds: float, conn: Any) -> None:
    """Probe process: on ``cpu`` only, wake every :data:`PERIOD_S`; send (deadlines, lateness) in s."""
    os.sched_setaffinity(0, {cpu})
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(80))
        priority = "SCHED_FIFO 80"
    except OSError:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, -10)
            priority = "nice -10"
        except OSError:
            priority = f"nice {os.getpriority(os.PRIO_PROCESS, 0)}"
    deadlines, lateness = array("d"), array("d")
    deadline = time.monotonic()
    end = deadline + seconds
    while deadline < end:
        deadline += PERIOD_S
        wait = deadline - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # Python >= 3.11: clock_nanosleep to an absolute CLOCK_MONOTONIC time
        deadlines.append(deadline)
        lateness.append(time.monotonic() - deadline)
    conn.send((priority, deadlines.tobytes(), lateness.tobytes()))
    conn.close()


def _render_loop(hugepages: bool, ready: Any, stop: Any) -> None:
    """Render process: set up like a daemon render worker, render until ``stop`` is set."""
    from bench.render_speed import workload
    from ai_band.render.audio import AudioOptions, AudioRenderer
    from ai_band.system.priority import set_numpy_hugepages
    from ai_band.system.priority import yield_cpu

    yield_cpu(10)
    if hugepages:
        set_numpy_hugepages(True)
    renderer = AudioRenderer("auto")
    arrangement, options = workload("rock"), AudioOptions()
    renderer.render(arrangement, options)  # warm
    ready.set()
    try:
        while not stop.is_set():
            renderer.render(arrangement, options)
    finally:
        renderer.close()


def _khugepaged() -> tuple[int, int]:
    """(khugepaged's CPU time in clock ticks, thp_collapse_alloc); (0, 0) where unknown."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if "(khugepaged)" in text:
            fields = text.rsplit(")", 1)[1].split()
            ticks = int(fields[11]) + int(fields[12])  # utime, stime
            break
    collapses = 0
    try:
        for line in Path("/proc/vmstat").read_text().splitlines():
            if line.startswith("thp_collapse_alloc "):
                collapses = int(line.split()[1])
    except OSError:
        pass
    return ticks, collapses


def run_round(mode: str, seconds: float) -> dict[str, Any]:
    """One round of ``mode``: probes on every CPU for ``seconds``; returns the raw figures."""
    ctx = multiprocessing.get_context("spawn")
    render = stop = None
    if mode != "idle":
        ready, stop = ctx.Event(), ctx.Event()
        render = ctx.Process(target=_render_loop, args=(mode == "render-hugepages", ready, stop), daemon=True)
        render.start()
        if not ready.wait(120):
            raise RuntimeError("the render process did not start")
        time.sleep(2.0)  # the render's arrays are there for khugepaged to find
    before = _khugepaged()
    probes = []
    for cpu in sorted(os.sched_getaffinity(0)):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_probe, args=(cpu, seconds, child), daemon=True)
        proc.start()
        probes.append((cpu, proc, parent))
    per_cpu = {}
    for cpu, proc, parent in probes:
        priority, deadlines, lateness = parent.recv()
        proc.join()
        per_cpu[cpu] = (priority, array("d", deadlines), array("d", lateness))
    after = _khugepaged()
    if render is not None:
        stop.set()
        render.join(30)
        if render.is_alive():
            render.kill()
    return {"per_cpu": per_cpu, "khugepaged_ticks": after[0] - before[0],
            "thp_collapses": after[1] - before[1]}


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by nearest rank; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Figures of one mode over its rounds: per CPU lateness in ms, stalls, machine-wide stalls."""
    cpus = sorted(rounds[0]["per_cpu"])
    out: dict[str, Any] = {"cpus": {}, "rounds": len(rounds),
                           "khugepaged_ms": sum(r["khugepaged_ticks"] for r in rounds) * 1000 / os.sysconf("SC_CLK_TCK"),
                           "thp_collapses": sum(r["thp_collapses"] for r in rounds)}
    for cpu in cpus:
        late_ms: list[float] = []
        stalls = together = 0
        for r in rounds:
            _, deadlines, lateness = r["per_cpu"][cpu]
            late_ms.extend(x * 1000 for x in lateness)
            others = [[d for d, x in zip(r["per_cpu"][c][1], r["per_cpu"][c][2]) if x > STALL_S]
                      for c in cpus if c != cpu]
            for d, x in zip(deadlines, lateness):
                if x > STALL_S:
                    stalls += 1
                    if others and all(any(abs(d - o) < TOGETHER_S for o in other) for other in others):
                        together += 1
        out["cpus"][cpu] = {
            "priority": rounds[0]["per_cpu"][cpu][0],
            "wakeups": len(late_ms),
            "median_ms": round(statistics.median(late_ms), 3),
            "p99_ms": round(percentile(late_ms, 99), 3),
            "p99_9_ms": round(percentile(late_ms, 99.9), 3),
            "max_ms": round(max(late_ms), 3),
            "stalls_over_1ms": stalls,
            "machine_wide_stalls": together,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of one round (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every mode (default 3)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("Linux only (CPU affinity, /proc)")
        return 2
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown mode(s): {', '.join(sorted(unknown))}")
    raw: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for mode in modes:
            raw[mode].append(run_round(mode, args.seconds))
    figures = {"machine": machine_name(), "cpu": cpu_model(), "period_ms": round(PERIOD_S * 1000, 3),
               "seconds_per_round": args.seconds, "modes": {m: summarize(raw[m]) for m in modes}}
    print(f"machine: {figures['machine']}")
    print(f"probe: one process per CPU, wake-ups every {PERIOD_S * 1000:.3f} ms; "
          f"{args.rounds} x {args.seconds:g} s per mode, interleaved")
    for mode, fig in figures["modes"].items():
        print(f"{mode}: khugepaged {fig['khugepaged_ms']:.0f} ms CPU, {fig['thp_collapses']} huge-page collapses")
        for cpu, c in fig["cpus"].items():
            print(f"  cpu{cpu} ({c['priority']}): {c['wakeups']} wake-ups, late median {c['median_ms']:.3f} "
                  f"p99 {c['p99_ms']:.3f} p99.9 {c['p99_9_ms']:.3f} max {c['max_ms']:.3f} ms; "
                  f"{c['stalls_over_1ms']} over 1 ms ({c['machine_wide_stalls']} on every CPU at once)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
