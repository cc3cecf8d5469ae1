"""Key names and key inference."""

from __future__ import annotations

import pytest

from ai_band.errors import RequestError
from ai_band.theory.chords import parse_chord
from ai_band.theory.keys import Key, Mode, infer_key, parse_key


@pytest.mark.parametrize(
    ("text", "tonic", "mode", "name"),
    [
        ("C", 0, "major", "C"),
        ("Am", 9, "minor", "Am"),
        ("F#m", 6, "minor", "F#m"),
        ("Bb", 10, "major", "Bb"),
        ("Eb minor", 3, "minor", "Ebm"),
        ("D major", 2, "major", "D"),
        ("c# min", 1, "minor", "C#m"),
        ("Gbmaj", 6, "major", "Gb"),
        ("A#", 10, "major", "Bb"),
        ("bbm", 10, "minor", "Bbm"),
        ("E♭", 3, "major", "Eb"),
        ("CM", 0, "major", "C"),
        ("Cm", 0, "minor", "Cm"),
        ("D dorian", 2, "dorian", "D dorian"),
        ("F# mixolydian", 6, "mixolydian", "F# mixolydian"),
        ("E phrygian", 4, "phrygian", "E phrygian"),
        ("F lydian", 5, "lydian", "F lydian"),
        ("B locrian", 11, "locrian", "B locrian"),
        ("A aeolian", 9, "minor", "Am"),
        ("C ionian", 0, "major", "C"),
        ("c# Dorian", 1, "dorian", "C# dorian"),
        ("Bb mixo", 10, "mixolydian", "Bb mixolydian"),
        ("Cb lydian", 11, "lydian", "B lydian"),
    ],
)
def test_parse_key(text: str, tonic: int, mode: Mode, name: str) -> None:
    assert parse_key(text) == Key(tonic, mode, name)


@pytest.mark.parametrize(
    "text", ["", "H", "Cx", "C minorr", "Am7", "major", "D dorianx", "dorian", "C blues"]
)
def test_bad_key_raises_request_error(text: str) -> None:
    with pytest.raises(RequestError) as info:
        parse_key(text)
    assert info.value.field == "key"
    assert info.value.code == "bad_value"


def test_scale_pcs() -> None:
    assert parse_key("C").scale_pcs == (0, 2, 4, 5, 7, 9, 11)
    assert parse_key("Am").scale_pcs == (9, 11, 0, 2, 4, 5, 7)
    assert parse_key("F#").scale_pcs == (6, 8, 10, 11, 1, 3, 5)


@pytest.mark.parametrize(
    ("text", "scale", "signature", "is_minor"),
    [
        ("C ionian", (0, 2, 4, 5, 7, 9, 11), "C", False),
        ("D dorian", (2, 4, 5, 7, 9, 11, 0), "C", True),
        ("E phrygian", (4, 5, 7, 9, 11, 0, 2), "C", True),
        ("F lydian", (5, 7, 9, 11, 0, 2, 4), "C", False),
        ("G mixolydian", (7, 9, 11, 0, 2, 4, 5), "C", False),
        ("A aeolian", (9, 11, 0, 2, 4, 5, 7), "Am", True),
        ("B locrian", (11, 0, 2, 4, 5, 7, 9), "C", True),
        ("F# mixolydian", (6, 8, 10, 11, 1, 3, 4), "B", False),
        ("E dorian", (4, 6, 7, 9, 11, 1, 2), "D", True),
        ("Eb minor", (3, 5, 6, 8, 10, 11, 1), "Ebm", True),
    ],
)
def test_mode_scales_and_signature(
    text: str, scale: tuple[int, ...], signature: str, is_minor: bool
) -> None:
    key = parse_key(text)
    assert key.scale_pcs == scale
    assert key.signature == signature
    assert key.is_minor == is_minor


def test_key_of_names_modes() -> None:
    assert Key.of(2, "dorian") == Key(2, "dorian", "D dorian")
    assert Key.of(3, "mixolydian").name == "Eb mixolydian"
    assert Key.of(8, "phrygian").name == "G# phrygian"
    assert Key.of(10, "minor").name == "Bbm"


def test_infer_key_skips_no_chord() -> None:
    chords = [parse_chord(s) for s in ["N.C.", "Am", "Dm", "E7", "N.C.", "Am"]]
    assert infer_key(chords).name == "Am"
    assert infer_key([parse_chord("N.C.")]) == Key(0, "major", "C")


@pytest.mark.parametrize(
    ("progression", "name"),
    [
        ("C Am F G", "C"),
        ("Dm7 G7 Cmaj7", "C"),
        ("Am Dm E7 Am", "Am"),
        ("Em Am B7 Em", "Em"),
        ("F Bb C F", "F"),
        ("Bb Eb F Bb", "Bb"),
        ("G C D G", "G"),
        ("Cm Fm G7 Cm", "Cm"),
        ("A7 D7 A7 E7", "A"),
        ("A7 D7 A7 A7 D7 D7 A7 A7 E7 D7 A7 E7", "A"),  # 12-bar blues
        ("Cmaj7 Am7 Dm7 G7", "C"),
        ("Bm G D A", "Bm"),
        ("D A Bm G", "D"),
    ],
)
def test_infer_key(progression: str, name: str) -> None:
    chords = [parse_chord(s) for s in progression.split()]
    assert infer_key(chords).name == name


def test_infer_key_of_nothing_is_c_major() -> None:
    assert infer_key([]) == Key(0, "major", "C")
