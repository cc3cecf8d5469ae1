"""Objective symbolic-music metrics on a neutral note representation.

Every metric is a pure function of plain values, so the same code measures
ai-band's output, music21 corpus scores and MMA's MIDI files:

* a part is a sequence of ``(start_ppq, duration_ppq, pitch)`` tuples, times in
  quarter notes from the start of the piece, pitch a MIDI note number;
* bars have a constant length ``bar_len`` in quarter notes (4.0 in 4/4);
* chords, where a metric needs them, are ``(start_ppq, end_ppq, pitch_classes)``
  spans, pitch classes 0 = C .. 11 = B.

Cheat-sheet::

    from bench.metrics import scale_consistency, groove_consistency, part_metrics
    notes = [(0.0, 1.0, 60), (1.0, 1.0, 62), (2.0, 2.0, 64)]
    scale_consistency(notes)                 # 1.0
    groove_consistency(notes, bar_len=4.0)   # nan: needs two bars
    part_metrics(notes, bar_len=4.0, n_bars=1)   # every metric in one dict

A metric that is undefined for its input (no notes, a single bar, no note on a
strong beat) returns ``nan`` rather than a made-up number; callers average
with ``nanmean``.

Onsets are compared with grid positions with a tolerance (default
:data:`DEFAULT_TOLERANCE`, half a cell of a 48-per-bar grid) so that
humanized timing (ai-band moves onsets by at most 0.03 quarter notes, MMA's
``RTime`` by a few ticks) counts as on the grid.

References (the definitions followed here):

* [Mogren2016] O. Mogren, "C-RNN-GAN: Continuous recurrent neural networks
  with adversarial training", NIPS Constructive Machine Learning Workshop, 2016
  -- *scale consistency*.
* [Dong2018] H.-W. Dong, W.-Y. Hsiao, L.-C. Yang, Y.-H. Yang, "MuseGAN:
  Multi-track sequential generative adversarial networks for symbolic music
  generation and accompaniment", AAAI 2018 -- *tonal distance* (after
  [Harte2006]), in-scale ratio.
* [Harte2006] C. Harte, M. Sandler, M. Gasser, "Detecting harmonic change in
  musical audio", ACM AMCMM 2006 -- the 6-D tonal centroid.
* [Dong2018b] H.-W. Dong, W.-Y. Hsiao, Y.-H. Yang, "Pypianoroll: Open source
  Python package for handling multitrack pianorolls", ISMIR LBD 2018 --
  *empty beat rate*.
* [Yang2020] L.-C. Yang, A. Lerch, "On the evaluation of generative models in
  music", Neural Computing and Applications 32, 2020 -- *pitch range* (PR),
  *note count* (NC, here per bar), the pitch-class histogram.
* [Wu2020] S.-L. Wu, Y.-H. Yang, "The Jazz Transformer on the front line:
  exploring the shortcomings of AI-composed music through quantitative
  measures", ISMIR 2020 -- *pitch-class histogram entropy*, *grooving pattern
  similarity*.
* [Dong2020] H.-W. Dong, K. Chen, J. McAuley, T. Berg-Kirkpatrick, "MusPy: A
  toolkit for symbolic music generation", ISMIR 2020 -- *groove consistency*
  (adjacent bars), *polyphony*, *scale consistency*, *empty beat rate* as
  implemented in its ``muspy.metrics``.
* [Yeh2021] Y.-C. Yeh et al., "Automatic melody harmonization with triad
  chords: a comparative study", J. New Music Research 50, 2021 -- chord-tone
  ratio (CTnCTR), of which :func:`chord_tone_ratio` is the strong-beat form.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from itertools import pairwise

from ai_band.model import TimeSignature
from ai_band.theory.meter import Meter

__all__ = [
    "NoteTuple",
    "ChordTuple",
    "DEFAULT_TOLERANCE",
    "DEFAULT_STEPS_PER_QUARTER",
    "MAJOR_SCALES",
    "MINOR_SCALES",
    "beat_offsets",
    "strong_beat_offsets",
    "scale_consistency",
    "pitch_class_entropy",
    "pitch_range",
    "note_density",
    "polyphony",
    "empty_beat_rate",
    "groove_consistency",
    "chord_tone_ratio",
    "tonal_distance",
    "tonal_centroid",
    "part_metrics",
    "PITCHED_METRICS",
    "RHYTHM_METRICS",
]

#: One note: ``(start_ppq, duration_ppq, pitch)``.
NoteTuple = tuple[float, float, int]
#: One chord span: ``(start_ppq, end_ppq, pitch_classes)``.
ChordTuple = tuple[float, float, Collection[int]]

#: Grid resolution of :func:`groove_consistency`: 12 cells per quarter note
#: (48 per 4/4 bar) hold both 16ths (every 3rd cell) and triplet 8ths (every 4th).
DEFAULT_STEPS_PER_QUARTER = 12

#: How far (quarter notes) an onset may sit from a grid position and still
#: count as on it: half a 48-per-bar cell.
DEFAULT_TOLERANCE = 1.0 / 24.0

_MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)
_MINOR_STEPS = (0, 2, 3, 5, 7, 8, 10)  # natural minor (aeolian), as MusPy

#: Pitch-class sets of the 12 major scales, index = tonic pitch class.
MAJOR_SCALES: tuple[frozenset[int], ...] = tuple(
    frozenset((root + s) % 12 for s in _MAJOR_STEPS) for root in range(12)
)
#: Pitch-class sets of the 12 natural-minor scales, index = tonic pitch class.
MINOR_SCALES: tuple[frozenset[int], ...] = tuple(
    frozenset((root + s) % 12 for s in _MINOR_STEPS) for root in range(12)
)

#: Names of the metrics :func:`part_metrics` computes for pitched parts.
PITCHED_METRICS = (
    "scale_consistency",
    "pitch_class_entropy",
    "pitch_range",
    "polyphony",
    "chord_tone_ratio",
)
#: Names of the metrics :func:`part_metrics` computes for every part (drums too).
RHYTHM_METRICS = ("note_density", "empty_beat_rate", "groove_consistency")


# ---------------------------------------------------------------------------
# Meter helpers
# ---------------------------------------------------------------------------


def beat_offsets(ts_num: int, ts_den: int) -> tuple[tuple[float, float], ...]:
    """Felt beats of a ``ts_num/ts_den`` bar as ``(offset, length)`` in quarter notes.

    The beats of ai-band's own meter model, :meth:`ai_band.theory.meter.Meter.from_ts`
    (4/4 four quarters, 6/8 two dotted quarters, 7/8 = 2+2+3 eighths, 8/8 four quarters).

    Args:
        ts_num: time-signature numerator, >= 1.
        ts_den: time-signature denominator (a power of two).

    Returns:
        One ``(offset, length)`` per beat, offsets from the bar start.

    Raises:
        ValueError: not a valid time signature.
    """
    return tuple((beat.start, beat.length) for beat in Meter.from_ts(ts_num, ts_den).beats)


def strong_beat_offsets(ts_num: int, ts_den: int) -> tuple[float, ...]:
    """Offsets (quarter notes from the bar start) of the strong beats of a bar.

    The downbeat and the secondary accent of ai-band's meter model (in bars of
    four or more felt beats, the beat that opens the second half: 4/4 beat 3,
    5/4 beat 4, 12/8 the third dotted beat).

    Examples:
        4/4 -> (0, 2); 3/4 -> (0,); 6/8 -> (0,); 12/8 -> (0, 3).
    """
    return tuple(beat.start for beat in Meter.from_ts(ts_num, ts_den).beats if beat.strength > 0)


# ---------------------------------------------------------------------------
# Pitch metrics
# ---------------------------------------------------------------------------


def scale_consistency(
    notes: Iterable[NoteTuple],
    scales: Sequence[Collection[int]] = MAJOR_SCALES + MINOR_SCALES,
) -> float:
    """Fraction of notes in the best-fitting scale [Mogren2016], [Dong2020].

    Counts note events (not durations) whose pitch class lies in a scale, for
    each of the 12 major and 12 natural-minor scales, and returns the largest
    fraction.

    Args:
        notes: ``(start, duration, pitch)`` tuples.
        scales: candidate pitch-class sets; default the 24 major/minor scales.

    Returns:
        0..1, or nan when there are no notes.
    """
    hist = Counter(pitch % 12 for _, _, pitch in notes)
    total = sum(hist.values())
    if total == 0:
        return math.nan
    best = max(sum(hist[pc] for pc in scale) for scale in scales)
    return best / total


def pitch_class_entropy(notes: Iterable[NoteTuple]) -> float:
    """Shannon entropy (bits) of the pitch-class histogram [Wu2020], [Yang2020].

    ``H = -sum_pc p(pc) log2 p(pc)`` over the 12 pitch classes, ``p`` the share
    of note events (as the Jazz Transformer's MusDr and MusPy count them).
    0 for a single pitch class, log2(12) = 3.585 when all twelve are equally
    frequent; tonal music scores about 2.6..3.2.

    Returns:
        Entropy in bits, or nan when there are no notes.
    """
    hist = Counter(pitch % 12 for _, _, pitch in notes)
    total = sum(hist.values())
    if total == 0:
        return math.nan
    return -sum((c / total) * math.log2(c / total) for c in hist.values()) + 0.0


def pitch_range(notes: Iterable[NoteTuple]) -> float:
    """Highest minus lowest pitch in semitones (PR of [Yang2020]).

    Returns:
        Semitones (as float), or nan when there are no notes.
    """
    pitches = [pitch for _, _, pitch in notes]
    if not pitches:
        return math.nan
    return float(max(pitches) - min(pitches))


def polyphony(notes: Iterable[NoteTuple]) -> float:
    """Mean number of distinct pitches sounding at once, while any sounds [Dong2020].

    MusPy's ``polyphony`` averages the pianoroll's pitch count over the time
    steps where at least one pitch is on; this computes the same average
    exactly, weighting each stretch between note boundaries by its length.
    A monophonic line gives 1.0, block triads 3.0.

    Returns:
        >= 1.0, or nan when there are no notes of positive length.
    """
    events: list[tuple[float, int, int]] = []
    for start, duration, pitch in notes:
        if duration > 0:
            events.append((start, 1, pitch))
            events.append((start + duration, -1, pitch))
    if not events:
        return math.nan
    events.sort(key=lambda e: e[0])
    sounding: Counter[int] = Counter()
    weighted = 0.0
    covered = 0.0
    i = 0
    n = len(events)
    while i < n:
        t = events[i][0]
        while i < n and events[i][0] == t:
            _, step, pitch = events[i]
            sounding[pitch] += step
            if sounding[pitch] == 0:
                del sounding[pitch]
            i += 1
        if i < n and sounding:
            span = events[i][0] - t
            weighted += len(sounding) * span
            covered += span
    return weighted / covered if covered > 0 else math.nan


def chord_tone_ratio(
    notes: Iterable[NoteTuple],
    chords: Sequence[ChordTuple],
    bar_len: float,
    strong_offsets: Sequence[float] = (0.0,),
    tolerance: float = DEFAULT_TOLERANCE,
) -> float:
    """Fraction of strong-beat onsets that are chord tones of the sounding chord.

    A note counts when its onset lies within ``tolerance`` of a strong beat
    (``bar * bar_len + offset`` for each offset); it is a chord tone when its
    pitch class is in the chord whose span holds that strong beat.  Notes on
    strong beats with no chord sounding are left out.  This is the
    strong-beat form of the chord-tone / non-chord-tone ratio of [Yeh2021]:
    on weak beats passing and neighbour tones are idiomatic.

    Args:
        notes: the part's notes.
        chords: ``(start, end, pitch_classes)`` spans, sorted by start, not overlapping.
        bar_len: bar length in quarter notes.
        strong_offsets: strong-beat offsets within the bar, see :func:`strong_beat_offsets`.
        tolerance: quarter notes an onset may sit off the beat.

    Returns:
        0..1, or nan when no note falls on a strong beat under a chord.
    """
    starts = [c[0] for c in chords]
    hits = 0
    total = 0
    for start, _, pitch in notes:
        bar = math.floor((start + tolerance) / bar_len)
        pos = start - bar * bar_len
        beat = next((off for off in strong_offsets if abs(pos - off) <= tolerance), None)
        if beat is None:
            continue
        t = bar * bar_len + beat
        i = bisect.bisect_right(starts, t + 1e-9) - 1
        if i < 0 or not chords[i][0] - 1e-9 <= t < chords[i][1] - 1e-9:
            continue
        total += 1
        hits += (pitch % 12) in chords[i][2]
    return hits / total if total else math.nan


# ---------------------------------------------------------------------------
# Rhythm metrics
# ---------------------------------------------------------------------------


def note_density(notes: Iterable[NoteTuple], n_bars: int) -> float:
    """Notes per bar: note count (NC of [Yang2020]) divided by the number of bars.

    Returns:
        Notes per bar, or nan when ``n_bars`` < 1.
    """
    if n_bars < 1:
        return math.nan
    return sum(1 for _ in notes) / n_bars


def empty_beat_rate(
    notes: Iterable[NoteTuple],
    length: float,
    beat_len: float = 1.0,
    tolerance: float = DEFAULT_TOLERANCE,
    mode: str = "onset",
) -> float:
    """Fraction of beats without a note [Dong2018b], [Dong2020].

    Args:
        notes: the notes.
        length: length of the piece in quarter notes; beats are
            ``[k * beat_len, (k + 1) * beat_len)`` for ``k < ceil(length / beat_len)``.
        beat_len: beat length in quarter notes (1.0 = quarter, 1.5 = dotted quarter).
        tolerance: an onset this far before a beat counts for that beat (humanize).
        mode: ``"onset"`` (default): a beat is empty when no note starts in it --
            rhythmic activity, which tells a sustained pad from a comping part;
            ``"sounding"``: empty when no note sounds in it, as Pypianoroll/MusPy.

    Returns:
        0..1, or nan when ``length`` <= 0.
    """
    n_beats = math.ceil(length / beat_len - 1e-9)
    if n_beats <= 0:
        return math.nan
    busy = [False] * n_beats
    for start, duration, _ in notes:
        first = math.floor((start + tolerance) / beat_len)
        if mode == "onset":
            last = first
        elif mode == "sounding":
            last = math.ceil((start + duration) / beat_len - 1e-9) - 1
        else:
            raise ValueError(f"mode must be 'onset' or 'sounding', got {mode!r}")
        for k in range(max(first, 0), min(last, n_beats - 1) + 1):
            busy[k] = True
    return 1.0 - sum(busy) / n_beats


def groove_consistency(
    notes: Iterable[NoteTuple],
    bar_len: float,
    n_bars: int | None = None,
    steps_per_quarter: int = DEFAULT_STEPS_PER_QUARTER,
) -> float:
    """1 - mean normalized Hamming distance of adjacent bars' onset patterns.

    The grooving pattern of a bar is the binary vector of its grid cells that
    hold an onset ([Wu2020]); the groove consistency of [Dong2020] is
    ``1 - 1/(T-1) * sum_i d(G_i, G_{i+1})`` with ``d`` the Hamming distance
    divided by the cells per bar.  Onsets snap to the nearest cell, so
    humanized notes stay in their cell.  1.0 when every bar has the same
    onsets; an empty bar next to a bar with ``k`` onsets scores ``1 - k/Q``.

    Args:
        notes: the notes.
        bar_len: bar length in quarter notes.
        n_bars: number of bars ``T``; default: up to the bar of the last onset.
        steps_per_quarter: grid cells per quarter note (12: 48 per 4/4 bar).

    Returns:
        0..1, or nan with fewer than two bars.
    """
    steps = round(bar_len * steps_per_quarter)
    if steps < 1:
        return math.nan
    cells: set[int] = set()
    for start, _, _ in notes:
        cells.add(round(start * steps_per_quarter))
    if n_bars is None:
        n_bars = (max(cells) // steps + 1) if cells else 0
    if n_bars < 2:
        return math.nan
    patterns = [set() for _ in range(n_bars)]
    for cell in cells:
        bar, pos = divmod(cell, steps)
        if 0 <= bar < n_bars:
            patterns[bar].add(pos)
    distance = sum(len(a ^ b) for a, b in pairwise(patterns))
    return 1.0 - distance / (steps * (n_bars - 1))


# ---------------------------------------------------------------------------
# Inter-part harmony
# ---------------------------------------------------------------------------


def tonal_centroid(
    chroma: Sequence[float], radii: tuple[float, float, float] = (1.0, 1.0, 0.5)
) -> tuple[float, ...] | None:
    """6-D tonal centroid of a 12-bin chroma vector [Harte2006].

    Pitch class ``l`` maps to the circles of fifths (angle ``7*pi/6 * l``),
    minor thirds (``3*pi/2 * l``) and major thirds (``2*pi/3 * l``) with the
    given radii; the centroid is the chroma-weighted mean.

    Returns:
        Six coordinates, or None for an all-zero chroma.
    """
    total = sum(chroma)
    if total <= 0:
        return None
    out = [0.0] * 6
    for pc, weight in enumerate(chroma):
        if weight <= 0:
            continue
        for k, (angle, radius) in enumerate(
            zip((7 * math.pi / 6, 3 * math.pi / 2, 2 * math.pi / 3), radii)
        ):
            out[2 * k] += weight * radius * math.sin(pc * angle)
            out[2 * k + 1] += weight * radius * math.cos(pc * angle)
    return tuple(v / total for v in out)


def _beat_chroma(notes: Iterable[NoteTuple], n_beats: int, beat_len: float) -> list[list[float]]:
    chroma = [[0.0] * 12 for _ in range(n_beats)]
    for start, duration, pitch in notes:
        end = start + duration
        k = max(math.floor(start / beat_len), 0)
        while k < n_beats and k * beat_len < end:
            overlap = min(end, (k + 1) * beat_len) - max(start, k * beat_len)
            if overlap > 0:
                chroma[k][pitch % 12] += overlap
            k += 1
    return chroma


def tonal_distance(
    notes_a: Iterable[NoteTuple],
    notes_b: Iterable[NoteTuple],
    length: float,
    beat_len: float = 1.0,
) -> float:
    """Mean Euclidean distance of two parts' per-beat tonal centroids [Dong2018].

    MuseGAN's *TD* (as Pypianoroll's ``tonal_distance``): each part's chroma
    is summed per beat (weighted by sounding time), mapped to its tonal
    centroid, and the distances are averaged over the beats where both parts
    sound.  0 when both parts sound the same pitch classes in the same
    proportions; larger means weaker harmonic agreement between the parts.

    Returns:
        Distance >= 0, or nan when the parts never sound in the same beat.
    """
    n_beats = math.ceil(length / beat_len - 1e-9)
    if n_beats <= 0:
        return math.nan
    chroma_a = _beat_chroma(notes_a, n_beats, beat_len)
    chroma_b = _beat_chroma(notes_b, n_beats, beat_len)
    distances = []
    for a, b in zip(chroma_a, chroma_b):
        ca, cb = tonal_centroid(a), tonal_centroid(b)
        if ca is not None and cb is not None:
            distances.append(math.dist(ca, cb))
    return sum(distances) / len(distances) if distances else math.nan


# ---------------------------------------------------------------------------
# All at once
# ---------------------------------------------------------------------------


def part_metrics(
    notes: Sequence[NoteTuple],
    bar_len: float,
    n_bars: int,
    chords: Sequence[ChordTuple] | None = None,
    ts: tuple[int, int] | None = None,
    pitched: bool = True,
) -> dict[str, float]:
    """Every per-part metric of this module for one part (or a merged ensemble).

    Args:
        notes: the part's notes.
        bar_len: bar length in quarter notes.
        n_bars: number of bars of the piece.
        chords: chord spans for :func:`chord_tone_ratio`; None leaves it nan.
        ts: time signature for the beat grid; default ``(bar_len, 4)`` in quarters.
        pitched: False for drums: pitch metrics are left out.

    Returns:
        Metric name -> value (nan where undefined), the names of
        :data:`RHYTHM_METRICS` and, when ``pitched``, :data:`PITCHED_METRICS`.
    """
    if ts is None:
        ts = (max(round(bar_len), 1), 4)
    beats = beat_offsets(*ts)
    # a felt beat for the empty-beat grid: the bar's beats when they are even
    beat_len = beats[0][1] if len({length for _, length in beats}) == 1 else TimeSignature(*ts).unit_ppq
    length = bar_len * n_bars
    out = {
        "note_density": note_density(notes, n_bars),
        "empty_beat_rate": empty_beat_rate(notes, length, beat_len),
        "groove_consistency": groove_consistency(notes, bar_len, n_bars),
    }
    if pitched:
        out["scale_consistency"] = scale_consistency(notes)
        out["pitch_class_entropy"] = pitch_class_entropy(notes)
        out["pitch_range"] = pitch_range(notes)
        out["polyphony"] = polyphony(notes)
        out["chord_tone_ratio"] = (
            chord_tone_ratio(notes, chords, bar_len, strong_beat_offsets(*ts))
            if chords
            else math.nan
        )
    return out
