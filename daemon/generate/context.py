"""What every part generator is handed: the chords on a timeline and the style.

Positions are quarter notes (ppq) from the arrangement start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from daemon.generate.meter import Meter
from daemon.generate.styles import Style
from daemon.theory.chords import Bar, Chord
from daemon.theory.keys import Key

__all__ = ["Slot", "PartContext", "build_slots", "GridLevel"]

#: Grid levels: "bar" the slot start only, "strong" downbeat and secondary
#: accent, "beat" every beat, "sub" beat halves/thirds, "fine" those split in two.
GridLevel = Literal["bar", "strong", "beat", "sub", "fine"]

#: Grid points closer than this to a slot's end are left out (quarter notes).
_EPS = 1e-9


@dataclass(frozen=True)
class Slot:
    """One chord where it sounds in the arrangement.

    Attributes:
        chord: the parsed chord.
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
    """Input shared by the drum, bass and keys generators.

    Attributes:
        style: the resolved style.
        meter: beat structure of one bar.
        bars: number of bars in the arrangement.
        slots: every chord over the arrangement, in time order.
        key: the resolved key.
    """

    style: Style
    meter: Meter
    bars: int
    slots: tuple[Slot, ...]
    key: Key

    @property
    def length(self) -> float:
        """Arrangement length in quarter notes."""
        return self.bars * self.meter.bar_length

    def bar_start(self, bar: int) -> float:
        """Onset of 0-based ``bar`` from the arrangement start, quarter notes."""
        return bar * self.meter.bar_length

    def next_chord(self, index: int) -> Chord:
        """The chord after slot ``index`` (the first chord again after the last)."""
        return self.slots[(index + 1) % len(self.slots)].chord


def build_slots(sheet: list[Bar], bars: int, meter: Meter) -> tuple[Slot, ...]:
    """Lay the chord sheet over ``bars`` bars, looping or truncating it.

    Args:
        sheet: bars from :func:`daemon.theory.parse_progression` (non-empty).
        bars: arrangement length in bars (>= 1).
        meter: the bar's beat structure (gives the bar length).

    Returns:
        The slots in time order; arrangement bar ``i`` uses sheet bar ``i % len(sheet)``.
    """
    out = []
    for bar in range(bars):
        base = bar * meter.bar_length
        for chord, offset, duration in sheet[bar % len(sheet)]:
            out.append(Slot(chord, bar, offset, duration, base + offset))
    return tuple(out)
