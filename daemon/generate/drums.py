"""Drum part: a groove per beat, a crash on phrase starts, fills on phrase ends.

Grooves are written per *beat* of :class:`~daemon.generate.meter.Meter`, not
per 4/4 bar, so every time signature works: the downbeat and the secondary
accent get the kick, weak beats get the backbeat, and the hats/ride follow
each beat's subdivisions (halves, or thirds in compound meters such as 6/8
and 12/8).  A crash marks bar 1 and the first bar of every phrase of
``style.fill_every`` bars; the last bar of each phrase ends with a fill over
its second half.

Pitches follow the General MIDI Level 1 percussion key map (channel 10).
Positions are quarter notes (ppq).
"""

from __future__ import annotations

import random
from types import MappingProxyType
from collections.abc import Callable, Mapping

from daemon.generate.context import PartContext
from daemon.generate.meter import Meter
from daemon.generate.model import Note

__all__ = ["generate_drums", "GROOVES"]

# General MIDI Level 1 percussion key map.
ACOUSTIC_BASS_DRUM = 35
KICK = 36
SIDE_STICK = 37
SNARE = 38
CLAP = 39
LOW_FLOOR_TOM = 41
CLOSED_HAT = 42
HIGH_FLOOR_TOM = 43
PEDAL_HAT = 44
LOW_TOM = 45
OPEN_HAT = 46
LOW_MID_TOM = 47
HI_MID_TOM = 48
CRASH = 49
HIGH_TOM = 50
RIDE = 51
MARACAS = 70
OPEN_TRIANGLE = 81

#: One drum hit: (offset from the bar start in ppq, GM percussion key, velocity).
Hit = tuple[float, int, int]

Groove = Callable[[Meter, random.Random, int], list[Hit]]

_TIME_KEEPERS = frozenset({CLOSED_HAT, OPEN_HAT, RIDE, PEDAL_HAT, MARACAS})
_KICKS = frozenset({KICK, ACOUSTIC_BASS_DRUM})


def _rock(meter: Meter, rng: random.Random, accent: int) -> list[Hit]:
    """Closed hats on every subdivision, kick on strong beats, snare on backbeats."""
    hits: list[Hit] = []
    beats = meter.beats
    for beat in beats:
        for i, sub in enumerate(beat.subdivisions()):
            hits.append((sub, CLOSED_HAT, accent - (15 if i == 0 else 35)))
        hits.append((beat.start, KICK if beat.strength else SNARE, accent))
        upcoming = beats[beat.index + 1] if beat.index + 1 < len(beats) else None
        if upcoming is not None and upcoming.strength and rng.random() < 0.35:
            hits.append((beat.subdivisions()[-1], KICK, accent - 20))
        if rng.random() < 0.2:
            hits.append((rng.choice(beat.subdivisions()[1:]), SNARE, rng.randint(28, 40)))
    if len(beats) == 1:
        hits.append((beats[0].subdivisions()[-1], SNARE, accent))
    if rng.random() < 0.3:
        last = beats[-1].subdivisions()[-1]
        hits = [h for h in hits if not (h[0] == last and h[1] == CLOSED_HAT)]
        hits.append((last, OPEN_HAT, accent - 30))
    return hits


def _jazz(meter: Meter, rng: random.Random, accent: int) -> list[Hit]:
    """Ride "spang-a-lang", hi-hat pedal on backbeats, feathered kick, comping snare."""
    hits: list[Hit] = []
    single = len(meter.beats) == 1
    for beat in meter.beats:
        subs = beat.subdivisions()
        hits.append((beat.start, RIDE, accent - (10 if beat.strength == 0 else 20)))
        if beat.strength == 0 or single:
            hits.append((subs[-1], RIDE, accent - 35))
            hits.append((beat.start, PEDAL_HAT, accent - 25))
        hits.append((beat.start, KICK, 30))
        for sub in subs[1:]:
            if rng.random() < 0.15:
                hits.append((sub, SNARE, rng.randint(30, 55)))
    return hits


def _shuffle(meter: Meter, rng: random.Random, accent: int) -> list[Hit]:
    """Shuffle hats (swung halves, or first and last third), kick/snare backbeat."""
    hits: list[Hit] = []
    beats = meter.beats
    for beat in beats:
        subs = beat.subdivisions()
        played = (subs[0], subs[-1])
        hits.append((played[0], CLOSED_HAT, accent - 20))
        hits.append((played[1], CLOSED_HAT, accent - 45))
        hits.append(
            (beat.start, KICK if beat.strength else SNARE, accent - (0 if beat.strength else 5))
        )
        upcoming = beats[beat.index + 1] if beat.index + 1 < len(beats) else None
        if upcoming is not None and upcoming.strength and rng.random() < 0.25:
            hits.append((played[1], KICK, accent - 25))
    if len(beats) == 1:
        hits.append((beats[0].subdivisions()[-1], SNARE, accent - 5))
    return hits


def _four_on_floor(meter: Meter, rng: random.Random, accent: int) -> list[Hit]:
    """Kick on every beat, clap on backbeats, hats on the off-beats and some 16ths."""
    hits: list[Hit] = []
    open_bar = rng.random() < 0.5
    beats = meter.beats
    for beat in beats:
        subs = beat.subdivisions()
        hits.append((beat.start, KICK, accent))
        if beat.strength == 0:
            hits.append((beat.start, CLAP, accent - 10))
        for sub in subs[1:]:
            hits.append((sub, OPEN_HAT if open_bar else CLOSED_HAT, accent - 25))
        for fine in beat.fine():
            if fine not in subs and rng.random() < 0.3:
                hits.append((fine, CLOSED_HAT, accent - 55))
    if len(beats) == 1:
        hits.append((beats[0].subdivisions()[-1], CLAP, accent - 10))
    return hits


def _ambient(meter: Meter, rng: random.Random, accent: int) -> list[Hit]:
    """Soft kick on the downbeat, quiet hats on the beats, side stick on the accent."""
    beats = meter.beats
    hits: list[Hit] = [(0.0, KICK, accent - 10)]
    has_secondary = any(b.strength == 1 for b in beats)
    for beat in beats:
        hits.append((beat.start, CLOSED_HAT, rng.randint(accent - 35, accent - 25)))
        if beat.strength == 1 or (
            not has_secondary and len(beats) > 1 and beat.index == len(beats) - 1
        ):
            hits.append((beat.start, SIDE_STICK, accent - 20))
        if rng.random() < 0.2:
            hits.append((beat.subdivisions()[-1], MARACAS, accent - 35))
    return hits


def _classical(meter: Meter, rng: random.Random, accent: int) -> list[Hit]:
    """Orchestral bass drum on the strong beats, soft cymbal on every beat, triangle."""
    hits: list[Hit] = [(0.0, ACOUSTIC_BASS_DRUM, accent)]
    for beat in meter.beats:
        if beat.strength == 1:
            hits.append((beat.start, ACOUSTIC_BASS_DRUM, accent - 15))
        hits.append((beat.start, RIDE, accent - 30))
    if rng.random() < 0.5:
        hits.append((0.0, OPEN_TRIANGLE, accent - 25))
    return hits


#: Groove name (``Style.drum_groove``) -> function(meter, rng, accent velocity) -> hits of one bar.
GROOVES: Mapping[str, Groove] = MappingProxyType(
    {
        "rock": _rock,
        "jazz": _jazz,
        "shuffle": _shuffle,
        "four_on_floor": _four_on_floor,
        "ambient": _ambient,
        "classical": _classical,
    }
)

#: Fill voice per groove: (use the fine 16th-level grid, drums in order,
#: start and end velocity offsets).
_FILLS: Mapping[str, tuple[bool, tuple[int, ...], int, int]] = MappingProxyType(
    {
        "rock": (False, (SNARE, SNARE, HIGH_TOM, HI_MID_TOM, LOW_TOM, HIGH_FLOOR_TOM), -30, 5),
        "shuffle": (False, (SNARE, HIGH_TOM, HI_MID_TOM, LOW_TOM, HIGH_FLOOR_TOM), -35, 0),
        "jazz": (False, (SNARE, SNARE, SNARE, LOW_TOM, HIGH_FLOOR_TOM), -40, 0),
        "four_on_floor": (True, (SNARE,), -60, 5),
        "ambient": (False, (LOW_TOM, LOW_FLOOR_TOM), -30, -5),
        "classical": (True, (LOW_FLOOR_TOM,), -45, 0),
    }
)


def _fill(meter: Meter, rng: random.Random, groove: str, accent: int) -> tuple[float, list[Hit]]:
    """Hits of a fill over the second half of the bar; returns (fill start offset, hits)."""
    beats = meter.beats[len(meter.beats) // 2 :] if len(meter.beats) > 1 else meter.beats
    fine, voices, vel_from, vel_to = _FILLS[groove]
    grid = [t for beat in beats for t in (beat.fine() if fine else beat.subdivisions())]
    hits: list[Hit] = []
    last = len(grid) - 1
    for i, t in enumerate(grid):
        if 0 < i < last and rng.random() < 0.2:
            continue
        fraction = i / last if last else 1.0
        voice = voices[min(len(voices) - 1, int(fraction * len(voices)))]
        velocity = accent + round(vel_from + (vel_to - vel_from) * fraction)
        hits.append((t, voice, velocity))
    return beats[0].start, hits


def generate_drums(ctx: PartContext, rng: random.Random) -> list[Note]:
    """Write the drum part on the straight grid.

    Args:
        ctx: style, meter and bar count (chords are not used).
        rng: the part's seeded random source (embellishments and fills).

    Returns:
        Notes (unsorted) with GM percussion keys as pitches; every hit lasts
        at most 0.1 quarter notes and at most 1/12 of the shortest beat, so
        hits of one drum never overlap.
    """
    style = ctx.style
    meter = ctx.meter
    groove = GROOVES[style.drum_groove]
    accent = style.drums_velocity
    duration = min(0.1, min(b.length for b in meter.beats) / 12.0)
    notes: list[Note] = []
    for bar in range(ctx.bars):
        hits = groove(meter, rng, accent)
        if bar % style.fill_every == style.fill_every - 1:
            fill_start, fill_hits = _fill(meter, rng, style.drum_groove, accent)
            hits = [h for h in hits if h[0] < fill_start or (h[1] in _KICKS and h[0] == fill_start)]
            hits.extend(fill_hits)
        if bar % style.fill_every == 0:
            hits = [h for h in hits if not (h[0] == 0.0 and h[1] in _TIME_KEEPERS)]
            hits.append(
                (
                    0.0,
                    CRASH,
                    accent if style.drum_groove not in ("ambient", "classical") else accent - 10,
                )
            )
        base = ctx.bar_start(bar)
        notes.extend(
            Note(base + offset, duration, pitch, velocity) for offset, pitch, velocity in hits
        )
    return notes
