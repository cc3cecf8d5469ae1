"""Keys part: voice-led chord voicings played in a comping rhythm.

Voicing: for each chord the candidate voicings are every close-position
inversion (plus drop-2 spreads for the ``open`` and ``rootless`` families) of
its chosen chord tones inside C3..C6 (MIDI 48..84); the one that moves least
from the previous voicing wins (movement = for every note, the distance to
the nearest note of the other voicing, summed both ways), with a pull back
towards ``Style.keys_center`` only once a voicing drifts more than a fifth
from it.  Families: ``close`` (root, 3rd, 5th/7th, up to four tones),
``open`` (the same, drop-2 spreads allowed), ``rootless`` (jazz: root left to
the bass, 3rd-5th-7th or 3rd-7th-9th-13th).  Every note is a chord tone
(``Chord.pitch_classes``); a slash bass is left to the bass player.

Comping rhythms (``Style.keys_comping``): ``charleston`` (jazz: beat 1 and
the and-of-2, or backbeats, or a push), ``eighths`` (rock pulses),
``stabs`` (electronic off-beats), ``backbeat`` (blues), ``arpeggio``
(classical broken chords, Alberti bass in simple meters, ascending in
compound ones), ``sustain`` (ambient whole-chord pads).
Positions are quarter notes (ppq).
"""

from __future__ import annotations

import random
from types import MappingProxyType
from collections.abc import Callable, Mapping, Sequence

from daemon.generate.context import PartContext, Slot
from daemon.generate.meter import Beat
from daemon.generate.model import Note
from daemon.theory.chords import Chord

__all__ = [
    "generate_keys",
    "voicing_tones",
    "voicing_candidates",
    "choose_voicing",
    "movement",
    "COMPING",
    "KEYS_LOW",
    "KEYS_HIGH",
]

#: Lowest and highest keys pitch: C3 and C6 (MIDI note numbers).
KEYS_LOW = 48
KEYS_HIGH = 84

#: A voicing drifting further than this from the style's centre is pulled back (semitones).
_DRIFT = 7.0

Voicing = tuple[int, ...]


def voicing_tones(chord: Chord, family: str) -> list[int]:
    """Pick the pitch classes (at most four) a voicing of ``chord`` uses.

    Args:
        chord: the chord.
        family: ``"close"``, ``"open"`` or ``"rootless"``.

    Returns:
        Pitch classes 0..11, all of them tones of ``chord``.
    """
    pcs = list(chord.pitch_classes)
    if family == "rootless" and len(pcs) >= 4:
        rest = pcs[1:]
        if len(rest) > 3:
            rest = [rest[0], rest[2], rest[-1], rest[1]]
        return list(dict.fromkeys(rest))[:4]
    if len(pcs) > 4:
        return list(dict.fromkeys([pcs[0], pcs[1], pcs[3], pcs[-1]]))
    return pcs


def voicing_candidates(
    tones: Sequence[int], family: str, low: int = KEYS_LOW, high: int = KEYS_HIGH
) -> list[Voicing]:
    """Every voicing of ``tones`` inside ``low..high``.

    Close position stacks each rotation of the tones upwards inside an
    octave; ``open``/``rootless`` also allow drop-2 (the second-highest note
    an octave down).  Two-tone chords (power chords) get the lowest note
    doubled an octave up.

    Args:
        tones: pitch classes 0..11.
        family: ``"close"``, ``"open"`` or ``"rootless"``.
        low: lowest allowed MIDI pitch.
        high: highest allowed MIDI pitch.

    Returns:
        Voicings as ascending MIDI pitch tuples, in a fixed order.
    """
    order = sorted(set(tones))
    out: list[Voicing] = []
    for r in range(len(order)):
        rotation = order[r:] + order[:r]
        for bottom in range(low + (rotation[0] - low) % 12, high + 1, 12):
            stack = [bottom]
            for pc in rotation[1:]:
                stack.append(stack[-1] + ((pc - stack[-1]) % 12 or 12))
            if len(stack) < 3:
                stack.append(stack[0] + 12)
            if stack[-1] <= high:
                out.append(tuple(stack))
            if family in ("open", "rootless") and len(stack) >= 3:
                dropped = sorted(stack[:-2] + [stack[-2] - 12, stack[-1]])
                if dropped[0] >= low and dropped[-1] <= high:
                    out.append(tuple(dropped))
    return list(dict.fromkeys(out))


def movement(previous: Sequence[int], voicing: Sequence[int]) -> int:
    """Semitones of motion between two voicings.

    Every note of each voicing is matched with the nearest note of the other
    and the distances are summed both ways, so voicings of different sizes
    compare fairly.
    """
    there = sum(min(abs(n - p) for p in previous) for n in voicing)
    back = sum(min(abs(p - n) for n in voicing) for p in previous)
    return there + back


def choose_voicing(
    chord: Chord, family: str, previous: Voicing | None, center: int, rng: random.Random
) -> Voicing:
    """The voicing of ``chord`` with the least movement from ``previous``.

    Args:
        chord: the chord to voice.
        family: ``"close"``, ``"open"`` or ``"rootless"``.
        previous: the previous voicing (ascending MIDI pitches), or None for the first chord.
        center: MIDI pitch the voicings gravitate to.
        rng: seeded random source, used only to break exact ties.

    Returns:
        Ascending MIDI pitches inside :data:`KEYS_LOW`..:data:`KEYS_HIGH`.
    """
    options = voicing_candidates(voicing_tones(chord, family), family)
    best: Voicing = options[0]
    best_cost = float("inf")
    for voicing in options:
        drift = abs(sum(voicing) / len(voicing) - center)
        if previous is None:
            cost = drift
        else:
            cost = movement(previous, voicing) + 2.0 * max(0.0, drift - _DRIFT)
        cost += rng.random() * 1e-3
        if cost < best_cost:
            best, best_cost = voicing, cost
    return best


def _block(
    ctx: PartContext,
    slot: Slot,
    voicing: Voicing,
    onsets: list[float],
    legato: float,
    cap: float,
    rng: random.Random,
) -> list[Note]:
    """The whole voicing struck at each onset (bar offsets), held ``legato`` of the gap.

    Onsets outside the slot are ignored; each chord lasts at most ``cap`` quarter notes.
    """
    base = ctx.bar_start(slot.bar)
    level = ctx.style.keys_velocity
    onsets = sorted({t for t in onsets if slot.offset <= t < slot.end_offset})
    ends = onsets[1:] + [slot.end_offset]
    notes = []
    for onset, end in zip(onsets, ends):
        duration = min((end - onset) * legato, cap)
        beat = ctx.meter.beat_at(onset)
        accent = 6 if onset == beat.start else -4
        velocity = level + accent + rng.randint(-5, 5)
        notes.extend(Note(base + onset, duration, pitch, velocity) for pitch in voicing)
    return notes


def _slot_beats(ctx: PartContext, slot: Slot) -> list[Beat]:
    """The beats that start inside the slot."""
    return [b for b in ctx.meter.beats if slot.offset <= b.start < slot.end_offset - 1e-9]


def _charleston(ctx: PartContext, slot: Slot, voicing: Voicing, rng: random.Random) -> list[Note]:
    beats = _slot_beats(ctx, slot)
    onsets = [slot.offset]
    roll = rng.random()
    if roll < 0.55 and len(beats) >= 2:
        onsets.append(beats[1].subdivisions()[-1])
    elif roll < 0.8:
        onsets.extend(b.start for b in beats if b.strength == 0 and b.start > slot.offset)
    elif beats:
        push = beats[-1].subdivisions()[-1]
        if push > slot.offset:
            onsets.append(push)
    beat_len = min(b.length for b in ctx.meter.beats)
    return _block(ctx, slot, voicing, onsets, 0.9, 1.5 * beat_len, rng)


def _eighths(ctx: PartContext, slot: Slot, voicing: Voicing, rng: random.Random) -> list[Note]:
    return _block(ctx, slot, voicing, slot.positions(ctx.meter, "sub"), 0.8, ctx.length, rng)


def _stabs(ctx: PartContext, slot: Slot, voicing: Voicing, rng: random.Random) -> list[Note]:
    starts = {b.start for b in ctx.meter.beats}
    onsets = [p for p in slot.positions(ctx.meter, "sub") if p not in starts]
    if not onsets:
        onsets = [slot.offset]
    if rng.random() < 0.3:
        fine = [p for p in slot.positions(ctx.meter, "fine") if p not in starts and p not in onsets]
        if fine:
            onsets.append(rng.choice(fine))
    return _block(ctx, slot, voicing, onsets, 0.5, 0.25, rng)


def _backbeat(ctx: PartContext, slot: Slot, voicing: Voicing, rng: random.Random) -> list[Note]:
    beats = _slot_beats(ctx, slot)
    onsets = [slot.offset] + [b.start for b in beats if b.strength == 0 and b.start > slot.offset]
    for b in beats:
        nxt = b.index + 1
        if nxt < len(ctx.meter.beats) and ctx.meter.beats[nxt].strength == 0 and rng.random() < 0.3:
            pickup = b.subdivisions()[-1]
            if slot.offset < pickup < slot.end_offset:
                onsets.append(pickup)
    return _block(ctx, slot, voicing, onsets, 0.7, ctx.length, rng)


def _sustain(ctx: PartContext, slot: Slot, voicing: Voicing, rng: random.Random) -> list[Note]:
    return _block(ctx, slot, voicing, [slot.offset], 0.98, ctx.length, rng)


def _arpeggio(ctx: PartContext, slot: Slot, voicing: Voicing, rng: random.Random) -> list[Note]:
    positions = slot.positions(ctx.meter, "sub")
    count = len(voicing)
    order = []
    for k, pos in enumerate(positions):
        beat = ctx.meter.beat_at(pos)
        if beat.compound:
            step = round((pos - beat.start) / beat.length * 3)
            order.append(voicing[min(step, count - 1)] if step else voicing[0])
        else:
            order.append(voicing[(0, count - 1, 1, count - 1)[k % 4]])
    base = ctx.bar_start(slot.bar)
    notes = []
    for k, (pos, pitch) in enumerate(zip(positions, order)):
        later = [positions[j] for j in range(k + 1, len(positions)) if order[j] == pitch]
        end = later[0] if later else slot.end_offset
        velocity = ctx.style.keys_velocity + (6 if k == 0 else 0) + rng.randint(-5, 5)
        notes.append(Note(base + pos, (end - pos) * 0.98, pitch, velocity))
    return notes


Comp = Callable[[PartContext, Slot, Voicing, random.Random], list[Note]]

#: Comping name (``Style.keys_comping``) -> function(ctx, slot, voicing, rng) -> notes.
COMPING: Mapping[str, Comp] = MappingProxyType(
    {
        "charleston": _charleston,
        "eighths": _eighths,
        "stabs": _stabs,
        "backbeat": _backbeat,
        "sustain": _sustain,
        "arpeggio": _arpeggio,
    }
)


def generate_keys(ctx: PartContext, rng: random.Random) -> list[Note]:
    """Write the keys part on the straight grid.

    Args:
        ctx: style, meter and chord slots.
        rng: the part's seeded random source.

    Returns:
        Notes in time order; each note of a slot is a tone of that slot's
        chord, pitches in :data:`KEYS_LOW`..:data:`KEYS_HIGH`.
    """
    style = ctx.style
    comp = COMPING[style.keys_comping]
    previous: Voicing | None = None
    notes: list[Note] = []
    for slot in ctx.slots:
        voicing = choose_voicing(slot.chord, style.keys_voicing, previous, style.keys_center, rng)
        notes.extend(comp(ctx, slot, voicing, rng))
        previous = voicing
    return notes
