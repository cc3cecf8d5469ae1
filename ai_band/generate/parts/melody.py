"""Melody part: a singable lead line over the changes, phrased like a tune.

**Phrasing.**  Every section is cut into four-bar phrases (antecedent and
consequent two-bar halves; a shorter phrase closes a section whose length is
not a multiple of four).  The rhythm of the first half is drawn beat by beat
from the style's vocabulary of rhythm cells (``Style.melody_rhythm``:
``straight``, ``swing``, ``sparse``, ``syncopated``, ``lyrical``; busier
cells weigh more with complexity, held notes and rests weigh less with
energy); the third bar repeats the first bar's rhythm (motif repetition) most
of the time; each half ends with a breath, and the phrase's last bar closes
with a long note on the root or third followed by a rest (a cadence).  A
section that comes back (a second verse, the A of AABA) sings the same
melody again.

**Pitch.**  Each phrase follows an arch: it starts in the lower third of
``Style.melody_range`` (C4..A5 by default, always inside
``PARTS["melody"].pitch_range``), climbs to a peak about two thirds through and falls
back; the peak is higher the higher the section's energy, so the chorus
carries the song's climax.  Notes are chosen by cost: near the arch, small
steps preferred, leaps answered by a step the other way, few repeats.
Harmony rules (common-practice melody writing):

* notes on a downbeat or secondary accent, and notes a beat long or longer,
  are chord tones;
* every note starting on a beat is *safe*: its pitch class is not a
  semitone (minor second, major seventh or minor ninth) away from any
  sounding chord tone or the bass note;
* off-beat notes may be scale or chord tones (passing and neighbour notes);
* no note sounds across a chord change; N.C. slots are rests.

Positions are quarter notes (ppq); velocities follow the meter, the bar's
energy and the contour.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from ai_band.generate.context import PartContext, Slot
from ai_band.model import PARTS, Note
from ai_band.theory.meter import Beat

__all__ = ["generate_melody", "safe_pitch_classes", "MELODY_LOW", "MELODY_HIGH", "PHRASE_BARS"]

#: Lowest and highest melody pitch of any style (MIDI note numbers).
MELODY_LOW, MELODY_HIGH = PARTS["melody"].pitch_range

#: Bars per phrase.
PHRASE_BARS = 4

#: A rhythm cell: note onsets and lengths as fractions of the beat; "hold"
#: ties the previous note through the beat, an empty cell is a rest.
Cell = tuple[tuple[float, float], ...] | str

_HOLD = "hold"
_REST: Cell = ()
_T = 1.0 / 3.0

#: Simple-beat cells: (cell, weight, busy) - busy cells weigh more with complexity.
_SIMPLE: Mapping[str, tuple[tuple[Cell, float, bool], ...]] = MappingProxyType(
    {
        "straight": (
            (((0.0, 1.0),), 3.0, False),
            (((0.0, 0.5), (0.5, 0.5)), 3.0, False),
            (_HOLD, 2.0, False),
            (((0.5, 0.5),), 1.0, False),
            (((0.0, 0.75), (0.75, 0.25)), 1.0, True),
            (((0.0, 0.5), (0.5, 0.25), (0.75, 0.25)), 1.0, True),
            (_REST, 0.5, False),
        ),
        "swing": (
            (((0.0, 0.5), (0.5, 0.5)), 4.0, False),
            (((0.0, 1.0),), 2.0, False),
            (_HOLD, 1.5, False),
            (((0.5, 0.5),), 1.5, False),
            (((0.0, _T), (_T, _T), (2 * _T, _T)), 1.0, True),
            (_REST, 0.5, False),
        ),
        "sparse": (
            (_HOLD, 4.0, False),
            (((0.0, 1.0),), 2.0, False),
            (_REST, 2.0, False),
            (((0.0, 0.5), (0.5, 0.5)), 0.5, True),
            (((0.5, 0.5),), 0.5, False),
        ),
        "syncopated": (
            (((0.0, 0.25), (0.25, 0.5), (0.75, 0.25)), 2.0, True),
            (((0.5, 0.5),), 2.0, False),
            (((0.0, 0.5), (0.5, 0.25), (0.75, 0.25)), 1.0, True),
            (((0.0, 0.25), (0.25, 0.25), (0.5, 0.5)), 1.0, True),
            (((0.0, 0.5), (0.5, 0.5)), 2.0, False),
            (((0.0, 1.0),), 1.0, False),
            (_HOLD, 1.0, False),
            (((0.0, 0.25), (0.25, 0.25), (0.5, 0.25), (0.75, 0.25)), 1.0, True),
            (_REST, 0.5, False),
        ),
        "lyrical": (
            (((0.0, 1.0),), 3.0, False),
            (_HOLD, 3.0, False),
            (((0.0, 0.5), (0.5, 0.5)), 2.0, False),
            (((0.0, 0.75), (0.75, 0.25)), 1.5, True),
            (_REST, 0.3, False),
        ),
    }
)

#: Compound-beat cells (thirds and sixths of a dotted-quarter beat).
_COMPOUND: Mapping[str, tuple[tuple[Cell, float, bool], ...]] = MappingProxyType(
    {
        "even": (
            (((0.0, 1.0),), 3.0, False),
            (((0.0, 2 * _T), (2 * _T, _T)), 3.0, False),
            (((0.0, _T), (_T, _T), (2 * _T, _T)), 1.5, True),
            (_HOLD, 2.0, False),
            (_REST, 0.5, False),
        ),
        "busy": (
            (((0.0, 2 * _T), (2 * _T, _T)), 2.0, False),
            (((0.0, _T), (_T, _T), (2 * _T, _T)), 2.0, True),
            (((0.0, _T), (_T, 2 * _T)), 1.0, False),
            (((_T, _T), (2 * _T, _T)), 1.0, True),
            (((0.0, 1.0),), 1.0, False),
            (_HOLD, 1.0, False),
        ),
    }
)


def safe_pitch_classes(chord_pcs: Sequence[int], pool: Sequence[int]) -> list[int]:
    """The pitch classes of ``pool`` that are not a semitone from any of ``chord_pcs``.

    A pitch-class distance of 1 is a minor second, a major seventh or a minor
    ninth against a sounding chord tone: the clash melody writing avoids on
    the beat.
    """
    out = []
    for pc in pool:
        if all(min((pc - c) % 12, (c - pc) % 12) != 1 for c in chord_pcs):
            out.append(pc)
    return out


class _Writer:
    """Running state of one melody (local to one generate_melody call)."""

    def __init__(self, ctx: PartContext, rng: random.Random) -> None:
        self.ctx = ctx
        self.rng = rng
        self.style = ctx.style
        self.low, self.high = self.style.melody_range
        self.scale = tuple(ctx.key.scale_pcs)
        self.prev: int | None = None
        self.prev_step = 0
        self.complexity = float(ctx.complexity)  # type: ignore[arg-type]
        self.bar_slots: dict[int, list[Slot]] = {}
        for slot in ctx.slots:
            self.bar_slots.setdefault(slot.bar, []).append(slot)
        self._allowed: dict[tuple[int, str], list[int]] = {}

    # ----------------------------------------------------------------- rhythm
    def cell(self, beat: Beat, energy: float) -> Cell:
        """Draw one rhythm cell for ``beat``."""
        if beat.compound:
            table = _COMPOUND[
                "busy" if self.style.melody_rhythm in ("swing", "syncopated") else "even"
            ]
        else:
            table = _SIMPLE[self.style.melody_rhythm]
        weights = []
        for cell, weight, busy in table:
            if busy:
                weight *= 0.3 + 1.4 * self.complexity
            if cell == _HOLD or cell == _REST:
                weight *= 1.6 - energy
            weights.append(weight)
        return self.rng.choices([c for c, _, _ in table], weights)[0]

    # ------------------------------------------------------------------ pitch
    def slot_at(self, bar: int, offset: float) -> Slot | None:
        for slot in self.bar_slots.get(bar, ()):
            if slot.offset - 1e-9 <= offset < slot.end_offset - 1e-9:
                return slot
        return None

    def allowed(self, slot: Slot, kind: str) -> list[int]:
        """Pitch classes allowed for a note of ``kind`` ("strong", "beat", "off", "cadence")."""
        key = (id(slot.chord), kind)
        cached = self._allowed.get(key)
        if cached is not None:
            return cached
        chord = slot.chord
        sounding = list(chord.pitch_classes) + [chord.bass_pc]
        tones = list(chord.pitch_classes)
        if kind == "cadence":
            third = chord.interval_pc(3, 4)
            pool = [chord.root_pc] + ([third] if third is not None else [])
            out = safe_pitch_classes(sounding, pool) or safe_pitch_classes(sounding, tones)
        elif kind == "strong":
            out = safe_pitch_classes(sounding, tones) or safe_pitch_classes(
                sounding, list(self.scale)
            )
        elif kind == "beat":
            out = safe_pitch_classes(sounding, sorted(set(self.scale) | set(tones)))
        else:
            out = sorted(set(self.scale) | set(tones))
        self._allowed[key] = out
        return out

    def pitch(self, pcs: Sequence[int], target: float) -> int | None:
        """The pitch of one of ``pcs`` inside the range that best fits the line."""
        rng = self.rng
        best = None
        best_cost = float("inf")
        prev = self.prev
        for pc in pcs:
            p = self.low + (pc - self.low) % 12
            while p <= self.high:
                cost = 0.5 * abs(p - target)
                if prev is not None:
                    step = p - prev
                    size = abs(step)
                    cost += 0.8 * size
                    if size == 0:
                        cost += 2.5
                    if size > 7:
                        cost += 3.0 + size
                    if abs(self.prev_step) > 4 and step * self.prev_step > 0:
                        cost += 4.0
                cost += rng.random() * 2.0
                if cost < best_cost:
                    best, best_cost = p, cost
                p += 12
        if best is not None and prev is not None:
            self.prev_step = best - prev
        if best is not None:
            self.prev = best
        return best


def _contour(t: float, low: float, peak: float, apex: float) -> float:
    """The arch's target pitch at phrase fraction ``t`` (0..1)."""
    if t <= apex:
        return low + (peak - low) * (t / apex)
    return peak - (peak - low) * 0.8 * ((t - apex) / (1.0 - apex))


def _phrases(ctx: PartContext) -> list[tuple[str, int, int, int]]:
    """``(section, phrase index, first bar, bar count)`` for every phrase of every section."""
    assert ctx.plan is not None
    out = []
    for name, first, count in ctx.plan.sections:
        for k, start in enumerate(range(first, first + count, PHRASE_BARS)):
            out.append((name, k, start, min(PHRASE_BARS, first + count - start)))
    return out


def _write_phrase(w: _Writer, first: int, count: int) -> list[Note]:
    """Write the notes of one phrase of ``count`` bars from bar ``first``."""
    ctx = w.ctx
    meter = ctx.meter
    beats = meter.beats
    span = w.high - w.low
    plans = [ctx.bar_plan(b) for b in range(first, first + count)]
    energy = max(p.energy for p in plans)
    lift = 3 if plans[0].variation == "B" else 0
    low = w.low + span * (0.25 + 0.1 * energy) + lift
    peak = min(w.high - 1, w.low + span * (0.5 + 0.45 * energy) + lift)
    apex = w.rng.uniform(0.5, 0.75)
    total = count * meter.bar_length
    cadence_beat = len(beats) // 2 if len(beats) > 1 else 0
    motif: list[Cell] = []
    notes: list[Note] = []
    current: list | None = None  # [start, end limit, pitch, velocity, slot end]

    def close() -> None:
        nonlocal current
        if current is not None:
            start, end, pitch, velocity, _ = current
            notes.append(Note(start, (end - start) * 0.92, pitch, velocity))
            current = None

    for k in range(count):
        bar = first + k
        plan = plans[k]
        if "melody" not in plan.parts:
            close()
            continue
        base = ctx.bar_start(bar)
        last_bar = k == count - 1
        half_end = k == 1 and count == PHRASE_BARS
        for beat in beats:
            if last_bar and beat.index >= cadence_beat:
                if beat.index == cadence_beat:
                    close()
                    slot = w.slot_at(bar, beat.start)
                    if slot is not None and not slot.is_rest:
                        t = (k * meter.bar_length + beat.start) / total
                        pcs = w.allowed(slot, "cadence")
                        p = w.pitch(pcs, _contour(t, low, peak, apex)) if pcs else None
                        if p is not None:
                            remaining = meter.bar_length - beat.start
                            end = min(base + beat.start + remaining * 0.75, base + slot.end_offset)
                            velocity = ctx.velocity(w.style.melody_velocity, bar, beat.start)
                            notes.append(
                                Note(
                                    base + beat.start, (end - base - beat.start) * 0.95, p, velocity
                                )
                            )
                continue
            if half_end and beat.index == len(beats) - 1 and w.rng.random() < 0.5:
                close()
                continue
            if k == 2 and count == PHRASE_BARS and len(motif) > beat.index and w.rng.random() < 0.7:
                cell = motif[beat.index]
            elif k == 0 and beat.index == 0 and w.rng.random() < 0.25:
                cell = _REST
            else:
                cell = w.cell(beat, plan.energy)
            if k == 0:
                motif.append(cell)
            if cell == _HOLD:
                if current is not None and base + beat.end <= current[4] + 1e-9:
                    current[1] = base + beat.end
                    continue
                cell = ((0.0, 1.0),)
            if not cell:
                close()
                continue
            for frac, length in cell:  # type: ignore[misc]
                close()
                offset = beat.start + frac * beat.length
                slot = w.slot_at(bar, offset)
                if slot is None or slot.is_rest:
                    continue
                duration = length * beat.length
                on_beat = frac == 0.0
                if on_beat and beat.strength or duration >= beat.length * 0.75:
                    kind = "strong"
                elif on_beat or abs(offset - slot.offset) < 1e-9:
                    kind = "beat"
                else:
                    kind = "off"
                pcs = w.allowed(slot, kind)
                t = (k * meter.bar_length + offset) / total
                p = w.pitch(pcs, _contour(t, low, peak, apex)) if pcs else None
                if p is None:
                    continue
                mid = (w.low + w.high) / 2
                velocity = (
                    ctx.velocity(w.style.melody_velocity, bar, offset)
                    + round(0.3 * (p - mid))
                    + w.rng.randint(-3, 3)
                )
                slot_end = base + slot.end_offset
                current = [
                    base + offset,
                    min(base + offset + duration, slot_end),
                    p,
                    velocity,
                    slot_end,
                ]
        if current is not None and current[1] > base + meter.bar_length:
            current[1] = base + meter.bar_length
    close()
    return notes


def _ending(w: _Writer, bar: int) -> list[Note]:
    """The last bar: the tonic-ish chord tone of its first chord, long (or short for "hit")."""
    ctx = w.ctx
    slots = [s for s in w.bar_slots.get(bar, ()) if not s.is_rest]
    if not slots:
        return []
    slot = slots[0]
    pcs = w.allowed(slot, "cadence")
    p = w.pitch(pcs, w.low + (w.high - w.low) * 0.35) if pcs else None
    if p is None:
        return []
    length = slot.duration * 0.98
    if ctx.style.ending == "hit":
        length = min(length, ctx.meter.beats[0].length * 0.75)
    velocity = ctx.velocity(w.style.melody_velocity, bar, slot.offset) + 4
    return [Note(ctx.bar_start(bar) + slot.offset, length, p, velocity)]


def generate_melody(ctx: PartContext, rng: random.Random) -> list[Note]:
    """Write the melody on the straight grid.

    Args:
        ctx: style (rhythm vocabulary, range), meter, chord slots, key and plan.
        rng: the part's seeded random source.

    Returns:
        A monophonic line (no two notes overlap) inside ``Style.melody_range``,
        following the rules of the module docstring.
    """
    writer = _Writer(ctx, rng)
    notes: list[Note] = []
    sung: dict[tuple[str, int, tuple[tuple[str, float], ...]], tuple[float, list[Note]]] = {}
    ending_bar = ctx.bars - 1 if ctx.bar_plan(ctx.bars - 1).variation == "ending" else -1
    for section, index, first, count in _phrases(ctx):
        has_end = first <= ending_bar < first + count
        body = count - 1 if has_end else count
        bars = range(first, first + body)
        if body > 0 and any("melody" in ctx.bar_plan(b).parts for b in bars):
            origin = ctx.bar_start(first)
            chords = tuple(
                (s.chord.symbol, s.start - origin)
                for b in bars
                for s in writer.bar_slots.get(b, ())
            )
            key = (section, index, chords)
            everywhere = all("melody" in ctx.bar_plan(b).parts for b in bars)
            if section != "main" and everywhere and key in sung:
                then, previous = sung[key]
                phrase = [
                    Note(n.start_ppq + origin - then, n.duration_ppq, n.pitch, n.velocity)
                    for n in previous
                ]
                if phrase:
                    writer.prev = phrase[-1].pitch
            else:
                phrase = _write_phrase(writer, first, body)
                if everywhere:
                    sung.setdefault(key, (origin, phrase))
            notes.extend(phrase)
        if has_end and "melody" in ctx.bar_plan(ending_bar).parts:
            notes.extend(_ending(writer, ending_bar))
    return notes
