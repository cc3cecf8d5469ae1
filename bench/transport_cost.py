#!/usr/bin/env python3
"""What one ``/band/transport`` message costs the host clock model under long tempo automation.

A simulated host plays for ``--messages`` messages at 25 Hz (the plugin's
rate) while its tempo moves on every message: a sine sweep between 100 and
140 bpm over ``SWEEP_PERIOD_S`` seconds, as a DAW's tempo automation would
send it.  The position stays continuous (each block advances at the tempo
of the block before) and each message arrives with +/-10 ms of uniform
jitter, as in ``bench/tempo_lock.py``.  Every message is a tempo change of
:class:`ai_band.transport.TransportModel`, so it starts a new segment.

Times :meth:`TransportModel.update` alone (``time.perf_counter_ns``) and
prints the per-message cost, median and p99 in microseconds, over the first
and the last ``--sample`` messages, their ratio (goal: last within 1.5x of
first), and how many segments the model keeps at the end.

Usage: python -m bench.transport_cost [--messages 100000] [--sample 1000] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
from pathlib import Path

from ai_band.transport import TransportModel, TransportState
from bench.machine import machine_name

#: The plugin's transport message rate, Hz.
RATE_HZ = 25.0
#: Send jitter of each message, seconds (uniform +/-).
JITTER_S = 0.010
#: Tempo sweep: centre and amplitude (bpm), period (s).
BPM_CENTRE, BPM_SWING, SWEEP_PERIOD_S = 120.0, 20.0, 60.0
#: Arbitrary CLOCK_MONOTONIC origin, seconds.
T_ORIGIN_S = 1000.0


def _percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(messages: int, seed: int = 1) -> tuple[list[float], TransportModel]:
    """Feed ``messages`` tempo-change messages; return each update's cost (microseconds) and the model."""
    rng = random.Random(seed)
    model = TransportModel()
    costs_us: list[float] = []
    ppq = 0.0
    bpm = BPM_CENTRE
    for i in range(messages):
        t = T_ORIGIN_S + i / RATE_HZ
        if i:
            ppq += bpm / 60.0 / RATE_HZ  # the block before ran at the old tempo
        bpm = BPM_CENTRE + BPM_SWING * math.sin(2.0 * math.pi * (i / RATE_HZ) / SWEEP_PERIOD_S + 0.1)
        state = TransportState(True, bpm, ppq, ppq - ppq % 4.0, 4, 4)
        arrival_s = t + rng.uniform(-JITTER_S, JITTER_S)
        start_ns = time.perf_counter_ns()
        model.update(arrival_s, state)
        costs_us.append((time.perf_counter_ns() - start_ns) / 1000.0)
    return costs_us, model


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and optionally write as JSON) its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000, help="tempo-change messages to feed")
    parser.add_argument("--sample", type=int, default=1_000, help="messages at each end to summarize")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.messages < 2 * args.sample or args.sample < 1:
        parser.error("--messages must be at least twice --sample (>= 1)")
    costs_us, model = run(args.messages)
    first, last = costs_us[: args.sample], costs_us[-args.sample:]
    result = {
        "machine": machine_name(),
        "messages": args.messages,
        "tempo_changes": model.counters["tempo_changes"],
        "relocations": model.counters["relocations"],
        "first_median_us": statistics.median(first),
        "first_p99_us": _percentile(first, 0.99),
        "last_median_us": statistics.median(last),
        "last_p99_us": _percentile(last, 0.99),
        "segments_kept": model.segment_count,
    }
    result["median_ratio"] = result["last_median_us"] / result["first_median_us"]
    print(f"machine: {result['machine']}")
    print(f"{result['messages']} messages, {result['tempo_changes']} tempo changes, "
          f"{result['relocations']} relocations, {result['segments_kept']} segments kept at the end")
    print(f"first {args.sample}: median {result['first_median_us']:.1f} us, p99 {result['first_p99_us']:.1f} us")
    print(f"last {args.sample}:  median {result['last_median_us']:.1f} us, p99 {result['last_p99_us']:.1f} us")
    print(f"last/first median: {result['median_ratio']:.2f}x (goal <= 1.5x)")
    if args.json:
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        tmp.replace(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
