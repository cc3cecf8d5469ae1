"""bench/cpu_stalls.py's summary on hand-made wake-up records with known answers."""

from __future__ import annotations

from array import array
from pathlib import Path


from bench.cpu_stalls import PERIOD_S, percentile, summarize


def _round(late_by_cpu: dict[int, dict[int, float]], wakeups: int = 1000) -> dict:
    """A round of ``wakeups`` deadlines per CPU; ``late_by_cpu[cpu][i]`` = lateness (s) of wake-up i, else 0.1 ms."""
    per_cpu = {}
    for cpu, late in late_by_cpu.items():
        deadlines = array("d", (i * PERIOD_S for i in range(wakeups)))
        lateness = array("d", (late.get(i, 0.0001) for i in range(wakeups)))
        per_cpu[cpu] = ("nice -10", deadlines, lateness)
    return {"per_cpu": per_cpu, "khugepaged_ticks": 0, "thp_collapses": 0}


def test_a_stall_on_one_cpu_is_not_machine_wide():
    fig = summarize([_round({0: {10: 0.005, 500: 0.002}, 1: {}})])
    assert fig["cpus"][0]["stalls_over_1ms"] == 2
    assert fig["cpus"][0]["machine_wide_stalls"] == 0
    assert fig["cpus"][0]["max_ms"] == 5.0
    assert fig["cpus"][1]["stalls_over_1ms"] == 0


def test_stalls_on_every_cpu_at_once_are_machine_wide():
    # wake-up 100 on cpu0 and 101 on cpu1 (1.3 ms apart): together; 700 on cpu0 alone
    fig = summarize([_round({0: {100: 0.003, 700: 0.003}, 1: {101: 0.002}})])
    assert fig["cpus"][0]["stalls_over_1ms"] == 2
    assert fig["cpus"][0]["machine_wide_stalls"] == 1
    assert fig["cpus"][1]["machine_wide_stalls"] == 1


def test_rounds_add_up_and_lateness_is_in_ms():
    fig = summarize([_round({0: {1: 0.002}}), _round({0: {2: 0.004}})])
    cpu = fig["cpus"][0]
    assert fig["rounds"] == 2
    assert cpu["wakeups"] == 2000
    assert cpu["stalls_over_1ms"] == 2
    assert cpu["median_ms"] == 0.1
    assert cpu["max_ms"] == 4.0


def test_percentile_by_nearest_rank():
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
