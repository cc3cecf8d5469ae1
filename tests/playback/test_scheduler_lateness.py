"""The playback thread's lateness record: late groups still played, too-late note-ons dropped, both listed.

A real JACK server and recorder.  A stall of the playback thread is made by
its clock: it jumps forward while the thread sleeps towards a hand-over, so
the thread wakes to find the group already that late (the real ports and
the JACK client keep real time).
"""

import threading
import time

import pytest

from conftest import DropoutGuard, kick_per_beat_job, recorder_on
from ai_band.playback.ports import open_ports
from ai_band.playback.scheduler import Scheduler
from ai_band.transport import TransportSnapshot

pytestmark = pytest.mark.jack

BEAT_S = 0.5  # 120 bpm
LOOKAHEAD_S = 0.010
LATE_DROP_S = 0.025


class JumpingClock:
    """CLOCK_MONOTONIC plus offsets that switch on at given real times (a stalled thread's view)."""

    def __init__(self) -> None:
        self.jumps: list[tuple[float, float]] = []  # (real time s, offset s from then on)
        self.lock = threading.Lock()

    def __call__(self) -> float:
        now = time.monotonic()
        offset = 0.0
        with self.lock:
            for at_s, jump_offset in self.jumps:
                if now >= at_s:
                    offset = jump_offset
        return now + offset


def test_a_late_group_is_played_and_listed_and_a_too_late_one_dropped(jack_server):
    ports = open_ports(["drums"], api_name="jack", client_name="ai-band-late")
    clock = JumpingClock()
    scheduler = Scheduler(ports, late_drop_s=LATE_DROP_S, lookahead_s=LOOKAHEAD_S, clock=clock)
    try:
        with recorder_on(jack_server, "ai-band-late") as recorder:
            with DropoutGuard(recorder, count_xruns=True):
                t0 = time.monotonic() - 0.1  # the host is past ppq 0: the job starts at ppq 4
                scheduler.start()
                scheduler.set_transport(TransportSnapshot(playing=True, bpm=120.0, anchor_time_s=t0, anchor_ppq=0.0,
                                                          run=1, run_start_ppq=0.0))
                scheduler.play(kick_per_beat_job("late-test"))  # armed at the next bar line, ppq 4

                def deadline(ppq: float) -> float:
                    return t0 + ppq * BEAT_S

                # The beat at ppq 5: the clock jumps 22 ms two ms before its hand-over
                # (the group is then >= 10 ms late).  The beat at ppq 7: 50 ms more, two
                # ms before its hand-over on the shifted clock (>= 38 ms late: dropped).
                with clock.lock:
                    clock.jumps.append((deadline(5) - LOOKAHEAD_S - 0.002, 0.022))
                    clock.jumps.append((deadline(7) - LOOKAHEAD_S - 0.022 - 0.002, 0.072))
                time.sleep(max(0.0, deadline(8.5) - time.monotonic()))
                status = scheduler.status()
                on_pitches = [e.data[1] for e in recorder.note_ons("drums")]
                assert 36 in on_pitches and 37 in on_pitches and 38 in on_pitches, on_pitches
                assert 39 not in on_pitches, on_pitches  # the too-late beat
                assert recorder.hanging_notes() == []
    finally:
        scheduler.stop()
        ports.close()

    # Other groups may be listed too (more than 0.5 ms late: a wake-up of a busy machine).
    def listed(deadline_s: float) -> dict | None:
        return next((g for g in status["late_groups"] if abs(g["deadline_monotonic_s"] - deadline_s) < 1e-3), None)

    stalled, too_late = listed(deadline(5)), listed(deadline(7))
    assert stalled is not None and too_late is not None, status["late_groups"]
    assert 10.0 <= stalled["late_ms"] < LATE_DROP_S * 1000 and stalled["note_ons_dropped"] == 0, stalled
    assert too_late["late_ms"] >= 38.0 and too_late["note_ons_dropped"] == 1, too_late
    assert status["late_dropped"] == 1
    assert status["max_late_ms"] >= stalled["late_ms"]  # a dropped group's lateness is kept apart
    assert status["max_dropped_late_ms"] == too_late["late_ms"]
    assert status["late_over_ms"]["5"] >= 2
