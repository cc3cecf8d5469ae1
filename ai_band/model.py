"""Immutable data model shared by generation, playback and file rendering.

Positions and durations are in quarter notes (``ppq``, as in JUCE's
``AudioPlayHead::PositionInfo::getPpqPosition``), measured from the start of
the arrangement; pitches and velocities are MIDI 0..127; channels are 0..15
(GM drums are channel index 9, i.e. MIDI channel 10).

* :class:`TimeSignature`: numerator and denominator, and the one place the
  bar length in quarter notes is computed.
* :data:`PARTS`: the one table of the parts the band plays (:class:`PartSpec`:
  name, default channel, playing range, default GM program), in the order
  they are offered, listed and given channels.
* :class:`Note`, :class:`Part`, :class:`ChordSpan`, :class:`Arrangement`:
  what a generation job produces.

This module imports nothing from the rest of the package: the generator,
the scheduler, the renderers and the jobs all build on it.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "TS_DENOMINATORS",
    "TimeSignature",
    "PartSpec",
    "PARTS",
    "PART_NAMES",
    "Note",
    "Part",
    "ChordSpan",
    "Arrangement",
]

#: Time-signature denominators (note values, whole .. 64th): the powers of two
#: MIDI's time-signature meta event can express (SMF 1.0, FF 58) and JUCE's
#: ``AudioPlayHead::TimeSignature`` reports in practice.
TS_DENOMINATORS = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class TimeSignature:
    """A time signature such as 4/4, 6/8 or 7/8.

    Attributes:
        numerator: units per bar, >= 1.
        denominator: note value of a unit, one of :data:`TS_DENOMINATORS`
            (4 = quarter note, 8 = eighth note).

    Raises:
        TypeError: a field is not an int.
        ValueError: ``numerator < 1`` or a denominator outside :data:`TS_DENOMINATORS`.
    """

    numerator: int
    denominator: int

    def __post_init__(self) -> None:
        for name in ("numerator", "denominator"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"time-signature {name} must be int, got {type(value).__name__}")
        if self.numerator < 1:
            raise ValueError(f"time-signature numerator must be >= 1, got {self.numerator}")
        if self.denominator not in TS_DENOMINATORS:
            raise ValueError(
                f"time-signature denominator must be one of {TS_DENOMINATORS}, got {self.denominator}"
            )

    @property
    def unit_ppq(self) -> float:
        """Length of one ``1/denominator`` note in quarter notes (6/8 -> 0.5)."""
        return 4.0 / self.denominator

    @property
    def bar_length_ppq(self) -> float:
        """Length of one bar in quarter notes: ``numerator * 4 / denominator`` (6/8 -> 3.0)."""
        return self.numerator * self.unit_ppq

    def __str__(self) -> str:
        return f"{self.numerator}/{self.denominator}"


@dataclass(frozen=True)
class PartSpec:
    """One part the band can play: the facts every layer shares about it.

    Attributes:
        name: the part's name in requests, file names and MIDI port names.
        channel: default MIDI channel index 0..15 (drums on 9, the GM
            percussion channel, i.e. MIDI channel 10).
        pitch_range: lowest and highest MIDI note 0..127 the generator writes.
        program: General MIDI program 0..127 (0-based, GM1 sound set) a style
            uses unless it names its own; for drums a GS/GM2 drum kit number.
        description: what the part plays, one line.
    """

    name: str
    channel: int
    pitch_range: tuple[int, int]
    program: int
    description: str


#: Every part, in the canonical order (requests, listings, ports, channels).
#: Ranges: drums the GM2/GS percussion key map (27 High Q .. 87 Open Surdo);
#: bass E1..G3 of a four-string bass; keys and pad C3..C6; melody G3..E6, a
#: lead instrument's comfortable range; arp C3..G6; guitar E2..E5, standard
#: tuning up to the 12th fret; strings C2 (cello C string) .. E6 (violins in
#: first positions).  Programs (GM1): 0 Standard kit, 33 Finger Bass,
#: 0 Acoustic Grand Piano, 89 Warm Pad, 73 Flute, 81 Saw Lead, 27 Clean
#: Guitar, 48 String Ensemble 1.
PARTS: Mapping[str, PartSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            PartSpec("drums", 9, (27, 87), 0, "drum kit grooves and fills"),
            PartSpec("bass", 1, (28, 55), 33, "bass lines"),
            PartSpec("keys", 2, (48, 84), 0, "piano or organ comping"),
            PartSpec("pad", 3, (48, 84), 89, "sustained pad chords"),
            PartSpec("melody", 4, (55, 88), 73, "a lead melody over the changes"),
            PartSpec("arp", 5, (48, 91), 81, "arpeggios of the chords"),
            PartSpec("guitar", 6, (40, 76), 27, "strummed or picked guitar"),
            PartSpec("strings", 7, (36, 88), 48, "string section voicings"),
        )
    }
)

#: Part names in the canonical order of :data:`PARTS`.
PART_NAMES: tuple[str, ...] = tuple(PARTS)


@dataclass(frozen=True, order=True)
class Note:
    """One note of a part.

    Attributes:
        start_ppq: onset in quarter notes from the arrangement start (>= 0).
        duration_ppq: length in quarter notes (> 0).
        pitch: MIDI note number 0..127.
        velocity: MIDI velocity 1..127.
    """

    start_ppq: float
    duration_ppq: float
    pitch: int
    velocity: int

    @property
    def end_ppq(self) -> float:
        """Offset of the note-off in quarter notes from the arrangement start."""
        return self.start_ppq + self.duration_ppq


@dataclass(frozen=True)
class Part:
    """One instrument's track.

    Attributes:
        name: part name, e.g. ``"drums"``, ``"bass"``, ``"keys"``; also the MIDI port name.
        program: General MIDI program number 0..127 (ignored for drums on channel 9).
        channel: MIDI channel index 0..15; 9 is the GM percussion channel.
        notes: the notes sorted by ``start_ppq``.
    """

    name: str
    program: int
    channel: int
    notes: tuple[Note, ...]

    def __reduce__(self) -> tuple:
        """Pickle the notes as one flat table of doubles, rebuilt by a Python loop.

        Arrangements cross process boundaries (generation worker -> daemon ->
        render worker).  Pickled field by field, a part of thousands of notes
        is loaded by C code that holds the GIL throughout (23 ms for 8000
        notes, measured), which made the daemon's playback thread late by as
        much.  The table is loaded in microseconds and the notes are then
        built in Python, where the interpreter hands the GIL to the playback
        thread every switch interval.
        """
        table = array("d", [x for n in self.notes for x in (n.start_ppq, n.duration_ppq, n.pitch, n.velocity)])
        return (_part_from_table, (self.name, self.program, self.channel, table.tobytes()))


def _part_from_table(name: str, program: int, channel: int, table: bytes) -> Part:
    """Rebuild a pickled :class:`Part` (see :meth:`Part.__reduce__`)."""
    values = array("d")
    values.frombytes(table)
    fields = iter(values)
    notes = tuple(Note(start, duration, int(pitch), int(velocity))
                  for start, duration, pitch, velocity in zip(fields, fields, fields, fields))
    return Part(name, program, channel, notes)


@dataclass(frozen=True)
class ChordSpan:
    """A chord and where it sounds.

    Attributes:
        symbol: the symbol as written, e.g. ``"G7/B"``.
        root_pc: pitch class of the root, 0 = C .. 11 = B.
        pitch_classes: chord tones as pitch classes, root first, in stacking order.
        bass_pc: pitch class the bass should play (the slash bass, else the root).
        start_ppq: onset in quarter notes from the arrangement start.
        duration_ppq: length in quarter notes.
        bar: 0-based bar index.
    """

    symbol: str
    root_pc: int
    pitch_classes: tuple[int, ...]
    bass_pc: int
    start_ppq: float
    duration_ppq: float
    bar: int


@dataclass(frozen=True)
class Arrangement:
    """Everything generated for one job.

    Attributes:
        parts: one :class:`Part` per requested part, in request order.
        bpm: tempo in quarter notes per minute.
        ts_num: time-signature numerator (units per bar), see :attr:`time_signature`.
        ts_den: time-signature denominator, one of :data:`TS_DENOMINATORS`.
        bars: number of bars.
        style: resolved style name.
        key: resolved key, e.g. ``"C"`` or ``"Am"``.
        seed: the random seed actually used.
        chords: the chord spans over the whole arrangement.
        sections: the song form as ``(section name, first bar 0-based, bar count)``
            in playing order; ``(("main", 0, bars),)`` without a structure.

    Raises:
        TypeError, ValueError: ``ts_num/ts_den`` is not a valid :class:`TimeSignature`.
    """

    parts: tuple[Part, ...]
    bpm: float
    ts_num: int
    ts_den: int
    bars: int
    style: str
    key: str
    seed: int
    chords: tuple[ChordSpan, ...] = field(default=())
    sections: tuple[tuple[str, int, int], ...] = field(default=())

    def __post_init__(self) -> None:
        TimeSignature(self.ts_num, self.ts_den)  # raises for a bad signature

    @property
    def time_signature(self) -> TimeSignature:
        """The arrangement's :class:`TimeSignature`."""
        return TimeSignature(self.ts_num, self.ts_den)

    @property
    def bar_length_ppq(self) -> float:
        """Length of one bar in quarter notes (:attr:`TimeSignature.bar_length_ppq`)."""
        return self.time_signature.bar_length_ppq

    @property
    def length_ppq(self) -> float:
        """Length of the whole arrangement in quarter notes."""
        return self.bars * self.bar_length_ppq

    def part(self, name: str) -> Part:
        """Return the part called ``name``; raises ``KeyError`` when absent."""
        for p in self.parts:
            if p.name == name:
                return p
        raise KeyError(name)
