"""Chord symbols and chord sheets.

:func:`parse_chord` turns one lead-sheet symbol (``"Dm7"``, ``"G7/B"``,
``"CΔ9"``, ``"F#ø7"``, ``"G7#9b13"``), a roman numeral in a key (``"V7/V"``,
``"bVII"``) or ``N.C.`` into a :class:`Chord` of pitch classes.  Qualities
are looked up in three steps: the extra table here (which also overrides a
few of pychord's), pychord's table (after the common spellings it lacks,
``CM7``, ``C-7``, ``Cmin7``, ``Cø7``, ``C°``, ``C+``, ``C6/9`` ..., are
normalised), then a base quality followed by alterations and additions
(``7#9b13``, ``m11b5``, ``maj7(9)``, ``7(b9,#11)``, ``add13``, ``no3``).
:func:`parse_progression` reads a whole sheet into bars of
``(chord, offset_ppq, duration_ppq)``.

Sheet grammar (see docs/chords.md)::

    | Dm7 . G7 . | Cmaj7 | % | C/E F G7 |     bars split by "|"
    C Am F G                                   no "|": one chord per bar
    | I vi | ii7 V7/V | N.C. | bVII |           numerals need a key

* chords in a bar split it evenly; ``.`` is a placeholder slot that holds the
  chord before it (``| Dm7 . G7 . |`` = two beats each in 4/4);
* ``%`` alone in a bar repeats the previous bar;
* ``N.C.`` (``NC``, ``n.c.``) is "no chord": a rest for the harmony parts;
* leading/trailing ``|`` and empty bars are ignored; commas count as spaces.

Pitch classes are 0 = C .. 11 = B; positions are in quarter notes (ppq).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pychord import QualityManager

from ai_band.errors import ChordError
from ai_band.model import TimeSignature
from ai_band.theory.roman import is_numeral, resolve_numeral

if TYPE_CHECKING:
    from pychord import Quality

    from ai_band.theory.keys import Key

__all__ = ["NO_CHORD", "Bar", "Chord", "note_to_pc", "parse_chord", "parse_progression"]

#: Quality name of the "no chord" :class:`Chord`.
NO_CHORD = "N.C."

_NO_CHORD_RE = re.compile(r"^[Nn]\.?[Cc]\.?$")

_LETTER_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}

_SYMBOL_RE = re.compile(
    r"^(?P<root>[A-Ga-g])(?P<acc>[#b♯♭]{0,2})(?P<quality>.*?)"
    r"(?:/(?P<bass>[A-Ga-g][#b♯♭]{0,2}))?$"
)
_NOTE_RE = re.compile(r"^([A-Ga-g])([#b♯♭]{0,2})$")

#: Qualities pychord does not define (or defines differently), as semitones
#: above the root in stacking order.  ``7alt`` is the full altered dominant:
#: 1 3 b7 b9 #9 #11 b13 (no fifth).
_EXTRA_QUALITIES: dict[str, tuple[int, ...]] = {
    "m13": (0, 3, 7, 10, 14, 17, 21),
    "mmaj9": (0, 3, 7, 11, 14),
    "maj11": (0, 4, 7, 11, 14, 17),
    "maj9#11": (0, 4, 7, 11, 14, 18),
    "maj7b5": (0, 4, 6, 11),
    "7sus2": (0, 2, 7, 10),
    "13sus4": (0, 5, 7, 10, 14, 21),
    "7sus4b9": (0, 5, 7, 10, 13),
    "m7b9": (0, 3, 7, 10, 13),
    "m9b5": (0, 3, 6, 10, 14),
    "dim9": (0, 3, 6, 9, 14),
    "6sus4": (0, 5, 7, 9),
    "sus2add4": (0, 2, 5, 7),
    "maj6": (0, 4, 7, 9),
    "aug9": (0, 4, 8, 10, 14),
    "7alt": (0, 4, 10, 13, 15, 18, 20),
    "7b9b13": (0, 4, 7, 10, 13, 20),  # pychord adds an 11th
}

#: Whole-quality spellings rewritten before lookup (after unicode clean-up).
_QUALITY_ALIASES: dict[str, str] = {
    "o": "dim",
    "o7": "dim7",
    "+": "aug",
    "+7": "7#5",
    "7+": "7#5",
    "aug7": "7#5",
    "+9": "9#5",
    "9+": "9#5",
    "+maj7": "maj7+5",
    "maj7#5": "maj7+5",
    "maj7aug": "maj7+5",
    "augmaj7": "maj7+5",
    "6/9": "69",
    "6add9": "69",
    "m6/9": "m69",
    "m6add9": "m69",
    "mb5": "dim",
    "7sus": "7sus4",
    "7susb9": "7sus4b9",
    "9sus": "9sus4",
    "13sus": "13sus4",
    "dom7": "7",
    "dom9": "9",
    "dom": "7",
    "add2": "add9",
    "madd2": "madd9",
    "alt": "7alt",
    "m/maj7": "mmaj7",
    "mmaj": "mmaj7",
    "mΔ": "mmaj7",
    "7b5b9": "7b9b5",
    "7#5#9": "7#9#5",
    "7#5b9": "7b9#5",
    "7b5#9": "7#9b5",
}

#: Minor-major-seventh spellings: ``mMaj7``, ``minmaj7``, ``-maj7``, ``mM9`` ...
_MINOR_MAJOR = re.compile(r"^(?:min|mi|-|m)(?:maj|Maj|MAJ|M)(.*)$")

#: Prefix spellings rewritten to pychord's (the first that matches wins).
_PREFIXES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(?:maj|Maj|MAJ|Ma(?!dd)|MA|ma(?!dd)|M)"), "maj"),
    (re.compile(r"^(?:min|MIN|Min|mi(?!n)|-)"), "m"),
)


@dataclass(frozen=True)
class Chord:
    """A parsed chord symbol.

    "No chord" (``N.C.``) is a Chord too: ``root_pc == bass_pc == -1``, no
    pitch classes or intervals, quality :data:`NO_CHORD`; test it with
    :attr:`is_no_chord`.

    Attributes:
        symbol: the symbol as written, e.g. ``"G7/B"``, ``"V7/V"``, ``"N.C."``.
        root_pc: pitch class of the root, 0 = C .. 11 = B (-1 for no chord).
        pitch_classes: distinct chord tones as pitch classes, root first, in
            stacking order (``Cmaj7`` -> ``(0, 4, 7, 11)``); a slash bass that
            is not a chord tone is *not* included.
        bass_pc: pitch class the bass should play: the slash bass, else the
            root (-1 for no chord).
        intervals: semitones above the root in stacking order, extensions above
            the octave kept (``C9`` -> ``(0, 4, 7, 10, 14)``).
        quality: normalised quality name, e.g. ``"m7b5"`` for ``"ø7"``,
            ``"7#9b13"``, ``""`` for a major triad.
    """

    symbol: str
    root_pc: int
    pitch_classes: tuple[int, ...]
    bass_pc: int
    intervals: tuple[int, ...] = ()
    quality: str = ""

    @property
    def is_no_chord(self) -> bool:
        """True for ``N.C.`` (no chord: the harmony rests)."""
        return self.root_pc < 0

    @property
    def is_minor(self) -> bool:
        """True when the chord has a minor third and no major third."""
        return 3 in self.intervals and 4 not in self.intervals

    def interval_pc(self, *semitones: int) -> int | None:
        """Return the first chord tone found among ``semitones`` above the root.

        Args:
            semitones: candidate intervals in order of preference, e.g.
                ``(7, 6, 8)`` for "the fifth, else a flat or sharp fifth".

        Returns:
            The pitch class 0..11, or None when the chord has none of them.
        """
        reduced = {i % 12 for i in self.intervals}
        for s in semitones:
            if s % 12 in reduced:
                return (self.root_pc + s) % 12
        return None


#: One bar of a parsed sheet: ``(chord, offset_ppq within the bar, duration_ppq)``.
Bar = list[tuple[Chord, float, float]]


def note_to_pc(name: str) -> int:
    """Return the pitch class of a note name such as ``"F#"``, ``"Bb"``, ``"E♭"``.

    Raises:
        ValueError: not a letter A..G followed by at most two accidentals.
    """
    match = _NOTE_RE.match(name.strip())
    if match is None:
        raise ValueError(f"not a note name: {name!r}")
    pc = _LETTER_PC[match.group(1).upper()]
    for acc in match.group(2):
        pc += 1 if acc in "#♯" else -1
    return pc % 12


def _clean(quality: str) -> str:
    q = quality.strip().replace("♭", "b").replace("♯", "#").replace("−", "-").replace("∆", "Δ")
    q = re.sub(r"[øØ]7?", "m7b5", q)
    q = re.sub(r"[°º]", "o", q)
    q = re.sub(r"^(m|-|min|mi)?(?:Δ|\^)(?![0-9])", lambda m: (m.group(1) or "") + "maj7", q)
    return q.replace("Δ", "maj").replace("^", "maj")


def _candidates(quality: str) -> list[str]:
    """Spellings to try, in order, for one written quality."""
    q = _clean(quality)
    minor_major = _MINOR_MAJOR.match(q)
    if minor_major:
        q = "mmaj" + (minor_major.group(1) or "7")
    else:
        for pattern, replacement in _PREFIXES:
            if pattern.match(q):
                q = pattern.sub(replacement, q, count=1)
                break
    flat = q.replace("(", "").replace(")", "").replace(",", "")
    out = [q, flat, quality]
    if q == "maj":
        out.append("")
    for cand in (q, flat):
        if cand in _QUALITY_ALIASES:
            out.append(_QUALITY_ALIASES[cand])
        if cand.startswith("maj"):
            out.append("M" + cand[3:])
    return out


#: Natural size in semitones of each degree an alteration or addition names.
_DEGREE_SEMITONES = {"2": 2, "4": 5, "5": 7, "6": 9, "9": 14, "11": 17, "13": 21}
#: One alteration/addition after a base quality.  A bare degree (``9``) is
#: only taken inside parentheses (``maj7(9)``), written here after a comma.
_ALTERATION_RE = re.compile(
    r",?(?P<omit>no|omit)(?P<omitted>3|5)"
    r"|,?(?P<add>add)(?P<add_acc>[b#]?)(?P<add_degree>13|11|9|6|4|2)"
    r"|,?(?P<acc>[b#+-])(?P<degree>13|11|9|5)"
    r"|,(?P<bare>13|11|9|6)"
)


def _alter(intervals: tuple[int, ...], text: str) -> tuple[list[str], tuple[int, ...]] | None:
    """Apply the alterations in ``text`` (all of it, each at most once) to ``intervals``."""
    result = set(intervals)
    names: list[str] = []
    pos = 0
    while pos < len(text):
        match = _ALTERATION_RE.match(text, pos)
        if match is None:
            return None
        pos = match.end()
        if match.group("omit"):
            result -= {3, 4} if match.group("omitted") == "3" else {7}
            name = "no" + match.group("omitted")
        elif match.group("add"):
            acc = match.group("add_acc")
            result.add(_DEGREE_SEMITONES[match.group("add_degree")] + {"b": -1, "#": 1}.get(acc, 0))
            name = "add" + acc + match.group("add_degree")
        elif match.group("bare"):
            result.add(_DEGREE_SEMITONES[match.group("bare")])
            name = "add" + match.group("bare")
        else:  # b9 replaces the natural 9th, #11 the 11th, b5 the fifth ...
            natural = _DEGREE_SEMITONES[match.group("degree")]
            acc = "b" if match.group("acc") in "b-" else "#"
            result.discard(natural)
            result.add(natural + (-1 if acc == "b" else 1))
            name = acc + match.group("degree")
        if name in names:
            return None
        names.append(name)
    return names, tuple(sorted(result))


def _compose(quality: str, known: dict[str, tuple[int, ...]]) -> tuple[str, tuple[int, ...]] | None:
    """Read ``quality`` as the longest known base plus alterations (``7#9b13``, ``7(b9,#11)``)."""
    q = quality.replace("(", ",").replace(")", "").replace(",,", ",")
    for cut in range(len(q), -1, -1):
        base = q[:cut].rstrip(",")
        if base not in known or cut == len(q):
            continue
        altered = _alter(known[base], q[cut:])
        if altered is not None:
            names, intervals = altered
            return base + "".join(names), intervals
    return None


#: pychord's synonyms -> the one quality name :attr:`Chord.quality` reports.
_CANONICAL: dict[str, str] = {
    "maj": "",
    "min": "m",
    "-": "m",
    "sus": "sus4",
    "2": "add9",
    "4": "add11",
    "maj6": "6",
    "omit5": "no5",
    "m(no5)": "mno5",
    "m(omit5)": "mno5",
    "(b5)": "b5",
    "7(b9)": "7b9",
    "mM7": "mmaj7",
    "mM7add11": "mmaj7add11",
}
_CANONICAL_PARTS = (("+", "#"), ("-", "b"), ("majadd", "add"), ("Madd", "add"))


def _canonical(name: str) -> str:
    if name in _CANONICAL:
        return _CANONICAL[name]
    if name.startswith("M"):
        name = "maj" + name[1:]
    for old, new in _CANONICAL_PARTS:
        name = name.replace(old, new)
    return name


@functools.cache
def _pychord_qualities() -> dict[str, Quality]:
    return QualityManager().get_qualities()


def _pychord_intervals(name: str) -> tuple[int, ...] | None:
    """pychord's semitones of one quality name, or None when it has no such quality.

    Worked out per chord looked up: the whole table (:func:`_pychord_table`,
    104 qualities) took ~4 ms of every ``ai-band generate``.
    """
    quality = _pychord_qualities().get(name)
    return None if quality is None else tuple(int(c) for c in quality.components)


@functools.cache
def _pychord_table() -> dict[str, tuple[int, ...]]:
    return {name: _pychord_intervals(name) for name in _pychord_qualities()}


def _quality_intervals(quality: str) -> tuple[str, tuple[int, ...]] | None:
    candidates = _candidates(quality)
    for cand in candidates:
        if cand in _EXTRA_QUALITIES:
            return cand, _EXTRA_QUALITIES[cand]
        if (intervals := _pychord_intervals(cand)) is not None:
            return _canonical(cand), intervals
    found = _compose(candidates[0], {**_pychord_table(), **_EXTRA_QUALITIES})
    return None if found is None else (_canonical(found[0]), found[1])


def _build(token: str, root_pc: int, quality_text: str, bass: str | None, bar: int) -> Chord:
    found = _quality_intervals(quality_text)
    if found is None:
        what = "unknown chord quality or slash bass" if "/" in token else "unknown chord quality"
        raise ChordError(token, bar, what)
    quality, intervals = found
    pcs: list[int] = []
    for interval in intervals:
        pc = (root_pc + interval) % 12
        if pc not in pcs:
            pcs.append(pc)
    bass_pc = note_to_pc(bass) if bass else root_pc
    return Chord(token, root_pc, tuple(pcs), bass_pc, tuple(intervals), quality)


def parse_chord(symbol: str, bar: int = 0, key: Key | None = None) -> Chord:
    """Parse one chord symbol, roman numeral or ``N.C.``.

    Args:
        symbol: e.g. ``"C"``, ``"F#m7"``, ``"Bbmaj7"``, ``"CM7"``, ``"C-7"``,
            ``"Cø7"``, ``"C°"``, ``"G7/B"``, ``"C/Bb"``, ``"G7#9b13"``; a
            numeral ``"V7/V"``, ``"bVII"``, ``"iiø7"`` (needs ``key``);
            ``"N.C."``.  A lower-case root letter is accepted (``"am"`` = ``"Am"``).
        bar: 1-based bar number for the error message (0 when unknown).
        key: the key roman numerals are counted in (see :mod:`ai_band.theory.roman`).

    Returns:
        The :class:`Chord`; ``bass_pc`` is the slash bass when given (it may
        lie outside the chord), else the root.

    Raises:
        ChordError: the symbol is empty, has no valid root or slash bass, its
            quality is unknown, or it is a numeral and ``key`` is None.
    """
    token = symbol.strip()
    if _NO_CHORD_RE.match(token):
        return Chord(token, -1, (), -1, (), NO_CHORD)
    if is_numeral(token):
        if key is None:
            raise ChordError(symbol, bar, "roman numerals need a key")
        numeral = resolve_numeral(token, key)
        return _build(token, numeral.root_pc, numeral.quality, numeral.bass, bar)
    match = _SYMBOL_RE.match(token)
    if not token or match is None:
        raise ChordError(symbol, bar, "not a chord symbol")
    root_pc = note_to_pc(match.group("root") + match.group("acc"))
    return _build(token, root_pc, match.group("quality"), match.group("bass"), bar)


def _tokens(text: str) -> list[str]:
    return text.replace(",", " ").split()


def parse_progression(text: str, ts_num: int, ts_den: int, key: Key | None = None) -> list[Bar]:
    """Parse a chord sheet into bars.

    Args:
        text: the sheet, e.g. ``"| Dm7 . G7 . | Cmaj7 | % |"``, ``"C Am F G"``
            or ``"| I | vi | ii7 | V7 |"``; letters and numerals may be mixed.
        ts_num: time-signature numerator (>= 1).
        ts_den: time-signature denominator (see :class:`~ai_band.model.TimeSignature`).
        key: the key roman numerals are counted in; None when the sheet
            has none.

    Returns:
        One list per bar of ``(chord, offset_ppq, duration_ppq)``; offsets are
        quarter notes from the bar start, and the durations of a bar add up to
        the bar length :attr:`~ai_band.model.TimeSignature.bar_length_ppq`.  A chord held by ``.`` slots is
        one entry covering them; a ``.`` that opens a bar holds the previous
        bar's last chord.

    Raises:
        ChordError: an unknown symbol or a numeral without ``key`` (naming
            the token and its 1-based bar), ``%`` or ``.`` with nothing
            before it, ``%`` beside chords, or a sheet with no chords at all.
        ValueError: not a valid time signature.
    """
    bar_len = TimeSignature(ts_num, ts_den).bar_length_ppq
    if "|" in text:
        raw_bars = [_tokens(seg) for seg in text.split("|")]
    else:
        raw_bars = [[tok] for tok in _tokens(text)]
    raw_bars = [bar for bar in raw_bars if bar]
    if not raw_bars:
        raise ChordError(text, 0, "no chords in progression")

    bars: list[Bar] = []
    previous: Chord | None = None
    for number, tokens in enumerate(raw_bars, start=1):
        if "%" in tokens:
            if len(tokens) != 1:
                raise ChordError("%", number, "'%' must stand alone in its bar")
            if not bars:
                raise ChordError("%", number, "nothing to repeat")
            bars.append(list(bars[-1]))
            continue
        slot = bar_len / len(tokens)
        # (chord, first slot index, number of slots held)
        entries: list[tuple[Chord, int, int]] = []
        for index, token in enumerate(tokens):
            if token == ".":
                if entries:
                    chord, first, count = entries[-1]
                    entries[-1] = (chord, first, count + 1)
                    continue
                if previous is None:
                    raise ChordError(".", number, "placeholder before any chord")
                entries.append((previous, index, 1))
                continue
            chord = parse_chord(token, number, key)
            entries.append((chord, index, 1))
            previous = chord
        bar: Bar = []
        for chord, first, count in entries:
            offset = first * slot
            end = bar_len if first + count == len(tokens) else (first + count) * slot
            bar.append((chord, offset, end - offset))
        bars.append(bar)
        previous = bar[-1][0]
    return bars
