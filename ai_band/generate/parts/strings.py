"""Strings part: a sustained section voicing with smooth voice leading.

The section is voiced like a choir (SATB): the cellos take the chord's bass
note (the slash bass, else the root) in C2..F#3, moving to the nearest
octave of each new bass note; violins and violas take three or four upper
chord tones (rootless when the chord has four tones or more, the root being
in the cellos) in G3..C6, chosen as the inversion that moves least from the
previous chord (see :func:`ai_band.generate.parts.keys.choose_voicing`), so every
voice moves by the smallest steps available, as in common-practice voice
leading.  Repeated chords are tied (see :func:`ai_band.generate.parts.pad.sustain`);
B sections and high energy add the first violins an octave up (at most E6,
``PARTS["strings"].pitch_range``).  N.C. slots are silent; the ending rings out.
Positions are quarter notes (ppq).
"""

from __future__ import annotations

import random

from ai_band.generate.context import PartContext
from ai_band.generate.parts.keys import Voicing, choose_voicing
from ai_band.generate.parts.pad import sustain
from ai_band.model import PARTS, Note
from ai_band.theory.chords import Chord

__all__ = ["generate_strings", "STRINGS_LOW", "STRINGS_HIGH", "CELLO_HIGH", "UPPER_LOW"]

#: Lowest and highest strings pitch: C2 (cello C string) and E6 (MIDI note numbers).
STRINGS_LOW, STRINGS_HIGH = PARTS["strings"].pitch_range

#: Highest cello (bass voice) note and lowest upper-voice note.
CELLO_HIGH = 54
UPPER_LOW = 55

#: Highest upper-voice note before the octave doubling.
UPPER_HIGH = 84


def _cello(pc: int, near: int) -> int:
    """The pitch of class ``pc`` in STRINGS_LOW..CELLO_HIGH nearest ``near``."""
    pitch = STRINGS_LOW + (pc - STRINGS_LOW) % 12
    best = pitch
    while pitch <= CELLO_HIGH:
        if abs(pitch - near) < abs(best - near):
            best = pitch
        pitch += 12
    return best


def generate_strings(ctx: PartContext, rng: random.Random) -> list[Note]:
    """Write the strings part on the straight grid.

    Args:
        ctx: style, meter, chord slots and plan.
        rng: the part's seeded random source (voicing ties only).

    Returns:
        Notes inside :data:`STRINGS_LOW`..:data:`STRINGS_HIGH`, every one a
        tone of its chord (the cello line plays the bass note).
    """
    center = min(76, ctx.style.keys_center + 5)
    state = {"cello": 45}

    def voice(chord: Chord, previous: Voicing | None) -> Voicing:
        upper_prev = previous[1:] if previous else None
        family = "rootless" if len(chord.pitch_classes) >= 4 else "close"
        upper = choose_voicing(chord, family, upper_prev, center, rng, UPPER_LOW, UPPER_HIGH)
        cello = _cello(chord.bass_pc, state["cello"])
        state["cello"] = cello
        return (cello,) + upper

    return sustain(ctx, voice, ctx.style.strings_velocity, STRINGS_HIGH)
