"""Roman-numeral chords, resolved in a key.

:func:`resolve_numeral` turns a numeral such as ``"V7/V"`` or ``"bVII"``
into a root pitch class, a lead-sheet quality (``"7"``, ``"m7b5"`` ...) and an
optional slash-bass note name; :mod:`ai_band.theory.chords` builds the
:class:`~ai_band.theory.chords.Chord` from them (so every quality suffix a
letter chord accepts works after a numeral too).

Rules (see docs/chords.md):

* the degree is counted on the key's own scale: major keys on the major
  scale, minor keys on the natural minor scale, modes on their mode's scale
  (in A minor ``III`` = C, ``VII`` = G, ``V`` = E major because it is written
  upper-case); ``b``/``#`` lower or raise that degree by a semitone;
* case gives the triad: upper-case major, lower-case minor; a suffix that
  names its own third or fifth (``°``, ``ø``, ``dim``, ``+``, ``sus4``, ``m``)
  wins, and on a lower-case numeral ``maj7`` means minor-major seventh;
* ``X/Y`` with a numeral ``Y`` is a secondary chord: ``X`` is counted on the
  *major* scale of ``Y``'s root (``V/ii`` in C = A, ``viiø7/V`` = F#ø7),
  whatever the case of ``Y``; chains ``V/V/V`` resolve right to left;
* a trailing ``/note`` (a letter A..G, e.g. ``I/E``) is a slash bass; a
  numeral after the slash is never a bass, so there is no ambiguity.

Figured-bass inversions (``I6``, ``V65``, ``I64``) are not supported: a
``6`` suffix is an added sixth as on lead sheets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ai_band.theory.keys import Key

__all__ = ["Numeral", "is_numeral", "resolve_numeral"]

_MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)
_DEGREES = ("I", "II", "III", "IV", "V", "VI", "VII")

_NUM = r"(?:VII|VI|IV|V|III|II|I|vii|vi|iv|v|iii|ii|i)"
_ACC = r"[b#♭♯]*"
_NUMERAL_RE = re.compile(
    rf"^(?P<acc>{_ACC})(?P<num>{_NUM})(?P<suffix>[^/]*)"
    rf"(?P<targets>(?:/{_ACC}{_NUM})*)"
    r"(?:/(?P<bass>[A-Ga-g][#b♯♭]{0,2}))?$"
)
_TARGET_RE = re.compile(rf"({_ACC})({_NUM})")

#: Suffix openings that set the third/fifth themselves, so a lower-case numeral
#: does not add "m" (``viiø7``, ``vii°``, ``iim7``, ``ivsus4``, ``iii+``).
_OWN_THIRD = ("ø", "Ø", "°", "º", "o", "dim", "min", "mi", "m", "-", "sus", "+", "aug", "5")
#: Suffix openings meaning "major seventh": after a lower-case numeral they
#: give the minor-major seventh (``imaj7`` = ``mMaj7``).
_MAJOR_SEVENTH = ("maj", "Maj", "MAJ", "Ma", "ma", "M", "Δ", "∆", "^")


@dataclass(frozen=True)
class Numeral:
    """A numeral resolved in a key.

    Attributes:
        root_pc: pitch class of the chord root, 0 = C .. 11 = B.
        quality: the quality as a letter-chord suffix, e.g. ``"m7b5"``, ``"7"``, ``""``.
        bass: the slash-bass note name as written (``"E"``), or None.
    """

    root_pc: int
    quality: str
    bass: str | None


def _normalise(token: str) -> str:
    return token.strip().replace("♭", "b").replace("♯", "#").replace("6/9", "69")


def is_numeral(token: str) -> bool:
    """Return True when ``token`` is written as a roman numeral (valid or not in a key)."""
    return _NUMERAL_RE.match(_normalise(token)) is not None


def _shift(accidentals: str) -> int:
    return sum(1 if a == "#" else -1 for a in accidentals)


def _degree(numeral: str) -> int:
    return _DEGREES.index(numeral.upper())


def _quality(numeral: str, suffix: str) -> str:
    if numeral.isupper() or (
        suffix.startswith(_OWN_THIRD) and not suffix.startswith(_MAJOR_SEVENTH)
    ):
        return suffix
    return "m" + suffix


def resolve_numeral(token: str, key: Key) -> Numeral:
    """Resolve one numeral in ``key``.

    Args:
        token: e.g. ``"I"``, ``"vi7"``, ``"bVII"``, ``"#iv°"``, ``"V7/V"``,
            ``"viiø7/V"``, ``"IV/A"`` (slash bass), ``"V/V/V"``.
        key: the key; only ``tonic_pc`` and ``scale_pcs`` are used.

    Returns:
        The :class:`Numeral`; its ``quality`` still has to be looked up.

    Raises:
        ValueError: ``token`` is not written as a numeral.
    """
    match = _NUMERAL_RE.match(_normalise(token))
    if match is None:
        raise ValueError(f"not a roman numeral: {token!r}")
    # Resolve the secondary targets right to left: the rightmost in the key,
    # each further one on the major scale of the previous target's root.
    scale = tuple(key.scale_pcs)
    for acc, num in reversed(_TARGET_RE.findall(match.group("targets"))):
        root = (scale[_degree(num)] + _shift(acc)) % 12
        scale = tuple((root + s) % 12 for s in _MAJOR_STEPS)
    num = match.group("num")
    root_pc = (scale[_degree(num)] + _shift(match.group("acc"))) % 12
    return Numeral(root_pc, _quality(num, match.group("suffix")), match.group("bass"))
