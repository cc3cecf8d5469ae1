"""Pad part: sustained, voice-led chord voicings under the band.

Each chord gets an ``open`` voicing (see :func:`ai_band.generate.parts.keys.choose_voicing`)
inside ``PARTS["pad"].pitch_range`` (C3..C6) that moves as little as possible from the
previous one, centred a little below the keys so the two do not collide.  A
chord that repeats in the next slot is tied over instead of struck again
(until a phrase starts anew), so the pad breathes with the form rather than
with the bar lines.  In B sections and at high energy the top voice is
doubled an octave up when the range allows.  N.C. slots are silent; the
ending rings out (or stabs, for "hit" endings).  Positions are quarter notes
(ppq); velocities follow the bar's energy.  :func:`sustain` is shared with
the strings.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ai_band.generate.context import PartContext
from ai_band.generate.parts.keys import Voicing, choose_voicing, ending_notes
from ai_band.model import PARTS, Note
from ai_band.theory.chords import Chord

__all__ = ["generate_pad", "sustain", "PAD_LOW", "PAD_HIGH"]

#: Lowest and highest pad pitch (MIDI note numbers).
PAD_LOW, PAD_HIGH = PARTS["pad"].pitch_range


def sustain(
    ctx: PartContext,
    voice: Callable[[Chord, Voicing | None], Voicing],
    velocity: int,
    high: int,
) -> list[Note]:
    """Hold a voicing per chord, tying repeats, doubling the top voice in B and when hot.

    Args:
        ctx: the context (slots, plan, style ending).
        voice: ``(chord, previous voicing or None) -> voicing`` (ascending MIDI pitches).
        velocity: the part's base velocity 1..127.
        high: highest MIDI pitch the octave doubling may reach.

    Returns:
        Notes on the straight grid: one chord per run of equal chords (a new
        phrase re-strikes), held to 0.98 of its length; N.C. slots silent.
    """
    notes: list[Note] = []
    previous: Voicing | None = None
    # (voicing, start ppq, end ppq, bar of the onset, symbol) of the chord being held
    held: tuple[Voicing, float, float, int, str] | None = None

    def flush() -> None:
        if held is None:
            return
        voicing, start, end, bar, _ = held
        plan = ctx.bar_plan(bar)
        vel = ctx.velocity(velocity, bar, start - ctx.bar_start(bar))
        pitches = list(voicing)
        if (plan.variation == "B" or plan.energy > 0.8) and voicing[-1] + 12 <= high:
            pitches.append(voicing[-1] + 12)
        notes.extend(Note(start, (end - start) * 0.98, p, vel) for p in pitches)

    for slot in ctx.slots:
        if slot.is_rest:
            flush()
            held = None
            continue
        plan = ctx.bar_plan(slot.bar)
        if plan.variation == "ending":
            flush()
            held = None
            previous = voice(slot.chord, previous)
            notes.extend(ending_notes(ctx, slot, previous, velocity))
            continue
        phrase_start = plan.crash and slot.offset == 0.0
        if (
            held is not None
            and held[4] == slot.chord.symbol
            and abs(held[2] - slot.start) < 1e-9
            and not phrase_start
        ):
            held = (held[0], held[1], slot.end, held[3], held[4])
            continue
        flush()
        previous = voice(slot.chord, previous)
        held = (previous, slot.start, slot.end, slot.bar, slot.chord.symbol)
    flush()
    return notes


def generate_pad(ctx: PartContext, rng: random.Random) -> list[Note]:
    """Write the pad part on the straight grid.

    Args:
        ctx: style, meter, chord slots and plan.
        rng: the part's seeded random source (voicing ties only).

    Returns:
        Notes, each a chord tone of its slot, inside :data:`PAD_LOW`..:data:`PAD_HIGH`.
    """
    center = max(PAD_LOW + 6, ctx.style.keys_center - 3)

    def voice(chord: Chord, previous: Voicing | None) -> Voicing:
        return choose_voicing(chord, "open", previous, center, rng, PAD_LOW, PAD_HIGH)

    return sustain(ctx, voice, ctx.style.pad_velocity, PAD_HIGH)
