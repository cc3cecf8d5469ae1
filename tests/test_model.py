"""The data model: pickling (arrangements cross process boundaries) and the GIL, the time
signature and the parts table."""

from __future__ import annotations

import pickle
import sys
import threading
import time

import pytest

from ai_band.generate.pipeline import generate
from ai_band.model import PART_NAMES, PARTS, Arrangement, Note, Part, TimeSignature
from ai_band.request import KNOWN_PARTS, parse_request


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


# --- time signature ------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "bar_ppq", "unit_ppq"),
    [((4, 4), 4.0, 1.0), ((3, 4), 3.0, 1.0), ((6, 8), 3.0, 0.5), ((7, 8), 3.5, 0.5),
     ((2, 2), 4.0, 2.0), ((1, 1), 4.0, 4.0), ((11, 16), 2.75, 0.25), ((5, 64), 0.3125, 0.0625)],
)
def test_bar_length_in_quarter_notes(ts: tuple[int, int], bar_ppq: float, unit_ppq: float) -> None:
    signature = TimeSignature(*ts)
    assert signature.bar_length_ppq == bar_ppq
    assert signature.unit_ppq == unit_ppq
    assert str(signature) == f"{ts[0]}/{ts[1]}"


@pytest.mark.parametrize(("num", "den"), [(4, 3), (4, 0), (4, -4), (4, 6), (4, 128), (0, 4), (-1, 8)])
def test_bad_time_signature_is_refused(num: int, den: int) -> None:
    with pytest.raises(ValueError, match="numerator|denominator"):
        TimeSignature(num, den)


@pytest.mark.parametrize(("num", "den"), [(4.0, 4), (4, 4.0), (True, 4), ("4", 4)])
def test_time_signature_fields_must_be_int(num: object, den: object) -> None:
    with pytest.raises(TypeError):
        TimeSignature(num, den)  # type: ignore[arg-type]


def test_arrangement_time_signature() -> None:
    arrangement = Arrangement((Part("bass", 33, 1, ()),), 120.0, 7, 8, 4, "rock", "C", 1)
    assert arrangement.time_signature == TimeSignature(7, 8)
    assert arrangement.bar_length_ppq == 3.5 and arrangement.length_ppq == 14.0
    with pytest.raises(ValueError):
        Arrangement((), 120.0, 4, 3, 4, "rock", "C", 1)


def test_arrangement_pickle_holds_no_time_signature_object() -> None:
    """The time signature is derived on demand: the pickle stays the compact fields."""
    arrangement = Arrangement((_big_part(10),), 120.0, 6, 8, 2, "rock", "C", 1)
    blob = pickle.dumps(arrangement, pickle.HIGHEST_PROTOCOL)
    assert b"TimeSignature" not in blob
    assert pickle.loads(blob).time_signature == TimeSignature(6, 8)


# --- the parts table -----------------------------------------------------------


def test_parts_table() -> None:
    assert PART_NAMES == tuple(PARTS) == KNOWN_PARTS
    assert PART_NAMES[:3] == ("drums", "bass", "keys")
    assert PARTS["drums"].channel == 9  # GM percussion, MIDI channel 10
    assert len({spec.channel for spec in PARTS.values()}) == len(PARTS)
    for name, spec in PARTS.items():
        assert spec.name == name and spec.description
        assert 0 <= spec.channel <= 15 and 0 <= spec.program <= 127
        low, high = spec.pitch_range
        assert 0 <= low < high <= 127


def test_every_part_has_a_generator() -> None:
    from ai_band.generate.pipeline import GENERATORS

    assert tuple(GENERATORS) == PART_NAMES
    assert all(GENERATORS[name].__name__ == f"generate_{name}" for name in PART_NAMES)
