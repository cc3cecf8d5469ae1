"""The demo's listing (musical positions) and its verdict on notes left sounding, from hand-fed events."""

from __future__ import annotations

import pytest

from ai_band.testing.demo import blame_missing_note_offs, describe_missing, musical_position, note_lengths_ppq
from ai_band.testing.recorder import RecordedEvent


@pytest.mark.parametrize(("ppq", "bpm", "expected"), [
    (3.992, 120.0, "2:1 -4 ms"),      # just before bar 2 (the "1:4.99")
    (2.0, 120.0, "1:3 +0 ms"),
    (0.0, 120.0, "1:1 +0 ms"),
    (4.006, 120.0, "2:1 +3 ms"),
    (1.5, 120.0, "1:2& +0 ms"),
    (1.25, 120.0, "1:2e +0 ms"),
    (1.75, 60.0, "1:2a +0 ms"),
    (5 + 2 / 3 + 0.01, 120.0, "2:2let +5 ms"),   # a swung 8th, laid back
    (1 / 3, 120.0, "1:1trip +0 ms"),
    (7.999, 132.0, "3:1 +0 ms"),     # 0.45 ms early rounds to +0
])
def test_positions_read_as_bar_beat_and_offset_ms(ppq: float, bpm: float, expected: str) -> None:
    assert musical_position(ppq, bpm) == expected


def test_positions_follow_the_time_signature() -> None:
    # 6/8: the beat is an eighth (0.5 ppq), six to a bar of 3 ppq.
    assert musical_position(3.0, 120.0, 6, 8) == "2:1 +0 ms"
    assert musical_position(2.5, 120.0, 6, 8) == "1:6 +0 ms"
    assert musical_position(2.75, 120.0, 6, 8) == "1:6& +0 ms"
    # 3/4 at 90 bpm: ppq 2.98 is 13 ms before bar 2.
    assert musical_position(2.98, 90.0, 3, 4) == "2:1 -13 ms"


def test_bad_tempo_or_meter_is_refused() -> None:
    with pytest.raises(ValueError):
        musical_position(1.0, 0.0)
    with pytest.raises(ValueError):
        musical_position(1.0, 120.0, 4, 3)


def on(port: str, pitch: int, frame: int, channel: int = 0) -> RecordedEvent:
    return RecordedEvent(frame / 48000, frame, port, bytes((0x90 | channel, pitch, 100)))


def off(port: str, pitch: int, frame: int, channel: int = 0) -> RecordedEvent:
    return RecordedEvent(frame / 48000, frame, port, bytes((0x80 | channel, pitch, 0)))


def test_nothing_sounding_blames_nobody() -> None:
    events = [on("ai-band:bass", 40, 1000), off("ai-band:bass", 40, 5000)]
    assert blame_missing_note_offs(events, [(2000, 2064)]) == []


def test_a_note_off_missing_with_every_period_read_is_the_daemons() -> None:
    events = [on("ai-band:bass", 40, 1000), off("ai-band:bass", 40, 5000),
              on("ai-band:keys", 60, 6400), on("ai-band:keys", 64, 6400), off("ai-band:keys", 64, 9000)]
    # The recorder's only gap is before the note-on: it read every buffer after it.
    missing = blame_missing_note_offs(events, [(3000, 3128)])
    assert [(m.note_on.source_port, m.note_on.data[1], m.blame) for m in missing] == [("ai-band:keys", 60, "daemon")]
    assert missing[0].missed_frame_ranges == ()
    assert "the daemon wrote no note-off" in describe_missing(missing[0])


def test_a_note_off_missing_after_a_recorder_gap_is_the_recorders() -> None:
    events = [on("ai-band:drums", 36, 6400, channel=9), on("ai-band:bass", 40, 6400)]
    gaps = [(100, 164), (8000, 8128)]   # one before the note-ons, one after them
    missing = blame_missing_note_offs(events, gaps)
    assert [m.blame for m in missing] == ["recorder", "recorder"]
    assert all(m.missed_frame_ranges == ((8000, 8128),) for m in missing)
    assert "lost to the recorder" in describe_missing(missing[0]) and "8000..8128" in describe_missing(missing[0])


def test_a_gap_ending_exactly_at_the_note_on_does_not_excuse_it() -> None:
    # [first, after): the period read at 6400 holds the note-on; the gap was before it.
    missing = blame_missing_note_offs([on("ai-band:pad", 52, 6400)], [(6272, 6400)])
    assert [m.blame for m in missing] == ["daemon"]


def test_the_last_note_on_of_a_retriggered_note_is_the_one_judged() -> None:
    events = [on("ai-band:pad", 52, 1000), on("ai-band:pad", 52, 9000)]
    missing = blame_missing_note_offs(events, [(5000, 5064)])
    assert len(missing) == 1 and missing[0].note_on.frame == 9000 and missing[0].blame == "daemon"


def test_frame_times_wrapping_at_2_32_are_followed() -> None:
    near_wrap = (1 << 32) - 640
    missing = blame_missing_note_offs([on("ai-band:bass", 40, near_wrap)], [(64, 192)])
    assert [m.blame for m in missing] == ["recorder"]


def test_only_gaps_where_the_note_off_was_due_excuse_it() -> None:
    events = [on("ai-band:bass", 40, 10_000)]
    gaps = [(12_000, 12_064), (40_000, 40_064)]

    def due_around_30000(note_on: RecordedEvent) -> tuple[int, int]:
        return note_on.frame + 15_000, note_on.frame + 25_000

    # Neither gap lies where the note-off was due: the daemon's.
    assert [m.blame for m in blame_missing_note_offs(events, gaps, due_around_30000)] == ["daemon"]
    gaps.append((34_990, 35_054))   # one period overlapping the window's end
    missing = blame_missing_note_offs(events, gaps, due_around_30000)
    assert [(m.blame, m.missed_frame_ranges) for m in missing] == [("recorder", ((34_990, 35_054),))]


def test_note_lengths_come_from_the_jobs_midi_files(tmp_path) -> None:
    import mido

    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    for pitch, length, gap in ((40, 480, 0), (40, 240, 0), (43, 960, 120)):
        track.append(mido.Message("note_on", channel=1, note=pitch, velocity=90, time=gap))
        track.append(mido.Message("note_off", channel=1, note=pitch, velocity=0, time=length))
    midi.save(tmp_path / "bass.mid")
    assert note_lengths_ppq({"bass": tmp_path / "bass.mid", "job": tmp_path / "job.json"}) == {
        ("bass", 40): (0.5, 1.0), ("bass", 43): (2.0, 2.0)}


def test_a_drum_left_sounding_is_named_as_a_drum() -> None:
    missing = blame_missing_note_offs([on("ai-band:drums", 44, 6400, channel=9)], [])
    assert describe_missing(missing[0]).startswith("ai-band:drums pedal hat (note-on at frame 6400): the daemon")
