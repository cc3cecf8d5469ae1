"""Bass: the chord's bass note on every chord change, range, patterns."""

from __future__ import annotations

import pytest

from ai_band.generate.pipeline import STYLES, generate
from ai_band.generate.parts.bass import BASS_HIGH, BASS_LOW
from ai_band.model import Arrangement, Note
from ai_band.request import GenerationRequest

ON_BEAT_SHEETS = ["| C/E F G7 A7/C# |", "| Dm7 . G7/B . | C/Bb | D/F# | G7sus4 |", "C Am F G"]


def _bass_at(arrangement: Arrangement, start: float) -> list[Note]:
    return [n for n in arrangement.part("bass").notes if n.start_ppq == start]


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize("sheet", ON_BEAT_SHEETS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_first_beat_of_every_chord_plays_bass_pc(style: str, sheet: str, seed: int) -> None:
    # chords change on beats, so the style's default swing does not move them
    arrangement = generate(
        GenerationRequest(
            chords=sheet, style=style, seed=seed, humanize=0.0, parts=("bass",), bars=8
        )
    )
    for span in arrangement.chords:
        notes = _bass_at(arrangement, span.start_ppq)
        assert len(notes) == 1, (span, notes)
        assert notes[0].pitch % 12 == span.bass_pc, (span.symbol, notes[0])


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize("ts", [(3, 4), (7, 8), (6, 8), (5, 4), (11, 16)])
def test_bass_pc_on_chord_onsets_in_odd_splits(style: str, ts: tuple[int, int]) -> None:
    arrangement = generate(
        GenerationRequest(
            chords="| C/G Am7 F | Bb/D . Eb |",
            style=style,
            seed=4,
            humanize=0.0,
            swing=0.0,
            ts=ts,
            parts=("bass",),
        )
    )
    for span in arrangement.chords:
        notes = _bass_at(arrangement, span.start_ppq)
        assert notes and notes[0].pitch % 12 == span.bass_pc, span


@pytest.mark.parametrize("style", sorted(STYLES))
def test_bass_range(style: str) -> None:
    arrangement = generate(
        GenerationRequest(
            chords="| B7 | E/G# | F#7/A# | C#m | Gb | Ab/Eb |",
            style=style,
            seed=8,
            humanize=0.5,
            parts=("bass",),
            bars=24,
        )
    )
    pitches = [n.pitch for n in arrangement.part("bass").notes]
    assert min(pitches) >= BASS_LOW and max(pitches) <= BASS_HIGH


@pytest.mark.parametrize("style", sorted(STYLES))
def test_downbeats_are_chord_tones(style: str) -> None:
    arrangement = generate(
        GenerationRequest(
            chords="| Dm7 | G7 | Cmaj7 | A7 |",
            style=style,
            seed=5,
            humanize=0.0,
            swing=0.0,
            parts=("bass",),
            bars=8,
        )
    )
    notes = arrangement.part("bass").notes
    for span in arrangement.chords:
        for beat in (0.0, 2.0):  # downbeat and the secondary accent of 4/4
            at = [n for n in notes if n.start_ppq == span.start_ppq + beat]
            for n in at:
                assert n.pitch % 12 in span.pitch_classes + (span.bass_pc,), (style, span.symbol, n)


def test_jazz_walks_in_quarter_notes_with_approach_notes() -> None:
    arrangement = generate(
        GenerationRequest(
            chords="| Dm7 | G7 | Cmaj7 | A7 |",
            style="jazz",
            seed=5,
            humanize=0.0,
            swing=0.0,
            parts=("bass",),
            bars=16,
        )
    )
    notes = arrangement.part("bass").notes
    # 15 bars of walking quarters, then the ending: one held note on the last bar
    assert [n.start_ppq for n in notes] == [float(i) for i in range(60)] + [60.0]
    assert notes[-1].duration_ppq > 3.5 and notes[-1].pitch % 12 == 9
    # the note before each chord change is a step (<= 2 semitones) or a fifth from the next one
    passing = [abs(notes[i].pitch - notes[i + 1].pitch) for i in range(3, 60, 4)]
    assert all(d in (1, 2, 5, 7) for d in passing), passing
    assert any(d in (1, 2) for d in passing)
    # a walking line moves: no pitch repeated on consecutive beats within a chord
    assert sum(a.pitch == b.pitch for a, b in zip(notes, notes[1:])) < 8


def test_rock_drives_eighths_on_the_root() -> None:
    arrangement = generate(
        GenerationRequest(
            chords="| E | A | B | E |", style="rock", seed=2, humanize=0.0, parts=("bass",)
        )
    )
    notes = arrangement.part("bass").notes
    assert [n.start_ppq for n in notes] == [i * 0.5 for i in range(32)]
    roots = sum(
        n.pitch % 12 == span.root_pc
        for span in arrangement.chords
        for n in notes
        if span.start_ppq <= n.start_ppq < span.start_ppq + span.duration_ppq
    )
    assert roots >= 28


def test_ambient_holds_long_notes() -> None:
    arrangement = generate(
        GenerationRequest(chords="C Am F G", style="ambient", seed=2, humanize=0.0, parts=("bass",))
    )
    notes = arrangement.part("bass").notes
    assert len(notes) <= 8
    assert all(n.duration_ppq >= 1.5 for n in notes)


def test_classical_half_notes_root_and_fifth() -> None:
    arrangement = generate(
        GenerationRequest(
            chords="C F G C", style="classical", seed=2, humanize=0.0, parts=("bass",)
        )
    )
    notes = arrangement.part("bass").notes
    assert [n.start_ppq for n in notes] == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0]
    roots = [0, 5, 7, 0]
    for i, n in enumerate(notes):
        root = roots[i // 2]
        assert n.pitch % 12 == (root if i % 2 == 0 else (root + 7) % 12)


def test_blues_shuffle_walk_pattern() -> None:
    arrangement = generate(
        GenerationRequest(
            chords="| A7 | A7 | D7 | A7 |",
            style="blues",
            seed=1,
            humanize=0.0,
            swing=0.0,
            parts=("bass",),
        )
    )
    on_beats = [n for n in arrangement.part("bass").notes if float(n.start_ppq).is_integer()]
    first_bar = [n.pitch % 12 for n in on_beats[:3]]
    assert first_bar == [9, 1, 4]  # A, C#, E: root, third, fifth


def test_electronic_octaves_offbeats_or_sixteenths() -> None:
    seen = set()
    for seed in range(12):
        arrangement = generate(
            GenerationRequest(
                chords="| Am | F |", style="electronic", seed=seed, humanize=0.0, parts=("bass",)
            )
        )
        notes = arrangement.part("bass").notes
        starts = [n.start_ppq for n in notes]
        if starts == [i * 0.5 for i in range(16)]:
            assert all(b.pitch - a.pitch == 12 for a, b in zip(notes[::2], notes[1::2]))
            seen.add("octaves")
        elif all(t in (0.0, 4.0) or t % 1 == 0.5 for t in starts):
            seen.add("offbeat")
        else:
            assert any(t % 0.5 == 0.25 for t in starts)
            seen.add("sixteenths")
    assert seen == {"octaves", "offbeat", "sixteenths"}
