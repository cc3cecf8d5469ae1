"""Feel: swing, humanize, and the clean-up that guarantees playable parts.

The part generators write notes exactly on the grid.  :func:`apply_swing`
then warps time inside each simple (two-part) beat, :func:`humanize` moves
onsets and velocities by small seeded amounts, and :func:`finalize` sorts and
clips the result so that it satisfies the invariants playback relies on
(see :func:`finalize`).  Positions are quarter notes (ppq) from the
arrangement start.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Iterable, Sequence

from daemon.errors import GenerationError
from daemon.generate.meter import Meter
from daemon.generate.model import Note

__all__ = ["apply_swing", "humanize", "finalize", "MAX_SHIFT_PPQ", "MIN_DURATION_PPQ"]

#: Largest timing offset humanize=1 applies, in quarter notes (15 ms at 120 bpm).
MAX_SHIFT_PPQ = 0.03

#: Largest velocity change humanize=1 applies.
MAX_VELOCITY_SHIFT = 12

#: Notes cut shorter than this by a same-pitch collision are dropped (quarter notes).
MIN_DURATION_PPQ = 1.0 / 64


def _swing_warp(
    meter: Meter, amount: float
) -> tuple[list[float], list[tuple[float, float, float]]]:
    starts = [beat.start for beat in meter.beats]
    spans = []
    for beat in meter.beats:
        delay = 0.0 if beat.compound else amount * beat.length / 3.0
        spans.append((beat.start, beat.length, delay))
    return starts, spans


def apply_swing(notes: Iterable[Note], meter: Meter, amount: float) -> list[Note]:
    """Delay the off-beat half of every simple beat.

    Time inside each non-compound beat of length ``L`` is warped piecewise
    linearly so the midpoint moves from ``L/2`` to ``L/2 + amount*L/3``
    (``amount`` 0.5 lands it on the triplet, 2/3 of the beat); beat starts,
    bar lines and the order of events do not move, and compound beats (6/8,
    12/8) are left alone because they already swing.  Onsets and note ends
    are warped alike, so a note never grows into the next one.

    Args:
        notes: notes on the straight grid.
        meter: beat structure of the bar.
        amount: swing 0..1; 0 returns the notes unchanged.

    Returns:
        The swung notes, in the input order.
    """
    notes = list(notes)
    if amount <= 0.0:
        return notes
    starts, spans = _swing_warp(meter, amount)
    bar_len = meter.bar_length

    def warp(t: float) -> float:
        bar = math.floor(t / bar_len)
        base = bar * bar_len
        pos = t - base
        beat_start, length, delay = spans[max(0, bisect_right(starts, pos) - 1)]
        x = pos - beat_start
        if delay == 0.0 or x <= 0.0 or x >= length:
            return t
        half = length / 2.0
        if x <= half:
            y = x * (half + delay) / half
        else:
            y = half + delay + (x - half) * (half - delay) / half
        return base + beat_start + y

    out = []
    for note in notes:
        start = warp(note.start_ppq)
        end = warp(note.end_ppq)
        duration = end - start if end > start else note.duration_ppq
        out.append(Note(start, duration, note.pitch, note.velocity))
    return out


def humanize(notes: Sequence[Note], amount: float, rng: random.Random) -> list[Note]:
    """Loosen timing and dynamics like a player with a steady pocket.

    Every onset moves by the part's *pocket* (one seeded offset for the whole
    part, up to half of :data:`MAX_SHIFT_PPQ`) plus a slowly wandering
    variation (a first-order autoregressive walk, so neighbouring onsets move
    together rather than as white noise); notes struck together (a chord)
    share the onset's shift apart from a tiny spread.  Velocities follow a
    second walk of up to :data:`MAX_VELOCITY_SHIFT`.  Durations are kept;
    :func:`finalize` then clips anything pushed outside the arrangement.

    Args:
        notes: the part's notes sorted by onset.
        amount: humanize 0..1, scaling every deviation; 0 returns the notes unchanged.
        rng: the part's seeded random source.

    Returns:
        The humanized notes (unsorted, possibly outside the arrangement bounds).
    """
    if amount <= 0.0:
        return list(notes)
    limit = MAX_SHIFT_PPQ * amount
    pocket = rng.uniform(-0.5, 0.5) * limit
    walk = 0.0
    vel_walk = 0.0
    shift_at: dict[float, tuple[float, float]] = {}
    out = []
    for note in notes:
        if note.start_ppq not in shift_at:
            walk = 0.75 * walk + 0.25 * rng.uniform(-1.0, 1.0)
            vel_walk = 0.6 * vel_walk + 0.4 * rng.uniform(-1.0, 1.0)
            shift_at[note.start_ppq] = (pocket + 0.5 * limit * walk, vel_walk)
        shift, vel = shift_at[note.start_ppq]
        shift += rng.uniform(-0.1, 0.1) * limit
        velocity = note.velocity + round(
            MAX_VELOCITY_SHIFT * amount * vel + rng.uniform(-2, 2) * amount
        )
        out.append(Note(note.start_ppq + shift, note.duration_ppq, note.pitch, velocity))
    return out


def finalize(notes: Iterable[Note], length_ppq: float) -> tuple[Note, ...]:
    """Make a part safe to play.

    Guarantees: notes sorted by ``(start_ppq, pitch)``; ``0 <= start``,
    ``duration > 0`` and ``end <= length_ppq``; velocity clamped to 1..127;
    no two notes of one pitch overlap (an earlier note is cut at the next
    onset of its pitch and dropped when that leaves less than
    :data:`MIN_DURATION_PPQ`; of two onsets at the same time the louder one
    stays).  Onsets on the grid are never moved.

    Args:
        notes: the part's notes in any order.
        length_ppq: arrangement length in quarter notes.

    Raises:
        GenerationError: a pitch outside 0..127 (a generator bug).
    """
    prepared: list[Note] = []
    for note in notes:
        if not 0 <= note.pitch <= 127:
            raise GenerationError(f"generated pitch {note.pitch} outside 0..127")
        start, duration = note.start_ppq, note.duration_ppq
        if start < 0.0:
            start, duration = 0.0, start + duration
        if start >= length_ppq:
            continue
        if start + duration > length_ppq:
            duration = length_ppq - start
        if duration < MIN_DURATION_PPQ / 4:
            continue
        prepared.append(Note(start, duration, note.pitch, min(127, max(1, note.velocity))))
    prepared.sort(key=lambda n: (n.start_ppq, n.pitch, -n.velocity))

    kept: list[Note | None] = []
    last_index: dict[int, int] = {}
    for note in prepared:
        previous_index = last_index.get(note.pitch)
        if previous_index is not None:
            previous = kept[previous_index]
            assert previous is not None
            if previous.start_ppq == note.start_ppq:
                continue
            if previous.end_ppq > note.start_ppq:
                duration = note.start_ppq - previous.start_ppq
                if duration < MIN_DURATION_PPQ:
                    kept[previous_index] = None
                else:
                    while previous.start_ppq + duration > note.start_ppq:
                        duration = math.nextafter(duration, 0.0)
                    kept[previous_index] = Note(
                        previous.start_ppq, duration, previous.pitch, previous.velocity
                    )
        last_index[note.pitch] = len(kept)
        kept.append(note)

    out = []
    for note in kept:
        if note is None:
            continue
        duration = note.duration_ppq
        while note.start_ppq + duration > length_ppq:
            duration = math.nextafter(duration, 0.0)
        if duration != note.duration_ppq:
            note = Note(note.start_ppq, duration, note.pitch, note.velocity)
        out.append(note)
    return tuple(out)
