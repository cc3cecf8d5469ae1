"""Chord symbols and chord-sheet grammar."""

from __future__ import annotations

import pytest

from daemon.errors import ChordError
from daemon.theory.chords import note_to_pc, parse_chord, parse_progression

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


@pytest.mark.parametrize("token", ["H7", "C7x", "Cfoo", "C/H", "7", "/E", "Cmaj7//E", "C#b#"])
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
