"""Music theory: chord symbols, chord sheets, roman numerals and keys.

Cheat-sheet::

    from ai_band.theory import parse_chord, parse_progression, parse_key, infer_key

    parse_chord("G7/B")            # Chord(root_pc=7, pitch_classes=(7, 11, 2, 5), bass_pc=11, ...)
    parse_chord("G7#9b13")         # altered extensions; "C7alt" = 1 3 b7 b9 #9 #11 b13
    parse_chord("N.C.")            # no chord: is_no_chord, root_pc == bass_pc == -1, no pitch classes
    parse_chord("V7/V", key=parse_key("C"))       # D7 (roman numerals need a key)
    parse_progression("| Dm7 . G7 . | Cmaj7 |", 4, 4)
                                   # [[(Dm7, 0.0, 2.0), (G7, 2.0, 2.0)], [(Cmaj7, 0.0, 4.0)]]
    parse_progression("| i | VII | V7 |", 4, 4, key=parse_key("Am"))   # Am G E7
    parse_key("F#m")               # Key(tonic_pc=6, mode="minor", name="F#m")
    parse_key("D dorian").scale_pcs              # (2, 4, 5, 7, 9, 11, 0)
    infer_key(chords)              # best of the 24 major/minor keys

Pitch classes are 0 = C .. 11 = B; positions are quarter notes (ppq).
Bad chords raise :class:`~ai_band.errors.ChordError` (naming the token and its
1-based bar), bad keys :class:`~ai_band.errors.RequestError` (field ``"key"``).
The full grammar is in docs/chords.md.
"""

from ai_band.theory.chords import (
    NO_CHORD,
    Bar,
    Chord,
    note_to_pc,
    parse_chord,
    parse_progression,
)
from ai_band.theory.keys import MODE_STEPS, MODES, Key, Mode, infer_key, parse_key

__all__ = [
    "MODES",
    "MODE_STEPS",
    "NO_CHORD",
    "Bar",
    "Chord",
    "Key",
    "Mode",
    "infer_key",
    "note_to_pc",
    "parse_chord",
    "parse_key",
    "parse_progression",
]
