"""ai_band.system.heap: settle (garbage collected, survivors leave the collector's generations) and GcLog."""

from __future__ import annotations

import gc
import time
import weakref

from ai_band.system import heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_settle_collects_cycles_then_freezes_survivors():
    gc.unfreeze()
    try:
        a, b = _Node(), _Node()
        a.other, b.other = b, a  # a reference cycle: only the cyclic collector frees it
        dead = weakref.ref(a)
        del a, b
        keep = [_Node() for _ in range(100)]
        heap.settle()
        assert dead() is None
        assert gc.get_freeze_count() > 0
        # Survivors are in the permanent generation: collections no longer walk them.
        assert not any(any(obj is k for k in keep) for obj in gc.get_objects(generation=2))
    finally:
        gc.unfreeze()


def test_gc_log_records_each_collection_with_its_generation_start_and_duration():
    log = heap.GcLog(size=4).install()
    try:
        before_ns = time.monotonic_ns()
        cycle: list = []
        cycle.append(cycle)
        del cycle
        gc.collect(1)
        gc.collect(2)
        after_ns = time.monotonic_ns()
    finally:
        log.uninstall()
    gc.collect()  # not recorded: uninstalled
    recorded = log.record()
    assert [entry[0] for entry in recorded[-2:]] == [1, 2]
    for generation, start_ns, duration_us, collected in recorded[-2:]:
        assert before_ns <= start_ns <= after_ns
        assert 0 <= duration_us <= (after_ns - start_ns) / 1000.0
    assert recorded[-2][3] >= 1  # the cycle
    log.uninstall()  # idempotent
