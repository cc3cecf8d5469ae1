"""Swing, humanize and the final clean-up."""

from __future__ import annotations

import random

import pytest

from ai_band.generate.groove import MAX_SHIFT_PPQ, apply_swing, finalize, humanize, mute_bars
from ai_band.theory.meter import Meter
from ai_band.model import Note


def _eighths(bars: int, meter: Meter) -> list[Note]:
    notes = []
    for bar in range(bars):
        for beat in meter.beats:
            for t in beat.subdivisions():
                notes.append(Note(bar * meter.bar_length + t, 0.2, 42, 80))
    return notes


def test_swing_zero_is_identity() -> None:
    notes = _eighths(2, Meter.from_ts(4, 4))
    assert apply_swing(notes, Meter.from_ts(4, 4), 0.0) == notes


def test_half_swing_puts_offbeat_on_the_triplet() -> None:
    meter = Meter.from_ts(4, 4)
    swung = apply_swing(_eighths(2, meter), meter, 0.5)
    starts = [n.start_ppq for n in swung]
    assert starts[:4] == [0.0, pytest.approx(2 / 3), 1.0, pytest.approx(1 + 2 / 3)]
    assert starts[8] == 4.0
    assert starts[9] == pytest.approx(4 + 2 / 3)


def test_full_swing_and_order() -> None:
    meter = Meter.from_ts(4, 4)
    swung = apply_swing(_eighths(1, meter), meter, 1.0)
    starts = [n.start_ppq for n in swung]
    assert starts[1] == pytest.approx(0.5 + 1 / 3)
    assert starts == sorted(starts)
    assert all(b.start_ppq >= a.end_ppq for a, b in zip(swung, swung[1:]))


def test_swing_leaves_compound_beats_alone() -> None:
    meter = Meter.from_ts(6, 8)
    notes = _eighths(1, meter)
    assert [n.start_ppq for n in apply_swing(notes, meter, 0.8)] == [n.start_ppq for n in notes]


def test_swing_warps_note_ends_too() -> None:
    meter = Meter.from_ts(4, 4)
    (swung,) = apply_swing([Note(0.0, 0.5, 60, 90)], meter, 0.5)
    assert swung.end_ppq == pytest.approx(2 / 3)


def test_humanize_zero_is_identity() -> None:
    notes = _eighths(2, Meter.from_ts(4, 4))
    assert humanize(notes, 0.0, random.Random(1)) == notes


def test_humanize_is_small_seeded_and_keeps_durations() -> None:
    notes = _eighths(4, Meter.from_ts(4, 4))
    loose = humanize(notes, 1.0, random.Random(3))
    assert loose == humanize(notes, 1.0, random.Random(3))
    assert loose != humanize(notes, 1.0, random.Random(4))
    shifts = [b.start_ppq - a.start_ppq for a, b in zip(notes, loose)]
    assert any(s != 0 for s in shifts)
    assert all(abs(s) <= MAX_SHIFT_PPQ + 1e-12 for s in shifts)
    assert [n.duration_ppq for n in loose] == [n.duration_ppq for n in notes]
    assert any(a.velocity != b.velocity for a, b in zip(notes, loose))


def test_humanize_scales_with_amount() -> None:
    notes = _eighths(4, Meter.from_ts(4, 4))
    loose = humanize(notes, 0.2, random.Random(3))
    assert all(
        abs(b.start_ppq - a.start_ppq) <= 0.2 * MAX_SHIFT_PPQ + 1e-12 for a, b in zip(notes, loose)
    )


def test_humanize_is_a_pocket_not_white_noise() -> None:
    notes = _eighths(32, Meter.from_ts(4, 4))
    shifts = [
        b.start_ppq - a.start_ppq for a, b in zip(notes, humanize(notes, 1.0, random.Random(11)))
    ]
    mean = sum(shifts) / len(shifts)
    dev = [s - mean for s in shifts]
    lag1 = sum(a * b for a, b in zip(dev, dev[1:])) / sum(d * d for d in dev)
    assert lag1 > 0.4


def test_chord_notes_move_together() -> None:
    chord = [Note(1.0, 1.0, p, 80) for p in (60, 64, 67)]
    loose = humanize(chord, 1.0, random.Random(5))
    starts = [n.start_ppq for n in loose]
    assert max(starts) - min(starts) <= 0.2 * MAX_SHIFT_PPQ + 1e-12


def test_finalize_clips_sorts_and_separates() -> None:
    notes = [
        Note(2.0, 1.0, 60, 200),
        Note(-0.01, 0.5, 60, 0),
        Note(2.5, 1.0, 60, 70),
        Note(2.5, 0.3, 60, 90),
        Note(3.9, 0.5, 64, 80),
        Note(4.2, 0.5, 64, 80),
    ]
    out = finalize(notes, 4.0)
    assert [(n.start_ppq, n.pitch) for n in out] == [(0.0, 60), (2.0, 60), (2.5, 60), (3.9, 64)]
    assert out[0].duration_ppq == pytest.approx(0.49)
    assert out[0].velocity == 1
    assert out[1].end_ppq <= 2.5 and out[1].velocity == 127
    assert out[2].velocity == 90
    assert out[3].end_ppq <= 4.0


def test_finalize_never_ends_past_length_with_float_thirds() -> None:
    third = 4 / 3
    notes = [Note(2 * third, third, 60, 80)]
    (note,) = finalize(notes, 4.0)
    assert note.start_ppq + note.duration_ppq <= 4.0


def test_sixteenth_swing_moves_the_second_and_fourth_sixteenth() -> None:
    meter = Meter.from_ts(4, 4)
    notes = [Note(t * 0.25, 0.1, 42, 80) for t in range(8)]
    swung = [n.start_ppq for n in apply_swing(notes, meter, 0.5, "fine")]
    assert swung[0] == 0.0 and swung[2] == 0.5 and swung[4] == 1.0
    assert swung[1] == pytest.approx(0.25 + 0.5 * 0.5 / 3)
    assert swung[3] == pytest.approx(0.75 + 0.5 * 0.5 / 3)


def test_pocket_leans_consistently_and_scales_in() -> None:
    notes = _eighths(8, Meter.from_ts(4, 4))
    lean = 0.02
    late = humanize(notes, 1.0, random.Random(3), lambda n: lean)
    flat = humanize(notes, 1.0, random.Random(3))
    mean = sum(b.start_ppq - a.start_ppq for a, b in zip(flat, late)) / len(notes)
    assert mean == pytest.approx(lean, abs=0.003)
    assert all(abs(b.start_ppq - a.start_ppq) <= MAX_SHIFT_PPQ + 1e-12 for a, b in zip(notes, late))
    gentle = humanize(notes, 0.1, random.Random(3), lambda n: lean)
    mean_gentle = sum(b.start_ppq - a.start_ppq for a, b in zip(notes, gentle)) / len(notes)
    assert 0.3 * lean < mean_gentle < 0.6 * lean  # 0.1 / POCKET_FULL_AT of the lean, plus the walk


def test_strummed_notes_move_together() -> None:
    strum = [Note(1.0 + 0.008 * k, 0.5, 52 + 5 * k, 80) for k in range(6)]
    loose = humanize(strum, 1.0, random.Random(5))
    shifts = [b.start_ppq - a.start_ppq for a, b in zip(strum, loose)]
    assert max(shifts) - min(shifts) <= 0.2 * MAX_SHIFT_PPQ + 1e-12


def test_mute_bars_drops_and_cuts() -> None:
    notes = [Note(0.0, 8.0, 60, 80), Note(4.5, 1.0, 62, 80), Note(8.0, 2.0, 64, 80)]
    out = mute_bars(notes, [True, False, True], 4.0)
    assert out == [Note(0.0, 4.0, 60, 80), Note(8.0, 2.0, 64, 80)]
    assert mute_bars(notes, [True, True, True], 4.0) == notes


def test_swing_leaves_triplets_alone() -> None:
    meter = Meter.from_ts(4, 4)
    triplets = [Note(k / 3, 0.3, 60 + k, 80) for k in range(6)]
    swung = apply_swing(triplets, meter, 0.6)
    assert [n.start_ppq for n in swung] == [n.start_ppq for n in triplets]
