"""Immutable data model shared by generation, playback and file rendering.

Positions and durations are in quarter notes (``ppq``, as in JUCE's
``AudioPlayHead::PositionInfo::getPpqPosition``), measured from the start of
the arrangement; pitches and velocities are MIDI 0..127; channels are 0..15
(GM drums are channel index 9, i.e. MIDI channel 10).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field


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
        ts_num: time-signature numerator (beats per bar).
        ts_den: time-signature denominator (note value of a beat: 2, 4, 8 or 16).
        bars: number of bars.
        style: resolved style name.
        key: resolved key, e.g. ``"C"`` or ``"Am"``.
        seed: the random seed actually used.
        chords: the chord spans over the whole arrangement.
        sections: the song form as ``(section name, first bar 0-based, bar count)``
            in playing order; ``(("main", 0, bars),)`` without a structure.
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

    @property
    def bar_length_ppq(self) -> float:
        """Length of one bar in quarter notes: ``ts_num * 4 / ts_den``."""
        return self.ts_num * 4.0 / self.ts_den

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
