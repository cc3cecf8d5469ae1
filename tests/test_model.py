"""The data model: pickling (arrangements cross process boundaries) and the GIL."""

from __future__ import annotations

import pickle
import sys
import threading
import time

from ai_band.generate.pipeline import generate
from ai_band.model import Note, Part
from ai_band.request import parse_request


def _big_part(count: int = 6000) -> Part:
    notes = tuple(Note(i * 0.25, 0.2 + (i % 7) * 0.01, 30 + i % 60, 1 + i % 127) for i in range(count))
    return Part("keys", 4, 0, notes)


def test_part_pickles_exactly():
    part = _big_part()
    copy = pickle.loads(pickle.dumps(part))
    assert copy == part
    assert all(type(n.pitch) is int and type(n.velocity) is int for n in copy.notes)
    assert all(type(n.start_ppq) is float for n in copy.notes)


def test_empty_part_pickles():
    part = Part("bass", 33, 1, ())
    assert pickle.loads(pickle.dumps(part)) == part


def test_arrangement_pickles_exactly():
    request = parse_request({"id": "p", "chords": "| Dm7 G7 | Cmaj7 |", "style": "funk", "bars": 16,
                             "parts": "drums,bass,keys,melody", "seed": 4})
    arrangement = generate(request)
    assert pickle.loads(pickle.dumps(arrangement)) == arrangement


def test_loading_a_large_part_lets_other_threads_run():
    """Field-by-field pickles load in C holding the GIL; the part's table rebuild must yield it.

    A second thread counts how often it ran while ``pickle.loads`` was in
    progress.  Loading that held the GIL throughout would give 0.
    """
    blob = pickle.dumps([_big_part(), _big_part()])
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    ticks: list[float] = []
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0)

    thread = threading.Thread(target=ticker)
    try:
        thread.start()
        time.sleep(0.01)
        start = time.perf_counter()
        parts = pickle.loads(blob)
        end = time.perf_counter()
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(old)
    assert len(parts[0].notes) == 6000
    during = [t for t in ticks if start < t < end]
    assert len(during) >= 2, f"the other thread ran {len(during)} times in {1000 * (end - start):.1f} ms of loading"
