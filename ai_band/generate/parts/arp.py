"""Arp part: the chord's tones broken into a steady stream, as an arpeggiator plays them.

For each chord the arpeggio climbs from the chord tone nearest
``Style.keys_center + 5`` through one octave of chord tones (two octaves
from energy 0.6 on, three or four tones per octave), inside ``PARTS["arp"].pitch_range``.
Steps follow ``Style.arp_rate``: ``"16th"`` (the beat's fine grid: 16ths, or
sixths of a compound beat), ``"8th"`` (the beat's halves, or thirds when
compound) or ``"triplet"`` (thirds of every beat); below energy 0.3 the rate
halves.  ``Style.arp_shape`` orders the tones: ``up``, ``down``, ``updown``
(without repeating the turning points) or ``broken`` (1-3-2-4 ...).  The
pattern restarts on every chord onset, each step lasts ``gate`` of its
length (0.9 legato in B, 0.6 staccato in A) and beat starts are accented by
the meter.  N.C. slots are silent; the ending rolls the chord upwards and
holds it.  Positions are quarter notes (ppq).
"""

from __future__ import annotations

import random

from ai_band.generate.context import PartContext, Slot
from ai_band.generate.parts.keys import ending_notes
from ai_band.model import PARTS, Note
from ai_band.theory.chords import Chord
from ai_band.theory.meter import Meter

__all__ = ["generate_arp", "arp_tones", "ARP_LOW", "ARP_HIGH"]

#: Lowest and highest arp pitch (MIDI note numbers).
ARP_LOW, ARP_HIGH = PARTS["arp"].pitch_range


def arp_tones(chord: Chord, start: int, octaves: int) -> list[int]:
    """Ascending chord tones from the one nearest ``start``, ``octaves`` octaves up.

    At most four tones per octave (root, third, fifth/seventh, top
    extension), all inside :data:`ARP_LOW`..:data:`ARP_HIGH`.

    Args:
        chord: the chord (not N.C.).
        start: MIDI pitch the arpeggio starts near.
        octaves: 1 or 2.
    """
    pcs = list(chord.pitch_classes)
    if len(pcs) > 4:
        pcs = [pcs[0], pcs[1], pcs[3], pcs[-1]]
    bottom = min(
        (p for pc in pcs for p in range(ARP_LOW + (pc - ARP_LOW) % 12, ARP_HIGH + 1, 12)),
        key=lambda p: (abs(p - start), p),
    )
    top = min(ARP_HIGH, bottom + 12 * octaves - 1)
    pcset = set(pcs)
    tones = [p for p in range(bottom, top + 1) if p % 12 in pcset]
    if len(tones) < 2:
        tones = [p for p in range(max(ARP_LOW, bottom - 12), top + 1) if p % 12 in pcset]
    return tones


def _grid(meter: Meter, slot: Slot, rate: str, slow: bool) -> list[float]:
    """Step positions inside the slot (offsets from the bar start, quarter notes)."""
    if rate == "triplet":
        if slow:
            grid = [b.start for b in meter.beats]
        else:
            grid = [b.start + i * b.length / 3.0 for b in meter.beats for i in range(3)]
    else:
        fine = rate == "16th"
        if slow:
            fine, coarse = False, rate == "8th"
        else:
            coarse = False
        if coarse:
            grid = [b.start for b in meter.beats]
        elif fine:
            grid = [t for b in meter.beats for t in b.fine()]
        else:
            grid = [t for b in meter.beats for t in b.subdivisions()]
    end = slot.end_offset - 1e-9
    return [slot.offset] + [t for t in grid if slot.offset < t < end]


def _order(tones: list[int], shape: str, count: int) -> list[int]:
    """``count`` pitches from ``tones`` in the style's order, cycling."""
    n = len(tones)
    if shape == "down":
        cycle = tones[::-1]
    elif shape == "updown":
        cycle = tones + tones[-2:0:-1] if n > 2 else tones
    elif shape == "broken":
        cycle = []
        for i in range(n):
            cycle.append(tones[i])
            if i + 2 < n:
                cycle.append(tones[i + 2])
        cycle = cycle[: max(n, 2 * n - 2)]
    else:
        cycle = tones
    return [cycle[i % len(cycle)] for i in range(count)]


def generate_arp(ctx: PartContext, rng: random.Random) -> list[Note]:
    """Write the arp part on the straight grid.

    Args:
        ctx: style, meter, chord slots and plan.
        rng: the part's seeded random source (octave choice per phrase).

    Returns:
        Notes, one per step, every one a tone of its chord, inside
        :data:`ARP_LOW`..:data:`ARP_HIGH`; steps never overlap.
    """
    style = ctx.style
    meter = ctx.meter
    start = min(ARP_HIGH - 12, style.keys_center + 5)
    notes: list[Note] = []
    for slot in ctx.slots:
        if slot.is_rest:
            continue
        plan = ctx.bar_plan(slot.bar)
        octaves = 2 if plan.energy >= 0.6 else 1
        tones = arp_tones(slot.chord, start, octaves)
        base = ctx.bar_start(slot.bar)
        if plan.variation == "ending":
            roll = 0.125 if slot.duration >= 1.0 else 0.0
            for k, pitch in enumerate(tones[:4]):
                (note,) = ending_notes(ctx, slot, [pitch], style.arp_velocity)
                onset = note.start_ppq + k * roll
                length = max(0.05, note.end_ppq - onset)
                notes.append(Note(onset, length, pitch, note.velocity))
            continue
        positions = _grid(meter, slot, style.arp_rate, plan.energy < 0.3)
        gate = 0.9 if plan.variation == "B" else 0.6
        pitches = _order(tones, style.arp_shape, len(positions))
        ends = positions[1:] + [slot.end_offset]
        for pos, end, pitch in zip(positions, ends, pitches):
            velocity = ctx.velocity(style.arp_velocity, slot.bar, pos) + rng.randint(-3, 3)
            notes.append(Note(base + pos, (end - pos) * gate, pitch, velocity))
    return notes
