"""``<job_id>/arrangement.json``: a job's arrangement as the generator made it, for ``/band/play`` after a restart.

Written atomically by the generation worker beside the MIDI files
(:func:`save_arrangement`), read by the daemon when a job restored from the
job store is first played (:func:`load_arrangement`).  Why not read back
``full.mid``: a Standard MIDI File holds the notes rounded to 1/480 of a
quarter note, no chord spans or song form, and parsing one with mido is a
Python loop per MIDI message; this file holds every value exactly and loads
like the pickled arrangement the workers pass around
(:meth:`ai_band.model.Part.__reduce__`): each part's notes are one table of
little-endian doubles ``(start_ppq, duration_ppq, pitch, velocity)`` per note,
base64-encoded, decoded in C and turned into notes by a Python loop that
hands the GIL to the playback thread.  Not a pickle: loading it runs no code
whatever the file holds.

Format (``"format": "ai-band-arrangement"``, ``"version": 1``)::

    {"format": "ai-band-arrangement", "version": 1,
     "bpm": 120.0, "ts": [4, 4], "bars": 8, "style": "rock", "key": "C", "seed": 7,
     "sections": [["main", 0, 8]],
     "chords": [["Am", 9, [9, 0, 4], 9, 4.0, 4.0, 1], ...],   # symbol root pcs bass start dur bar
     "parts": [{"name": "bass", "program": 33, "channel": 1, "notes": "<base64 of float64 LE>"}, ...]}
"""

from __future__ import annotations

import base64
import json
import sys
from array import array
from pathlib import Path
from typing import Any

from ai_band.errors import JobError
from ai_band.model import Arrangement, ChordSpan, Note, Part

#: File name of the saved arrangement inside a job folder.
ARRANGEMENT_FILE = "arrangement.json"

#: The ``format`` tag and the ``version`` this module writes and reads.
FORMAT = "ai-band-arrangement"
VERSION = 1


def _table(part: Part) -> str:
    values = array("d", [x for n in part.notes for x in (n.start_ppq, n.duration_ppq, n.pitch, n.velocity)])
    if sys.byteorder != "little":
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode("ascii")


def arrangement_to_json(arrangement: Arrangement) -> dict[str, Any]:
    """The arrangement as the JSON object described in the module docstring."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "bpm": arrangement.bpm,
        "ts": [arrangement.ts_num, arrangement.ts_den],
        "bars": arrangement.bars,
        "style": arrangement.style,
        "key": arrangement.key,
        "seed": arrangement.seed,
        "sections": [list(s) for s in arrangement.sections],
        "chords": [[c.symbol, c.root_pc, list(c.pitch_classes), c.bass_pc, c.start_ppq, c.duration_ppq, c.bar]
                   for c in arrangement.chords],
        "parts": [{"name": p.name, "program": p.program, "channel": p.channel, "notes": _table(p)}
                  for p in arrangement.parts],
    }


def save_arrangement(arrangement: Arrangement, job_dir: Path) -> Path:
    """Write ``job_dir/arrangement.json`` atomically; returns its path.

    Raises:
        RenderError: the file cannot be written (no ``*.tmp`` is left behind).
    """
    from ai_band.render.atomic import write_atomic

    data = json.dumps(arrangement_to_json(arrangement), separators=(",", ":")).encode("utf-8")
    return write_atomic(Path(job_dir) / ARRANGEMENT_FILE, data)


def _part(obj: dict[str, Any]) -> Part:
    raw = base64.b64decode(obj["notes"], validate=True)
    values = array("d")
    values.frombytes(raw)
    if sys.byteorder != "little":
        values.byteswap()
    if len(values) % 4:
        raise ValueError(f"part {obj['name']!r}: the note table is not a whole number of notes")
    fields = iter(values)
    notes = tuple(Note(start, duration, int(pitch), int(velocity))
                  for start, duration, pitch, velocity in zip(fields, fields, fields, fields))
    return Part(str(obj["name"]), int(obj["program"]), int(obj["channel"]), notes)


def arrangement_from_json(obj: Any) -> Arrangement:
    """Rebuild the :class:`Arrangement` from :func:`arrangement_to_json`'s object.

    Raises:
        ValueError, KeyError, TypeError: not such an object, or an unknown format or version.
    """
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ValueError(f"not an {FORMAT} file")
    if obj.get("version") != VERSION:
        raise ValueError(f"{FORMAT} version {obj.get('version')!r}; this daemon reads version {VERSION}")
    ts_num, ts_den = obj["ts"]
    return Arrangement(
        parts=tuple(_part(p) for p in obj["parts"]),
        bpm=float(obj["bpm"]),
        ts_num=int(ts_num),
        ts_den=int(ts_den),
        bars=int(obj["bars"]),
        style=str(obj["style"]),
        key=str(obj["key"]),
        seed=int(obj["seed"]),
        chords=tuple(ChordSpan(str(s), int(r), tuple(int(p) for p in pcs), int(b), float(st), float(d), int(bar))
                     for s, r, pcs, b, st, d, bar in obj["chords"]),
        sections=tuple((str(n), int(first), int(count)) for n, first, count in obj["sections"]),
    )


def load_arrangement(path: Path) -> Arrangement:
    """Read a saved arrangement.

    Raises:
        JobError: the file cannot be read or is not a saved arrangement (the
            message names the file and the reason).
    """
    try:
        return arrangement_from_json(json.loads(Path(path).read_bytes()))
    except OSError as exc:
        raise JobError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise JobError(f"{path} is not a saved arrangement: {exc}") from exc
