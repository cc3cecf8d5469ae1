"""A tempo change retimes what the playback thread has already handed to the JACK client.

A real JACK server and recorder.  The thread hands each group over
``lookahead_s`` before its deadline; a snapshot with a new tempo that arrives
in between must move the queued group to its new deadline, or the note plays
at the old tempo's time.
"""

import time

import pytest

from conftest import DropoutGuard, kick_per_beat_job, recorder_on
from ai_band.playback.ports import open_ports
from ai_band.playback.scheduler import Scheduler
from ai_band.transport import TransportSnapshot

pytestmark = pytest.mark.jack

LOOKAHEAD_S = 0.060
CHANGE_BEFORE_S = 0.030  # the tempo changes this long before beat 5 is due: after its hand-over


def test_a_tempo_change_moves_a_group_already_handed_over_to_its_new_time(jack_server):
    ports = open_ports(["drums"], api_name="jack", client_name="ai-band-retime")
    scheduler = Scheduler(ports, lookahead_s=LOOKAHEAD_S)
    try:
        with recorder_on(jack_server, "ai-band-retime") as recorder:
            with DropoutGuard(recorder, count_xruns=True):
                t0 = time.monotonic() - 0.1  # the host is past ppq 0: the job starts at ppq 4
                slow = TransportSnapshot(playing=True, bpm=120.0, anchor_time_s=t0, anchor_ppq=0.0,
                                         run=1, run_start_ppq=0.0)
                scheduler.start()
                scheduler.set_transport(slow)
                scheduler.play(kick_per_beat_job("retime-test"))  # armed at the next bar line, ppq 4
                change_s = slow.time_at(5.0) - CHANGE_BEFORE_S
                time.sleep(max(0.0, change_s - time.monotonic()))
                fast = TransportSnapshot(playing=True, bpm=180.0, anchor_time_s=change_s,
                                         anchor_ppq=slow.ppq_at(change_s), run=1, run_start_ppq=0.0, version=1)
                scheduler.set_transport(fast)  # same run: a tempo change, not a relocation
                time.sleep(max(0.0, fast.time_at(6.5) - time.monotonic()))
                retimed = scheduler.stats.retimed_groups
                kicks = {e.data[1]: e.time_s for e in recorder.note_ons("drums")}
                assert retimed >= 1  # beat 5 was queued at 120 bpm
                # Beat 5 at 180 bpm comes 10 ms before its 120-bpm time.
                assert kicks[37] - fast.time_at(5.0) == pytest.approx(0.0, abs=0.0015), (
                    kicks[37] - fast.time_at(5.0), kicks[37] - slow.time_at(5.0))
                assert kicks[38] - fast.time_at(6.0) == pytest.approx(0.0, abs=0.0015)
                assert recorder.hanging_notes() == []
    finally:
        scheduler.stop()
        ports.close()
