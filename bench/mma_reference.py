"""MMA (Musical MIDI Accompaniment) as a reference accompaniment generator.

MMA (Bob van der Poel, Debian package ``mma``) turns a chord sheet plus a
named *groove* from its library into a MIDI file.  This module maps each
ai-band style to the MMA groove of the same family, writes the chord spans of
a generated arrangement as an MMA file, renders it with ``mma`` (subprocess,
with a timeout) and reads the MIDI back into the neutral
``(start_ppq, duration_ppq, pitch)`` form of :mod:`bench.metrics`, split into
roles by MMA's track names.

Cheat-sheet::

    from bench.mma_reference import mma_path, groove_for, render_chords
    if mma_path():
        groove, why = groove_for("jazz", ts_num=4)        # ("JazzCombo", "same family")
        roles = render_chords(bars, groove, bpm=140, ts=(4, 4), seed=1)
        roles["bass"]                                     # [(0.0, 0.9, 36), ...]

MMA needs a groove database (``.mmaDB`` files in its library, made by
``mma -G``); the Debian package ships one.  When a render fails because a
groove is not found, :func:`render_chords` runs ``mma -G`` once (the library
must be writable: run as root, or point ``MMA_LIBPATH`` to a writable copy)
and tries again.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = [
    "GROOVE_MAP",
    "WALTZ_MAP",
    "ROLES",
    "MmaError",
    "mma_path",
    "groove_for",
    "mma_chord_name",
    "write_mma",
    "render_chords",
    "read_mma_midi",
    "groove_meter",
]

#: ai-band style (or a word in a style name) -> MMA groove of the same family.
#: Entries marked "nearest" in :data:`NEAREST` have no same-named MMA family.
GROOVE_MAP: dict[str, str] = {
    "rock": "BasicRock",
    "jazz": "JazzCombo",
    "swing": "Swing",
    "bebop": "Bebop",
    "blues": "Blues",
    "shuffle": "ShuffleBoggie",
    "boogie": "BoggieWoggie",
    "electronic": "Trance",
    "edm": "Trance",
    "trance": "Trance",
    "house": "Trance",
    "techno": "Trance",
    "dance": "Trance",
    "ambient": "StringBallad",
    "classical": "PianoBallad",
    "pop": "8Beat",
    "ballad": "PopBallad",
    "soul": "DSoul",
    "rnb": "R&B",
    "funk": "BVFunk",
    "disco": "BVFunk",
    "reggae": "Ska",
    "ska": "Ska",
    "bossa": "BossaNova",
    "bossanova": "BossaNova",
    "latin": "Salsa",
    "salsa": "Salsa",
    "samba": "Samba",
    "tango": "Tango",
    "rumba": "Rhumba",
    "mambo": "Mambo",
    "chacha": "ChaCha",
    "bolero": "Bolero",
    "country": "CountrySwing",
    "bluegrass": "BlueGrass",
    "folk": "Folk",
    "gospel": "Spiritual",
    "spiritual": "Spiritual",
    "march": "March",
    "polka": "Polka",
    "ragtime": "RagTime",
    "dixie": "Dixie",
    "dixieland": "Dixie",
    "bigband": "BigBand",
    "fusion": "LFusion",
    "jazzrock": "JazzRock",
    "waltz": "Waltz",
}

#: Styles whose MMA groove is the nearest available rather than a namesake.
NEAREST = {
    "ambient": "no ambient groove in MMA; sustained strings + bass, no drums",
    "classical": "no classical groove in MMA; piano arpeggios + bass",
    "electronic": "MMA's electronic groove is Trance",
    "edm": "MMA's electronic groove is Trance",
    "house": "MMA's electronic groove is Trance",
    "techno": "MMA's electronic groove is Trance",
    "dance": "MMA's electronic groove is Trance",
    "reggae": "no reggae groove in MMA; Ska has the off-beat skank",
    "disco": "no disco groove in MMA; funk",
    "pop": "MMA's straight pop groove is 8Beat",
}

#: Family -> triple-meter groove, used when the arrangement is in 3/4.
WALTZ_MAP: dict[str, str] = {
    "jazz": "JazzWaltz",
    "swing": "JazzWaltz",
    "bebop": "JazzWaltz",
    "country": "CountryWaltz",
    "rock": "RockWaltz",
    "latin": "LatinWaltz",
    "classical": "ArpeggioWaltz",
}

#: MMA track type (the part of a track name before "-") -> role.
TRACK_ROLES: dict[str, str] = {
    "drum": "drums",
    "bass": "bass",
    "walk": "bass",
    "chord": "harmony",
    "plectrum": "harmony",
    "arpeggio": "arp",
    "scale": "arp",
    "aria": "arp",
    "solo": "melody",
    "melody": "melody",
}

#: Roles :func:`read_mma_midi` returns; ``harmony`` also holds ``arp``'s notes.
ROLES = ("drums", "bass", "harmony", "arp", "melody")

_TIMEOUT_S = 60.0


class MmaError(RuntimeError):
    """``mma`` is missing, timed out or rejected the file."""


def mma_path() -> str | None:
    """Path of the ``mma`` executable, or None when it is not installed."""
    return shutil.which("mma")


def groove_for(style: str, ts_num: int = 4) -> tuple[str | None, str]:
    """The MMA groove standing in for an ai-band style.

    Looks the style up in :data:`GROOVE_MAP`, then each word of it
    (``"latin_jazz"`` -> ``"latin"``); in 3/4 the family's waltz from
    :data:`WALTZ_MAP` (else ``Waltz``).

    Returns:
        ``(groove, why)``: the groove name (None when nothing fits) and a
        short reason for the report.
    """
    key = style.lower().replace(" ", "").replace("-", "").replace("_", "")
    words = [key] + [w for w in re.split(r"[\s_\-]+", style.lower()) if w]
    family = next((w for w in words if w in GROOVE_MAP), None)
    if family is None:
        return None, "no MMA groove of this family"
    if ts_num == 3:
        return WALTZ_MAP.get(family, "Waltz"), f"{family} in 3/4"
    return GROOVE_MAP[family], NEAREST.get(family, "same family")


_QUALITY_SUBS = (
    ("Δ", "maj7"),
    ("ø7", "m7b5"),
    ("ø", "m7b5"),
    ("°7", "dim7"),
    ("°", "dim"),
    ("-7b5", "m7b5"),
    ("m(maj7)", "mM7"),
    ("min", "m"),
    ("mi", "m"),
)


def mma_chord_name(
    symbol: str, root_pc: int, pitch_classes: Sequence[int], simple: bool = False
) -> str:
    """An MMA chord name for a chord span.

    Args:
        symbol: the symbol as written in the sheet (e.g. ``"Dm7"``, ``"G7/B"``).
        root_pc: pitch class of the root.
        pitch_classes: chord tones as pitch classes.
        simple: ignore the symbol and name the chord from its pitch classes
            (root + triad or seventh quality): the fallback when MMA rejects
            a spelling.
    """
    if not simple:
        name = symbol.strip()
        for old, new in _QUALITY_SUBS:
            name = name.replace(old, new)
        if re.fullmatch(r"[A-G][#b]?[A-Za-z0-9#+()]*(/[A-G][#b]?)?", name):
            return name
    roots = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
    iv = {(pc - root_pc) % 12 for pc in pitch_classes}
    for needed, quality in (
        ({4, 7, 10}, "7"),
        ({4, 7, 11}, "maj7"),
        ({3, 7, 10}, "m7"),
        ({3, 6, 10}, "m7b5"),
        ({3, 6, 9}, "dim7"),
        ({3, 6}, "dim"),
        ({4, 8}, "aug"),
        ({3}, "m"),
    ):
        if needed <= iv:
            return roots[root_pc % 12] + quality
    return roots[root_pc % 12]


def write_mma(
    bars: Sequence[Sequence[tuple[float, str]]],
    groove: str,
    bpm: float,
    ts: tuple[int, int] = (4, 4),
    seed: int = 1,
) -> str:
    """MMA source for a chord sheet.

    Args:
        bars: per bar, ``(offset_ppq, mma_chord_name)`` of each chord, in order.
        groove: MMA groove name.
        bpm: tempo.
        ts: time signature; MMA's chord slots are the bar's ``ts_num`` units.
        seed: MMA's random seed (``RndSeed``; its grooves randomize timing and volume).

    Returns:
        The file text: each bar a line ``N chord / chord /`` with a chord or
        ``/`` (continue) in each slot.
    """
    slots = ts[0]
    unit = 4.0 / ts[1]
    lines = [f"RndSeed {seed}", f"Tempo {bpm:g}", f"Groove {groove}"]
    for number, chords in enumerate(bars, start=1):
        cells = ["/"] * slots
        for offset, name in chords:
            cells[min(max(round(offset / unit), 0), slots - 1)] = name
        if cells[0] == "/":  # a bar must open with a chord: carry the last one in
            previous = next((n for b in reversed(bars[: number - 1]) for _, n in reversed(b)), None)
            cells[0] = (previous or chords[0][1]) if chords else (previous or "C")
        lines.append(f"{number} " + " ".join(cells))
    return "\n".join(lines) + "\n"


def _run_mma(source: Path, midi: Path) -> subprocess.CompletedProcess[str]:
    exe = mma_path()
    if exe is None:
        raise MmaError("mma is not installed (Debian: apt-get install mma)")
    try:
        return subprocess.run(
            [exe, "-w", str(source), "-f", str(midi)],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise MmaError(f"mma timed out after {_TIMEOUT_S:g} s") from exc


def _error_text(output: str) -> str:
    """MMA's error messages on one line, its warnings left out."""
    keep, skipping = [], False
    for line in output.splitlines():
        if line.startswith(("Warning:", "Error:")):
            skipping = line.startswith("Warning:")
        if not skipping:
            keep.append(line.strip())
    return re.sub(r"<File:[^>]*>\s*", "", " ".join(keep)).strip()


def groove_meter(groove: str) -> tuple[int, int] | None:
    """Time signature of an MMA groove, from a one-bar render (cached per groove).

    Returns:
        ``(numerator, denominator)``, or None when the groove cannot be rendered.
    """
    if groove not in _meters:
        meter = None
        with tempfile.TemporaryDirectory(prefix="ai-band-mma-") as tmp:
            source, midi = Path(tmp, "probe.mma"), Path(tmp, "probe.mid")
            source.write_text(f"Groove {groove}\n1 C\n")
            try:
                proc = _run_mma(source, midi)
            except MmaError:
                proc = None
            if proc is not None and proc.returncode == 0 and midi.exists():
                import mido

                for msg in mido.MidiFile(str(midi)).tracks[0]:
                    if msg.type == "time_signature":
                        meter = (msg.numerator, msg.denominator)
                        break
                else:
                    meter = (4, 4)
        _meters[groove] = meter
    return _meters[groove]


_meters: dict[str, tuple[int, int] | None] = {}
_db_rebuilt = False


def _rebuild_db() -> None:
    global _db_rebuilt
    if _db_rebuilt:
        return
    _db_rebuilt = True
    logger.warning("MMA groove not found: rebuilding its groove database (mma -G)")
    try:
        subprocess.run(
            [mma_path() or "mma", "-G"], capture_output=True, text=True, timeout=300, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("mma -G failed: %s", exc)


def render_chords(
    chords: Sequence[tuple[float, float, str, int, Sequence[int]]],
    bar_len: float,
    n_bars: int,
    groove: str,
    bpm: float,
    ts: tuple[int, int] = (4, 4),
    seed: int = 1,
) -> dict[str, list[tuple[float, float, int]]]:
    """Render chord spans with an MMA groove and read the notes back by role.

    Args:
        chords: ``(start_ppq, duration_ppq, symbol, root_pc, pitch_classes)`` per span.
        bar_len: bar length in quarter notes.
        n_bars: bars to write.
        groove: MMA groove name.
        bpm: tempo.
        ts: time signature.
        seed: MMA's random seed.

    Returns:
        Role (see :data:`ROLES`) -> notes ``(start_ppq, duration_ppq, pitch)``.

    Raises:
        MmaError: mma is missing, timed out, or rejected the file even with
            simplified chord names.
    """
    with tempfile.TemporaryDirectory(prefix="ai-band-mma-") as tmp:
        source = Path(tmp, "sheet.mma")
        midi = Path(tmp, "sheet.mid")
        last = ""
        for attempt, simple in enumerate((False, True, True)):
            bars: list[list[tuple[float, str]]] = [[] for _ in range(n_bars)]
            for start, _, symbol, root_pc, pcs in chords:
                bar = int(start // bar_len + 1e-9)
                if 0 <= bar < n_bars:
                    bars[bar].append(
                        (start - bar * bar_len, mma_chord_name(symbol, root_pc, pcs, simple))
                    )
            source.write_text(write_mma(bars, groove, bpm, ts, seed))
            proc = _run_mma(source, midi)
            if proc.returncode == 0 and midi.exists():
                return read_mma_midi(midi)
            last = _error_text(proc.stderr + proc.stdout)
            if "groove" in last.lower() and "not" in last.lower() and attempt == 1:
                _rebuild_db()
        raise MmaError(f"mma failed for groove {groove}: {last[-300:]}")


def read_mma_midi(path: os.PathLike[str] | str) -> dict[str, list[tuple[float, float, int]]]:
    """Notes of an MMA MIDI file by role, times in quarter notes.

    Tracks are assigned by MMA's track names (``Drum``, ``Bass``, ``Walk``,
    ``Chord-Piano``, ``Arpeggio``, ...: :data:`TRACK_ROLES`); a track on
    channel index 9 is drums whatever its name.  ``harmony`` gets the notes
    of both ``Chord``-like and ``Arpeggio``-like tracks, ``arp`` only the latter.
    """
    import mido  # a project dependency; imported here so the module loads without it

    mid = mido.MidiFile(str(path))
    tpb = mid.ticks_per_beat
    out: dict[str, list[tuple[float, float, int]]] = {role: [] for role in ROLES}
    for track in mid.tracks:
        name = (track.name or "").strip()
        kind = name.split("-", 1)[0].lower()
        tick = 0
        open_notes: dict[tuple[int, int], list[int]] = {}
        notes: list[tuple[float, float, int]] = []
        channels = set()
        for msg in track:
            tick += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                channels.add(msg.channel)
                open_notes.setdefault((msg.channel, msg.note), []).append(tick)
            elif msg.type in ("note_off", "note_on"):
                starts = open_notes.get((msg.channel, msg.note))
                if starts:
                    begin = starts.pop(0)
                    notes.append((begin / tpb, max(tick - begin, 1) / tpb, msg.note))
        for (_, pitch), starts in open_notes.items():
            notes.extend((b / tpb, max(tick - b, 1) / tpb, pitch) for b in starts)
        if not notes:
            continue
        role = "drums" if 9 in channels else TRACK_ROLES.get(kind)
        if role is None:
            logger.info("MMA track %r not mapped to a role; ignored", name)
            continue
        out[role].extend(notes)
        if role == "arp":
            out["harmony"].extend(notes)
    for notes in out.values():
        notes.sort()
    return out
