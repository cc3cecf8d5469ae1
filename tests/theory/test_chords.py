"""Chord symbols and chord-sheet grammar."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ai_band.errors import ChordError
from ai_band.theory.chords import note_to_pc, parse_chord, parse_progression

C, Db, D, Eb, E, F, Gb, G, Ab, A, Bb, B = range(12)


@pytest.mark.parametrize(
    ("symbol", "pcs"),
    [
        ("C", (C, E, G)),
        ("Cmaj", (C, E, G)),
        ("CM", (C, E, G)),
        ("Cm", (C, Eb, G)),
        ("Cmin", (C, Eb, G)),
        ("C-", (C, Eb, G)),
        ("Cmi", (C, Eb, G)),
        ("C7", (C, E, G, Bb)),
        ("Cdom7", (C, E, G, Bb)),
        ("Cmaj7", (C, E, G, B)),
        ("CM7", (C, E, G, B)),
        ("CMaj7", (C, E, G, B)),
        ("CΔ", (C, E, G, B)),
        ("CΔ7", (C, E, G, B)),
        ("C^7", (C, E, G, B)),
        ("Cm7", (C, Eb, G, Bb)),
        ("C-7", (C, Eb, G, Bb)),
        ("Cmin7", (C, Eb, G, Bb)),
        ("Cmi7", (C, Eb, G, Bb)),
        ("Cm7b5", (C, Eb, Gb, Bb)),
        ("Cø7", (C, Eb, Gb, Bb)),
        ("Cø", (C, Eb, Gb, Bb)),
        ("C-7b5", (C, Eb, Gb, Bb)),
        ("Cdim", (C, Eb, Gb)),
        ("C°", (C, Eb, Gb)),
        ("Co", (C, Eb, Gb)),
        ("Cdim7", (C, Eb, Gb, A)),
        ("C°7", (C, Eb, Gb, A)),
        ("Caug", (C, E, Ab)),
        ("C+", (C, E, Ab)),
        ("C+7", (C, E, Ab, Bb)),
        ("C7#5", (C, E, Ab, Bb)),
        ("Csus2", (C, D, G)),
        ("Csus4", (C, F, G)),
        ("Csus", (C, F, G)),
        ("C7sus4", (C, F, G, Bb)),
        ("C7sus", (C, F, G, Bb)),
        ("C6", (C, E, G, A)),
        ("Cm6", (C, Eb, G, A)),
        ("C6/9", (C, E, G, A, D)),
        ("C69", (C, E, G, A, D)),
        ("C9", (C, E, G, Bb, D)),
        ("Cm9", (C, Eb, G, Bb, D)),
        ("Cmaj9", (C, E, G, B, D)),
        ("C11", (C, E, G, Bb, D, F)),
        ("Cm11", (C, Eb, G, Bb, D, F)),
        ("C13", (C, E, G, Bb, D, F, A)),
        ("Cm13", (C, Eb, G, Bb, D, F, A)),
        ("C7b9", (C, E, G, Bb, Db)),
        ("C7#9", (C, E, G, Bb, Eb)),
        ("C7#11", (C, E, G, Bb, Gb)),
        ("Cadd9", (C, E, G, D)),
        ("C(add9)", (C, E, G, D)),
        ("Cmadd9", (C, Eb, G, D)),
        ("CmMaj7", (C, Eb, G, B)),
        ("Cm(maj7)", (C, Eb, G, B)),
        ("C-Δ7", (C, Eb, G, B)),
        ("Cmaj7(#11)", (C, E, G, B, Gb)),
        ("C5", (C, G)),
        ("F#m7", (Gb, A, Db, E)),
        ("Bbmaj7", (Bb, D, F, A)),
        ("Ebm", (Eb, Gb, Bb)),
        ("Db7", (Db, F, Ab, B)),
        ("E♭7", (Eb, G, Bb, Db)),
        ("am", (A, C, E)),
        # spellings of the contract's qualities not covered above
        ("Cma7", (C, E, G, B)),
        ("CmM7", (C, Eb, G, B)),
        ("Caug7", (C, E, Ab, Bb)),
        ("C7+", (C, E, Ab, Bb)),
        ("C7b13", (C, E, G, Bb, Ab)),
        ("C7b5", (C, E, Gb, Bb)),
        ("Cmaj7#11", (C, E, G, B, Gb)),
        ("Cmaj13", (C, E, G, B, D, F, A)),
        ("C9sus4", (C, F, G, Bb, D)),
        ("Cm6/9", (C, Eb, G, A, D)),
        ("C7susb9", (C, F, G, Bb, Db)),
        # altered dominants: 7alt is the full 1 3 b7 b9 #9 #11 b13
        ("C7alt", (C, E, Bb, Db, Eb, Gb, Ab)),
        ("Calt", (C, E, Bb, Db, Eb, Gb, Ab)),
        ("C13b9", (C, E, G, Bb, Db, F, A)),
        ("C7b9#11", (C, E, G, Bb, Db, Gb)),
        ("C7b9b13", (C, E, G, Bb, Db, Ab)),
        # base quality + alterations/additions (composed, not in a table)
        ("C7#9b13", (C, E, G, Bb, Eb, Ab)),
        ("C7(#9,b13)", (C, E, G, Bb, Eb, Ab)),
        ("C7(b9,#11)", (C, E, G, Bb, Db, Gb)),
        ("C9b13", (C, E, G, Bb, D, Ab)),
        ("Cm11b5", (C, Eb, Gb, Bb, D, F)),
        ("Cmaj7(9)", (C, E, G, B, D)),
        ("C7(13)", (C, E, G, Bb, A)),
        ("C13#9", (C, E, G, Bb, Eb, F, A)),
        ("Cadd#11", (C, E, G, Gb)),
        ("C7no5", (C, E, Bb)),
        ("Cm7b5b9", (C, Eb, Gb, Bb, Db)),
    ],
)
def test_quality_pitch_classes(symbol: str, pcs: tuple[int, ...]) -> None:
    chord = parse_chord(symbol)
    assert chord.pitch_classes == pcs
    assert chord.root_pc == pcs[0]
    assert chord.bass_pc == pcs[0]
    assert chord.symbol == symbol


@pytest.mark.parametrize(
    ("symbol", "root", "pcs", "bass"),
    [
        ("C/E", C, (C, E, G), E),
        ("C/G", C, (C, E, G), G),
        ("C/Bb", C, (C, E, G), Bb),
        ("D/F#", D, (D, Gb, A), Gb),
        ("G7/B", G, (G, B, D, F), B),
        ("Am7/G", A, (A, C, E, G), G),
        ("F/C", F, (F, A, C), C),
        ("Cm6/9/Eb", C, (C, Eb, G, A, D), Eb),
        ("Ab/Bb", Ab, (Ab, C, Eb), Bb),
    ],
)
def test_slash_bass(symbol: str, root: int, pcs: tuple[int, ...], bass: int) -> None:
    chord = parse_chord(symbol)
    assert (chord.root_pc, chord.pitch_classes, chord.bass_pc) == (root, pcs, bass)


@pytest.mark.parametrize(
    ("symbol", "quality", "intervals"),
    [
        ("Cø7", "m7b5", (0, 3, 6, 10)),
        ("CΔ", "maj7", (0, 4, 7, 11)),
        ("C-Δ7", "mmaj7", (0, 3, 7, 11)),
        ("C9", "9", (0, 4, 7, 10, 14)),
        ("C7#9b13", "7#9b13", (0, 4, 7, 10, 15, 20)),
        ("C7(b9,#11)", "7b9#11", (0, 4, 7, 10, 13, 18)),
        ("Cmaj7(9)", "maj7add9", (0, 4, 7, 11, 14)),
        ("C7alt", "7alt", (0, 4, 10, 13, 15, 18, 20)),
        # pychord's synonyms report one canonical name
        ("Cmaj", "", (0, 4, 7)),
        ("CM7", "maj7", (0, 4, 7, 11)),
        ("C7(b9)", "7b9", (0, 4, 7, 10, 13)),
        ("C7-9", "7b9", (0, 4, 7, 10, 13)),
        ("C2", "add9", (0, 4, 7, 14)),
        ("Cmaj7+5", "maj7#5", (0, 4, 8, 11)),
        ("C7+", "7#5", (0, 4, 8, 10)),
        ("Csus", "sus4", (0, 5, 7)),
        ("Cm7-5", "m7b5", (0, 3, 6, 10)),
        ("CM9", "maj9", (0, 4, 7, 11, 14)),
    ],
)
def test_quality_name_and_intervals(symbol: str, quality: str, intervals: tuple[int, ...]) -> None:
    chord = parse_chord(symbol)
    assert (chord.quality, chord.intervals) == (quality, intervals)


@pytest.mark.parametrize("symbol", ["N.C.", "NC", "n.c.", "N.C", "nc"])
def test_no_chord(symbol: str) -> None:
    chord = parse_chord(symbol)
    assert chord.is_no_chord
    assert (chord.pitch_classes, chord.intervals, chord.root_pc, chord.bass_pc) == ((), (), -1, -1)
    assert chord.symbol == symbol
    assert not chord.is_minor
    assert chord.interval_pc(0, 7) is None


@pytest.mark.parametrize("symbol", ["C", "Am7", "G7/B", "C7alt", "C5"])
def test_other_chords_are_not_no_chord(symbol: str) -> None:
    assert not parse_chord(symbol).is_no_chord


def test_no_chord_in_a_sheet_holds_with_dots() -> None:
    bars = parse_progression("| C | N.C. . G7 . | NC |", 4, 4)
    assert _shape(bars) == [
        [("C", 0.0, 4.0)],
        [("N.C.", 0.0, 2.0), ("G7", 2.0, 2.0)],
        [("NC", 0.0, 4.0)],
    ]
    assert bars[1][0][0].is_no_chord and bars[2][0][0].is_no_chord


@pytest.mark.parametrize(
    "token", ["H7", "C7x", "Cfoo", "C/H", "7", "/E", "Cmaj7//E", "C#b#", "C79", "C7b9x", "N.C.7"]
)
def test_bad_symbol_raises_chord_error(token: str) -> None:
    with pytest.raises(ChordError) as info:
        parse_chord(token, bar=5)
    assert info.value.token == token
    assert info.value.bar == 5
    assert info.value.code == "unknown_chord"
    assert token in str(info.value)


@pytest.mark.parametrize(
    ("name", "pc"), [("C", 0), ("C#", 1), ("Db", 1), ("B#", 0), ("Cb", 11), ("F##", 7), ("E♭", 3)]
)
def test_note_to_pc(name: str, pc: int) -> None:
    assert note_to_pc(name) == pc


def _shape(bars: list) -> list[list[tuple[str, float, float]]]:
    return [[(chord.symbol, offset, duration) for chord, offset, duration in bar] for bar in bars]


def test_bars_and_even_split() -> None:
    bars = parse_progression("| C | Am F | G7 Dm7 Em |", 4, 4)
    third = 4 / 3
    assert _shape(bars) == [
        [("C", 0.0, 4.0)],
        [("Am", 0.0, 2.0), ("F", 2.0, 2.0)],
        [("G7", 0.0, third), ("Dm7", third, third), ("Em", 2 * third, pytest.approx(third))],
    ]


def test_durations_fill_the_bar_exactly() -> None:
    for ts in ((4, 4), (3, 4), (7, 8), (11, 16), (5, 4)):
        for bar in parse_progression("| C F G | A B C D E F G |", *ts):
            end = bar[-1][1] + bar[-1][2]
            assert end == ts[0] * 4 / ts[1]


def test_dot_placeholder_holds_previous_chord() -> None:
    bars = parse_progression("| Dm7 . G7 . | C . . F |", 4, 4)
    assert _shape(bars) == [
        [("Dm7", 0.0, 2.0), ("G7", 2.0, 2.0)],
        [("C", 0.0, 3.0), ("F", 3.0, 1.0)],
    ]


def test_dot_at_bar_start_holds_previous_bar_chord() -> None:
    bars = parse_progression("| C | . F |", 4, 4)
    assert _shape(bars)[1] == [("C", 0.0, 2.0), ("F", 2.0, 2.0)]


def test_percent_repeats_previous_bar() -> None:
    bars = parse_progression("| Dm7 G7 | % | Cmaj7 |", 4, 4)
    assert _shape(bars) == [
        [("Dm7", 0.0, 2.0), ("G7", 2.0, 2.0)],
        [("Dm7", 0.0, 2.0), ("G7", 2.0, 2.0)],
        [("Cmaj7", 0.0, 4.0)],
    ]


def test_no_bar_lines_means_one_chord_per_bar() -> None:
    bars = parse_progression("C Am F G", 3, 4)
    assert _shape(bars) == [[(s, 0.0, 3.0)] for s in ("C", "Am", "F", "G")]


def test_no_bar_form_accepts_commas_and_percent() -> None:
    bars = parse_progression("C, Am, %, G", 4, 4)
    assert [bar[0][0].symbol for bar in bars] == ["C", "Am", "Am", "G"]


def test_leading_trailing_and_empty_bars_ignored() -> None:
    bars = parse_progression("|| C | | G ||\n| F |", 4, 4)
    assert [bar[0][0].symbol for bar in bars] == ["C", "G", "F"]


def test_bar_length_follows_time_signature() -> None:
    assert parse_progression("| C |", 6, 8)[0][0][2] == 3.0
    assert parse_progression("| C |", 7, 8)[0][0][2] == 3.5
    assert parse_progression("| C F |", 2, 2)[0][1][1:] == (2.0, 2.0)


@pytest.mark.parametrize(
    ("text", "token", "bar"),
    [
        ("| C | F | Xm7 | G |", "Xm7", 3),
        ("| C | | F | G7 Cfoo |", "Cfoo", 3),
        ("C Am Hm G", "Hm", 3),
        ("| % | C |", "%", 1),
        ("| . C |", ".", 1),
        ("| C | F % |", "%", 2),
    ],
)
def test_errors_name_token_and_bar(text: str, token: str, bar: int) -> None:
    with pytest.raises(ChordError) as info:
        parse_progression(text, 4, 4)
    assert (info.value.token, info.value.bar) == (token, bar)


def test_empty_sheet_raises() -> None:
    with pytest.raises(ChordError):
        parse_progression("| | |", 4, 4)


_QUALITIES = [
    "", "m", "6", "m6", "7", "maj7", "M7", "Δ", "Δ7", "ma7", "m7", "min7", "-7", "mMaj7",
    "m(maj7)", "mM7", "-Δ7", "m7b5", "ø", "ø7", "dim", "dim7", "°7", "aug", "+", "7#5", "aug7",
    "sus2", "sus4", "7sus4", "9", "m9", "maj9", "11", "m11", "13", "m13", "add9", "6/9", "7b9",
    "7#9", "7#11", "7b13", "7b5", "7alt", "13b9", "7#9b13", "7(b9,#11)",
]  # fmt: skip


@given(
    st.sampled_from(["C", "D", "E", "F", "G", "A", "B"]),
    st.sampled_from(["", "#", "b"]),
    st.sampled_from(_QUALITIES),
    st.sampled_from(["", "/E", "/Bb", "/F#", "/G"]),
)
def test_every_quality_with_any_root_and_bass(root: str, acc: str, quality: str, bass: str) -> None:
    symbol = root + acc + quality + bass
    chord = parse_chord(symbol)
    assert chord.root_pc == note_to_pc(root + acc)
    assert chord.pitch_classes[0] == chord.root_pc
    assert len(set(chord.pitch_classes)) == len(chord.pitch_classes) >= 3
    assert chord.intervals[0] == 0 and list(chord.intervals) == sorted(chord.intervals)
    assert {(chord.root_pc + i) % 12 for i in chord.intervals} == set(chord.pitch_classes)
    assert chord.bass_pc == (note_to_pc(bass[1:]) if bass else chord.root_pc)
    assert not chord.is_no_chord
    transposed = parse_chord("C" + quality)
    assert chord.intervals == transposed.intervals and chord.quality == transposed.quality
