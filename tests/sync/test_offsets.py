"""Latency offsets: a part's own offset, and the global one, read back from JACK to within a frame.

Two parts play the same notes at the same host positions on one JACK client,
driven by the own clock (:class:`InternalSource`).  Both ports are written in
the same process callbacks from the same period-start estimate, so the frame
distance between a drum note-on and the bass note-on of the same beat is the
bass port's offset alone: 10 ms is 480 frames at 48 kHz.
"""

from __future__ import annotations

import time

import pytest

from conftest import DropoutGuard, recorder_on
from ai_band.playback.output import NOTE_OFF, NOTE_ON
from ai_band.playback.ports import open_ports, set_part_offsets
from ai_band.playback.scheduler import PlayableJob, Scheduler
from ai_band.sync.internal import InternalSource
from ai_band.sync.source import SyncContext

pytestmark = pytest.mark.jack

RATE_HZ = 48000


def unison_job(job_id: str) -> PlayableJob:
    """One bar: on every 8th, drums and bass each a note (pitch = 40 + the 8th), a 16th long."""
    offsets, groups = [], []
    for eighth in range(8):
        on, off = eighth * 0.5, eighth * 0.5 + 0.25
        offsets += [on, off]
        groups += [(("drums", (NOTE_ON | 9, 40 + eighth, 100)), ("bass", (NOTE_ON | 1, 40 + eighth, 100))),
                   (("drums", (NOTE_OFF | 9, 40 + eighth, 0)), ("bass", (NOTE_OFF | 1, 40 + eighth, 0)))]
    return PlayableJob(job_id, 4.0, tuple(offsets), tuple(groups), {"drums": (9, 0), "bass": (1, 33)})


@pytest.mark.parametrize("bass_offset_ms", [10.0, -7.5])
def test_a_part_offset_moves_that_part_by_its_frames(jack_server, bass_offset_ms):
    ports = open_ports(["drums", "bass"], api_name="jack", client_name="ai-band-offsets")
    scheduler = Scheduler(ports, lookahead_s=0.08)
    source = InternalSource(SyncContext(bpm=120.0))
    try:
        assert set_part_offsets(ports, {"bass": bass_offset_ms}) == []
        with recorder_on(jack_server, "ai-band-offsets", count=2) as recorder:
            with DropoutGuard(recorder, count_xruns=True):
                scheduler.start()
                source.start(scheduler.set_transport)
                scheduler.play(unison_job("offsets"))
                source.start_transport(0.0)
                time.sleep(2 * 2.0 + 0.5)  # two bars and the first bar line's wait
                source.stop_transport()
                time.sleep(0.2)
                drums = recorder.note_ons("drums")
                expected = bass_offset_ms / 1000.0 * RATE_HZ
                # Each bass note-on against the drum note-on of the same pitch and beat (the nearest).
                pairs = [min((b.frame - d.frame for d in drums if d.data[1] == b.data[1]), key=abs, default=None)
                         for b in recorder.note_ons("bass")]
                assert len([d for d in pairs if d is not None]) >= 8
                assert all(d is not None for d in pairs), pairs
                # The shift to within a frame (median); each note within 3 frames: a note and its
                # shifted twin go out in different periods, each placed from that period's estimate
                # of its start, which moves by a frame or two on a loaded machine.
                assert abs(sorted(pairs)[len(pairs) // 2] - expected) <= 1, (expected, pairs)
                assert all(abs(d - expected) <= 3 for d in pairs), (expected, pairs)
                assert recorder.hanging_notes() == []
    finally:
        source.stop()
        scheduler.stop()
        ports.close()


def test_the_global_offset_moves_every_part(jack_server):
    """Against the own clock's grid: the offset shifts each note-on from its grid time by the offset."""
    ports = open_ports(["drums", "bass"], api_name="jack", client_name="ai-band-offset-all")
    scheduler = Scheduler(ports, lookahead_s=0.08, offset_s=0.020)
    source = InternalSource(SyncContext(bpm=120.0))
    try:
        with recorder_on(jack_server, "ai-band-offset-all", count=2) as recorder:
            with DropoutGuard(recorder, count_xruns=True):
                scheduler.start()
                source.start(scheduler.set_transport)
                scheduler.play(unison_job("offset-all"))
                source.start_transport(0.0)
                snap = source.snapshot
                time.sleep(2 * 2.0 + 0.5)
                source.stop_transport()
                time.sleep(0.2)
                ons = recorder.note_ons("drums") + recorder.note_ons("bass")
                assert len(ons) >= 8
                # Each note-on sits 20 ms after its 8th on the clock's grid (coarse: the grid is in
                # CLOCK_MONOTONIC time, which the output maps to frames from its callbacks).
                beat_s = 0.5 * 60.0 / snap.bpm
                for event in ons:
                    since_s = event.time_s - snap.anchor_time_s - 0.020
                    assert abs(since_s - round(since_s / beat_s) * beat_s) < 0.006, since_s
    finally:
        source.stop()
        scheduler.stop()
        ports.close()
