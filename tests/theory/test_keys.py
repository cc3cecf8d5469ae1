"""Key names and key inference."""

from __future__ import annotations

import pytest

from daemon.errors import RequestError
from daemon.theory.chords import parse_chord
from daemon.theory.keys import Key, infer_key, parse_key


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
    ],
)
def test_parse_key(text: str, tonic: int, mode: str, name: str) -> None:
    assert parse_key(text) == Key(tonic, mode, name)


@pytest.mark.parametrize("text", ["", "H", "Cx", "C minorr", "Am7", "major"])
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
