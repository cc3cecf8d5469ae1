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

Comping rhythms (``Style.keys_comping`` for the A variation,
``keys_comping_b`` for B): ``charleston`` (jazz: beat 1 and the and-of-2, or
backbeats, or a push), ``eighths`` (rock pulses; quarters at low energy),
``stabs`` (electronic off-beats, more 16ths when hot), ``backbeat`` (blues),
``arpeggio`` (classical broken chords, Alberti bass in simple meters,
ascending in compound ones), ``sustain`` (ambient whole-chord pads), ``funk``
(16th clavinet scratches), ``montuno`` (salsa piano: outer voices and inner
voices alternating on 8ths), ``skank`` (reggae: short chords on the
backbeats, every off-beat in B), ``bossa`` (the bossa-nova comping rhythm
over two bars), ``oompah`` (waltz: chords on the weak beats), ``house``
(M1 piano: one, the and-of-two, four), ``gospel`` (full chords on the beats
with pushes), ``sparse`` (hip-hop, lo-fi, Basie: one held chord and an
answer).  N.C. slots are silent; the ending bar strikes each chord once
(held, or a short stab for "hit" endings).  Positions are quarter notes (ppq).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from types import MappingProxyType

from ai_band.generate.context import PartContext, Slot
from ai_band.model import PARTS, Note
from ai_band.theory.chords import Chord
from ai_band.theory.meter import Beat

__all__ = [
    "generate_keys",
    "voicing_tones",
    "voicing_candidates",
    "choose_voicing",
    "movement",
    "ending_notes",
    "COMPING",
    "KEYS_LOW",
    "KEYS_HIGH",
]

#: Lowest and highest keys pitch: C3 and C6 (MIDI note numbers).
KEYS_LOW, KEYS_HIGH = PARTS["keys"].pitch_range

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
    return list(_candidates(tuple(sorted(set(tones))), family, low, high))


@lru_cache(maxsize=4096)
def _candidates(order: tuple[int, ...], family: str, low: int, high: int) -> tuple[Voicing, ...]:
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
    return tuple(dict.fromkeys(out))


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
    chord: Chord,
    family: str,
    previous: Voicing | None,
    center: int,
    rng: random.Random,
    low: int = KEYS_LOW,
    high: int = KEYS_HIGH,
) -> Voicing:
    """The voicing of ``chord`` with the least movement from ``previous``.

    Args:
        chord: the chord to voice (not N.C.).
        family: ``"close"``, ``"open"`` or ``"rootless"``.
        previous: the previous voicing (ascending MIDI pitches), or None for the first chord.
        center: MIDI pitch the voicings gravitate to.
        rng: seeded random source, used only to break exact ties.
        low: lowest allowed MIDI pitch (default: the keys' range).
        high: highest allowed MIDI pitch.

    Returns:
        Ascending MIDI pitches inside ``low..high``.
    """
    options = _candidates(tuple(sorted(set(voicing_tones(chord, family)))), family, low, high)
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
    onsets = sorted({t for t in onsets if slot.offset <= t < slot.end_offset - 1e-9})
    ends = onsets[1:] + [slot.end_offset]
    notes = []
    for onset, end in zip(onsets, ends):
        duration = min((end - onset) * legato, cap)
        velocity = ctx.velocity(level, slot.bar, onset) + rng.randint(-5, 5)
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


def _energy(ctx: PartContext, slot: Slot) -> float:
    return ctx.bar_plan(slot.bar).energy


def _eighths(ctx: PartContext, slot: Slot, voicing: Voicing, rng: random.Random) -> list[Note]:
    level = "sub" if _energy(ctx, slot) >= 0.3 else "beat"
    return _block(ctx, slot, voicing, slot.positions(ctx.meter, level), 0.8, ctx.length, rng)


def _stabs(ctx: PartContext, slot: Slot, voicing: Voicing, rng: random.Random) -> list[Note]:
    starts = {b.start for b in ctx.meter.beats}
    onsets = [p for p in slot.positions(ctx.meter, "sub") if p not in starts]
    if not onsets:
        onsets = [slot.offset]
    extra = 1 + (2 if _energy(ctx, slot) > 0.75 else 0)
    for _ in range(extra):
        if rng.random() < 0.3:
            fine = [
                p for p in slot.positions(ctx.meter, "fine") if p not in starts and p not in onsets
            ]
            if fine:
                onsets.append(rng.choice(fine))
    return _block(ctx, slot, voicing, onsets, 0.5, 0.25, rng)


def _backbeat(ctx: PartContext, slot: Slot, voicing: Voicing, rng: random.Random) -> list[Note]:
    beats = _slot_beats(ctx, slot)
    onsets = [slot.offset] + [b.start for b in beats if b.strength == 0 and b.start > slot.offset]
    chance = 0.15 + 0.3 * _energy(ctx, slot)
    for b in beats:
        nxt = b.index + 1
        if (
            nxt < len(ctx.meter.beats)
            and ctx.meter.beats[nxt].strength == 0
            and rng.random() < chance
        ):
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
        velocity = ctx.velocity(ctx.style.keys_velocity, slot.bar, pos) + rng.randint(-5, 5)
        notes.append(Note(base + pos, (end - pos) * 0.98, pitch, velocity))
    return notes


def _funk(ctx: PartContext, slot: Slot, voicing: Voicing, rng: random.Random) -> list[Note]:
    """Clavinet: short 16th scratches, the onset and backbeats always, others by energy."""
    energy = _energy(ctx, slot)
    chance = 0.15 + 0.3 * energy + 0.15 * float(ctx.complexity)  # type: ignore[arg-type]
    weak = {b.start for b in ctx.meter.beats if b.strength == 0}
    onsets = [
        p
        for k, p in enumerate(slot.positions(ctx.meter, "fine"))
        if k == 0 or p in weak or rng.random() < chance
    ]
    top = voicing[-3:]
    return _block(ctx, slot, top, onsets, 0.5, 0.15, rng)


def _montuno(ctx: PartContext, slot: Slot, voicing: Voicing, rng: random.Random) -> list[Note]:
    """Salsa montuno: outer voices (octave-like frame) and inner voices alternating on 8ths."""
    positions = slot.positions(ctx.meter, "sub")
    outer = (voicing[0], voicing[-1]) if len(voicing) > 2 else voicing
    inner = voicing[1:-1] if len(voicing) > 2 else voicing
    base = ctx.bar_start(slot.bar)
    notes = []
    ends = positions[1:] + [slot.end_offset]
    for k, (pos, end) in enumerate(zip(positions, ends)):
        if k and rng.random() < 0.12:
            continue
        group = outer if k % 2 == 0 else inner
        velocity = ctx.velocity(ctx.style.keys_velocity, slot.bar, pos) + rng.randint(-4, 4)
        notes.extend(Note(base + pos, (end - pos) * 0.85, p, velocity) for p in group)
    return notes


def _skank(ctx: PartContext, slot: Slot, voicing: Voicing, rng: random.Random) -> list[Note]:
    """Reggae skank: short chords on the backbeats; B and high energy: every off-beat."""
    beats = _slot_beats(ctx, slot)
    busy = ctx.bar_plan(slot.bar).variation == "B" or _energy(ctx, slot) > 0.7
    if busy:
        onsets = [b.subdivisions()[-1] for b in ctx.meter.beats]
    else:
        onsets = [b.start for b in beats if b.strength == 0]
    onsets = [t for t in onsets if slot.offset <= t < slot.end_offset - 1e-9]
    if not onsets:
        onsets = [p for p in slot.positions(ctx.meter, "sub")[1:]] or [slot.offset]
    return _block(ctx, slot, voicing, onsets, 0.5, 0.3, rng)


def _pattern_onsets(
    ctx: PartContext, slot: Slot, pattern: frozenset[int], bars: int
) -> list[float]:
    """Subdivisions of the slot whose index in a ``bars``-bar cycle of 8ths is in ``pattern``."""
    subs = [t for b in ctx.meter.beats for t in b.subdivisions()]
    base = (slot.bar % bars) * len(subs)
    width = bars * len(subs)
    onsets = [
        t
        for k, t in enumerate(subs)
        if (base + k) % width in pattern and slot.offset <= t < slot.end_offset - 1e-9
    ]
    return onsets or [slot.offset]


_BOSSA = frozenset({0, 3, 6, 10, 13})
_HOUSE = frozenset({0, 3, 6})
_HOUSE_B = frozenset({0, 3, 6, 7})


def _bossa(ctx: PartContext, slot: Slot, voicing: Voicing, rng: random.Random) -> list[Note]:
    """Bossa nova comping: the syncopated two-bar rhythm, short chords."""
    onsets = _pattern_onsets(ctx, slot, _BOSSA, 2)
    return _block(ctx, slot, voicing, onsets, 0.8, 0.75, rng)


def _house(ctx: PartContext, slot: Slot, voicing: Voicing, rng: random.Random) -> list[Note]:
    """House piano: stabs on one, the and-of-two and four (plus the and-of-four in B)."""
    b = ctx.bar_plan(slot.bar).variation == "B"
    onsets = _pattern_onsets(ctx, slot, _HOUSE_B if b else _HOUSE, 1)
    return _block(ctx, slot, voicing, onsets, 0.7, 0.5, rng)


def _oompah(ctx: PartContext, slot: Slot, voicing: Voicing, rng: random.Random) -> list[Note]:
    """Waltz "pah-pah": chords on the weak beats, the bass takes the "oom"."""
    beats = _slot_beats(ctx, slot)
    onsets = [b.start for b in beats if b.strength == 0]
    if not onsets:
        onsets = [slot.offset]
    return _block(
        ctx, slot, voicing, onsets, 0.7, 0.9 * max(b.length for b in ctx.meter.beats), rng
    )


def _gospel(ctx: PartContext, slot: Slot, voicing: Voicing, rng: random.Random) -> list[Note]:
    """Gospel piano: full chords on the beats with pushes on the last subdivision."""
    beats = _slot_beats(ctx, slot)
    onsets = [slot.offset] + [b.start for b in beats]
    chance = 0.2 + 0.3 * _energy(ctx, slot) + 0.2 * float(ctx.complexity)  # type: ignore[arg-type]
    for b in beats:
        if rng.random() < chance:
            onsets.append(b.subdivisions()[-1])
    return _block(ctx, slot, voicing, onsets, 0.85, ctx.length, rng)


def _sparse(ctx: PartContext, slot: Slot, voicing: Voicing, rng: random.Random) -> list[Note]:
    """One chord held on the onset and, now and then, an answer on an off-beat."""
    onsets = [slot.offset]
    chance = 0.3 + 0.3 * float(ctx.complexity) + 0.2 * _energy(ctx, slot)  # type: ignore[arg-type]
    offbeats = [
        b.subdivisions()[-1]
        for b in _slot_beats(ctx, slot)
        if b.strength == 0 and slot.offset < b.subdivisions()[-1] < slot.end_offset - 1e-9
    ]
    if offbeats and rng.random() < chance:
        onsets.append(rng.choice(offbeats))
    return _block(ctx, slot, voicing, onsets, 0.92, ctx.length, rng)


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
        "funk": _funk,
        "montuno": _montuno,
        "skank": _skank,
        "bossa": _bossa,
        "oompah": _oompah,
        "house": _house,
        "gospel": _gospel,
        "sparse": _sparse,
    }
)


def ending_notes(
    ctx: PartContext, slot: Slot, pitches: Sequence[int], base_velocity: int
) -> list[Note]:
    """The ending: ``pitches`` struck once on the slot's onset, held ("ring") or stabbed ("hit").

    Args:
        ctx: the context (style ending, meter, plan).
        slot: a slot of the ending bar.
        pitches: MIDI pitches to strike.
        base_velocity: the part's base velocity.
    """
    length = slot.duration * 0.98
    if ctx.style.ending == "hit":
        length = min(length, ctx.meter.beats[0].length * 0.75)
    velocity = ctx.velocity(base_velocity, slot.bar, slot.offset) + 6
    start = ctx.bar_start(slot.bar) + slot.offset
    return [Note(start, length, p, velocity) for p in pitches]


def generate_keys(ctx: PartContext, rng: random.Random) -> list[Note]:
    """Write the keys part on the straight grid.

    Args:
        ctx: style, meter and chord slots.
        rng: the part's seeded random source.

    Returns:
        Notes in time order; each note of a slot is a tone of that slot's
        chord, pitches in :data:`KEYS_LOW`..:data:`KEYS_HIGH`; N.C. slots are silent.
    """
    style = ctx.style
    comp_a = COMPING[style.keys_comping]
    comp_b = COMPING[style.keys_comping_b or style.keys_comping]
    previous: Voicing | None = None
    notes: list[Note] = []
    for slot in ctx.slots:
        if slot.is_rest:
            continue
        voicing = choose_voicing(slot.chord, style.keys_voicing, previous, style.keys_center, rng)
        variation = ctx.bar_plan(slot.bar).variation
        if variation == "ending":
            notes.extend(ending_notes(ctx, slot, voicing, style.keys_velocity))
        else:
            comp = comp_b if variation == "B" else comp_a
            notes.extend(comp(ctx, slot, voicing, rng))
        previous = voicing
    return notes
