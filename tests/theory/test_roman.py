"""Roman numerals resolved in a key, alone and inside chord sheets."""

from __future__ import annotations

import pytest

from ai_band.errors import ChordError
from ai_band.theory.chords import parse_chord, parse_progression
from ai_band.theory.keys import parse_key
from ai_band.theory.roman import is_numeral

C, Db, D, Eb, E, F, Gb, G, Ab, A, Bb, B = range(12)


@pytest.mark.parametrize(
    ("key", "numeral", "pcs", "quality"),
    [
        # major key: degrees of the major scale, case = triad quality
        ("C", "I", (C, E, G), ""),
        ("C", "ii", (D, F, A), "m"),
        ("C", "iii", (E, G, B), "m"),
        ("C", "IV", (F, A, C), ""),
        ("C", "V", (G, B, D), ""),
        ("C", "vi", (A, C, E), "m"),
        ("C", "vii°", (B, D, F), "dim"),
        ("C", "Imaj7", (C, E, G, B), "maj7"),
        ("C", "IΔ7", (C, E, G, B), "maj7"),
        ("C", "ii7", (D, F, A, C), "m7"),
        ("C", "V7", (G, B, D, F), "7"),
        ("C", "V9", (G, B, D, F, A), "9"),
        ("C", "V7sus4", (G, C, D, F), "7sus4"),
        ("C", "Vsus4", (G, C, D), "sus4"),
        ("C", "iiø7", (D, F, Ab, C), "m7b5"),
        ("C", "iim7b5", (D, F, Ab, C), "m7b5"),
        ("C", "ii7b5", (D, F, Ab, C), "m7b5"),
        ("C", "viiø7", (B, D, F, A), "m7b5"),
        ("C", "vii°7", (B, D, F, Ab), "dim7"),
        ("C", "viio7", (B, D, F, Ab), "dim7"),
        ("C", "vi9", (A, C, E, G, B), "m9"),
        ("C", "I6/9", (C, E, G, A, D), "69"),
        ("C", "V7b9", (G, B, D, F, Ab), "7b9"),
        ("C", "V7alt", (G, B, F, Ab, Bb, Db, Eb), "7alt"),
        ("C", "III+", (E, Ab, C), "aug"),
        # accidentals
        ("C", "bVII", (Bb, D, F), ""),
        ("C", "bVII7", (Bb, D, F, Ab), "7"),
        ("C", "bIII", (Eb, G, Bb), ""),
        ("C", "bVI", (Ab, C, Eb), ""),
        ("C", "bII7", (Db, F, Ab, B), "7"),
        ("C", "#iv°", (Gb, A, C), "dim"),
        ("C", "#ivø7", (Gb, A, C, E), "m7b5"),
        ("C", "♭VII", (Bb, D, F), ""),
        ("Eb", "bVII", (Db, F, Ab), ""),
        ("D", "IV", (G, B, D), ""),
        # secondary chords: counted on the major scale of the target's root
        ("C", "V/V", (D, Gb, A), ""),
        ("C", "V7/V", (D, Gb, A, C), "7"),
        ("C", "V7/ii", (A, Db, E, G), "7"),
        ("C", "V7/IV", (C, E, G, Bb), "7"),
        ("C", "V7/vi", (E, Ab, B, D), "7"),
        ("C", "viiø7/V", (Gb, A, C, E), "m7b5"),
        ("C", "vii°7/ii", (Db, E, G, Bb), "dim7"),
        ("C", "ii7/V", (A, C, E, G), "m7"),
        ("C", "V/bVII", (F, A, C), ""),
        ("C", "V/V/V", (A, Db, E), ""),
        # minor key: natural-minor degrees; upper case makes the triad major
        ("Am", "i", (A, C, E), "m"),
        ("Am", "iiø7", (B, D, F, A), "m7b5"),
        ("Am", "III", (C, E, G), ""),
        ("Am", "iv", (D, F, A), "m"),
        ("Am", "v", (E, G, B), "m"),
        ("Am", "V", (E, Ab, B), ""),
        ("Am", "V7", (E, Ab, B, D), "7"),
        ("Am", "VI", (F, A, C), ""),
        ("Am", "VII", (G, B, D), ""),
        ("Am", "#vii°7", (Ab, B, D, F), "dim7"),
        ("Am", "imaj7", (A, C, E, Ab), "mmaj7"),
        ("Am", "i7", (A, C, E, G), "m7"),
        ("Am", "bII", (Bb, D, F), ""),
        ("Am", "V/iv", (A, Db, E), ""),
        ("Cm", "bVII", (A, Db, E), ""),  # b of the already-flat 7th degree (Bb): A
        # modes count on their own scale
        ("D dorian", "i", (D, F, A), "m"),
        ("D dorian", "IV", (G, B, D), ""),
        ("G mixolydian", "VII", (F, A, C), ""),
        ("F lydian", "II", (G, B, D), ""),
        ("E phrygian", "II", (F, A, C), ""),
    ],
)
def test_numeral_in_key(key: str, numeral: str, pcs: tuple[int, ...], quality: str) -> None:
    chord = parse_chord(numeral, key=parse_key(key))
    assert chord.pitch_classes == pcs
    assert chord.root_pc == chord.bass_pc == pcs[0]
    assert chord.quality == quality
    assert chord.symbol == numeral


@pytest.mark.parametrize(
    ("numeral", "root", "bass"),
    [
        ("I/E", C, E),
        ("IV/A", F, A),
        ("V7/B", G, B),
        ("I/Bb", C, Bb),
        ("V7/V/F#", D, Gb),
        ("ii7/b", D, B),
    ],
)
def test_numeral_slash_bass_is_a_note_name(numeral: str, root: int, bass: int) -> None:
    chord = parse_chord(numeral, key=parse_key("C"))
    assert (chord.root_pc, chord.bass_pc) == (root, bass)


@pytest.mark.parametrize("token", ["I", "vi", "bVII", "#iv°", "V7/V", "viiø7/V", "I/E", "iv6/9"])
def test_is_numeral(token: str) -> None:
    assert is_numeral(token)


@pytest.mark.parametrize("token", ["C", "Bb7", "bm", "b", "Am7/G", "N.C.", "%", "."])
def test_letter_chords_are_not_numerals(token: str) -> None:
    assert not is_numeral(token)


def test_numerals_and_letters_mix_in_a_sheet() -> None:
    bars = parse_progression("| I vi | ii7 V7/V | Dm7 . G7 . | N.C. |", 4, 4, key=parse_key("C"))
    chords = [
        (chord.symbol, chord.root_pc, offset, length)
        for bar in bars
        for chord, offset, length in bar
    ]
    assert chords == [
        ("I", C, 0.0, 2.0),
        ("vi", A, 2.0, 2.0),
        ("ii7", D, 0.0, 2.0),
        ("V7/V", D, 2.0, 2.0),
        ("Dm7", D, 0.0, 2.0),
        ("G7", G, 2.0, 2.0),
        ("N.C.", -1, 0.0, 4.0),
    ]


def test_numerals_without_bar_lines() -> None:
    bars = parse_progression("i VI III VII", 4, 4, key=parse_key("Am"))
    assert [bar[0][0].root_pc for bar in bars] == [A, F, C, G]


@pytest.mark.parametrize(
    ("text", "token", "bar"),
    [("| C | F | V7 |", "V7", 3), ("I IV V", "I", 1), ("| C | G/B | bVII |", "bVII", 3)],
)
def test_numeral_without_key_names_token_and_bar(text: str, token: str, bar: int) -> None:
    with pytest.raises(ChordError) as info:
        parse_progression(text, 4, 4)
    assert (info.value.token, info.value.bar) == (token, bar)
    assert "roman numerals need a key" in str(info.value)
    assert info.value.code == "unknown_chord"


@pytest.mark.parametrize(
    ("text", "token", "bar"),
    [("| I | V7x |", "V7x", 2), ("| I | IV | Vfoo/V |", "Vfoo/V", 3), ("| I | Vi |", "Vi", 2)],
)
def test_bad_numeral_names_token_and_bar(text: str, token: str, bar: int) -> None:
    with pytest.raises(ChordError) as info:
        parse_progression(text, 4, 4, key=parse_key("C"))
    assert (info.value.token, info.value.bar) == (token, bar)


def test_letter_chords_ignore_the_key() -> None:
    assert parse_chord("Bb7", key=parse_key("E")) == parse_chord("Bb7")
