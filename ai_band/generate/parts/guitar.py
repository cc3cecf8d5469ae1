"""Guitar part: fretboard chord shapes, strummed or picked.

**Shapes.**  Chords are voiced as a guitarist frets them in standard tuning
(E2 A2 D3 G3 B3 E4, MIDI 40 45 50 55 59 64), up to the 12th fret, so every
note lies in ``PARTS["guitar"].pitch_range`` (E2..E5).  :func:`chord_shapes` searches
each hand position (a window of four frets, open strings allowed): the
lowest sounding string plays the chord's bass note (the slash bass, else the
root), every higher string takes the chord tone least covered so far at its
lowest fret in the window, and a string with no chord tone in reach is
muted.  Shapes are scored by what guitarists value: the third and seventh
present, four to six strings, few muted strings in the middle, low
positions; :func:`choose_shape` then picks the shape nearest the previous
one (voice leading on the neck).  Power chords (root, fifth, octave on the
low strings) serve rock and metal.

**Patterns** (``Style.guitar_pattern``, ``guitar_pattern_b`` for B):
``strum`` (down on the beat, up off it; quarters at low energy, 16ths when
hot), ``power`` (palm-muted power-chord 8ths, 16ths when hot, ringing
accents in B), ``funk`` (16th scratches on the top strings with ghosted
muted strums), ``skank`` (short chops on the backbeats, every off-beat when
busy), ``bossa`` (thumb on the bass every half bar, fingers on the bossa
rhythm), ``travis`` (alternating-thumb bass with finger picks; waltz "oom-
pah-pah" in three-beat bars), ``pick`` (fingerpicked arpeggio, strings let
ring), ``four`` (Freddie Green: short three-note chords on every beat).

**Strums.**  A down-strum sounds the strings low to high, an up-strum high
to low (top four strings), each string a few milliseconds after the last
(6 ms at low energy down to 3 ms when hot, 2 ms for chops), converted to
quarter notes at the tempo: :data:`STRUM_MS`.  The spread is an
articulation of a humanized performance; with ``humanize`` 0 every note is
on the grid (strums collapse to block chords).  N.C. slots are silent; the
ending is one down-strum held (or stabbed).  Positions are quarter notes
(ppq).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from functools import lru_cache
from types import MappingProxyType

from ai_band.generate.context import PartContext, Slot
from ai_band.model import PARTS, Note
from ai_band.theory.chords import Chord

__all__ = [
    "generate_guitar",
    "chord_shapes",
    "choose_shape",
    "power_shape",
    "PATTERNS",
    "TUNING",
    "GUITAR_LOW",
    "GUITAR_HIGH",
    "STRUM_MS",
]

#: Open strings of standard tuning, low to high (MIDI note numbers).
TUNING = (40, 45, 50, 55, 59, 64)

#: Highest fret used.
MAX_FRET = 12

#: Lowest and highest guitar pitch: E2 and E5.
GUITAR_LOW, GUITAR_HIGH = PARTS["guitar"].pitch_range

#: Milliseconds between neighbouring strings of a strum at energy 0 and 1, and of a chop.
STRUM_MS = (6.0, 3.0, 2.0)

#: A shape: the sounding strings as ``(string index 0..5, MIDI pitch)``, low to high.
Shape = tuple[tuple[int, int], ...]

#: One strum or pick: (offset from the bar start in ppq, "down" | "up" | "pluck",
#: string indices to sound or None for all, duration in ppq, velocity offset).
Event = tuple[float, str, tuple[int, ...] | None, float, int]


def _score(
    shape: Shape, pcs: tuple[int, ...], third: int | None, seventh: int | None, fret: int
) -> float:
    """Lower is better: missing third/seventh, few strings, inner mutes, high positions."""
    sounding = {p % 12 for _, p in shape}
    cost = 0.0
    if third is not None and third not in sounding:
        cost += 6.0
    if seventh is not None and seventh not in sounding:
        cost += 3.0
    cost += 2.0 * len(set(pcs[:4]) - sounding)
    cost += 2.5 * max(0, 4 - len(shape))
    strings = [s for s, _ in shape]
    cost += 3.0 * (strings[-1] - strings[0] + 1 - len(strings))
    cost += 0.25 * fret
    return cost


@lru_cache(maxsize=2048)
def _shapes(
    pcs: tuple[int, ...], bass_pc: int, third: int | None, seventh: int | None
) -> tuple[tuple[Shape, float], ...]:
    found: dict[Shape, float] = {}
    pcset = set(pcs) | {bass_pc}
    for position in range(0, MAX_FRET - 2):
        frets = [0] + list(range(max(1, position), min(MAX_FRET, position + 3) + 1))
        for bass_string in (0, 1, 2):
            open_pitch = TUNING[bass_string]
            bass_fret = next((f for f in frets if (open_pitch + f) % 12 == bass_pc), None)
            if bass_fret is None:
                continue
            shape: list[tuple[int, int]] = [(bass_string, open_pitch + bass_fret)]
            count = {pc: 0 for pc in pcset}
            count[bass_pc] += 1
            for string in range(bass_string + 1, 6):
                options = [
                    TUNING[string] + f
                    for f in frets
                    if (TUNING[string] + f) % 12 in pcs
                    and all(TUNING[string] + f != p for _, p in shape)
                ]
                if not options:
                    continue
                pitch = min(options, key=lambda p: (count[p % 12], p))
                count[pitch % 12] += 1
                shape.append((string, pitch))
            if len(shape) >= 3:
                key = tuple(shape)
                score = _score(key, pcs, third, seventh, position)
                if score < found.get(key, float("inf")):
                    found[key] = score
    ranked = sorted(found.items(), key=lambda kv: kv[1])
    return tuple(ranked[:12])


def chord_shapes(chord: Chord) -> list[tuple[Shape, float]]:
    """Playable shapes of ``chord``, best first, as ``(shape, cost)``.

    Every shape has three to six strings, its lowest string playing the
    chord's ``bass_pc``, all others chord tones, all pitches in E2..E5.
    """
    third = chord.interval_pc(3, 4)
    seventh = chord.interval_pc(10, 11, 9)
    pcs = tuple(chord.pitch_classes)
    return list(_shapes(pcs, chord.bass_pc, third, seventh))


def choose_shape(chord: Chord, previous: Shape | None) -> Shape:
    """The shape of ``chord`` balancing its own cost and the move from ``previous``.

    The move is the distance between the shapes' average pitches (the hand
    travelling on the neck), weighted 0.4 per semitone.
    """
    options = chord_shapes(chord)
    if not options:  # a chord no window can voice: its tones on the middle strings
        pcs = chord.pitch_classes or (0,)
        return tuple((s, TUNING[s] + (pc - TUNING[s]) % 12) for s, pc in zip((2, 3, 4), pcs * 3))
    if previous is None:
        return options[0][0]
    center = sum(p for _, p in previous) / len(previous)
    return min(
        options,
        key=lambda sc: sc[1] + 0.4 * abs(sum(p for _, p in sc[0]) / len(sc[0]) - center),
    )[0]


def power_shape(chord: Chord) -> Shape | None:
    """Root, fifth and octave on the low strings (E or A string root), or None without a fifth."""
    fifth = chord.interval_pc(7)
    if fifth is None:
        return None
    root = chord.root_pc
    fret_e = (root - TUNING[0]) % 12
    fret_a = (root - TUNING[1]) % 12
    string, fret = (0, fret_e) if fret_e <= 7 else (1, fret_a)
    low = TUNING[string] + fret
    return ((string, low), (string + 1, low + 7), (string + 2, low + 12))


def _top(shape: Shape, n: int) -> tuple[int, ...]:
    return tuple(s for s, _ in shape[-n:])


def _energy(ctx: PartContext, slot: Slot) -> float:
    return ctx.bar_plan(slot.bar).energy


def _strum(ctx: PartContext, slot: Slot, shape: Shape, rng: random.Random) -> list[Event]:
    energy = _energy(ctx, slot)
    level = "beat" if energy < 0.3 else ("fine" if energy > 0.75 else "sub")
    positions = slot.positions(ctx.meter, level)
    ends = positions[1:] + [slot.end_offset]
    events: list[Event] = []
    up_strings = _top(shape, 4)
    for k, (pos, end) in enumerate(zip(positions, ends)):
        beat = ctx.meter.beat_at(pos)
        parts = (6 if beat.compound else 4) if level == "fine" else (3 if beat.compound else 2)
        index = round((pos - beat.start) / beat.length * parts)
        down = index % 2 == 0
        if k and not down and rng.random() < 0.3:
            continue
        events.append(
            (
                pos,
                "down" if down else "up",
                None if down else up_strings,
                (end - pos) * 0.9,
                0 if down else -12,
            )
        )
    return _ring_until_next(events, slot)


def _ring_until_next(events: list[Event], slot: Slot) -> list[Event]:
    """Stretch each event to 0.9 of the gap to the next one (skipped strums leave gaps)."""
    out = []
    for k, (pos, kind, strings, length, vel) in enumerate(events):
        end = events[k + 1][0] if k + 1 < len(events) else slot.end_offset
        out.append(
            (pos, kind, strings, max(length, (end - pos) * 0.9) if length > 0.2 else length, vel)
        )
    return out


def _power(ctx: PartContext, slot: Slot, shape: Shape, rng: random.Random) -> list[Event]:
    energy = _energy(ctx, slot)
    b = ctx.bar_plan(slot.bar).variation == "B"
    positions = slot.positions(ctx.meter, "fine" if energy >= 0.85 else "sub")
    ends = positions[1:] + [slot.end_offset]
    events: list[Event] = []
    for pos, end in zip(positions, ends):
        beat = ctx.meter.beat_at(pos)
        on_beat = abs(pos - beat.start) < 1e-9
        if b and on_beat and beat.strength:
            events.append((pos, "down", None, (end - pos) * 0.95, 6))
        else:
            events.append((pos, "down", None, (end - pos) * 0.45, 0 if on_beat else -8))
    return events


def _funk(ctx: PartContext, slot: Slot, shape: Shape, rng: random.Random) -> list[Event]:
    energy = _energy(ctx, slot)
    chance = 0.25 + 0.3 * energy + 0.15 * float(ctx.complexity)  # type: ignore[arg-type]
    positions = slot.positions(ctx.meter, "fine")
    top = _top(shape, 3)
    events: list[Event] = []
    weak = {b.start for b in ctx.meter.beats if b.strength == 0}
    for k, pos in enumerate(positions):
        beat = ctx.meter.beat_at(pos)
        parts = 6 if beat.compound else 4
        index = round((pos - beat.start) / beat.length * parts)
        kind = "down" if index % 2 == 0 else "up"
        step = beat.length / parts
        if k == 0 or pos in weak or rng.random() < chance:
            events.append((pos, kind, top, step * 0.6, 0))
        elif rng.random() < 0.5:
            events.append((pos, kind, top, step * 0.25, -45))
    return events


def _skank(ctx: PartContext, slot: Slot, shape: Shape, rng: random.Random) -> list[Event]:
    plan = ctx.bar_plan(slot.bar)
    busy = plan.variation == "B" or plan.energy > 0.6
    beats = ctx.meter.beats
    if busy:
        onsets = [b.subdivisions()[-1] if not b.compound else b.subdivisions()[1] for b in beats]
    else:
        onsets = [b.start for b in beats if b.strength == 0] or [beats[0].subdivisions()[-1]]
    onsets = [t for t in onsets if slot.offset <= t < slot.end_offset - 1e-9]
    step = min(b.length for b in beats) / 2
    return [(t, "chop", _top(shape, 3), step * 0.5, 0) for t in onsets]


_BOSSA = frozenset({0, 3, 6, 10, 13})


def _bossa(ctx: PartContext, slot: Slot, shape: Shape, rng: random.Random) -> list[Event]:
    beats = ctx.meter.beats
    events: list[Event] = []
    thumbs = (shape[0][0], shape[1][0] if len(shape) > 3 else shape[0][0])
    fingers = tuple(s for s, _ in shape[-3:] if s not in thumbs) or _top(shape, 2)
    half = beats[0].length * 2
    for k, beat in enumerate(b for b in beats if b.index % 2 == 0):
        if slot.offset <= beat.start < slot.end_offset - 1e-9:
            events.append(
                (
                    beat.start,
                    "pluck",
                    (thumbs[k % 2],),
                    min(half, slot.end_offset - beat.start) * 0.9,
                    4,
                )
            )
    subs = [t for b in beats for t in b.subdivisions()]
    base = (slot.bar % 2) * len(subs)
    for k, t in enumerate(subs):
        if (base + k) % (2 * len(subs)) in _BOSSA and slot.offset <= t < slot.end_offset - 1e-9:
            events.append((t, "pluck", fingers, min(0.75, slot.end_offset - t) * 0.8, -4))
    return events


def _travis(ctx: PartContext, slot: Slot, shape: Shape, rng: random.Random) -> list[Event]:
    meter = ctx.meter
    beats = [b for b in meter.beats if slot.offset <= b.start < slot.end_offset - 1e-9]
    waltz = len(meter.beats) == 3 and not meter.beats[0].compound
    low = shape[0][0]
    alt = shape[1][0] if len(shape) > 3 else low
    fingers = [s for s, _ in shape[-3:] if s not in (low, alt)] or [shape[-1][0]]
    events: list[Event] = []
    if slot.offset not in [b.start for b in beats]:
        events.append(
            (
                slot.offset,
                "pluck",
                (low,),
                min(meter.beat_at(slot.offset).end, slot.end_offset) - slot.offset,
                0,
            )
        )
    for k, beat in enumerate(beats):
        length = min(beat.length, slot.end_offset - beat.start)
        if waltz and beat.strength == 0:
            events.append((beat.start, "pluck", tuple(fingers), length * 0.7, -6))
            continue
        thumb = low if beat.strength or k % 2 == 0 else alt
        events.append((beat.start, "pluck", (thumb,), length * 0.9, 2))
        for j, t in enumerate(beat.subdivisions()[1:]):
            if t < slot.end_offset - 1e-9:
                finger = fingers[(k + j) % len(fingers)]
                events.append((t, "pluck", (finger,), beat.length / 2 * 0.9, -8))
    return events


def _pick(ctx: PartContext, slot: Slot, shape: Shape, rng: random.Random) -> list[Event]:
    energy = _energy(ctx, slot)
    positions = slot.positions(ctx.meter, "fine" if energy > 0.8 else "sub")
    strings = [s for s, _ in shape]
    upper = strings[1:] if len(strings) > 3 else strings
    cycle = [strings[0]] + upper[-3:] + upper[-3:-1][::-1]
    picked = [cycle[k % len(cycle)] for k in range(len(positions))]
    events: list[Event] = []
    for k, (pos, string) in enumerate(zip(positions, picked)):
        later = [positions[j] for j in range(k + 1, len(positions)) if picked[j] == string]
        end = later[0] if later else slot.end_offset
        events.append((pos, "pluck", (string,), (end - pos) * 0.95, 4 if k == 0 else -4))
    return events


def _four(ctx: PartContext, slot: Slot, shape: Shape, rng: random.Random) -> list[Event]:
    strings = tuple(s for s, _ in shape[:3])
    positions = slot.positions(ctx.meter, "beat")
    events: list[Event] = []
    for pos in positions:
        beat = ctx.meter.beat_at(pos)
        events.append((pos, "chop", strings, beat.length * 0.45, 3 if beat.strength == 0 else 0))
    return events


Pattern = Callable[[PartContext, Slot, Shape, random.Random], list[Event]]

#: Pattern name (``Style.guitar_pattern``) -> function(ctx, slot, shape, rng) -> events.
PATTERNS: Mapping[str, Pattern] = MappingProxyType(
    {
        "strum": _strum,
        "power": _power,
        "funk": _funk,
        "skank": _skank,
        "bossa": _bossa,
        "travis": _travis,
        "pick": _pick,
        "four": _four,
    }
)


def _render(
    ctx: PartContext,
    slot: Slot,
    shape: Shape,
    events: list[Event],
    rng: random.Random,
    spread: float,
) -> list[Note]:
    """Turn events into notes; strums spread ``spread`` ppq per string (0: block chords)."""
    base = ctx.bar_start(slot.bar)
    pitch_of = dict(shape)
    notes = []
    level = ctx.style.guitar_velocity
    for pos, kind, strings, length, vel in events:
        chosen = [s for s in (strings if strings is not None else pitch_of) if s in pitch_of]
        chosen.sort(reverse=kind == "up")
        velocity = ctx.velocity(level, slot.bar, pos) + vel + rng.randint(-4, 4)
        step = (
            0.0
            if kind == "pluck"
            else (spread if kind != "chop" else spread * STRUM_MS[2] / STRUM_MS[0])
        )
        if len(chosen) > 1:
            step = min(step, length * 0.5 / (len(chosen) - 1))
        end = base + pos + length
        for k, string in enumerate(chosen):
            onset = base + pos + k * step
            notes.append(Note(onset, end - onset, pitch_of[string], velocity - 2 * k))
    return notes


def generate_guitar(ctx: PartContext, rng: random.Random) -> list[Note]:
    """Write the guitar part.

    Args:
        ctx: style, meter, chord slots, plan, tempo (for strum spreads in ms) and humanize.
        rng: the part's seeded random source.

    Returns:
        Notes in :data:`GUITAR_LOW`..:data:`GUITAR_HIGH`, every one a chord
        tone or the chord's bass note; with ``ctx.humanize`` 0 every onset is
        on the grid.
    """
    style = ctx.style
    pattern_a = PATTERNS[style.guitar_pattern]
    pattern_b = PATTERNS[style.guitar_pattern_b or style.guitar_pattern]
    previous: Shape | None = None
    notes: list[Note] = []
    for slot in ctx.slots:
        if slot.is_rest:
            continue
        plan = ctx.bar_plan(slot.bar)
        pattern = pattern_b if plan.variation == "B" else pattern_a
        shape = choose_shape(slot.chord, previous)
        previous = shape
        if pattern is _power:
            shape = power_shape(slot.chord) or shape[:3]
        spread = 0.0
        if ctx.humanize > 0.0:
            ms = STRUM_MS[0] + (STRUM_MS[1] - STRUM_MS[0]) * plan.energy
            spread = ctx.ms_to_ppq(ms)
        if plan.variation == "ending":
            length = slot.duration * 0.98
            if style.ending == "hit":
                length = min(length, ctx.meter.beats[0].length * 0.75)
            events: list[Event] = [(slot.offset, "down", None, length, 8)]
        else:
            events = pattern(ctx, slot, shape, rng)
        notes.extend(_render(ctx, slot, shape, events, rng, spread))
    return notes
