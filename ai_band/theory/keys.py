"""Keys: parsing key names and modes, and inferring a key from chords.

Pitch classes are 0 = C .. 11 = B.  A key has a tonic and one of seven
modes: ``major`` (ionian), ``minor`` (aeolian, the natural minor scale),
``dorian``, ``phrygian``, ``lydian``, ``mixolydian`` and ``locrian``;
:attr:`Key.scale_pcs` follows the mode.  Key inference only proposes major
and minor keys; it also accepts the raised seventh (harmonic minor) so that
``Am Dm E7 Am`` reads as A minor.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ai_band.errors import RequestError
from ai_band.theory.chords import Chord, note_to_pc

__all__ = [
    "MAJOR_STEPS",
    "MINOR_STEPS",
    "MODES",
    "MODE_STEPS",
    "Key",
    "Mode",
    "infer_key",
    "parse_key",
]

Mode = Literal["major", "minor", "dorian", "phrygian", "lydian", "mixolydian", "locrian"]

#: Semitones above the tonic of the major (ionian) and natural minor (aeolian) scales.
MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)
MINOR_STEPS = (0, 2, 3, 5, 7, 8, 10)

#: Scale of each mode, semitones above the tonic.
MODE_STEPS: dict[str, tuple[int, ...]] = {
    "major": MAJOR_STEPS,
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "minor": MINOR_STEPS,
    "locrian": (0, 1, 3, 5, 6, 8, 10),
}

#: The mode names, in the order of the major scale's degrees they start on.
MODES: tuple[str, ...] = ("major", "dorian", "phrygian", "lydian", "mixolydian", "minor", "locrian")

#: Mode words accepted by :func:`parse_key` (lower case; ``M`` alone is
#: major and ``m`` alone minor, case-sensitive).
_MODE_WORDS: dict[str, Mode] = {
    "": "major",
    "maj": "major",
    "major": "major",
    "ionian": "major",
    "ion": "major",
    "min": "minor",
    "minor": "minor",
    "aeolian": "minor",
    "aeol": "minor",
    "dorian": "dorian",
    "dor": "dorian",
    "phrygian": "phrygian",
    "phryg": "phrygian",
    "phr": "phrygian",
    "lydian": "lydian",
    "lyd": "lydian",
    "mixolydian": "mixolydian",
    "mixo": "mixolydian",
    "mix": "mixolydian",
    "locrian": "locrian",
    "loc": "locrian",
}

#: Tonic spellings kept as written in a mode's name (no double accidentals,
#: no E#/B#/Cb/Fb).
_PLAIN_TONICS = frozenset(
    ["C", "C#", "Db", "D", "D#", "Eb", "E", "F", "F#", "Gb", "G", "G#", "Ab", "A", "A#", "Bb", "B"]
)

#: Conventional key-signature spelling of each tonic (as in MIDI key-signature names).
_MAJOR_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_MINOR_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")

#: Tonic spellings that have a standard key signature (<= 7 sharps or flats).
_VALID_MAJOR = frozenset(
    ["C", "G", "D", "A", "E", "B", "F#", "C#", "F", "Bb", "Eb", "Ab", "Db", "Gb", "Cb"]
)
_VALID_MINOR = frozenset(
    ["A", "E", "B", "F#", "C#", "G#", "D#", "A#", "D", "G", "C", "F", "Bb", "Eb", "Ab"]
)

_KEY_RE = re.compile(r"^(?P<tonic>[A-Ga-g][#b♯♭]?)\s*(?P<mode>[A-Za-z]*)$")


@dataclass(frozen=True)
class Key:
    """A key: a tonic and a mode.

    Attributes:
        tonic_pc: pitch class of the tonic, 0 = C .. 11 = B.
        mode: ``"major"``, ``"minor"`` (natural minor), ``"dorian"``,
            ``"phrygian"``, ``"lydian"``, ``"mixolydian"`` or ``"locrian"``.
        name: major and minor keys: the short name used in MIDI key
            signatures, e.g. ``"C"``, ``"F#m"``, ``"Bb"``; modes: tonic and
            mode, e.g. ``"D dorian"`` (see :attr:`signature` for MIDI).
    """

    tonic_pc: int
    mode: Mode
    name: str

    @property
    def scale_pcs(self) -> tuple[int, ...]:
        """The seven scale degrees of the mode as pitch classes, tonic first.

        Natural minor for ``"minor"``: A minor -> ``(9, 11, 0, 2, 4, 5, 7)``.
        """
        return tuple((self.tonic_pc + s) % 12 for s in MODE_STEPS[self.mode])

    @property
    def is_minor(self) -> bool:
        """True when the mode has a minor third (minor, dorian, phrygian, locrian)."""
        return MODE_STEPS[self.mode][2] == 3

    @property
    def signature(self) -> str:
        """The MIDI key-signature name (as mido writes it) of the key's accidentals.

        Major and minor keys: :attr:`name`.  Modes: the major key with the
        same accidentals, e.g. ``"C"`` for D dorian, ``"D"`` for A mixolydian.
        """
        if self.mode in ("major", "minor"):
            return self.name
        parent = (self.tonic_pc - MAJOR_STEPS[MODES.index(self.mode)]) % 12
        return _MAJOR_NAMES[parent]

    @classmethod
    def of(cls, tonic_pc: int, mode: Mode) -> Key:
        """Return the key on ``tonic_pc`` (0..11) with its conventional spelling."""
        tonic_pc %= 12
        if mode == "major":
            return cls(tonic_pc, mode, _MAJOR_NAMES[tonic_pc])
        if mode == "minor":
            return cls(tonic_pc, mode, _MINOR_NAMES[tonic_pc] + "m")
        names = _MINOR_NAMES if MODE_STEPS[mode][2] == 3 else _MAJOR_NAMES
        return cls(tonic_pc, mode, f"{names[tonic_pc]} {mode}")


def _mode(word: str) -> Mode | None:
    if word == "M":
        return "major"
    if word == "m":
        return "minor"
    return _MODE_WORDS.get(word.lower())


def parse_key(text: str) -> Key:
    """Parse a key name.

    Args:
        text: ``"C"``, ``"Am"``, ``"F#m"``, ``"Bb"``, ``"Eb minor"``,
            ``"D major"``, ``"c# min"``, ``"Gbmaj"``, or a tonic and a mode:
            ``"D dorian"``, ``"F# mixolydian"``, ``"E phrygian"``,
            ``"F lydian"``, ``"B locrian"``, ``"A aeolian"`` (= A minor),
            ``"C ionian"`` (= C major).  Case is ignored except that ``M``
            alone means major and ``m`` alone minor.

    Returns:
        The :class:`Key`.  Major and minor names keep the given spelling
        when that is a standard key signature (``"Gb"``), else use the
        conventional one (``"A#"`` -> ``"Bb"``); modes are named
        ``"<tonic> <mode>"`` (``"D dorian"``).

    Raises:
        RequestError: field ``"key"``, code ``"bad_value"``, when the text is
            not a key name.
    """
    cleaned = text.strip().replace("♯", "#").replace("♭", "b")
    match = _KEY_RE.match(cleaned)
    mode = _mode(match.group("mode")) if match else None
    if match is None or mode is None:
        raise RequestError(
            "key",
            f"expected a key such as 'C', 'Am', 'F#m', 'Eb minor' or 'D dorian', got {text!r}",
            "bad_value",
        )
    tonic = match.group("tonic")
    tonic = tonic[0].upper() + tonic[1:]
    pc = note_to_pc(tonic)
    if mode == "major" and tonic in _VALID_MAJOR:
        return Key(pc, "major", tonic)
    if mode == "minor" and tonic in _VALID_MINOR:
        return Key(pc, "minor", tonic + "m")
    if mode not in ("major", "minor") and tonic in _PLAIN_TONICS:
        return Key(pc, mode, f"{tonic} {mode}")
    return Key.of(pc, mode)


def infer_key(chords: Iterable[Chord]) -> Key:
    """Guess the key of a chord sequence.

    Each of the 24 major/minor keys scores, per chord: +1 for every chord
    tone in its scale and -1 for every tone outside it (the raised seventh
    counts as in the scale of a minor key, and the seventh of a dominant
    seventh chord costs nothing, as in the blues); +1 when the root is
    diatonic; +1.5 when the chord is the tonic chord (root on the tonic,
    third agreeing with the mode); +1 for a dominant seventh on the fifth
    degree that resolves to the tonic.  The first chord's root on the tonic
    adds 2 (4 with a matching third), the last chord's 1.5 (3 with a
    matching third).  Ties go to major, then to the key with the fewest
    sharps or flats.

    Args:
        chords: the chords in order of appearance (repeats count again);
            ``N.C.`` chords are skipped.

    Returns:
        The best-scoring major or minor :class:`Key`; ``C`` major for a
        sequence without chords.
    """
    sequence = [chord for chord in chords if not chord.is_no_chord]
    if not sequence:
        return Key.of(0, "major")
    best: tuple[float, int, int, int, Mode] | None = None
    modes: tuple[Mode, Mode] = ("major", "minor")
    for mode in modes:
        steps = MAJOR_STEPS if mode == "major" else MINOR_STEPS
        for tonic in range(12):
            scale = {(tonic + s) % 12 for s in steps}
            if mode == "minor":
                scale.add((tonic + 11) % 12)
            dominant = (tonic + 7) % 12
            score = 0.0
            for index, chord in enumerate(sequence):
                seventh = {4, 10} <= set(chord.intervals)
                neutral = (chord.root_pc + 10) % 12 if seventh else -1
                inside = sum(1 for pc in chord.pitch_classes if pc in scale)
                outside = sum(1 for pc in chord.pitch_classes if pc not in scale and pc != neutral)
                score += inside - outside
                score += 1.0 if chord.root_pc in scale else 0.0
                if chord.root_pc == tonic and chord.is_minor == (mode == "minor"):
                    score += 1.5
                following = sequence[index + 1] if index + 1 < len(sequence) else None
                if (
                    chord.root_pc == dominant
                    and seventh
                    and following is not None
                    and following.root_pc == tonic
                ):
                    score += 1.0
            for chord, weight in ((sequence[0], 2.0), (sequence[-1], 1.5)):
                if chord.root_pc == tonic:
                    score += weight
                    if chord.is_minor == (mode == "minor"):
                        score += weight
            accidentals = min((7 * tonic) % 12, 12 - (7 * tonic) % 12)
            if mode == "minor":
                accidentals = min((7 * (tonic + 3)) % 12, 12 - (7 * (tonic + 3)) % 12)
            candidate = (score, 1 if mode == "major" else 0, -accidentals, -tonic, mode)
            if best is None or candidate[:4] > best[:4]:
                best = candidate
    assert best is not None
    return Key.of(-best[3], best[4])
