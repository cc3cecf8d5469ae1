"""Bass part: the chord's bass note on every chord change, lines in between.

Rules every pattern keeps:

* the first note of every chord slot is the chord's ``bass_pc`` (the slash
  bass when written, else the root), on the slot's onset, and it is the only
  bass note there;
* other strong beats (downbeat, secondary accent) get chord tones;
* passing notes (chromatic, scale of the key, or the next chord's fifth)
  lead into the next chord's bass note, more of them the higher the
  complexity;
* every pitch lies in ``PARTS["bass"].pitch_range`` (E1..G3, MIDI 28..55), the range of
  a four-string bass;
* N.C. slots are silent; the ending bar strikes each chord once and holds it
  (a short stab for "hit" endings); busy patterns end the bar before a new
  section, variation or the ending with a pick-up run into the next chord.

Patterns (``Style.bass_pattern`` / ``bass_pattern_b``): ``walking`` (jazz
quarter notes), ``root_eighths`` (rock; quarters at low energy),
``octave_synth`` (electronic octaves, off-beats or syncopated 16ths),
``long_roots`` (ambient), ``shuffle_walk`` (blues boogie R-3-5-6 / R-b7-6-5
with shuffle pick-ups), ``root_fifth`` (classical half notes), ``funk``
(syncopated 16ths with octaves and dead notes), ``sparse`` (hip-hop/lo-fi:
long roots and a syncopated answer), ``offbeat`` (house: a short root, then
every off-beat), ``bossa`` (dotted root-fifth), ``one_drop`` (reggae: root,
then a melodic figure with rests), ``tumbao`` (salsa: one, the and-of-two,
four), ``chug`` (metal palm-muted 8ths/16ths), ``two_beat`` (country
root-fifth with walk-ups), ``gospel`` (beats with chromatic pick-ups),
``waltz`` (one long note per chord).  Positions are quarter notes (ppq).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ai_band.generate.context import PartContext, Slot
from ai_band.model import PARTS, Note
from ai_band.theory.chords import Chord

__all__ = ["generate_bass", "PATTERNS", "BASS_LOW", "BASS_HIGH"]

#: Lowest and highest bass pitch: E1 and G3 (MIDI note numbers).
BASS_LOW, BASS_HIGH = PARTS["bass"].pitch_range

#: Patterns busy enough to end a fill bar with a pick-up run.
_RUNS = frozenset(
    {"root_eighths", "octave_synth", "funk", "chug", "two_beat", "gospel", "one_drop", "tumbao"}
)


@dataclass
class _Line:
    """Running state of one bass line (local to one generate_bass call)."""

    ctx: PartContext
    rng: random.Random
    last: int
    variant: int = 0
    bar: int = 0
    energy: float = 0.5
    complexity: float = 0.5

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
            near = self.place(pc, current)
            for pitch in (near, near + 12, near - 12):
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

    def octave(self, pitch: int) -> int:
        """``pitch`` an octave up, or down when that leaves the range."""
        return pitch + 12 if pitch + 12 <= BASS_HIGH else pitch - 12

    def strong(self, offset: float) -> bool:
        """True when ``offset`` (ppq from the bar start) starts a downbeat or secondary accent."""
        beat = self.ctx.meter.beat_at(offset)
        return beat.strength > 0 and abs(offset - beat.start) < 1e-9

    def velocity(self, offset: float, base: int) -> int:
        """Velocity: the meter's accent and the bar's energy, plus a little seeded variation."""
        return self.ctx.velocity(base, self.bar, offset) + self.rng.randint(-4, 4)


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
    """Driving eighths (quarters when calm) on the bass note; passing notes into the next chord."""
    ctx = line.ctx
    positions = slot.positions(ctx.meter, "sub" if line.energy >= 0.3 else "beat")
    root = line.place(slot.chord.bass_pc)
    pitches = [root] * len(positions)
    if len(positions) >= 4 and line.rng.random() < 0.1 + 0.5 * line.complexity:
        target = line.place(ctx.next_chord(index).bass_pc, root)
        if target != root:
            pitches[-1] = line.approach(target, root)
    fifth = slot.chord.interval_pc(7)
    if fifth is not None and len(positions) >= 6 and line.rng.random() < 0.2:
        pitches[-3] = line.place(fifth, root)
    if line.energy > 0.75:
        for k, pos in enumerate(positions):
            if k and pitches[k] == root and not line.strong(pos) and line.rng.random() < 0.25:
                pitches[k] = line.octave(root)
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
            if k == 0 or step in (0, 3) or line.rng.random() < 0.15:
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
    chance = 0.2 + 0.3 * line.complexity
    if strong and fifth is not None and slot.duration >= 3.0 and line.rng.random() < chance:
        positions.append(strong[0])
        pitches.append(line.place(fifth, root))
    velocities = [line.velocity(p, ctx.style.bass_velocity) for p in positions]
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
    pickups = 0.3 + 0.5 * line.energy
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
        if pos < pickup < next_pos and line.rng.random() < pickups:
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


def _two_beat(line: _Line, index: int, slot: Slot) -> list[Note]:
    """Country two-beat: root and fifth on the strong beats, quarters with a walk-up when busy."""
    ctx = line.ctx
    busy = line.energy > 0.6
    positions = slot.positions(ctx.meter, "beat" if busy else "strong")
    chord = slot.chord
    first = line.place(chord.bass_pc)
    fifth = chord.interval_pc(7, 6, 8)
    target = line.place(ctx.next_chord(index).bass_pc, first)
    pitches = [first]
    for k in range(1, len(positions)):
        pos = positions[k]
        if (
            k == len(positions) - 1
            and not line.strong(pos)
            and target != first
            and line.rng.random() < 0.3 + 0.5 * line.complexity
        ):
            pitches.append(line.approach(target, pitches[-1]))
        elif line.strong(pos) or not busy:
            pitches.append(line.place(fifth, first - 5) if fifth is not None else first)
        else:
            pitches.append(line.chord_tone(chord, pitches[-1], target))
    velocities = [line.velocity(p, ctx.style.bass_velocity) for p in positions]
    line.last = pitches[-1]
    return _notes(slot, ctx, positions, pitches, velocities, 0.9)


def _riff(
    line: _Line,
    slot: Slot,
    index: int,
    candidates: list[float],
    chance: float,
    legato: float,
    first_length: float | None = None,
) -> list[Note]:
    """The bass note on the onset, then chord tones at some of ``candidates``.

    Strong-beat positions always get chord tones; the last chosen position
    may approach the next chord.  ``first_length`` caps the first note (ppq).
    """
    ctx = line.ctx
    chord = slot.chord
    first = line.place(chord.bass_pc)
    target = line.place(ctx.next_chord(index).bass_pc, first)
    positions = [slot.offset]
    for pos in candidates:
        if slot.offset < pos < slot.end_offset - 1e-9 and (
            line.strong(pos) or line.rng.random() < chance
        ):
            positions.append(pos)
    pitches = [first]
    for k in range(1, len(positions)):
        current = pitches[-1]
        last = k == len(positions) - 1
        if (
            last
            and not line.strong(positions[k])
            and line.rng.random() < 0.2 + 0.4 * line.complexity
        ):
            pitches.append(line.approach(target, current))
        elif line.rng.random() < 0.35:
            pitches.append(first if line.rng.random() < 0.6 else line.octave(first))
        else:
            pitches.append(line.chord_tone(chord, current, target))
    velocities = [line.velocity(p, ctx.style.bass_velocity) for p in positions]
    notes = _notes(slot, ctx, positions, pitches, velocities, legato)
    if first_length is not None and notes and notes[0].duration_ppq > first_length:
        n = notes[0]
        notes[0] = Note(n.start_ppq, first_length, n.pitch, n.velocity)
    line.last = pitches[-1]
    return notes


def _funk(line: _Line, index: int, slot: Slot) -> list[Note]:
    """Funk: syncopated 16ths around the root and its octave, dead notes, short and punchy."""
    ctx = line.ctx
    fine = slot.positions(ctx.meter, "fine")
    chance = 0.2 + 0.3 * line.complexity + 0.2 * line.energy
    notes = _riff(line, slot, index, fine[1:], chance, 0.6)
    out = []
    for n in notes:
        if (
            n.start_ppq != ctx.bar_start(slot.bar) + slot.offset
            and line.rng.random() < 0.15 * line.complexity
        ):
            out.append(
                Note(n.start_ppq, min(n.duration_ppq, 0.1), n.pitch, max(1, n.velocity - 35))
            )
        else:
            out.append(n)
    return out


def _sparse(line: _Line, index: int, slot: Slot) -> list[Note]:
    """Hip-hop / lo-fi: a long root, an answer on the and-of-two or the accent, a pick-up."""
    ctx = line.ctx
    subs = slot.positions(ctx.meter, "sub")
    candidates = [p for p in subs[1:] if not (abs(p - ctx.meter.beat_at(p).start) < 1e-9)]
    candidates += slot.positions(ctx.meter, "strong")[1:]
    chance = 0.1 + 0.25 * line.energy + 0.15 * line.complexity
    return _riff(line, slot, index, sorted(candidates), chance, 0.9)


def _offbeat(line: _Line, index: int, slot: Slot) -> list[Note]:
    """House: a short root on the onset, then the root or its octave on every off-beat."""
    ctx = line.ctx
    meter = ctx.meter
    root = line.place(slot.chord.bass_pc, ctx.style.bass_center)
    positions = [slot.offset]
    for beat in meter.beats:
        off = beat.subdivisions()[-1] if not beat.compound else beat.subdivisions()[1]
        if slot.offset < off < slot.end_offset - 1e-9:
            positions.append(off)
    if line.energy > 0.7:
        for pos in slot.positions(meter, "fine"):
            beat = meter.beat_at(pos)
            if (
                pos not in positions
                and pos - beat.start > 0.5 * beat.length
                and line.rng.random() < 0.2
            ):
                positions.append(pos)
        positions.sort()
    pitches = [root] + [
        line.octave(root) if line.rng.random() < 0.2 + 0.3 * line.complexity else root
        for _ in positions[1:]
    ]
    velocities = [line.velocity(p, ctx.style.bass_velocity) for p in positions]
    notes = _notes(slot, ctx, positions, pitches, velocities, 0.6)
    if notes:
        n = notes[0]
        notes[0] = Note(n.start_ppq, min(n.duration_ppq, 0.25), n.pitch, n.velocity)
    line.last = root
    return notes


def _bossa(line: _Line, index: int, slot: Slot) -> list[Note]:
    """Bossa nova: root (dotted quarter) and the fifth on the and-of-two, repeated per half bar."""
    ctx = line.ctx
    chord = slot.chord
    root = line.place(chord.bass_pc)
    fifth = chord.interval_pc(7, 6, 8)
    fifth_pitch = line.place(fifth, root - 5) if fifth is not None else root
    positions: list[float] = [slot.offset]
    pitches = [root]
    for beat in ctx.meter.beats:
        if beat.index % 2 == 0 and slot.offset < beat.start < slot.end_offset - 1e-9:
            positions.append(beat.start)
            pitches.append(fifth_pitch if len(positions) % 2 == 0 else root)
        if beat.index % 2 == 1:
            pos = beat.subdivisions()[-1]
            if slot.offset < pos < slot.end_offset - 1e-9:
                positions.append(pos)
                pitches.append(fifth_pitch if pitches[-1] == root else root)
    order = sorted(range(len(positions)), key=positions.__getitem__)
    positions = [positions[i] for i in order]
    pitches = [pitches[i] for i in order]
    for k in range(1, len(positions)):
        if line.strong(positions[k]) and pitches[k] % 12 not in chord.pitch_classes:
            pitches[k] = root
    velocities = [line.velocity(p, ctx.style.bass_velocity) for p in positions]
    line.last = pitches[-1]
    return _notes(slot, ctx, positions, pitches, velocities, 0.92)


def _one_drop(line: _Line, index: int, slot: Slot) -> list[Note]:
    """Reggae: the root, then a melodic figure of chord and scale tones with rests between."""
    ctx = line.ctx
    subs = slot.positions(ctx.meter, "sub")
    chance = 0.3 + 0.25 * line.complexity + 0.15 * line.energy
    first_beat = ctx.meter.beat_at(slot.offset)
    return _riff(line, slot, index, subs[1:], chance, 0.75, first_beat.length)


def _tumbao(line: _Line, index: int, slot: Slot) -> list[Note]:
    """Salsa tumbao: a short root on one, the fifth on the and-of-two, the root on four, held."""
    ctx = line.ctx
    beats = ctx.meter.beats
    chord = slot.chord
    root = line.place(chord.bass_pc)
    fifth = chord.interval_pc(7, 6, 8)
    positions = [slot.offset]
    pitches = [root]
    if len(beats) >= 2:
        pos = beats[1].subdivisions()[-1]
        if slot.offset < pos < slot.end_offset - 1e-9:
            positions.append(pos)
            pitches.append(line.place(fifth, root) if fifth is not None else root)
    if len(beats) >= 3:
        pos = beats[-1].start
        if positions[-1] < pos < slot.end_offset - 1e-9:
            positions.append(pos)
            pitches.append(line.octave(root) if line.rng.random() < 0.4 else root)
    velocities = [line.velocity(p, ctx.style.bass_velocity) for p in positions]
    notes = _notes(slot, ctx, positions, pitches, velocities, 0.95)
    if len(notes) > 1:
        n = notes[0]
        notes[0] = Note(
            n.start_ppq, min(n.duration_ppq, beats[0].length * 0.9), n.pitch, n.velocity
        )
    line.last = pitches[-1]
    return notes


def _chug(line: _Line, index: int, slot: Slot) -> list[Note]:
    """Metal: palm-muted 8ths (16ths when hot) locked to the root, fifth jumps, gallops."""
    ctx = line.ctx
    level = "fine" if line.energy >= 0.8 else "sub"
    positions = slot.positions(ctx.meter, level)
    root = line.place(slot.chord.bass_pc, ctx.style.bass_center)
    fifth = slot.chord.interval_pc(7)
    pitches = [root] * len(positions)
    for k, pos in enumerate(positions):
        if (
            k
            and not line.strong(pos)
            and fifth is not None
            and line.rng.random() < 0.1 * line.complexity
        ):
            pitches[k] = line.place(fifth, root)
    velocities = [line.velocity(p, ctx.style.bass_velocity) for p in positions]
    line.last = root
    return _notes(slot, ctx, positions, pitches, velocities, 0.7)


def _gospel(line: _Line, index: int, slot: Slot) -> list[Note]:
    """Gospel: chord tones and octaves on the beats, chromatic pick-ups on the last subdivision."""
    ctx = line.ctx
    meter = ctx.meter
    chord = slot.chord
    beats = slot.positions(meter, "beat")
    first = line.place(chord.bass_pc)
    target = line.place(ctx.next_chord(index).bass_pc, first)
    positions: list[float] = []
    pitches: list[int] = []
    chance = 0.2 + 0.4 * line.complexity
    for k, pos in enumerate(beats):
        if k == 0:
            pitch = first
        elif line.strong(pos):
            pitch = line.chord_tone(chord, pitches[-1], target)
        else:
            pitch = (
                line.octave(first)
                if line.rng.random() < 0.4
                else line.chord_tone(chord, pitches[-1], target)
            )
        positions.append(pos)
        pitches.append(pitch)
        nxt = beats[k + 1] if k + 1 < len(beats) else slot.end_offset
        pickup = meter.beat_at(pos).subdivisions()[-1]
        if pos < pickup < nxt - 1e-9 and line.rng.random() < chance:
            goal = target if k + 1 == len(beats) else pitch
            positions.append(pickup)
            pitches.append(goal - 1 if goal - 1 >= BASS_LOW and goal - 1 != pitch else goal + 1)
    velocities = [line.velocity(p, ctx.style.bass_velocity) for p in positions]
    line.last = pitches[-1]
    return _notes(slot, ctx, positions, pitches, velocities, 0.85)


def _waltz(line: _Line, index: int, slot: Slot) -> list[Note]:
    """Waltz: one long bass note per chord; a fifth pick-up on the last beat when busy."""
    ctx = line.ctx
    root = line.place(slot.chord.bass_pc)
    positions = [slot.offset]
    pitches = [root]
    last_beat = ctx.meter.beats[-1].start
    fifth = slot.chord.interval_pc(7, 6, 8)
    if (
        len(ctx.meter.beats) >= 3
        and fifth is not None
        and slot.offset < last_beat < slot.end_offset - 1e-9
        and line.rng.random() < 0.3 * line.energy + 0.3 * line.complexity
    ):
        positions.append(last_beat)
        pitches.append(line.place(fifth, root - 5))
    velocities = [line.velocity(p, ctx.style.bass_velocity) for p in positions]
    line.last = root
    return _notes(slot, ctx, positions, pitches, velocities, 0.9)


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
        "funk": _funk,
        "sparse": _sparse,
        "offbeat": _offbeat,
        "bossa": _bossa,
        "one_drop": _one_drop,
        "tumbao": _tumbao,
        "chug": _chug,
        "two_beat": _two_beat,
        "gospel": _gospel,
        "waltz": _waltz,
    }
)


def _ending(line: _Line, slot: Slot) -> list[Note]:
    """The ending: the bass note struck once and held ("ring") or stabbed ("hit")."""
    ctx = line.ctx
    pitch = line.place(slot.chord.bass_pc)
    length = slot.duration * 0.98
    if ctx.style.ending == "hit":
        length = min(length, ctx.meter.beats[0].length * 0.75)
    velocity = line.velocity(slot.offset, ctx.style.bass_velocity) + 6
    line.last = pitch
    return [Note(ctx.bar_start(slot.bar) + slot.offset, length, pitch, velocity)]


def _run(line: _Line, index: int, slot: Slot, notes: list[Note]) -> list[Note]:
    """Replace the notes of the slot's last beat by a two-note pick-up into the next chord."""
    ctx = line.ctx
    beat = ctx.meter.beats[-1]
    if slot.offset >= beat.start or slot.end_offset < ctx.meter.bar_length - 1e-9:
        return notes
    base = ctx.bar_start(slot.bar)
    subs = beat.subdivisions()
    target = line.place(ctx.next_chord(index).bass_pc)
    kept = [n for n in notes if n.start_ppq < base + beat.start - 1e-9]
    kept = [
        Note(n.start_ppq, min(n.duration_ppq, base + beat.start - n.start_ppq), n.pitch, n.velocity)
        for n in kept
    ]
    step = subs[1] - subs[0]
    start_pitch = target - 2 if line.rng.random() < 0.5 else target + 2
    pitches = [start_pitch, target - 1 if start_pitch < target else target + 1]
    if len(subs) == 3:
        pitches = [target - 3 if start_pitch < target else target + 3] + pitches
    for k, pos in enumerate(subs):
        pitch = min(BASS_HIGH, max(BASS_LOW, pitches[k]))
        velocity = line.velocity(pos, ctx.style.bass_velocity) + 4
        kept.append(Note(base + pos, step * 0.85, pitch, velocity))
    return kept


def _boundary(ctx: PartContext, bar: int) -> bool:
    """True when the next bar starts a new section or variation (where the bass picks up)."""
    if bar + 1 >= ctx.bars:
        return False
    here, nxt = ctx.bar_plan(bar), ctx.bar_plan(bar + 1)
    return nxt.section_bar == 0 or nxt.variation != here.variation


def generate_bass(ctx: PartContext, rng: random.Random) -> list[Note]:
    """Write the bass part on the straight grid.

    Args:
        ctx: style, meter, chord slots, key and plan.
        rng: the part's seeded random source.

    Returns:
        Notes in time order, pitches in :data:`BASS_LOW`..:data:`BASS_HIGH`;
        the first note of each sounding slot sits on the slot's onset and
        plays the chord's ``bass_pc``.
    """
    style = ctx.style
    pattern_a = PATTERNS[style.bass_pattern]
    pattern_b = PATTERNS[style.bass_pattern_b or style.bass_pattern]
    runs = style.bass_pattern in _RUNS
    line = _Line(ctx, rng, style.bass_center, variant=rng.randrange(3))
    line.complexity = float(ctx.complexity)  # type: ignore[arg-type]
    notes: list[Note] = []
    slots = ctx.slots
    for index, slot in enumerate(slots):
        if slot.is_rest:
            continue
        plan = ctx.bar_plan(slot.bar)
        line.bar = slot.bar
        line.energy = plan.energy
        if plan.variation == "ending":
            notes.extend(_ending(line, slot))
            continue
        pattern = pattern_b if plan.variation == "B" else pattern_a
        played = pattern(line, index, slot)
        last_in_bar = index + 1 == len(slots) or slots[index + 1].bar != slot.bar
        if runs and plan.fill and last_in_bar and _boundary(ctx, slot.bar):
            if rng.random() < 0.4 + 0.4 * plan.energy:
                played = _run(line, index, slot, played)
        notes.extend(played)
    return notes
