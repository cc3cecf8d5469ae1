#!/usr/bin/env python3
"""Musical quality: objective metrics of ai-band's output next to real music.

Measures, with the functions of :mod:`bench.metrics`:

* **ai-band**: every style of ``style_names()`` (read at run time) on three
  chord sheets (pop, a ii-V-I jazz sheet, a 12-bar blues) with ``--seeds``
  seeds, every part the style accepts (a part the generator rejects is
  skipped with a note);
* **MMA** (Musical MIDI Accompaniment, Debian ``mma``): the same chord spans
  rendered with the MMA groove of the style's family (see
  :mod:`bench.mma_reference`), split into drums / bass / harmony / arp by
  MMA's track names;
* **music21 corpus** (the corpus shipped in the music21 wheel; nothing is
  downloaded): ``--bach`` Bach chorales (soprano = melody, bass = bass, alto +
  tenor = harmony; chords = the vertical sonority of every beat reduced to its
  best-fitting triad or seventh chord) and ``--folk`` Essen folk songs
  (melody).

Prints one Markdown table per part (ai-band style next to its MMA groove,
then the corpus rows for that role) and one for the whole ensemble;
``--write-docs`` writes them with the method to docs/quality.md, ``--json``
writes every mean, standard deviation and count.  Parsed corpus pieces are
cached as JSON in the temp dir (``--no-cache`` to re-parse).

Usage: python -m bench.quality [--seeds 3] [--bach 50] [--folk 100]
       [--styles jazz,rock] [--no-mma] [--no-corpus] [--write-docs]
       [--json bench/results/quality.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from bench import mma_reference as mma
from bench.gen_speed import machine_info, supported_parts
from bench.metrics import (
    NoteTuple,
    beat_offsets,
    part_metrics,
    tonal_distance,
)
from ai_band.errors import BandError
from ai_band.generate.pipeline import generate, style_names
from ai_band.model import TimeSignature
from ai_band.request import KNOWN_PARTS, parse_request

logger = logging.getLogger("bench.quality")

#: Chord sheets every style plays: name -> (sheet, bars).
SHEETS: dict[str, tuple[str, int]] = {
    "pop": ("| C | Am | F | G |", 32),
    "ii-V-I": ("| Dm7 | G7 | Cmaj7 | Cmaj7 | Em7 A7 | Dm7 G7 | Cmaj7 | A7 |", 32),
    "blues": ("| C7 | F7 | C7 | C7 | F7 | F7 | C7 | A7 | Dm7 | G7 | C7 | G7 |", 24),
}

#: ai-band part -> the role it is compared with in MMA and the corpus.
PART_ROLE = {"drums": "drums", "bass": "bass", "melody": "melody", "arp": "arp"}
#: Parts not listed play the ``harmony`` role (keys, pad, guitar, strings, ...).
DEFAULT_ROLE = "harmony"

#: Table columns: (header, metric key, decimals).
PITCHED_COLUMNS = (
    ("SC", "scale_consistency", 2),
    ("H pc", "pitch_class_entropy", 2),
    ("CTR", "chord_tone_ratio", 2),
    ("poly", "polyphony", 2),
    ("range", "pitch_range", 0),
    ("notes/bar", "note_density", 1),
    ("EBR", "empty_beat_rate", 2),
    ("GC", "groove_consistency", 2),
)
DRUM_COLUMNS = (
    ("notes/bar", "note_density", 1),
    ("EBR", "empty_beat_rate", 2),
    ("GC", "groove_consistency", 2),
)
ENSEMBLE_COLUMNS = (
    ("SC", "scale_consistency", 2),
    ("H pc", "pitch_class_entropy", 2),
    ("poly", "polyphony", 2),
    ("notes/bar", "note_density", 1),
    ("EBR", "empty_beat_rate", 2),
    ("GC", "groove_consistency", 2),
    ("TD bass~harm", "tonal_distance", 2),
)

CACHE_DIR = Path(tempfile.gettempdir()) / "ai-band-quality-cache"


# ---------------------------------------------------------------------------
# One piece, whatever its origin
# ---------------------------------------------------------------------------


class Piece:
    """A piece in the neutral form: notes per role/part, meter, chords."""

    def __init__(
        self,
        name: str,
        parts: dict[str, list[NoteTuple]],
        ts: tuple[int, int],
        n_bars: int,
        chords: list[tuple[float, float, frozenset[int]]] | None,
        drums: Iterable[str] = ("drums",),
    ) -> None:
        self.name = name
        self.parts = parts
        self.ts = ts
        self.bar_len = TimeSignature(*ts).bar_length_ppq
        self.n_bars = n_bars
        self.chords = chords
        self.drums = set(drums)

    def part(self, name: str) -> dict[str, float]:
        """Metrics of one part."""
        return part_metrics(
            self.parts[name],
            self.bar_len,
            self.n_bars,
            self.chords,
            self.ts,
            pitched=name not in self.drums,
        )

    def ensemble(self, bass: str = "bass", harmony: Sequence[str] = ()) -> dict[str, float]:
        """Metrics of all parts together (pitch metrics without drums) + tonal distance."""
        everything = [n for notes in self.parts.values() for n in notes]
        pitched = [n for name, notes in self.parts.items() if name not in self.drums for n in notes]
        rhythm = part_metrics(everything, self.bar_len, self.n_bars, None, self.ts, pitched=False)
        pitch = part_metrics(pitched, self.bar_len, self.n_bars, None, self.ts, pitched=True)
        out = {**pitch, **rhythm}
        out.pop("chord_tone_ratio", None)
        harm = [n for name in harmony if name in self.parts for n in self.parts[name]]
        beat = beat_offsets(*self.ts)[0][1]
        out["tonal_distance"] = (
            tonal_distance(self.parts[bass], harm, self.bar_len * self.n_bars, beat)
            if bass in self.parts and harm
            else math.nan
        )
        return out

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "parts": self.parts,
            "ts": list(self.ts),
            "n_bars": self.n_bars,
            "chords": [[s, e, sorted(pcs)] for s, e, pcs in self.chords] if self.chords else None,
        }

    @classmethod
    def from_json(cls, data: dict) -> Piece:
        return cls(
            data["name"],
            {k: [tuple(n) for n in v] for k, v in data["parts"].items()},  # type: ignore[misc]
            tuple(data["ts"]),  # type: ignore[arg-type]
            data["n_bars"],
            [(s, e, frozenset(p)) for s, e, p in data["chords"]] if data["chords"] else None,
            drums=(),
        )


# ---------------------------------------------------------------------------
# Aggregation
# ---------------------------------------------------------------------------


class Tally:
    """Per-piece metric dicts collected under a row key, summarized as mean/std/n."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, ...], list[dict[str, float]]] = defaultdict(list)

    def add(self, key: tuple[str, ...], metrics: dict[str, float]) -> None:
        self.rows[key].append(metrics)

    def summary(self, key: tuple[str, ...]) -> dict[str, dict[str, float]] | None:
        pieces = self.rows.get(key)
        if not pieces:
            return None
        out: dict[str, dict[str, float]] = {}
        for metric in pieces[0]:
            values = [p[metric] for p in pieces if not math.isnan(p[metric])]
            out[metric] = {
                "mean": statistics.fmean(values) if values else math.nan,
                "std": statistics.pstdev(values)
                if len(values) > 1
                else 0.0
                if values
                else math.nan,
                "n": len(values),
            }
        return out


# ---------------------------------------------------------------------------
# ai-band and MMA
# ---------------------------------------------------------------------------


def measure_styles(
    styles: Sequence[str], seeds: int, use_mma: bool, tally: Tally, notes: list[str]
) -> dict[str, dict]:
    """Generate and measure every style; render and measure its MMA groove.

    Returns:
        Style -> info (parts measured, MMA groove and why, sheets).
    """
    info: dict[str, dict] = {}
    mma_ok = use_mma and mma.mma_path() is not None
    if use_mma and not mma_ok:
        notes.append("MMA is not installed (Debian: apt-get install mma): MMA rows left out")
    skipped: dict[str, list[str]] = defaultdict(list)
    for style in styles:
        parts, rejected = supported_parts(style)
        for part in rejected:
            skipped[part].append(style)
        entry = info.setdefault(style, {"parts": parts, "groove": None, "why": ""})
        if not parts:
            why = "; ".join(sorted(set(rejected.values())))
            notes.append(f"{style}: the generator accepts no part ({why}); style skipped")
            continue
        for sheet_name, (sheet, bars) in SHEETS.items():
            for seed in range(1, seeds + 1):
                try:
                    arr = generate(
                        parse_request(
                            {
                                "chords": sheet,
                                "style": style,
                                "bars": bars,
                                "parts": ",".join(parts),
                                "seed": seed,
                            }
                        )
                    )
                except BandError as exc:
                    notes.append(f"{style} / {sheet_name}: generation failed: {exc}")
                    break
                ts = (arr.ts_num, arr.ts_den)
                chords = [
                    (c.start_ppq, c.start_ppq + c.duration_ppq, frozenset(c.pitch_classes))
                    for c in arr.chords
                ]
                piece = Piece(
                    f"{style}/{sheet_name}/{seed}",
                    {
                        p.name: [(n.start_ppq, n.duration_ppq, n.pitch) for n in p.notes]
                        for p in arr.parts
                    },
                    ts,
                    arr.bars,
                    chords,
                    # any part on the GM percussion channel is unpitched, whatever its name
                    drums={"drums"} | {p.name for p in arr.parts if p.channel == 9},
                )
                for name in piece.parts:
                    tally.add(("ours", style, name), piece.part(name))
                harmony = [
                    p
                    for p in piece.parts
                    if p not in piece.drums and PART_ROLE.get(p, DEFAULT_ROLE) == DEFAULT_ROLE
                ]
                tally.add(("ours", style, "ensemble"), piece.ensemble("bass", harmony))
                if not mma_ok:
                    continue
                groove, why = mma.groove_for(style, arr.ts_num)
                if groove is not None and mma.groove_meter(groove) != ts:
                    meter = mma.groove_meter(groove)
                    why = (
                        f"{groove} is in {meter[0]}/{meter[1]}, the arrangement in {ts[0]}/{ts[1]}"
                        if meter
                        else f"{groove} does not render"
                    )
                    groove = None
                entry["groove"], entry["why"] = groove, why
                if groove is None:
                    continue
                spans = [
                    (c.start_ppq, c.duration_ppq, c.symbol, c.root_pc, c.pitch_classes)
                    for c in arr.chords
                ]
                try:
                    roles = mma.render_chords(
                        spans, arr.bar_length_ppq, arr.bars, groove, arr.bpm, ts, seed
                    )
                except mma.MmaError as exc:
                    message = f"MMA {groove} for {style}: {exc}"
                    if message not in notes:
                        notes.append(message)
                    continue
                ref = Piece(
                    f"mma:{groove}/{sheet_name}/{seed}",
                    {r: n for r, n in roles.items() if n},
                    ts,
                    arr.bars,
                    chords,
                )
                for role in ref.parts:
                    tally.add(("mma", style, role), ref.part(role))
                tally.add(
                    ("mma", style, "ensemble"),
                    Piece(
                        ref.name,
                        {r: n for r, n in ref.parts.items() if r != "arp"},
                        ts,
                        arr.bars,
                        chords,
                    ).ensemble("bass", ["harmony"]),
                )
    for part, names in skipped.items():
        which = "any style" if len(names) == len(styles) else ", ".join(names)
        notes.append(f"part {part!r} is not generated for {which} (rejected by the generator)")
    return info


# ---------------------------------------------------------------------------
# music21 corpus
# ---------------------------------------------------------------------------

_TRIADS_SEVENTHS = (  # intervals above the root; triads first so ties prefer them
    (0, 4, 7),
    (0, 3, 7),
    (0, 3, 6),
    (0, 4, 8),
    (0, 4, 7, 10),
    (0, 4, 7, 11),
    (0, 3, 7, 10),
    (0, 3, 6, 10),
    (0, 3, 6, 9),
)
_TEMPLATES = [
    frozenset((root + i) % 12 for i in ivs) for ivs in _TRIADS_SEVENTHS for root in range(12)
]


def fit_chord(weights: Sequence[float]) -> frozenset[int] | None:
    """Best triad or seventh chord for a beat's pitch-class weights (sounding time).

    Score = weight of the chord's pitch classes minus weight of the others;
    ties go to the first template (triads before sevenths).
    """
    if sum(weights) <= 0:
        return None
    total = sum(weights)
    best, best_score = None, -math.inf
    for template in _TEMPLATES:
        inside = sum(weights[pc] for pc in template)
        score = 2 * inside - total
        if score > best_score + 1e-9:
            best, best_score = template, score
    return best


def beat_chords(
    notes: Sequence[NoteTuple], ts: tuple[int, int], n_bars: int
) -> list[tuple[float, float, frozenset[int]]]:
    """Chord spans per beat: the beat's vertical sonority (as ``chordify()`` slices it)
    reduced to its best-fitting triad or seventh chord by :func:`fit_chord`."""
    bar_len = TimeSignature(*ts).bar_length_ppq
    beats = beat_offsets(*ts)
    spans = []
    for bar in range(n_bars):
        for offset, length in beats:
            lo = bar * bar_len + offset
            hi = lo + length
            weights = [0.0] * 12
            for start, dur, pitch in notes:
                overlap = min(hi, start + dur) - max(lo, start)
                if overlap > 0:
                    weights[pitch % 12] += overlap
            chord = fit_chord(weights)
            if chord is not None:
                spans.append((lo, hi, chord))
    return spans


def _score_notes(part, shift: float) -> list[NoteTuple]:
    out = []
    for n in part.stripTies().flatten().notes:
        ql = float(n.quarterLength)
        if ql <= 0:
            continue  # grace notes
        for p in n.pitches:
            out.append((float(n.offset) + shift, ql, int(p.midi)))
    out.sort()
    return out


def _meter_and_shift(score) -> tuple[tuple[int, int], float] | None:
    """The single time signature of a score and the shift that puts bar lines on multiples
    of the bar length (a pickup bar moves everything right); None with several meters."""
    sigs = score.recurse().getElementsByClass("TimeSignature")
    names = {s.ratioString for s in sigs}
    if len(names) != 1:
        return None
    sig = sigs[0]
    ts = (int(sig.numerator), int(sig.denominator))
    bar_len = TimeSignature(*ts).bar_length_ppq
    measures = score.parts[0].getElementsByClass("Measure")
    shift = (-float(measures[1].offset)) % bar_len if len(measures) > 1 else 0.0
    return ts, shift


def _n_bars(parts: dict[str, list[NoteTuple]], bar_len: float) -> int:
    end = max((s + d for notes in parts.values() for s, d, _ in notes), default=0.0)
    return max(math.ceil(end / bar_len - 1e-6), 1)


def load_bach(count: int, notes: list[str]) -> list[Piece]:
    """The first ``count`` four-part chorales of music21's Bach corpus, in one meter."""
    from music21 import corpus

    pieces = []
    for name in corpus.chorales.Iterator(returnType="filename"):
        if len(pieces) >= count:
            break
        try:
            score = corpus.parse(name)
        except Exception as exc:  # noqa: BLE001 - a corpus file music21 cannot read
            notes.append(f"bach: {name} not parsed: {exc}")
            continue
        if len(score.parts) != 4:
            continue
        meter = _meter_and_shift(score)
        if meter is None:
            continue
        ts, shift = meter
        voices = [_score_notes(p, shift) for p in score.parts]
        parts = {"melody": voices[0], "harmony": sorted(voices[1] + voices[2]), "bass": voices[3]}
        n_bars = _n_bars(parts, TimeSignature(*ts).bar_length_ppq)
        chords = beat_chords([n for v in voices for n in v], ts, n_bars)
        pieces.append(Piece(f"bach:{name}", parts, ts, n_bars, chords, drums=()))
    return pieces


def _essen_tunes() -> list[tuple[Path, int]]:
    """(file, tune number) of the Essen collection, round-robin over its files."""
    from music21 import corpus

    files = sorted(
        p for p in corpus.getComposer("essenFolksong") if not Path(p).name.startswith("test")
    )
    numbers = []
    for path in files:
        text = Path(path).read_text(encoding="latin-1")
        numbers.append([int(x) for x in re.findall(r"^X:\s*(\d+)", text, re.MULTILINE)])
    out = []
    for i in range(max((len(n) for n in numbers), default=0)):
        for path, nums in zip(files, numbers):
            if i < len(nums):
                out.append((Path(path), nums[i]))
    return out


def load_folk(count: int, notes: list[str]) -> list[Piece]:
    """``count`` Essen folk songs (melodies), taken round-robin over the collections."""
    from music21 import corpus

    pieces = []
    for path, number in _essen_tunes():
        if len(pieces) >= count:
            break
        try:
            score = corpus.parse(path, number=number)
            meter = _meter_and_shift(score)
        except Exception as exc:  # noqa: BLE001
            notes.append(f"folk: {path.name} #{number} not parsed: {exc}")
            continue
        if meter is None or not score.parts:
            continue
        ts, shift = meter
        melody = _score_notes(score.parts[0], shift)
        if len(melody) < 8:
            continue
        parts = {"melody": melody}
        pieces.append(
            Piece(
                f"folk:{path.stem}#{number}",
                parts,
                ts,
                _n_bars(parts, TimeSignature(*ts).bar_length_ppq),
                None,
                drums=(),
            )
        )
    return pieces


def cached(kind: str, count: int, loader, use_cache: bool, notes: list[str]) -> list[Piece]:
    """``loader(count, notes)``, cached as JSON in :data:`CACHE_DIR` per music21 version."""
    import music21

    path = CACHE_DIR / f"{kind}-{count}-music21-{music21.__version__}.json"
    if use_cache and path.exists():
        try:
            return [Piece.from_json(d) for d in json.loads(path.read_text())]
        except (ValueError, KeyError, TypeError):
            pass
    pieces = loader(count, notes)
    if use_cache:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([p.to_json() for p in pieces]))
    return pieces


def measure_corpus(bach: int, folk: int, use_cache: bool, tally: Tally, notes: list[str]) -> dict:
    """Measure the music21 corpus pieces; returns counts per collection."""
    try:
        import music21  # noqa: F401
    except ImportError:
        notes.append("music21 is not installed (pip install music21): corpus rows left out")
        return {}
    counts = {}
    for kind, count, loader in (("bach", bach, load_bach), ("folk", folk, load_folk)):
        if count <= 0:
            continue
        pieces = cached(kind, count, loader, use_cache, notes)
        counts[kind] = len(pieces)
        for piece in pieces:
            for role in piece.parts:
                tally.add((kind, "", role), piece.part(role))
            if len(piece.parts) > 1:
                tally.add((kind, "", "ensemble"), piece.ensemble("bass", ["harmony", "melody"]))
    return counts


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------

CORPUS_LABELS = {
    "bach": "Bach chorales (music21)",
    "folk": "Essen folk songs (music21)",
}
CORPUS_ROLE_LABELS = {"melody": "soprano", "bass": "bass", "harmony": "alto+tenor"}


def _fmt(summary: dict | None, key: str, decimals: int) -> str:
    if summary is None or key not in summary or math.isnan(summary[key]["mean"]):
        return "–"
    return f"{summary[key]['mean']:.{decimals}f}"


def build_tables(styles: Sequence[str], info: dict, tally: Tally, corpus_counts: dict) -> str:
    """All Markdown tables: one per part (ai-band next to MMA), one for the ensemble."""
    parts_seen = []
    for style in styles:
        for name in info.get(style, {}).get("parts", []):
            if name not in parts_seen:
                parts_seen.append(name)
    # roles the corpus has (melody) get a table even before ai-band generates that part
    has_reference = {role for (src, _, role) in tally.rows if src in CORPUS_LABELS}
    order = [p for p in KNOWN_PARTS if p in parts_seen or p in has_reference]
    order += [p for p in parts_seen if p not in KNOWN_PARTS]
    sections = []
    for part in order + ["ensemble"]:
        summaries = [tally.summary(("ours", style, part)) for style in styles]
        unpitched = part == "drums" or any(
            s is not None and "scale_consistency" not in s for s in summaries
        )
        if part == "ensemble":
            role, columns = "ensemble", ENSEMBLE_COLUMNS
        elif unpitched:
            role, columns = "drums", DRUM_COLUMNS
        else:
            role, columns = PART_ROLE.get(part, DEFAULT_ROLE), PITCHED_COLUMNS
        head = "| style | source | " + " | ".join(c[0] for c in columns) + " |"
        rule = "|---|---|" + "---:|" * len(columns)
        lines = [f"### {part}", "", head, rule]
        for style in styles:
            ours = tally.summary(("ours", style, part))
            if ours is None:
                continue
            lines.append(
                f"| {style} | ai-band | "
                + " | ".join(_fmt(ours, k, d) for _, k, d in columns)
                + " |"
            )
            groove = info.get(style, {}).get("groove")
            theirs = tally.summary(("mma", style, role))
            if theirs is not None and groove:
                lines.append(
                    f"| {style} | MMA {groove} ({role}) | "
                    + " | ".join(_fmt(theirs, k, d) for _, k, d in columns)
                    + " |"
                )
        for kind in ("bach", "folk"):
            ref = tally.summary((kind, "", role))
            if ref is not None:
                label = CORPUS_ROLE_LABELS.get(role, role) if kind == "bach" else role
                n = corpus_counts.get(kind, 0)
                lines.append(
                    f"| – | {CORPUS_LABELS[kind]}, {label}, n={n} | "
                    + " | ".join(_fmt(ref, k, d) for _, k, d in columns)
                    + " |"
                )
        if len(lines) > 4:
            if part not in parts_seen and part != "ensemble":
                lines.insert(1, "\n(not generated by any style yet: reference rows only)")
            sections.append("\n".join(lines))
    return "\n\n".join(sections)


def mapping_table(styles: Sequence[str], info: dict) -> str:
    lines = ["| ai-band style | MMA groove | why |", "|---|---|---|"]
    for style in styles:
        groove = info.get(style, {}).get("groove")
        why = info.get(style, {}).get("why", "")
        if groove is None and not why:  # not rendered (MMA missing or style skipped)
            groove, why = mma.groove_for(style)
        lines.append(f"| {style} | {groove or '–'} | {why} |")
    return "\n".join(lines)


DOC_HEAD = """\
# Musical quality: objective metrics

Generated by `python -m bench.quality --write-docs` ({when}, {elapsed:.0f} s on
{cpu}, {cores} cores). Re-run it after changing the generator; the lead merges
this page into docs/generation.md.

## Method

Every style (read from `style_names()` at run time) plays three chord sheets,
each with seeds 1..{seeds}: pop `| C | Am | F | G |` (32 bars), a ii-V-I sheet
`| Dm7 | G7 | Cmaj7 | Cmaj7 | Em7 A7 | Dm7 G7 | Cmaj7 | A7 |` (32 bars) and a
12-bar blues in C with a I-VI-ii-V turnaround (24 bars), with every part the
generator accepts for the style; parts it rejects are skipped (listed under
Notes). The numbers are means over those {pieces} pieces per style.

The same metrics are computed on real music, through one neutral form
(`(start, duration, pitch)` notes per part, bar length, chord spans):

* **MMA** (Musical MIDI Accompaniment 21.09, Debian `mma`): the chord spans of
  the same arrangements written as an MMA file with the groove below, rendered
  to MIDI (`RndSeed` = the seed) and split by MMA's track names: `Drum*` (and
  channel 10) drums, `Bass*`/`Walk*` bass, `Chord*`/`Plectrum*` harmony,
  `Arpeggio*`/`Scale*`/`Aria*` arp (also counted as harmony). ai-band's keys,
  pad, guitar and strings are compared with MMA's harmony tracks taken together.
* **Bach chorales** (music21 corpus, the first {bach} four-part chorales in one
  meter): soprano as melody, bass as bass, alto+tenor as harmony. Chords: the
  vertical sonority of every beat (what `chordify()` slices), weighted by
  sounding time and reduced to its best-fitting triad or seventh chord.
* **Essen folk songs** (music21 corpus, {folk} tunes round-robin over the
  collections, single-meter only): melody; no chords, so no CTR.

Metrics (definitions and citations in `bench/metrics.py`):

| column | metric | definition | source |
|---|---|---|---|
| SC | scale consistency | fraction of notes in the best-fitting major/natural-minor scale | Mogren 2016 (C-RNN-GAN); MusPy (Dong et al. 2020) |
| H pc | pitch-class entropy | Shannon entropy (bits) of the pitch-class histogram of note counts; log2 12 = 3.58 is uniform | Wu & Yang 2020 (Jazz Transformer); Yang & Lerch 2020 |
| CTR | chord-tone ratio on strong beats | notes starting on a strong beat (4/4: beats 1 and 3; 3/4 and 6/8: beat 1) whose pitch class is in the sounding chord | strong-beat form of CTnCTR, Yeh et al. 2021 |
| poly | polyphony | mean number of distinct pitches sounding while any sounds (time-weighted) | MusPy (Dong et al. 2020) |
| range | pitch range | highest - lowest pitch, semitones | Yang & Lerch 2020 (PR) |
| notes/bar | note density | notes per bar | Yang & Lerch 2020 (NC per bar) |
| EBR | empty-beat rate | fraction of beats (quarter notes; dotted quarters in 6/8) with no onset | Pypianoroll / MusPy (Dong et al. 2018, 2020), onset form |
| GC | groove consistency | 1 - mean Hamming distance between adjacent bars' onset vectors on a 48-per-bar grid (16ths and triplets), divided by 48 | Wu & Yang 2020 (grooving pattern similarity); MusPy (adjacent bars) |
| TD bass~harm | tonal distance | mean distance between the bass's and the harmony's per-beat 6-D tonal centroids | MuseGAN (Dong et al. 2018), Harte et al. 2006 |

Onsets within 1/24 quarter note of a grid position count as on it, so humanized
timing is not penalized. The ensemble row merges all parts (pitch metrics
without drums); for Bach its harmony is alto+tenor+soprano.

How to read it: MMA and the corpus show where existing accompaniment and real
music lie, not targets to hit exactly. Real melodies (chorale sopranos, folk
songs) score SC about 0.98 with 2.5-2.6 bits of pitch-class entropy and
12-13 semitones of range; chorale basses SC about 0.92 and 2.9 bits. A
pattern-based accompaniment (ai-band, MMA) shows a higher groove consistency
and a lower empty-beat rate than chorales or folk songs. A value far outside
both MMA and the corpus (SC well below 0.85 or entropy above 3.3 bits over these
sheets in C, a bass CTR below 0.6, a melody range above two octaves) points
at a generator problem. "–" marks a metric that is undefined for the row (for
example CTR of a part that never starts a note on a strong beat, such as
off-beat stabs).

## MMA groove for each style

{mapping}

## Results

{tables}

## Notes

{notes}

## Limitations

* The sheets are in C and not purely diatonic: the ii-V-I sheet's A7 brings
  C#, the blues' dominant sevenths Bb and Eb, so even a part that plays only
  chord tones scores SC below 1 on them (MMA's rows show how far below).
* Bach's chords are inferred from the four voices themselves, so the soprano's
  and bass's CTR are biased upward (every note contributes to the fit);
  suspensions on strong beats count as non-chord tones only when the rest of the
  beat outweighs them.
* MMA plays a fixed pattern per groove with small random timing/velocity
  changes; its numbers show what a pattern library does with the same chords,
  not what good music is. Several MMA chord tracks are merged into one harmony
  row, which raises their polyphony compared with a single keys part.
* Styles with no MMA namesake use the nearest groove (marked in the mapping);
  future styles are matched by family words in `bench/mma_reference.py`, and
  a style with no match gets no MMA row.
* The metrics are blind to voice leading, phrasing, dynamics and form; a listen
  remains the final check.
"""


def write_docs(path: Path, tables: str, mapping: str, notes: list[str], meta: dict) -> None:
    text = DOC_HEAD.format(
        tables=tables,
        mapping=mapping,
        notes="\n".join(f"* {n}" for n in notes) or "* none",
        **meta,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _no_nan(value):
    """``value`` with every float nan replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per style and sheet")
    parser.add_argument("--bach", type=int, default=50, help="Bach chorales to measure")
    parser.add_argument("--folk", type=int, default=100, help="Essen folk songs to measure")
    parser.add_argument("--styles", help="comma-separated styles (default: all)")
    parser.add_argument("--no-mma", action="store_true", help="leave MMA out")
    parser.add_argument("--no-corpus", action="store_true", help="leave the music21 corpus out")
    parser.add_argument("--no-cache", action="store_true", help="re-parse the corpus")
    parser.add_argument("--write-docs", action="store_true", help="write docs/quality.md")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "quality.md")
    parser.add_argument("--json", type=Path, help="also write every number here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()

    known = style_names()
    styles = [s.strip() for s in args.styles.split(",")] if args.styles else known
    unknown = [s for s in styles if s not in known]
    if unknown:
        parser.error(f"unknown style(s) {', '.join(unknown)}; known: {', '.join(known)}")
    notes: list[str] = []
    tally = Tally()
    info = measure_styles(styles, args.seeds, not args.no_mma, tally, notes)
    counts = (
        {}
        if args.no_corpus
        else measure_corpus(args.bach, args.folk, not args.no_cache, tally, notes)
    )
    tables = build_tables(styles, info, tally, counts)
    mapping = mapping_table(styles, info)
    elapsed = time.perf_counter() - started
    print(tables)
    print()
    print(mapping)
    for note in notes:
        print(f"note: {note}")
    print(f"({elapsed:.1f} s)")

    machine = machine_info()
    meta = {
        "when": time.strftime("%Y-%m-%d"),
        "elapsed": elapsed,
        "cpu": machine["cpu"],
        "cores": machine["cores"],
        "seeds": args.seeds,
        "pieces": len(SHEETS) * args.seeds,
        "bach": counts.get("bach", 0),
        "folk": counts.get("folk", 0),
    }
    if args.write_docs:
        write_docs(args.docs, tables, mapping, notes, meta)
        print(f"wrote {args.docs}")
    if args.json:
        rows = []
        for key in tally.rows:
            source, style, part = key
            rows.append(
                {
                    "source": source,
                    "style": style or None,
                    "groove": info.get(style, {}).get("groove") if source == "mma" else None,
                    "part": part,
                    "metrics": tally.summary(key),
                }
            )
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"meta": meta, "machine": machine, "sheets": SHEETS, "rows": rows, "notes": notes}
        args.json.write_text(json.dumps(_no_nan(payload), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
