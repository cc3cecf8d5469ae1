"""The scheduler's event lattice: where a job's events fall on the host timeline."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ai_band.model import Arrangement, Note, Part
from ai_band.playback.scheduler import PlayableJob


def arrangement(notes, bars=1, ts=(4, 4)):
    return Arrangement((Part("bass", 33, 1, tuple(notes)),), 120.0, ts[0], ts[1], bars, "rock", "C", 1)


def test_note_off_sorts_before_note_on_at_the_same_offset():
    job = PlayableJob.from_arrangement("j", arrangement([Note(0.0, 1.0, 40, 100), Note(1.0, 1.0, 40, 90)]))
    assert job.offsets == (0.0, 1.0, 2.0)
    group = job.groups[1]
    assert [m[0] & 0xF0 for _, m in group] == [0x80, 0x90]


def test_notes_are_clipped_to_the_loop_and_the_last_note_off_wraps_to_zero():
    job = PlayableJob.from_arrangement("j", arrangement([Note(3.0, 5.0, 40, 100)]))
    # The note ends at the loop end (4.0), whose note-off is the next loop's offset 0.
    assert job.offsets == (0.0, 3.0)
    assert job.groups[0] == (("bass", (0x81, 40, 0)),)


@pytest.mark.parametrize(
    "anchor, cursor, expected",
    [
        (8.0, 8.0, 8.0),    # the first event is on the anchor bar line
        (8.0, 8.1, 8.5),    # the note-off of the first note
        (8.0, 9.6, 10.0),   # the second note's note-off
        (8.0, 10.1, 12.0),  # wraps into the second loop
        (8.0, 2.0, 2.0),    # a relocation before the anchor: the lattice is periodic
        (8.0, -3.9, -3.5),  # pre-roll positions too
    ],
)
def test_next_at(anchor, cursor, expected):
    job = PlayableJob.from_arrangement("j", arrangement([Note(0.0, 0.5, 40, 100), Note(1.5, 0.5, 43, 100)]))
    assert job.offsets == (0.0, 0.5, 1.5, 2.0)
    ppq, _ = job.next_at(anchor, cursor)
    assert ppq == pytest.approx(expected)


@given(anchor=st.floats(-100, 100), cursor=st.floats(-1000, 1000))
def test_next_at_is_the_first_event_at_or_after_the_cursor(anchor, cursor):
    job = PlayableJob.from_arrangement("j", arrangement([Note(0.25, 0.5, 40, 100), Note(2.75, 0.5, 43, 100)]))
    ppq, index = job.next_at(anchor, cursor)
    assert ppq >= cursor - 1e-6
    assert ppq - cursor < job.length_ppq + 1e-6
    assert (ppq - anchor) % job.length_ppq == pytest.approx(job.offsets[index], abs=1e-6) or \
        abs((ppq - anchor) % job.length_ppq - job.length_ppq) < 1e-6
