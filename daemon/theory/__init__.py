"""Music theory: chord symbols, chord sheets and keys.

Cheat-sheet::

    from daemon.theory import parse_chord, parse_progression, parse_key, infer_key

    parse_chord("G7/B")            # Chord(root_pc=7, pitch_classes=(7, 11, 2, 5), bass_pc=11, ...)
    parse_progression("| Dm7 . G7 . | Cmaj7 |", 4, 4)
                                   # [[(Dm7, 0.0, 2.0), (G7, 2.0, 2.0)], [(Cmaj7, 0.0, 4.0)]]
    parse_key("F#m")               # Key(tonic_pc=6, mode="minor", name="F#m")
    infer_key(chords)              # best of the 24 major/minor keys

Pitch classes are 0 = C .. 11 = B; positions are quarter notes (ppq).
Bad chords raise :class:`~daemon.errors.ChordError`, bad keys
:class:`~daemon.errors.RequestError` (field ``"key"``).
"""

from daemon.theory.chords import Bar, Chord, note_to_pc, parse_chord, parse_progression
from daemon.theory.keys import Key, infer_key, parse_key

__all__ = [
    "Bar",
    "Chord",
    "Key",
    "infer_key",
    "note_to_pc",
    "parse_chord",
    "parse_key",
    "parse_progression",
]
