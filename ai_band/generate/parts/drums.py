"""Drum part: a groove per beat, crashes on phrase starts, fills on phrase ends, an ending.

Grooves are written per *beat* of :class:`~ai_band.theory.meter.Meter`, not
per 4/4 bar, so every time signature works: the downbeat and the secondary
accent get the kick, weak beats get the backbeat, and the hats/ride follow
each beat's subdivisions (halves, or thirds in compound meters such as 6/8
and 12/8, which are therefore felt in dotted quarters).

Every bar follows the arrangement plan (:mod:`ai_band.generate.arrange`):

* **A / B**: each groove has two variations (B usually moves from hats to
  ride, adds kicks or ghost notes);
* **intro**: the groove thinned to time-keeping, kicks on the strong beats
  and a side stick instead of the snare;
* **energy** sets the time-keeping density (quarters below 0.3, the
  groove's own subdivision, 16ths above 0.72 for rock-like grooves), the
  velocity and the fill (last beat only below 0.35, the second half of the
  bar above, on 16ths with kicks under it from 0.75);
* **complexity** adds ghost notes and kick pick-ups;
* **fill** bars end with a fill, **crash** bars open with a crash;
* the **ending** bar strikes kick and crash on its chord onsets ("hit" styles
  add the snare) and lets them ring;
* N.C. (no chord) slots are rests unless ``Style.nc_drums``.

Pitches follow the General MIDI Level 1 percussion key map (channel 10; GM1
spec, MMA 1991, "General MIDI Percussion Key Map").  Positions are quarter
notes (ppq).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ai_band.generate.context import ENERGY_VELOCITY, PartContext
from ai_band.model import Note
from ai_band.theory.meter import Beat, Meter

__all__ = ["generate_drums", "GROOVES", "Feel"]

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
CHINA = 52
RIDE_BELL = 53
TAMBOURINE = 54
COWBELL = 56
MUTE_HI_CONGA = 62
OPEN_HI_CONGA = 63
LOW_CONGA = 64
HIGH_TIMBALE = 65
LOW_TIMBALE = 66
MARACAS = 70
CLAVES = 75
OPEN_TRIANGLE = 81

#: One drum hit: (offset from the bar start in ppq, GM percussion key, velocity).
Hit = tuple[float, int, int]


@dataclass(frozen=True)
class Feel:
    """How one bar is played.

    Attributes:
        energy: 0..1 (time-keeping density, extra kicks).
        complexity: 0..1 (ghost notes, syncopation).
        b: the B variation.
        bar: 0-based bar index (two-bar patterns such as the clave use its parity).
    """

    energy: float
    complexity: float
    b: bool
    bar: int = 0


Groove = Callable[[Meter, random.Random, int, Feel], list[Hit]]

_TIME_KEEPERS = frozenset({CLOSED_HAT, OPEN_HAT, RIDE, PEDAL_HAT, MARACAS, RIDE_BELL, COWBELL})
_KICKS = frozenset({KICK, ACOUSTIC_BASS_DRUM})
_SNARES = frozenset({SNARE, CLAP})


def _keep(beat: Beat, energy: float, lo: float = 0.3, hi: float = 0.72) -> tuple[float, ...]:
    """Time-keeping positions of a beat: quarters, the subdivision, or 16ths by energy."""
    if energy < lo:
        return (beat.start,)
    if energy > hi and not beat.compound:
        return beat.fine()
    return beat.subdivisions()


def _next_strong(meter: Meter, beat: Beat) -> bool:
    nxt = beat.index + 1
    return nxt < len(meter.beats) and meter.beats[nxt].strength > 0


def _rock(meter: Meter, rng: random.Random, accent: int, feel: Feel) -> list[Hit]:
    """Hats (ride in B) on every subdivision, kick on strong beats, snare on backbeats."""
    hits: list[Hit] = []
    beats = meter.beats
    keeper = RIDE if feel.b else CLOSED_HAT
    for beat in beats:
        subs = beat.subdivisions()
        for t in _keep(beat, feel.energy):
            hits.append((t, keeper, accent - (15 if t == beat.start else 35)))
        hits.append((beat.start, KICK if beat.strength else SNARE, accent))
        if _next_strong(meter, beat) and rng.random() < 0.2 + 0.35 * feel.complexity:
            hits.append((subs[-1], KICK, accent - 20))
        if rng.random() < 0.1 + 0.25 * feel.complexity:
            hits.append((rng.choice(subs[1:]), SNARE, rng.randint(28, 40)))
    if len(beats) == 1:
        hits.append((beats[0].subdivisions()[-1], SNARE, accent))
    if rng.random() < 0.3:
        last = beats[-1].subdivisions()[-1]
        hits = [h for h in hits if not (h[0] == last and h[1] == keeper)]
        hits.append((last, OPEN_HAT, accent - 30))
    return hits


def _jazz(meter: Meter, rng: random.Random, accent: int, feel: Feel) -> list[Hit]:
    """Ride "spang-a-lang", hi-hat pedal on backbeats, feathered kick, comping snare."""
    hits: list[Hit] = []
    single = len(meter.beats) == 1
    comp = 0.08 + 0.15 * feel.complexity + (0.1 if feel.b else 0.0)
    for beat in meter.beats:
        subs = beat.subdivisions()
        hits.append((beat.start, RIDE, accent - (10 if beat.strength == 0 else 20)))
        if beat.strength == 0 or single or feel.energy > 0.8:
            hits.append((subs[-1], RIDE, accent - 35))
            hits.append((beat.start, PEDAL_HAT, accent - 25))
        hits.append((beat.start, KICK, 30))
        for sub in subs[1:]:
            if rng.random() < comp:
                hits.append((sub, SNARE, rng.randint(30, 55)))
        if feel.b and rng.random() < 0.1 * feel.complexity:
            hits.append((subs[-1], KICK, accent - 30))
    return hits


def _swing(meter: Meter, rng: random.Random, accent: int, feel: Feel) -> list[Hit]:
    """Big-band swing: ride spang-a-lang, feathered kick on every beat, hats on 2 and 4, bombs."""
    hits = _jazz(meter, rng, accent, feel)
    hits = [h for h in hits if h[1] != KICK]
    for beat in meter.beats:
        hits.append((beat.start, KICK, 42 + (6 if feel.b else 0)))
        if feel.b and beat.strength == 0 and rng.random() < 0.2 + 0.3 * feel.complexity:
            hits.append((beat.subdivisions()[-1], SNARE, accent - 20))
    return hits


def _shuffle(meter: Meter, rng: random.Random, accent: int, feel: Feel) -> list[Hit]:
    """Shuffle hats (ride in B) on swung halves, or first and last third; kick/snare backbeat."""
    hits: list[Hit] = []
    beats = meter.beats
    keeper = RIDE if feel.b else CLOSED_HAT
    for beat in beats:
        subs = beat.subdivisions()
        played = (subs[0], subs[-1]) if feel.energy >= 0.25 else (subs[0],)
        hits.append((played[0], keeper, accent - 20))
        if len(played) > 1:
            hits.append((played[1], keeper, accent - 45))
        hits.append(
            (beat.start, KICK if beat.strength else SNARE, accent - (0 if beat.strength else 5))
        )
        if _next_strong(meter, beat) and rng.random() < 0.15 + 0.2 * feel.complexity:
            hits.append((subs[-1], KICK, accent - 25))
    if len(beats) == 1:
        hits.append((beats[0].subdivisions()[-1], SNARE, accent - 5))
    return hits


def _four_on_floor(meter: Meter, rng: random.Random, accent: int, feel: Feel) -> list[Hit]:
    """Kick on every beat, clap on backbeats, hats on the off-beats and some 16ths."""
    hits: list[Hit] = []
    open_bar = feel.b or rng.random() < 0.5
    beats = meter.beats
    sixteenths = 0.15 + 0.3 * feel.energy
    for beat in beats:
        subs = beat.subdivisions()
        hits.append((beat.start, KICK, accent))
        if beat.strength == 0:
            hits.append((beat.start, CLAP, accent - 10))
        for sub in subs[1:]:
            hits.append((sub, OPEN_HAT if open_bar else CLOSED_HAT, accent - 25))
        for fine in beat.fine():
            if fine not in subs and rng.random() < sixteenths:
                hits.append((fine, CLOSED_HAT, accent - 55))
    if len(beats) == 1:
        hits.append((beats[0].subdivisions()[-1], CLAP, accent - 10))
    return hits


def _house(meter: Meter, rng: random.Random, accent: int, feel: Feel) -> list[Hit]:
    """Kick on every beat, clap on backbeats, open hat on every off-beat, 16th shaker (B: ride)."""
    hits: list[Hit] = []
    beats = meter.beats
    for beat in beats:
        subs = beat.subdivisions()
        hits.append((beat.start, KICK, accent))
        if beat.strength == 0 or len(beats) == 1:
            hits.append((beat.start if len(beats) > 1 else subs[-1], CLAP, accent - 8))
        hits.append((subs[-1] if len(subs) == 2 else subs[1], OPEN_HAT, accent - 22))
        if feel.energy > 0.55:
            for fine in beat.fine():
                if fine not in subs:
                    hits.append((fine, MARACAS, accent - 50 + rng.randint(-4, 4)))
        if feel.b:
            hits.append((beat.start, RIDE, accent - 30))
            if beat.strength == 0:
                hits.append((beat.start, TAMBOURINE, accent - 30))
    return hits


def _ambient(meter: Meter, rng: random.Random, accent: int, feel: Feel) -> list[Hit]:
    """Soft kick on the downbeat, quiet hats on the beats, side stick on the accent."""
    beats = meter.beats
    hits: list[Hit] = [(0.0, KICK, accent - 10)]
    has_secondary = any(b.strength == 1 for b in beats)
    for beat in beats:
        hits.append((beat.start, CLOSED_HAT, rng.randint(accent - 35, accent - 25)))
        if feel.b and feel.energy > 0.3:
            hits.append((beat.subdivisions()[-1], CLOSED_HAT, accent - 42))
        if beat.strength == 1 or (
            not has_secondary and len(beats) > 1 and beat.index == len(beats) - 1
        ):
            hits.append((beat.start, SIDE_STICK, accent - 20))
        if rng.random() < 0.2:
            hits.append((beat.subdivisions()[-1], MARACAS, accent - 35))
    return hits


def _classical(meter: Meter, rng: random.Random, accent: int, feel: Feel) -> list[Hit]:
    """Orchestral bass drum on the strong beats, soft cymbal on every beat (8ths in B), triangle."""
    hits: list[Hit] = [(0.0, ACOUSTIC_BASS_DRUM, accent)]
    for beat in meter.beats:
        if beat.strength == 1:
            hits.append((beat.start, ACOUSTIC_BASS_DRUM, accent - 15))
        for t in beat.subdivisions() if feel.b else (beat.start,):
            hits.append((t, RIDE, accent - (30 if t == beat.start else 40)))
    if rng.random() < (0.8 if feel.b else 0.5):
        hits.append((0.0, OPEN_TRIANGLE, accent - 25))
    return hits


def _funk(meter: Meter, rng: random.Random, accent: int, feel: Feel) -> list[Hit]:
    """16th hats, syncopated kick, backbeat snare with ghost notes; B opens the hat."""
    hits: list[Hit] = []
    beats = meter.beats
    ghost = 0.15 + 0.45 * feel.complexity
    for beat in beats:
        fine = beat.fine()
        subs = beat.subdivisions()
        for t in _keep(beat, feel.energy, 0.25, 0.45):
            hits.append((t, CLOSED_HAT, accent - (18 if t in subs else 40)))
        if beat.strength:
            hits.append((beat.start, KICK, accent))
            if rng.random() < 0.3 + 0.4 * feel.energy:
                hits.append((fine[len(fine) // 2], KICK, accent - 15))
        else:
            hits.append((beat.start, SNARE, accent))
            if rng.random() < 0.4 * feel.complexity:
                hits.append((fine[-1], KICK, accent - 20))
        for t in fine[1:]:
            if t not in subs and rng.random() < ghost:
                hits.append((t, SNARE, rng.randint(22, 38)))
    if len(beats) == 1:
        hits.append((beats[0].subdivisions()[-1], SNARE, accent))
    if feel.b:
        last = beats[-1].subdivisions()[-1]
        hits = [h for h in hits if not (h[0] == last and h[1] == CLOSED_HAT)]
        hits.append((last, OPEN_HAT, accent - 20))
    return hits


def _hiphop(meter: Meter, rng: random.Random, accent: int, feel: Feel) -> list[Hit]:
    """Boom-bap: kick on one and the and-of-two, hard backbeat snare, 8th hats (16ths when hot)."""
    hits: list[Hit] = []
    beats = meter.beats
    for beat in beats:
        subs = beat.subdivisions()
        for t in _keep(beat, feel.energy, 0.2, 0.75):
            hits.append(
                (t, CLOSED_HAT, accent - (25 if t == beat.start else 45) + rng.randint(-5, 5))
            )
        if beat.strength == 2:
            hits.append((beat.start, KICK, accent))
        elif beat.strength == 1:
            if rng.random() < 0.5:
                hits.append((beat.start, KICK, accent - 10))
            else:
                hits.append((subs[-1], KICK, accent - 10))
        else:
            hits.append((beat.start, SNARE, accent))
        if _next_strong(meter, beat) or beat.index == 0:
            if rng.random() < 0.45 + 0.3 * feel.complexity:
                hits.append((subs[-1], KICK, accent - 12))
    if len(beats) == 1:
        hits.append((beats[0].subdivisions()[-1], SNARE, accent))
    if feel.b:
        hits.append((beats[-1].subdivisions()[-1], OPEN_HAT, accent - 30))
    return hits


def _lofi(meter: Meter, rng: random.Random, accent: int, feel: Feel) -> list[Hit]:
    """Lazy lo-fi boom-bap: soft kick, side stick (snare in B) on backbeats, skipping hats."""
    hits: list[Hit] = []
    beats = meter.beats
    back = SNARE if feel.b else SIDE_STICK
    for beat in beats:
        subs = beat.subdivisions()
        for t in _keep(beat, feel.energy, 0.15, 0.85):
            if t != beat.start and rng.random() < 0.15:
                continue
            hits.append(
                (t, CLOSED_HAT, accent - (30 if t == beat.start else 48) + rng.randint(-6, 6))
            )
        if beat.strength:
            hits.append((beat.start, KICK, accent - 5))
        else:
            hits.append((beat.start, back, accent - (0 if feel.b else 8)))
        if beat.index == 0 and rng.random() < 0.5 + 0.3 * feel.complexity:
            hits.append((subs[-1], KICK, accent - 18))
    if len(beats) == 1:
        hits.append((beats[0].subdivisions()[-1], back, accent))
    return hits


def _clave_hits(
    meter: Meter, feel: Feel, pattern: tuple[int, ...], drum: int, velocity: int
) -> list[Hit]:
    """A two-bar pattern of 16 subdivisions (8ths in 4/4) laid over this bar's subdivisions."""
    subs = [t for beat in meter.beats for t in beat.subdivisions()]
    base = (feel.bar % 2) * len(subs)
    chosen = {p % (2 * len(subs)) for p in pattern}
    return [(t, drum, velocity) for k, t in enumerate(subs) if base + k in chosen]


def _bossa(meter: Meter, rng: random.Random, accent: int, feel: Feel) -> list[Hit]:
    """Bossa nova: soft 8ths on hats (ride in B), dotted kick, two-bar cross-stick clave."""
    hits: list[Hit] = []
    beats = meter.beats
    keeper = RIDE if feel.b else CLOSED_HAT
    for beat in beats:
        subs = beat.subdivisions()
        for t in _keep(beat, feel.energy, 0.2, 0.95):
            hits.append((t, keeper, accent - (28 if t == beat.start else 38)))
        if beat.index % 2 == 0:
            hits.append((beat.start, KICK, accent - 15))
        else:
            hits.append((subs[-1], KICK, accent - 25))
            if feel.b:
                hits.append((beat.start, PEDAL_HAT, accent - 30))
    hits.extend(_clave_hits(meter, feel, (0, 3, 6, 10, 13), SIDE_STICK, accent - 10))
    return hits


def _one_drop(meter: Meter, rng: random.Random, accent: int, feel: Feel) -> list[Hit]:
    """Reggae one drop: kick and rim together on beat three, nothing on one; B: steppers kick."""
    hits: list[Hit] = []
    beats = meter.beats
    drop = next((b for b in beats if b.strength == 1), beats[len(beats) // 2])
    for beat in beats:
        subs = beat.subdivisions()
        for t in _keep(beat, feel.energy, 0.2, 0.9):
            hits.append((t, CLOSED_HAT, accent - (40 if t == beat.start else 28)))
        if feel.b:
            hits.append((beat.start, KICK, accent - 5))
        if rng.random() < 0.15 * feel.complexity:
            hits.append((subs[-1], SIDE_STICK, accent - 40))
    if len(beats) == 1:
        hits.append((beats[0].subdivisions()[-1], SIDE_STICK, accent))
    else:
        hits.append((drop.start, KICK, accent))
        hits.append((drop.start, SIDE_STICK if not feel.b else SNARE, accent - 5))
    return hits


def _salsa(meter: Meter, rng: random.Random, accent: int, feel: Feel) -> list[Hit]:
    """Salsa: 3-2 son clave, cascara (cowbell on the beats in B), conga tumbao, bombo kick."""
    hits: list[Hit] = []
    beats = meter.beats
    hits.extend(_clave_hits(meter, feel, (0, 3, 6, 10, 12), CLAVES, accent - 10))
    if feel.b:
        for beat in beats:
            hits.append((beat.start, COWBELL, accent - (5 if beat.strength else 18)))
    else:
        hits.extend(
            _clave_hits(meter, feel, (0, 2, 3, 5, 7, 8, 10, 11, 13, 15), SIDE_STICK, accent - 25)
        )
    last = beats[-1]
    for beat in beats:
        subs = beat.subdivisions()
        if beat is last and len(beats) > 1:
            hits.append((beat.start, OPEN_HI_CONGA, accent - 12))
            hits.append((subs[-1], OPEN_HI_CONGA, accent - 15))
            hits.append((subs[-1], LOW_CONGA, accent - 22))
        elif beat.strength == 0:
            hits.append((beat.start, MUTE_HI_CONGA, accent - 10))
        else:
            hits.append((beat.start, MUTE_HI_CONGA, accent - 40))
        if beat.index == 1:
            hits.append((subs[-1], KICK, accent - 15))
    if len(beats) > 1:
        hits.append((last.start, KICK, accent - 10))
    if rng.random() < 0.2 * feel.complexity:
        hits.append((beats[-1].subdivisions()[-1], LOW_TIMBALE, accent - 25))
    return hits


def _metal(meter: Meter, rng: random.Random, accent: int, feel: Feel) -> list[Hit]:
    """Double kick (16ths when hot, else 8ths), backbeat snare, hats (B: china on the beats)."""
    hits: list[Hit] = []
    beats = meter.beats
    for beat in beats:
        subs = beat.subdivisions()
        kicks = beat.fine() if feel.energy >= 0.7 else subs
        for t in kicks:
            hits.append((t, KICK, accent - (0 if t == beat.start else 12)))
        if feel.b:
            hits.append((beat.start, CHINA if beat.strength == 0 else RIDE_BELL, accent - 15))
        else:
            for t in subs:
                hits.append((t, CLOSED_HAT, accent - (20 if t == beat.start else 35)))
        if beat.strength == 0:
            hits.append((beat.start, SNARE, accent))
    if len(beats) == 1:
        hits.append((beats[0].subdivisions()[-1], SNARE, accent))
    return hits


def _country(meter: Meter, rng: random.Random, accent: int, feel: Feel) -> list[Hit]:
    """Two-beat: kick on strong beats, snare on backbeats, 8th hats; B: train-beat snare 16ths."""
    hits: list[Hit] = []
    beats = meter.beats
    for beat in beats:
        subs = beat.subdivisions()
        if feel.b:
            for t in beat.fine():
                hits.append(
                    (t, SNARE, accent - (0 if t == beat.start and beat.strength == 0 else 50))
                )
        else:
            for t in _keep(beat, feel.energy, 0.2, 0.85):
                hits.append((t, CLOSED_HAT, accent - (22 if t == beat.start else 38)))
            if beat.strength == 0:
                hits.append((beat.start, SNARE, accent - 5))
        if beat.strength:
            hits.append((beat.start, KICK, accent - 5))
        if _next_strong(meter, beat) and rng.random() < 0.2 * feel.complexity:
            hits.append((subs[-1], KICK, accent - 25))
    if len(beats) == 1:
        hits.append((beats[0].subdivisions()[-1], SNARE, accent))
    return hits


def _gospel(meter: Meter, rng: random.Random, accent: int, feel: Feel) -> list[Hit]:
    """Gospel: heavy backbeat, hats on every subdivision (ride in B), ghost notes, kick pick-ups."""
    hits: list[Hit] = []
    beats = meter.beats
    keeper = RIDE if feel.b else CLOSED_HAT
    ghost = 0.1 + 0.35 * feel.complexity
    for beat in beats:
        subs = beat.subdivisions()
        for t in _keep(beat, feel.energy, 0.25, 0.85):
            hits.append((t, keeper, accent - (18 if t == beat.start else 36)))
        if beat.strength:
            hits.append((beat.start, KICK, accent))
        else:
            hits.append((beat.start, SNARE, accent + 5))
        for t in subs[1:]:
            if rng.random() < ghost:
                hits.append((t, SNARE, rng.randint(25, 40)))
        if _next_strong(meter, beat) and rng.random() < 0.3 + 0.3 * feel.complexity:
            hits.append((subs[-1], KICK, accent - 15))
    if len(beats) == 1:
        hits.append((beats[0].subdivisions()[-1], SNARE, accent))
    return hits


def _waltz(meter: Meter, rng: random.Random, accent: int, feel: Feel) -> list[Hit]:
    """Waltz: kick on the downbeat (and accent), brushes and hats on the weak beats; B adds ride."""
    hits: list[Hit] = []
    beats = meter.beats
    for beat in beats:
        if beat.strength:
            hits.append((beat.start, KICK, accent - (0 if beat.strength == 2 else 10)))
        else:
            hits.append((beat.start, PEDAL_HAT if not feel.b else SNARE, accent - 25))
            hits.append((beat.start, CLOSED_HAT, accent - 20))
        if feel.b or feel.energy > 0.6:
            hits.append((beat.start, RIDE, accent - (15 if beat.strength else 30)))
        if rng.random() < 0.2 * feel.complexity:
            hits.append((beat.subdivisions()[-1], SNARE, accent - 45))
    if len(beats) == 1:
        hits.append((beats[0].subdivisions()[-1], CLOSED_HAT, accent - 25))
    return hits


#: Groove name (``Style.drum_groove``) ->
#: function(meter, rng, accent velocity, feel) -> hits of one bar.
GROOVES: Mapping[str, Groove] = MappingProxyType(
    {
        "rock": _rock,
        "jazz": _jazz,
        "shuffle": _shuffle,
        "four_on_floor": _four_on_floor,
        "ambient": _ambient,
        "classical": _classical,
        "funk": _funk,
        "hiphop": _hiphop,
        "house": _house,
        "bossa": _bossa,
        "one_drop": _one_drop,
        "salsa": _salsa,
        "metal": _metal,
        "country": _country,
        "gospel": _gospel,
        "waltz": _waltz,
        "swing": _swing,
        "lofi": _lofi,
    }
)

_ALL_TOMS = (HIGH_TOM, HI_MID_TOM, LOW_MID_TOM, LOW_TOM, HIGH_FLOOR_TOM, LOW_FLOOR_TOM)

#: Fill voice per groove: (use the fine 16th-level grid, drums in order,
#: start and end velocity offsets).
_FILLS: Mapping[str, tuple[bool, tuple[int, ...], int, int]] = MappingProxyType(
    {
        "rock": (False, (SNARE, SNARE, HIGH_TOM, HI_MID_TOM, LOW_TOM, HIGH_FLOOR_TOM), -30, 5),
        "shuffle": (False, (SNARE, HIGH_TOM, HI_MID_TOM, LOW_TOM, HIGH_FLOOR_TOM), -35, 0),
        "jazz": (False, (SNARE, SNARE, SNARE, LOW_TOM, HIGH_FLOOR_TOM), -40, 0),
        "swing": (False, (SNARE, SNARE, LOW_TOM, HIGH_FLOOR_TOM), -35, 5),
        "four_on_floor": (True, (SNARE,), -60, 5),
        "house": (True, (SNARE,), -60, 5),
        "ambient": (False, (LOW_TOM, LOW_FLOOR_TOM), -30, -5),
        "classical": (True, (LOW_FLOOR_TOM,), -45, 0),
        "funk": (True, (SNARE, SNARE, HIGH_TOM, LOW_TOM), -40, 5),
        "hiphop": (True, (SNARE,), -50, 0),
        "lofi": (False, (SNARE, LOW_TOM), -40, -10),
        "bossa": (False, (SIDE_STICK, LOW_TOM, HIGH_FLOOR_TOM), -30, 0),
        "one_drop": (False, (SNARE, HIGH_TOM, LOW_TOM, HIGH_FLOOR_TOM), -30, 0),
        "salsa": (False, (HIGH_TIMBALE, HIGH_TIMBALE, LOW_TIMBALE), -25, 10),
        "metal": (True, (SNARE,) + _ALL_TOMS, -20, 8),
        "country": (False, (SNARE, HIGH_TOM, LOW_TOM, HIGH_FLOOR_TOM), -30, 0),
        "gospel": (True, (SNARE, HIGH_TOM, HI_MID_TOM, LOW_TOM, HIGH_FLOOR_TOM), -30, 10),
        "waltz": (False, (SNARE, LOW_TOM), -35, -5),
    }
)


def _fill(
    meter: Meter, rng: random.Random, groove: str, accent: int, energy: float
) -> tuple[float, list[Hit]]:
    """Hits of a fill; returns (fill start offset, hits).

    Energy below 0.35 fills the last beat only, otherwise the second half of
    the bar; from 0.75 on the fill runs on the 16th grid with kicks under
    every beat.  Fewer grid points are skipped the higher the energy.
    """
    beats = meter.beats
    if len(beats) > 1:
        beats = beats[-1:] if energy < 0.35 else beats[len(beats) // 2 :]
    fine, voices, vel_from, vel_to = _FILLS[groove]
    hot = energy >= 0.75
    grid = [t for beat in beats for t in (beat.fine() if fine or hot else beat.subdivisions())]
    skip = max(0.05, 0.35 - 0.3 * energy)
    hits: list[Hit] = []
    last = len(grid) - 1
    for i, t in enumerate(grid):
        if 0 < i < last and rng.random() < skip:
            continue
        fraction = i / last if last else 1.0
        voice = voices[min(len(voices) - 1, int(fraction * len(voices)))]
        velocity = accent + round(vel_from + (vel_to - vel_from) * fraction)
        hits.append((t, voice, velocity))
    if hot:
        hits.extend((beat.start, KICK, accent - 10) for beat in beats)
    return beats[0].start, hits


def _intro(hits: list[Hit], meter: Meter, accent: int) -> list[Hit]:
    """Thin a groove for the intro: time-keeping, kicks on strong beats, side stick for snare."""
    strong = {b.start for b in meter.beats if b.strength}
    out: list[Hit] = []
    for t, drum, velocity in hits:
        if drum in _TIME_KEEPERS:
            out.append((t, drum, velocity - 8))
        elif drum in _KICKS and t in strong:
            out.append((t, drum, velocity - 10))
        elif drum in _SNARES and velocity > 60:
            out.append((t, SIDE_STICK, accent - 30))
    return out


def generate_drums(ctx: PartContext, rng: random.Random) -> list[Note]:
    """Write the drum part on the straight grid.

    Args:
        ctx: style, meter, plan (variation, energy, fills) and chord slots (for N.C.
            and the ending).
        rng: the part's seeded random source (embellishments and fills).

    Returns:
        Notes (unsorted) with GM percussion keys as pitches; every hit lasts
        at most 0.1 quarter notes and at most 1/12 of the shortest beat, so
        hits of one drum never overlap.
    """
    style = ctx.style
    meter = ctx.meter
    groove = GROOVES[style.drum_groove]
    duration = min(0.1, min(b.length for b in meter.beats) / 12.0)
    complexity = float(ctx.complexity)  # type: ignore[arg-type]
    soft = style.drum_groove in ("ambient", "classical")
    rests: dict[int, list[tuple[float, float]]] = {}
    onsets: dict[int, list[float]] = {}
    for slot in ctx.slots:
        if slot.is_rest:
            rests.setdefault(slot.bar, []).append((slot.offset, slot.end_offset))
        else:
            onsets.setdefault(slot.bar, []).append(slot.offset)
    notes: list[Note] = []
    for bar in range(ctx.bars):
        plan = ctx.bar_plan(bar)
        accent = min(
            127, round(style.drums_velocity + (plan.energy - style.energy) * ENERGY_VELOCITY)
        )
        if plan.variation == "ending":
            hits: list[Hit] = []
            for t in onsets.get(bar, [0.0])[: 1 if style.ending == "ring" else None]:
                hits.append((t, CRASH, accent - (10 if soft else 0)))
                hits.append((t, ACOUSTIC_BASS_DRUM if soft else KICK, accent))
                if style.ending == "hit":
                    hits.append((t, SNARE, accent))
        else:
            feel = Feel(plan.energy, complexity, plan.variation == "B", bar)
            hits = groove(meter, rng, accent, feel)
            if plan.variation == "intro":
                hits = _intro(hits, meter, accent)
            if plan.fill:
                fill_start, fill_hits = _fill(meter, rng, style.drum_groove, accent, plan.energy)
                hits = [
                    h for h in hits if h[0] < fill_start or (h[1] in _KICKS and h[0] == fill_start)
                ]
                hits.extend(fill_hits)
            if plan.crash:
                hits = [h for h in hits if not (h[0] == 0.0 and h[1] in _TIME_KEEPERS)]
                hits.append((0.0, CRASH, accent if not soft else accent - 10))
        if bar in rests and not style.nc_drums:
            spans = rests[bar]
            hits = [h for h in hits if not any(a <= h[0] < b for a, b in spans)]
        base = ctx.bar_start(bar)
        notes.extend(
            Note(base + offset, duration, pitch, min(127, max(1, velocity)))
            for offset, pitch, velocity in hits
        )
    return notes
