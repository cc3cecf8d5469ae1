"""Feel: swing, humanize, and the clean-up that guarantees playable parts.

The part generators write notes exactly on the grid.  :func:`mute_bars`
silences a part in the bars the arrangement leaves it out of,
:func:`apply_swing` then warps time inside each simple (two-part) beat (or
each half beat, for 16th swing), :func:`humanize` moves onsets and
velocities like a player with a steady pocket, and :func:`finalize` sorts and
clips the result so that it satisfies the invariants playback relies on
(see :func:`finalize`).  Positions are quarter notes (ppq) from the
arrangement start.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence

from ai_band.errors import GenerationError
from ai_band.theory.meter import Meter
from ai_band.model import Note

__all__ = [
    "apply_swing",
    "humanize",
    "finalize",
    "mute_bars",
    "MAX_SHIFT_PPQ",
    "MIN_DURATION_PPQ",
    "CHORD_WINDOW_PPQ",
    "POCKET_FULL_AT",
]

#: Largest timing offset humanize=1 applies, in quarter notes (15 ms at 120 bpm).
MAX_SHIFT_PPQ = 0.03

#: Largest velocity change humanize=1 applies.
MAX_VELOCITY_SHIFT = 12

#: Notes cut shorter than this by a same-pitch collision are dropped (quarter notes).
MIN_DURATION_PPQ = 1.0 / 64

#: Onsets closer than this to the first onset of a group share its humanize shift
#: (a chord, a strum), quarter notes.
CHORD_WINDOW_PPQ = 0.05

#: Humanize amount from which a style's pocket applies in full (it scales linearly below).
POCKET_FULL_AT = 0.25


def _swing_warp(
    meter: Meter, amount: float, level: str = "sub"
) -> tuple[list[float], list[tuple[float, float, float]]]:
    starts = []
    spans = []
    for beat in meter.beats:
        if level == "fine" and not beat.compound:
            half = beat.length / 2.0
            for start in (beat.start, beat.start + half):
                starts.append(start)
                spans.append((start, half, amount * half / 3.0))
        else:
            delay = 0.0 if beat.compound else amount * beat.length / 3.0
            starts.append(beat.start)
            spans.append((beat.start, beat.length, delay))
    return starts, spans


def apply_swing(
    notes: Iterable[Note], meter: Meter, amount: float, level: str = "sub"
) -> list[Note]:
    """Delay the off-beat half of every simple beat (or of every half beat).

    Time inside each non-compound beat of length ``L`` is warped piecewise
    linearly so the midpoint moves from ``L/2`` to ``L/2 + amount*L/3``
    (``amount`` 0.5 lands it on the triplet, 2/3 of the beat); beat starts,
    bar lines and the order of events do not move, and compound beats (6/8,
    12/8) are left alone because they already swing.  With ``level="fine"``
    the same warp applies to each half beat: 16th swing, as a drum machine's
    swing setting in hip-hop.  Onsets and note ends are warped alike, so a
    note never grows into the next one.  Triplets already swing: onsets on
    the beat's triplet grid (a third or two thirds into a simple beat) stay
    where they are, and a note on the beat shorter than a third of it (the
    first of a triplet figure) keeps its length.

    Args:
        notes: notes on the straight grid.
        meter: beat structure of the bar.
        amount: swing 0..1; 0 returns the notes unchanged.
        level: ``"sub"`` (8ths in 4/4) or ``"fine"`` (16ths).

    Returns:
        The swung notes, in the input order.
    """
    notes = list(notes)
    if amount <= 0.0:
        return notes
    starts, spans = _swing_warp(meter, amount, level)
    bar_len = meter.bar_length
    beat_starts = [beat.start for beat in meter.beats]

    def triplet(note: Note) -> bool:
        t = note.start_ppq
        pos = t - math.floor(t / bar_len) * bar_len
        beat = meter.beats[max(0, bisect_right(beat_starts, pos) - 1)]
        if beat.compound:
            return False
        thirds = (pos - beat.start) * 3.0 / beat.length
        if abs(thirds - round(thirds)) > 1e-6:
            return False
        return round(thirds) in (1, 2) or note.duration_ppq < beat.length / 3.0 - 1e-9

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
        if triplet(note):
            out.append(note)
            continue
        start = warp(note.start_ppq)
        end = warp(note.end_ppq)
        duration = end - start if end > start else note.duration_ppq
        out.append(Note(start, duration, note.pitch, note.velocity))
    return out


def humanize(
    notes: Sequence[Note],
    amount: float,
    rng: random.Random,
    pocket: Callable[[Note], float] | None = None,
) -> list[Note]:
    """Loosen timing and dynamics like a player with a steady pocket.

    Every onset moves by the part's *pocket* (``pocket(note)`` quarter notes,
    a consistent lean per part or drum voice set by the style: a laid-back
    snare, hats ahead; full from humanize :data:`POCKET_FULL_AT`, scaled
    below) plus a slowly wandering variation (a first-order autoregressive
    walk, so neighbouring onsets move together rather than as white noise);
    notes struck together (a chord, or a strum within
    :data:`CHORD_WINDOW_PPQ`) share the onset's shift apart from a tiny
    spread.  Velocities follow a second walk of up to
    :data:`MAX_VELOCITY_SHIFT`.  Every shift stays within
    :data:`MAX_SHIFT_PPQ`; durations are kept; :func:`finalize` then clips
    anything pushed outside the arrangement.

    Args:
        notes: the part's notes sorted by onset.
        amount: humanize 0..1, scaling every deviation; 0 returns the notes unchanged.
        rng: the part's seeded random source.
        pocket: quarter notes a note sits behind (+) or ahead (-) of the
            beat at full humanize; None for no lean.

    Returns:
        The humanized notes (unsorted, possibly outside the arrangement bounds).
    """
    if amount <= 0.0:
        return list(notes)
    limit = MAX_SHIFT_PPQ * amount
    lean = min(1.0, amount / POCKET_FULL_AT)
    walk = 0.0
    vel_walk = 0.0
    group_start = -1.0
    shift = vel = 0.0
    out = []
    for note in notes:
        if note.start_ppq - group_start >= CHORD_WINDOW_PPQ or group_start < 0.0:
            group_start = note.start_ppq
            walk = 0.75 * walk + 0.25 * rng.uniform(-1.0, 1.0)
            vel_walk = 0.6 * vel_walk + 0.4 * rng.uniform(-1.0, 1.0)
            shift, vel = 0.5 * limit * walk, vel_walk
        total = shift + rng.uniform(-0.1, 0.1) * limit
        if pocket is not None:
            total += lean * pocket(note)
        total = min(MAX_SHIFT_PPQ, max(-MAX_SHIFT_PPQ, total))
        velocity = note.velocity + round(
            MAX_VELOCITY_SHIFT * amount * vel + rng.uniform(-2, 2) * amount
        )
        out.append(Note(note.start_ppq + total, note.duration_ppq, note.pitch, velocity))
    return out


def mute_bars(notes: Iterable[Note], plays: Sequence[bool], bar_length: float) -> list[Note]:
    """Drop the notes of bars where a part sits out and cut notes ringing into them.

    Args:
        notes: notes on the straight grid.
        plays: per bar, True when the part plays.
        bar_length: bar length in quarter notes.

    Returns:
        The notes that start in a playing bar, each ending at the latest
        where the next silent bar starts.
    """
    if all(plays):
        return list(notes)
    bars = len(plays)
    stop = [0.0] * bars
    next_silent = float(bars)
    for bar in range(bars - 1, -1, -1):
        if not plays[bar]:
            next_silent = float(bar)
        stop[bar] = next_silent * bar_length
    out = []
    for note in notes:
        bar = min(bars - 1, int(note.start_ppq / bar_length + 1e-9))
        if not plays[bar]:
            continue
        if note.end_ppq > stop[bar]:
            note = Note(note.start_ppq, stop[bar] - note.start_ppq, note.pitch, note.velocity)
        out.append(note)
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
