"""Bass part: the chord's bass note on every chord change, lines in between.

Rules every pattern keeps:

* the first note of every chord slot is the chord's ``bass_pc`` (the slash
  bass when written, else the root), on the slot's onset;
* other strong beats (downbeat, secondary accent) get chord tones;
* passing notes (chromatic, scale of the key, or the next chord's fifth)
  lead into the next chord's bass note, style permitting;
* every pitch lies in E1..G3 (MIDI 28..55), the range of a four-string bass.

Patterns (``Style.bass_pattern``): ``walking`` (jazz quarter notes),
``root_eighths`` (rock), ``octave_synth`` (electronic octaves, off-beats or
syncopated 16ths), ``long_roots`` (ambient), ``shuffle_walk`` (blues boogie
R-3-5-6 / R-b7-6-5 with shuffle pick-ups), ``root_fifth`` (classical half
notes).  Positions are quarter notes (ppq).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from types import MappingProxyType
from collections.abc import Callable, Mapping

from daemon.generate.context import PartContext, Slot
from daemon.generate.model import Note
from daemon.theory.chords import Chord

__all__ = ["generate_bass", "PATTERNS", "BASS_LOW", "BASS_HIGH"]

#: Lowest and highest bass pitch: E1 and G3 (MIDI note numbers).
BASS_LOW = 28
BASS_HIGH = 55


@dataclass
class _Line:
    """Running state of one bass line (local to one generate_bass call)."""

    ctx: PartContext
    rng: random.Random
    last: int
    variant: int = 0

    def place(self, pc: int, near: int | None = None) -> int:
        """The pitch of class ``pc`` in range nearest ``near`` (default: the last note)."""
        near = self.last if near is None else near
        center = self.ctx.style.bass_center
        best = BASS_LOW
        best_cost = float("inf")
        pitch = BASS_LOW + (pc - BASS_LOW) % 12
        while pitch <= BASS_HIGH:
            cost = abs(pitch - near) + 0.25 * abs(pitch - center)
            if cost < best_cost:
                best, best_cost = pitch, cost
            pitch += 12
        return best

    def approach(self, target: int, current: int) -> int:
        """A passing note one step from ``target``: chromatic, scale step or dominant."""
        roll = self.rng.random()
        if roll < 0.5:
            candidates = [target - 1, target + 1] if current < target else [target + 1, target - 1]
        elif roll < 0.8:
            scale = self.ctx.key.scale_pcs
            below = next((target - d for d in (1, 2) if (target - d) % 12 in scale), target - 2)
            above = next((target + d for d in (1, 2) if (target + d) % 12 in scale), target + 2)
            candidates = [below, above] if current < target else [above, below]
        else:
            candidates = [target + 7, target - 5]
        for pitch in candidates:
            if BASS_LOW <= pitch <= BASS_HIGH and pitch != current:
                return pitch
        return min(BASS_HIGH, max(BASS_LOW, candidates[0]))

    def chord_tone(self, chord: Chord, current: int, target: int) -> int:
        """A chord tone near ``current``, different from it, leaning towards ``target``."""
        options = []
        for pc in chord.pitch_classes[:4]:
            for pitch in (
                self.place(pc, current),
                self.place(pc, current) + 12,
                self.place(pc, current) - 12,
            ):
                if (
                    BASS_LOW <= pitch <= BASS_HIGH
                    and pitch != current
                    and abs(pitch - current) <= 9
                ):
                    options.append(pitch)
        if not options:
            return current
        direction = 1 if target > current else -1
        options.sort(
            key=lambda p: (abs(p - current) + (0 if (p - current) * direction > 0 else 3), p)
        )
        return options[0] if self.rng.random() < 0.7 or len(options) == 1 else options[1]

    def velocity(self, offset: float, base: int) -> int:
        """Velocity with an accent on the bar's beats and a little seeded variation."""
        beat = self.ctx.meter.beat_at(offset)
        accent = 6 if offset == 0.0 else (2 if offset == beat.start else -6)
        return base + accent + self.rng.randint(-4, 4)


def _notes(
    slot: Slot,
    ctx: PartContext,
    positions: list[float],
    pitches: list[int],
    velocities: list[int],
    legato: float,
) -> list[Note]:
    """Notes at ``positions`` (bar offsets), each lasting ``legato`` of the gap to the next."""
    base = ctx.bar_start(slot.bar)
    ends = positions[1:] + [slot.end_offset]
    return [
        Note(base + pos, (end - pos) * legato, pitch, vel)
        for pos, end, pitch, vel in zip(positions, ends, pitches, velocities)
    ]


def _walking(line: _Line, index: int, slot: Slot) -> list[Note]:
    """Quarter-note walk: bass note, chord tones on strong beats, approach at the end."""
    ctx = line.ctx
    positions = slot.positions(ctx.meter, "beat")
    chord = slot.chord
    first = line.place(chord.bass_pc)
    target = line.place(ctx.next_chord(index).bass_pc, first)
    pitches = [first]
    for k in range(1, len(positions)):
        current = pitches[-1]
        if k == len(positions) - 1:
            pitches.append(line.approach(target, current))
        elif ctx.meter.beat_at(positions[k]).strength or line.rng.random() < 0.6:
            pitches.append(line.chord_tone(chord, current, target))
        else:
            scale = set(ctx.key.scale_pcs) | set(chord.pitch_classes)
            step = 1 if target >= current else -1
            pitch = current + step
            while pitch % 12 not in scale:
                pitch += step
            pitches.append(min(BASS_HIGH, max(BASS_LOW, pitch)))
    base = ctx.style.bass_velocity
    velocities = [line.velocity(p, base) for p in positions]
    line.last = pitches[-1]
    return _notes(slot, ctx, positions, pitches, velocities, 0.9)


def _root_eighths(line: _Line, index: int, slot: Slot) -> list[Note]:
    """Driving eighths on the bass note; sometimes a passing note into the next chord."""
    ctx = line.ctx
    positions = slot.positions(ctx.meter, "sub")
    root = line.place(slot.chord.bass_pc)
    pitches = [root] * len(positions)
    if len(positions) >= 4 and line.rng.random() < 0.3:
        target = line.place(ctx.next_chord(index).bass_pc, root)
        if target != root:
            pitches[-1] = line.approach(target, root)
    fifth = slot.chord.interval_pc(7)
    if fifth is not None and len(positions) >= 6 and line.rng.random() < 0.2:
        pitches[-3] = line.place(fifth, root)
    base = ctx.style.bass_velocity
    velocities = [line.velocity(p, base) for p in positions]
    line.last = root
    return _notes(slot, ctx, positions, pitches, velocities, 0.85)


def _octave_synth(line: _Line, index: int, slot: Slot) -> list[Note]:
    """Synth bass: octave eighths, off-beat pumping, or syncopated 16ths (one per arrangement)."""
    ctx = line.ctx
    meter = ctx.meter
    low = line.place(slot.chord.bass_pc, ctx.style.bass_center)
    if low > BASS_HIGH - 12:
        low -= 12
    high = low + 12
    if line.variant == 0:
        positions = slot.positions(meter, "sub")
        pitches = [low if k % 2 == 0 else high for k in range(len(positions))]
        legato = 0.8
    elif line.variant == 1:
        subs = slot.positions(meter, "sub")
        starts = {b.start for b in meter.beats}
        positions = [subs[0]] + [p for p in subs[1:] if p not in starts]
        pitches = [low] * len(positions)
        legato = 0.5
    else:
        fine = slot.positions(meter, "fine")
        keep = []
        for k, pos in enumerate(fine):
            beat = meter.beat_at(pos)
            step = round((pos - beat.start) / beat.length * (6 if beat.compound else 4))
            if k == 0 or step in ((0, 3) if beat.compound else (0, 3)) or line.rng.random() < 0.15:
                keep.append(pos)
        positions = keep
        pitches = [high if line.rng.random() < 0.25 and k else low for k in range(len(positions))]
        legato = 0.7
    base = ctx.style.bass_velocity
    velocities = [line.velocity(p, base) for p in positions]
    line.last = low
    return _notes(slot, ctx, positions, pitches, velocities, legato)


def _long_roots(line: _Line, index: int, slot: Slot) -> list[Note]:
    """One long bass note per chord, sometimes moving to the fifth at the bar's accent."""
    ctx = line.ctx
    root = line.place(slot.chord.bass_pc)
    positions = [slot.offset]
    pitches = [root]
    fifth = slot.chord.interval_pc(7, 6, 8)
    strong = slot.positions(ctx.meter, "strong")[1:]
    if strong and fifth is not None and slot.duration >= 3.0 and line.rng.random() < 0.35:
        positions.append(strong[0])
        pitches.append(line.place(fifth, root))
    velocities = [ctx.style.bass_velocity + line.rng.randint(-3, 3) for _ in positions]
    line.last = root
    return _notes(slot, ctx, positions, pitches, velocities, 0.97)


def _shuffle_walk(line: _Line, index: int, slot: Slot) -> list[Note]:
    """Blues boogie: R-3-5-6 (or R-b7-6-5 when the chord repeats) with shuffle pick-ups."""
    ctx = line.ctx
    meter = ctx.meter
    chord = slot.chord
    beats = slot.positions(meter, "beat")
    repeated = index > 0 and ctx.slots[index - 1].chord == chord
    third = 3 if chord.is_minor else 4
    degrees = (0, 10, 9, 7) if repeated else (0, third, 7, 9)
    first = line.place(chord.bass_pc)
    positions: list[float] = []
    pitches: list[int] = []
    velocities: list[int] = []
    base = ctx.style.bass_velocity
    current = first
    target = line.place(ctx.next_chord(index).bass_pc, first)
    root_pitch = (
        first - (chord.bass_pc - chord.root_pc) % 12 if chord.bass_pc != chord.root_pc else first
    )
    for k, pos in enumerate(beats):
        if k == 0:
            pitch = first
        elif k == len(beats) - 1 and len(beats) >= 3 and line.rng.random() < 0.5:
            pitch = line.approach(target, current)
        else:
            pitch = root_pitch + degrees[k % len(degrees)]
            if pitch > BASS_HIGH:
                pitch -= 12
            if pitch < BASS_LOW:
                pitch += 12
        positions.append(pos)
        pitches.append(pitch)
        velocities.append(line.velocity(pos, base))
        beat = meter.beat_at(pos)
        pickup = beat.subdivisions()[-1]
        next_pos = beats[k + 1] if k + 1 < len(beats) else slot.end_offset
        if pos < pickup < next_pos and line.rng.random() < 0.6:
            positions.append(pickup)
            pitches.append(pitch)
            velocities.append(base - 30)
        current = pitch
    line.last = current
    return _notes(slot, ctx, positions, pitches, velocities, 0.85)


def _root_fifth(line: _Line, index: int, slot: Slot) -> list[Note]:
    """Classical half notes: bass note on the slot onset, fifth (or third) on the accent."""
    ctx = line.ctx
    positions = slot.positions(ctx.meter, "strong")
    first = line.place(slot.chord.bass_pc)
    other = slot.chord.interval_pc(7, 6, 8, 3, 4)
    pitches = []
    for k in range(len(positions)):
        if k % 2 == 0 or other is None:
            pitches.append(first)
        else:
            pitches.append(line.place(other, first))
    velocities = [line.velocity(p, ctx.style.bass_velocity) for p in positions]
    line.last = first
    return _notes(slot, ctx, positions, pitches, velocities, 0.95)


Pattern = Callable[[_Line, int, Slot], list[Note]]

#: Pattern name (``Style.bass_pattern``) -> function(line state, slot index, slot) -> notes.
PATTERNS: Mapping[str, Pattern] = MappingProxyType(
    {
        "walking": _walking,
        "root_eighths": _root_eighths,
        "octave_synth": _octave_synth,
        "long_roots": _long_roots,
        "shuffle_walk": _shuffle_walk,
        "root_fifth": _root_fifth,
    }
)


def generate_bass(ctx: PartContext, rng: random.Random) -> list[Note]:
    """Write the bass part on the straight grid.

    Args:
        ctx: style, meter, chord slots and key.
        rng: the part's seeded random source.

    Returns:
        Notes in time order, pitches in :data:`BASS_LOW`..:data:`BASS_HIGH`;
        the first note of each slot sits on the slot's onset and plays the
        chord's ``bass_pc``.
    """
    pattern = PATTERNS[ctx.style.bass_pattern]
    line = _Line(ctx, rng, ctx.style.bass_center, variant=rng.randrange(3))
    notes: list[Note] = []
    for index, slot in enumerate(ctx.slots):
        notes.extend(pattern(line, index, slot))
    return notes
