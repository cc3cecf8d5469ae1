"""ai_band.system.heap.settle: garbage is collected, survivors leave the collector's generations."""

from __future__ import annotations

import gc
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
