"""Beats of a bar for any time signature.

A bar of ``num/den`` is ``num`` units of ``4/den`` quarter notes, grouped into
beats the way players feel them:

* ``den <= 4``: every unit is a beat (4/4 = four quarters, 2/2 = two halves);
* ``den >= 8`` and ``num`` a multiple of 3 (6/8, 9/8, 12/8, 3/8, 6/16 ...):
  compound beats of three units (dotted-quarter feel in x/8);
* other ``den >= 8``: beats of two units with a three at the end
  (7/8 = 2+2+3, 5/8 = 2+3, 11/16 -> 2+2+2+2+3);

then, while some beat is shorter than 3/4 of a quarter note, neighbouring
beats are merged in pairs (32/32 -> four quarter beats, 11/16 -> 4+4+3
sixteenths).  Each beat splits into halves, or thirds when it is compound;
*fine* positions split those again in two (sixteenths in 4/4).

The first beat is the downbeat (strength 2); in bars of four or more beats the
beat that opens the second half (4/4 beat 3, 5/4 beat 4, 12/8 beat 3) is a
secondary accent (strength 1); the rest are weak (strength 0): backbeats.
A style may group the units its own way (7/8 as 3+2+2 instead of 2+2+3).
:meth:`Meter.accent` turns that hierarchy into velocity offsets (downbeat >
secondary accent > backbeat > off-beat > 16th), the metric accents players
give without thinking.  All offsets are quarter notes (ppq) from the bar start.
"""

from __future__ import annotations

from dataclasses import dataclass

from ai_band.model import TimeSignature

__all__ = ["Beat", "Meter"]

#: Beats shorter than this (in quarter notes) are merged with a neighbour.
_MIN_BEAT_PPQ = 0.75

#: Velocity offsets of :meth:`Meter.accent`: downbeat, secondary accent,
#: other beat starts (backbeats), beat subdivisions (off-beat 8ths), anything finer.
ACCENTS = (10, 6, 2, -6, -10)

#: Positions closer than this are the same grid point (quarter notes).
_EPS = 1e-6


@dataclass(frozen=True)
class Beat:
    """One felt beat of a bar.

    Attributes:
        index: 0-based position in the bar.
        start: offset from the bar start in quarter notes.
        length: length in quarter notes.
        units: how many ``1/den`` notes the beat holds.
        strength: 2 downbeat, 1 secondary accent, 0 weak (backbeat).
    """

    index: int
    start: float
    length: float
    units: int
    strength: int

    @property
    def compound(self) -> bool:
        """True for a beat of three units, felt as a triplet (6/8, 12/8, 7/8's last beat)."""
        return self.units == 3

    @property
    def end(self) -> float:
        """Offset of the beat's end from the bar start, in quarter notes."""
        return self.start + self.length

    def subdivisions(self) -> tuple[float, ...]:
        """Offsets from the bar start of the beat's halves (thirds when compound)."""
        parts = 3 if self.compound else 2
        return tuple(self.start + i * self.length / parts for i in range(parts))

    def fine(self) -> tuple[float, ...]:
        """Offsets of the subdivisions split again in two (16ths in 4/4, 6 per beat in 6/8)."""
        parts = 6 if self.compound else 4
        return tuple(self.start + i * self.length / parts for i in range(parts))


@dataclass(frozen=True)
class Meter:
    """The beat structure of one time signature.

    Attributes:
        num: numerator >= 1.
        den: denominator, one of :data:`~ai_band.model.TS_DENOMINATORS`.
        bar_length: bar length in quarter notes
            (:attr:`~ai_band.model.TimeSignature.bar_length_ppq`).
        beats: the beats in order; their lengths add up to ``bar_length``.
    """

    num: int
    den: int
    bar_length: float
    beats: tuple[Beat, ...]

    @classmethod
    def from_ts(cls, num: int, den: int, grouping: tuple[int, ...] | None = None) -> Meter:
        """Group the bar of ``num/den`` into beats (see the module docstring).

        Args:
            num: numerator >= 1.
            den: denominator, one of :data:`~ai_band.model.TS_DENOMINATORS`.
            grouping: beat lengths in ``1/den`` units adding up to ``num``
                (e.g. ``(3, 2, 2)`` for 7/8), or None for the default grouping;
                a grouping that does not add up is ignored.

        Raises:
            TypeError, ValueError: not a valid :class:`~ai_band.model.TimeSignature`.
        """
        signature = TimeSignature(num, den)
        unit = signature.unit_ppq
        if grouping and sum(grouping) == num and min(grouping) >= 1:
            groups = list(grouping)
        elif den <= 4:
            groups = [1] * num
        elif num % 3 == 0:
            groups = [3] * (num // 3)
        elif num == 1:
            groups = [1]
        else:
            groups = [2] * ((num - 3) // 2) + [3] if num % 2 else [2] * (num // 2)
        while len(groups) > 1 and min(groups) * unit < _MIN_BEAT_PPQ:
            merged = [groups[i] + groups[i + 1] for i in range(0, len(groups) - 1, 2)]
            if len(groups) % 2:
                merged.append(groups[-1])
            groups = merged
        count = len(groups)
        secondary = count // 2 if count % 2 == 0 else (count + 1) // 2
        beats = []
        position = 0
        for index, units in enumerate(groups):
            if index == 0:
                strength = 2
            elif count >= 4 and index == secondary:
                strength = 1
            else:
                strength = 0
            beats.append(Beat(index, position * unit, units * unit, units, strength))
            position += units
        return cls(num, den, signature.bar_length_ppq, tuple(beats))

    def accent(self, offset: float) -> int:
        """Velocity offset of a note at ``offset`` (quarter notes from the bar start).

        :data:`ACCENTS`: +10 on the downbeat, +6 on the secondary accent, +2 on
        other beat starts, -6 on the beat's halves (thirds when compound),
        -10 anywhere else.
        """
        beat = self.beat_at(offset)
        x = offset - beat.start
        if x < _EPS:
            return ACCENTS[2 - beat.strength]
        parts = 3 if beat.compound else 2
        step = x * parts / beat.length
        if abs(step - round(step)) < _EPS:
            return ACCENTS[3]
        return ACCENTS[4]

    def beat_at(self, offset: float) -> Beat:
        """Return the beat containing ``offset`` (quarter notes from the bar start)."""
        for beat in reversed(self.beats):
            if offset >= beat.start:
                return beat
        return self.beats[0]
