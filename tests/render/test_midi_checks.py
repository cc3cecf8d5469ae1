"""MIDI files: values outside MIDI 1.0's ranges are refused before anything is written.

:func:`ai_band.render.midi.part_track` checks channel, program, pitch and
velocity once and builds the note messages without mido's per-message checks;
these tests keep that check as strict as mido's.
"""

from __future__ import annotations

import pathlib

import pytest

from ai_band.errors import RenderError
from ai_band.model import Arrangement, Note, Part
from ai_band.render import write_midi_files
from ai_band.render.midi import part_track


def _arrangement(part: Part) -> Arrangement:
    return Arrangement((part,), 120.0, 4, 4, 1, "rock", "C", 1)


@pytest.mark.parametrize(
    ("part", "field"),
    [
        (Part("bass", 33, 16, (Note(0.0, 1.0, 40, 90),)), "channel"),
        (Part("bass", 128, 1, (Note(0.0, 1.0, 40, 90),)), "program"),
        (Part("bass", -1, 1, (Note(0.0, 1.0, 40, 90),)), "program"),
        (Part("bass", 33, 1, (Note(0.0, 1.0, 40, 90), Note(1.0, 1.0, 128, 90))), "pitch"),
        (Part("bass", 33, 1, (Note(0.0, 1.0, -1, 90),)), "pitch"),
        (Part("bass", 33, 1, (Note(0.0, 1.0, 40, 128),)), "velocity"),
        (Part("bass", 33, 1, (Note(0.0, 1.0, 40, True),)), "velocity"),
        (Part("bass", 33, 1, (Note(0.0, 1.0, 40.0, 90),)), "pitch"),
    ],
)
def test_out_of_range_values_are_refused(tmp_path: pathlib.Path, part: Part, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field} must be an int in 0\\.\\.1"):
        part_track(part, 4.0)
    with pytest.raises(RenderError, match=field):
        write_midi_files(_arrangement(part), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_range_ends_are_written(tmp_path: pathlib.Path) -> None:
    part = Part("keys", 127, 15, (Note(0.0, 1.0, 0, 1), Note(1.0, 1.0, 127, 127)))
    paths = write_midi_files(_arrangement(part), tmp_path)
    assert sorted(paths) == ["full", "keys"]
