"""Keys: parsing key names and inferring a key from chords.

Pitch classes are 0 = C .. 11 = B.  Minor keys use the natural minor scale
(aeolian) for :attr:`Key.scale_pcs`; key inference also accepts the raised
seventh (harmonic minor) so that ``Am Dm E7 Am`` reads as A minor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from collections.abc import Iterable

from daemon.errors import RequestError
from daemon.theory.chords import Chord, note_to_pc

__all__ = ["Key", "parse_key", "infer_key", "MAJOR_STEPS", "MINOR_STEPS"]

Mode = Literal["major", "minor"]

#: Semitones above the tonic of the major (ionian) and natural minor (aeolian) scales.
MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)
MINOR_STEPS = (0, 2, 3, 5, 7, 8, 10)

#: Conventional key-signature spelling of each tonic (as in MIDI key-signature names).
_MAJOR_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_MINOR_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")

#: Tonic spellings that have a standard key signature (<= 7 sharps or flats).
_VALID_MAJOR = frozenset("C G D A E B F# C# F Bb Eb Ab Db Gb Cb".split())
_VALID_MINOR = frozenset("A E B F# C# G# D# A# D G C F Bb Eb Ab".split())

_KEY_RE = re.compile(r"^(?P<tonic>[A-Ga-g][#b♯♭]?)\s*(?P<mode>m|min|minor|maj|major|M|)$")


@dataclass(frozen=True)
class Key:
    """A major or minor key.

    Attributes:
        tonic_pc: pitch class of the tonic, 0 = C .. 11 = B.
        mode: ``"major"`` or ``"minor"``.
        name: short name as used in MIDI key signatures, e.g. ``"C"``, ``"F#m"``, ``"Bb"``.
    """

    tonic_pc: int
    mode: Mode
    name: str

    @property
    def scale_pcs(self) -> tuple[int, ...]:
        """The seven scale degrees as pitch classes, tonic first (natural minor for minor)."""
        steps = MAJOR_STEPS if self.mode == "major" else MINOR_STEPS
        return tuple((self.tonic_pc + s) % 12 for s in steps)

    @classmethod
    def of(cls, tonic_pc: int, mode: Mode) -> Key:
        """Return the key on ``tonic_pc`` (0..11) with its conventional spelling."""
        tonic_pc %= 12
        if mode == "major":
            return cls(tonic_pc, mode, _MAJOR_NAMES[tonic_pc])
        return cls(tonic_pc, mode, _MINOR_NAMES[tonic_pc] + "m")


def parse_key(text: str) -> Key:
    """Parse a key name.

    Args:
        text: ``"C"``, ``"Am"``, ``"F#m"``, ``"Bb"``, ``"Eb minor"``,
            ``"D major"``, ``"c# min"``, ``"Gbmaj"`` (case of the letter is
            ignored; ``m``/``min``/``minor`` mean minor).

    Returns:
        The :class:`Key`; its name keeps the given spelling when that is a
        standard key signature (``"Gb"``), else uses the conventional one
        (``"A#"`` -> ``"Bb"``).

    Raises:
        RequestError: field ``"key"``, code ``"bad_value"``, when the text is
            not a key name.
    """
    cleaned = text.strip().replace("♯", "#").replace("♭", "b")
    match = _KEY_RE.match(cleaned)
    if match is None:
        raise RequestError(
            "key",
            f"expected a key such as 'C', 'Am', 'F#m' or 'Eb minor', got {text!r}",
            "bad_value",
        )
    tonic = match.group("tonic")
    tonic = tonic[0].upper() + tonic[1:]
    mode: Mode = "minor" if match.group("mode") in ("m", "min", "minor") else "major"
    pc = note_to_pc(tonic)
    valid = _VALID_MINOR if mode == "minor" else _VALID_MAJOR
    if tonic in valid:
        return Key(pc, mode, tonic + ("m" if mode == "minor" else ""))
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
        chords: the chords in order of appearance (repeats count again).

    Returns:
        The best-scoring :class:`Key`; ``C`` major for an empty sequence.
    """
    sequence = list(chords)
    if not sequence:
        return Key.of(0, "major")
    best: tuple[float, int, int, int, Mode] | None = None
    for mode in ("major", "minor"):
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
