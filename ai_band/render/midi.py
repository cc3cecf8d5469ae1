"""Standard MIDI files of an arrangement, written atomically.

For every part ``<part>.mid`` (type 1: a conductor track with track name,
tempo, time signature and key signature, then the part's track with its
name, program change and notes) and ``full.mid`` (the conductor track and one
track per part).  Resolution is :data:`TICKS_PER_BEAT` ticks per quarter
note; positions in quarter notes (ppq) are rounded to the nearest tick.

Each file is written to a temporary file in the job directory, flushed and
fsynced, then renamed over its final name with :func:`os.replace`, so a reader
sees either the old file, the complete new one, or nothing; on any error the
temporary files are removed.
"""

from __future__ import annotations

import logging
import os
import pathlib
from collections.abc import Iterable

import mido

from ai_band.errors import RenderError
from ai_band.render.atomic import fsync_dir, remove_temps, write_temp
from ai_band.model import Arrangement, Part

__all__ = ["write_midi_files", "arrangement_to_midi", "part_track", "TICKS_PER_BEAT", "FULL"]

logger = logging.getLogger(__name__)

#: MIDI file resolution: ticks per quarter note.
TICKS_PER_BEAT = 480

#: Key of the multi-track file in the dict :func:`write_midi_files` returns.
FULL = "full"

#: Key names a MIDI key-signature meta event can carry.
_MIDI_KEYS = frozenset(
    "C G D A E B F# C# F Bb Eb Ab Db Gb Cb "
    "Am Em Bm F#m C#m G#m D#m A#m Dm Gm Cm Fm Bbm Ebm Abm".split()
)


#: Message type of an event of :func:`part_track` by its kind (0 = note-off, 1 = note-on).
_NOTE_TYPES = ("note_off", "note_on")


def _ticks(ppq: float) -> int:
    return max(0, round(ppq * TICKS_PER_BEAT))


def _check_data(name: str, value: int, highest: int = 127) -> None:
    """Raise ValueError unless ``value`` is an int in ``0..highest`` (MIDI 1.0 data bytes: 0..127)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= highest:
        raise ValueError(f"{name} must be an int in 0..{highest}, got {value!r}")


def _conductor(arrangement: Arrangement, title: str) -> mido.MidiTrack:
    """Track 0: name, tempo, time signature and (when expressible) key signature."""
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name=title, time=0))
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(arrangement.bpm), time=0))
    beat_units = 3 if arrangement.ts_den >= 8 and arrangement.ts_num % 3 == 0 else 1
    clocks = max(1, min(255, round(96 / arrangement.ts_den) * beat_units))
    track.append(
        mido.MetaMessage(
            "time_signature",
            numerator=arrangement.ts_num,
            denominator=arrangement.ts_den,
            clocks_per_click=clocks,
            notated_32nd_notes_per_beat=8,
            time=0,
        )
    )
    if arrangement.key in _MIDI_KEYS:
        track.append(mido.MetaMessage("key_signature", key=arrangement.key, time=0))
    track.append(mido.MetaMessage("end_of_track", time=_ticks(arrangement.length_ppq)))
    return track


def part_track(part: Part, end_ppq: float) -> mido.MidiTrack:
    """One part as a MIDI track: name, program change, then the notes.

    At equal ticks note-offs come before note-ons, so a repeated pitch is
    re-struck rather than cut; a note shorter than one tick lasts one tick.

    Args:
        part: the part (pitches and velocities 0..127, channel 0..15).
        end_ppq: where the track ends, in quarter notes (the arrangement length).

    Raises:
        ValueError: a pitch, velocity, channel or program outside the MIDI range
            (checked here once, so that mido need not check every message again).
    """
    _check_data("channel", part.channel, 15)
    _check_data("program", part.program)
    events: list[tuple[int, int, int, int]] = []  # (tick, 0 = off / 1 = on, pitch, velocity)
    for note in part.notes:
        _check_data("pitch", note.pitch)
        _check_data("velocity", note.velocity)
        start = _ticks(note.start_ppq)
        events.append((start, 1, note.pitch, note.velocity))
        events.append((max(start + 1, _ticks(note.end_ppq)), 0, note.pitch, 0))
    events.sort(key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name=part.name, time=0))
    track.append(mido.Message("program_change", channel=part.channel, program=part.program, time=0))
    now = 0
    for tick, kind, pitch, velocity in events:
        track.append(mido.Message(_NOTE_TYPES[kind], skip_checks=True, channel=part.channel, note=pitch,
                                  velocity=velocity, time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=max(0, _ticks(end_ppq) - now)))
    return track


def arrangement_to_midi(
    arrangement: Arrangement, parts: Iterable[Part], title: str
) -> mido.MidiFile:
    """Build a type-1 :class:`mido.MidiFile`: conductor track plus one track per part.

    Raises:
        ValueError: a value outside the MIDI range (see :func:`part_track`).
    """
    return _midi_file(arrangement, [part_track(part, arrangement.length_ppq) for part in parts], title)


def _midi_file(arrangement: Arrangement, tracks: list[mido.MidiTrack], title: str) -> mido.MidiFile:
    """A type-1 file of the conductor track and ``tracks`` (which it shares, not copies)."""
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(_conductor(arrangement, title))
    midi.tracks.extend(tracks)
    return midi


def _check_name(name: str) -> None:
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\0" in name
        or name == FULL
    ):
        raise ValueError(f"part name {name!r} cannot be a file name")


def write_midi_files(arrangement: Arrangement, job_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    """Write ``<part>.mid`` for every part and ``full.mid`` for all of them.

    Every file is first written completely to a temporary ``*.tmp`` file in
    ``job_dir`` (flushed and fsynced); only when all of them are written are
    they renamed, one by one with :func:`os.replace`, to their final names.
    The directory is created when missing.

    Args:
        arrangement: the generated arrangement.
        job_dir: directory of the job.

    Returns:
        Part name -> path of its file, plus :data:`FULL` (``"full"``) -> ``full.mid``.

    Raises:
        RenderError: the directory cannot be created or written, a part name
            is not a plain file name, or a note is outside the MIDI range; no
            ``*.tmp`` file is left behind.
    """
    job_dir = pathlib.Path(job_dir)
    temps: list[pathlib.Path] = []
    try:
        job_dir.mkdir(parents=True, exist_ok=True)
        pending: list[tuple[pathlib.Path, pathlib.Path]] = []
        result: dict[str, pathlib.Path] = {}
        tracks = []  # each part's track is built once, for its own file and for full.mid
        for part in arrangement.parts:
            _check_name(part.name)
            tracks.append(part_track(part, arrangement.length_ppq))
            midi = _midi_file(arrangement, tracks[-1:], f"{arrangement.style} - {part.name}")
            final = job_dir / f"{part.name}.mid"
            pending.append((write_temp(job_dir, lambda handle, m=midi: m.save(file=handle), temps), final))
            result[part.name] = final
        midi = _midi_file(arrangement, tracks, f"{arrangement.style} - full")
        final = job_dir / f"{FULL}.mid"
        pending.append((write_temp(job_dir, lambda handle, m=midi: m.save(file=handle), temps), final))
        result[FULL] = final
        for temp, final in pending:
            os.replace(temp, final)
            temps.remove(temp)
        fsync_dir(job_dir)
    except Exception as exc:
        remove_temps(temps)
        raise RenderError(f"writing MIDI files to {job_dir} failed: {exc}") from exc
    logger.debug("wrote %d MIDI files to %s", len(result), job_dir)
    return result
