"""What every part generator is handed: the chords on a timeline, the form and the style.

Positions are quarter notes (ppq) from the arrangement start; pitches and
velocities are MIDI 0..127.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ai_band.generate.arrange import BarPlan, Plan, plan_loop
from ai_band.generate.styles import Style
from ai_band.model import PART_NAMES
from ai_band.theory.chords import Bar, Chord
from ai_band.theory.keys import Key
from ai_band.theory.meter import Meter

__all__ = ["Slot", "PartContext", "build_slots", "build_section_slots", "GridLevel"]

#: Grid levels: "bar" the slot start only, "strong" downbeat and secondary
#: accent, "beat" every beat, "sub" beat halves/thirds, "fine" those split in two.
GridLevel = Literal["bar", "strong", "beat", "sub", "fine"]

#: Grid points closer than this to a slot's end are left out (quarter notes).
_EPS = 1e-9

#: Velocity change per unit of energy away from the style's default energy.
ENERGY_VELOCITY = 40.0


@dataclass(frozen=True)
class Slot:
    """One chord where it sounds in the arrangement.

    Attributes:
        chord: the parsed chord (``chord.is_no_chord`` for an N.C. slot).
        bar: 0-based bar index in the arrangement.
        offset: onset from the bar start, quarter notes.
        duration: length, quarter notes.
        start: onset from the arrangement start, quarter notes.
    """

    chord: Chord
    bar: int
    offset: float
    duration: float
    start: float

    @property
    def end(self) -> float:
        """Offset of the slot's end from the arrangement start, quarter notes."""
        return self.start + self.duration

    @property
    def end_offset(self) -> float:
        """Offset of the slot's end from its bar start, quarter notes."""
        return self.offset + self.duration

    @property
    def is_rest(self) -> bool:
        """True for an N.C. (no chord) slot: the band rests."""
        return self.chord.is_no_chord

    def positions(self, meter: Meter, level: GridLevel) -> list[float]:
        """Grid points inside the slot as offsets from its bar start, quarter notes.

        The slot's own onset always comes first (even off the grid, e.g. the
        second of three chords in a 4/4 bar), then every grid point of
        ``level`` strictly inside the slot, ascending.
        """
        beats = meter.beats
        if level == "bar":
            grid: list[float] = []
        elif level == "strong":
            grid = [b.start for b in beats if b.strength]
        elif level == "beat":
            grid = [b.start for b in beats]
        elif level == "sub":
            grid = [t for b in beats for t in b.subdivisions()]
        else:
            grid = [t for b in beats for t in b.fine()]
        end = self.end_offset - _EPS
        return [self.offset] + [t for t in grid if self.offset < t < end]


@dataclass(frozen=True)
class PartContext:
    """Input shared by every part generator.

    Attributes:
        style: the resolved style.
        meter: beat structure of one bar.
        bars: number of bars in the arrangement.
        slots: every chord over the arrangement, in time order.
        key: the resolved key.
        plan: the form, bar by bar (default: :func:`~ai_band.generate.arrange.plan_loop`
            over every part at the style's energy).
        bpm: tempo in quarter notes per minute (for articulations given in ms).
        energy: the request's energy 0..1 (None: the style's).
        complexity: the request's complexity 0..1 (None: the style's).
        humanize: the request's humanize 0..1; at 0 every onset is on the grid,
            so articulations such as strum spreads are left out.
    """

    style: Style
    meter: Meter
    bars: int
    slots: tuple[Slot, ...]
    key: Key
    plan: Plan | None = None
    bpm: float = 120.0
    energy: float | None = None
    complexity: float | None = None
    humanize: float = 0.0
    _next: tuple[int, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.energy is None:
            object.__setattr__(self, "energy", self.style.energy)
        if self.complexity is None:
            object.__setattr__(self, "complexity", self.style.complexity)
        if self.plan is None:
            plan = plan_loop(self.style, self.bars, PART_NAMES, float(self.energy))
            object.__setattr__(self, "plan", plan)
        nxt = [-1] * len(self.slots)
        following = -1
        for _ in range(2):  # twice round: the last chords look ahead to the first
            for i in range(len(self.slots) - 1, -1, -1):
                nxt[i] = following
                if not self.slots[i].is_rest:
                    following = i
        object.__setattr__(self, "_next", tuple(nxt))

    @property
    def length(self) -> float:
        """Arrangement length in quarter notes."""
        return self.bars * self.meter.bar_length

    def bar_start(self, bar: int) -> float:
        """Onset of 0-based ``bar`` from the arrangement start, quarter notes."""
        return bar * self.meter.bar_length

    def bar_plan(self, bar: int) -> BarPlan:
        """The form of 0-based ``bar`` (variation, energy, fill, parts)."""
        assert self.plan is not None
        return self.plan.bars[bar]

    def next_chord(self, index: int) -> Chord:
        """The next sounding chord after slot ``index`` (N.C. slots skipped; wraps to the start).

        Returns slot ``index``'s own chord when no other slot has one.
        """
        following = self._next[index]
        return self.slots[following if following >= 0 else index].chord

    def velocity(self, base: int, bar: int, offset: float) -> int:
        """A velocity 1..127: ``base`` shifted by the bar's energy and the meter's accent.

        Args:
            base: the part's base velocity at the style's default energy.
            bar: 0-based bar index (its energy comes from the plan).
            offset: position in the bar, quarter notes (downbeat > backbeat > off-beat).
        """
        shift = (self.bar_plan(bar).energy - self.style.energy) * ENERGY_VELOCITY
        return min(127, max(1, round(base + shift) + self.meter.accent(offset)))

    def ms_to_ppq(self, ms: float) -> float:
        """Convert milliseconds to quarter notes at the context's tempo."""
        return ms * self.bpm / 60000.0


def build_slots(sheet: list[Bar], bars: int, meter: Meter, first_bar: int = 0) -> tuple[Slot, ...]:
    """Lay the chord sheet over ``bars`` bars, looping or truncating it.

    Args:
        sheet: bars from :func:`ai_band.theory.parse_progression` (non-empty).
        bars: how many bars to fill (>= 1).
        meter: the bar's beat structure (gives the bar length).
        first_bar: 0-based arrangement bar where the sheet starts.

    Returns:
        The slots in time order; arrangement bar ``first_bar + i`` plays sheet bar
        ``i % len(sheet)``.
    """
    out = []
    for i in range(bars):
        bar = first_bar + i
        base = bar * meter.bar_length
        for chord, offset, duration in sheet[i % len(sheet)]:
            out.append(Slot(chord, bar, offset, duration, base + offset))
    return tuple(out)


def build_section_slots(
    sections: Sequence[tuple[list[Bar], int, int]], meter: Meter
) -> tuple[Slot, ...]:
    """Slots of consecutive sections, each looping its own sheet.

    Args:
        sections: ``(sheet, first bar, bar count)`` per section, in order.
        meter: the bar's beat structure.
    """
    out: list[Slot] = []
    for sheet, first, count in sections:
        out.extend(build_slots(sheet, count, meter, first))
    return tuple(out)
