"""The daemon's JACK MIDI output: one client, every message at the frame it is due.

A real JACK server and a real recorder; bounds are coarse (the tight figures
are bench/tempo_lock.py's), but tight enough that writing at offset 0 of the
next period (python-rtmidi's behaviour, 0..1.33 ms late) fails them.
"""

import os
import resource
import statistics
import time
from pathlib import Path

import pytest

from conftest import ClientFrameTimeReadLate, DropoutGuard, recorder_on
from ai_band.playback.output import CC_ALL_NOTES_OFF, CONTROL_CHANGE, NOTE_OFF, NOTE_ON, RESET_MESSAGES
from ai_band.playback.ports import open_ports

pytestmark = pytest.mark.jack


def skip_reset(recorder, ports: int) -> None:
    """Wait for the reset each port writes first to its first reader (tests/playback/test_reset.py), then forget it.

    Not this file's subject: a reset lost in a period the recorder missed is not waited for.
    """
    recorder.wait_for_events(ports * len(RESET_MESSAGES), timeout_s=2.0)
    time.sleep(0.01)
    recorder.clear()


@pytest.fixture
def ports_and_recorder(jack_server):
    ports = open_ports(["drums", "keys"], api_name="jack", client_name="ai-band")
    try:
        with recorder_on(jack_server, "^ai-band:", count=2) as rec:  # not ai-band-rt:, ai-band-log: (other tests)
            skip_reset(rec, ports=2)
            yield ports, rec
    finally:
        ports.close()


def test_one_client_holds_every_port(ports_and_recorder):
    ports, recorder = ports_and_recorder
    assert ports.timed
    assert ports.names() == {"drums": "ai-band:drums", "keys": "ai-band:keys"}
    assert sorted(recorder.sources) == ["ai-band:drums", "ai-band:keys"]


def test_messages_land_on_the_frame_they_are_due(ports_and_recorder):
    ports, recorder = ports_and_recorder
    with DropoutGuard(recorder, count_xruns=True):
        drums = ports["drums"]
        due = []
        start = time.monotonic() + 0.05
        for i in range(40):
            at = start + i * 0.0073  # not a multiple of the 1.333 ms period
            due.append(at)
            drums.send((NOTE_ON | 9, 36 + i % 12, 100), at_s=at)
            drums.send((NOTE_OFF | 9, 36 + i % 12, 0), at_s=at + 0.003)
        assert recorder.wait_for_events(80, timeout_s=5.0)
        notes = recorder.note_ons("drums")
        assert [n.data[1] for n in notes] == [36 + i % 12 for i in range(40)]
        errors_ms = [(n.time_s - at) * 1000 for n, at in zip(notes, due, strict=True)]
        # At offset 0 of the next period the errors would spread over 0..1.33 ms.
        assert abs(statistics.median(errors_ms)) < 0.3, errors_ms
        assert max(abs(e) for e in errors_ms) < 1.5, errors_ms
        assert len({n.frame % 64 for n in notes}) > 8  # offsets inside the period, not all 0
        assert recorder.hanging_notes() == []


def test_release_takes_back_what_is_queued_and_leaves_nothing_sounding(ports_and_recorder):
    ports, recorder = ports_and_recorder
    with DropoutGuard(recorder, count_xruns=True):
        keys = ports["keys"]
        now = time.monotonic()
        keys.send((NOTE_ON, 60, 90), at_s=now)  # sounds at once
        keys.send((NOTE_OFF, 60, 0), at_s=now + 0.5)  # its note-off is queued for later
        keys.send((NOTE_ON, 64, 90), at_s=now + 0.5)  # a note-on queued for later
        assert recorder.wait_for_events(1, timeout_s=2.0)
        assert keys.all_notes_off() == 1  # only note 60 is sounding at the output
        time.sleep(0.7)
        assert [(e.data[0] & 0xF0, e.data[1]) for e in recorder.events()] == [
            (NOTE_ON, 60), (NOTE_OFF, 60), (CONTROL_CHANGE, CC_ALL_NOTES_OFF)]
        assert recorder.hanging_notes() == []
        assert keys.sounding == frozenset()


def test_after_the_server_goes_messages_are_dropped_and_counted_not_queued(monkeypatch):
    from ai_band.testing.jackserver import JackServer

    with JackServer() as server:
        monkeypatch.setenv("JACK_DEFAULT_SERVER", server.name)
        ports = open_ports(["drums"], api_name="jack", client_name="ai-band-gone")
        try:
            ports["drums"].send((NOTE_ON | 9, 36, 100), at_s=time.monotonic() + 60)  # queued
            server.stop()
            deadline = time.monotonic() + 10
            while ports.stats()["server_gone"] is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert ports.stats()["server_gone"]
            drums = ports["drums"]
            for pitch in range(40, 50):
                drums.send((NOTE_ON | 9, pitch, 100), at_s=time.monotonic())
            assert len(ports["drums"].queue) == 0
            assert ports.stats()["dropped_messages"] == 10
        finally:
            ports.close()


def test_periods_the_server_ran_without_the_client_are_counted(jack_server):
    # The process callback is Python: holding the GIL in one C call (a 300 MB
    # bytes repeat) keeps it from running, and /band/status must show it.
    ports = open_ports(["drums"], api_name="jack", client_name="ai-band")
    try:
        time.sleep(0.3)
        before = ports.stats()["skipped_periods"]
        t0 = time.monotonic()
        blob = b"x" * 300_000_000
        held_s = time.monotonic() - t0
        del blob
        time.sleep(0.1)
        assert held_s > 0.01, "the GIL was not held long enough to test anything"
        assert ports.stats()["skipped_periods"] > before
    finally:
        ports.close()


def test_held_output_writes_nothing_until_resumed(ports_and_recorder):
    # A relocation holds the output the moment it arrives; what was queued for
    # the old position is taken back before the output resumes.
    ports, recorder = ports_and_recorder
    drums = ports["drums"]
    ports.hold()
    now = time.monotonic()
    drums.send([NOTE_ON | 9, 36, 100], now + 0.005)
    drums.send([NOTE_OFF | 9, 36, 0], now + 0.100)
    time.sleep(0.05)
    assert [e for e in recorder.events() if e.is_note_on] == []  # due 45 ms ago, still held
    ports.all_notes_off()  # the scheduler takes back the old position's notes...
    ports.resume()  # ...then lets output go on
    drums.send([NOTE_ON | 9, 38, 100], time.monotonic() + 0.005)
    drums.send([NOTE_OFF | 9, 38, 0], time.monotonic() + 0.020)
    time.sleep(0.1)
    assert [e.data[1] for e in recorder.events() if e.is_note_on] == [38]
    assert recorder.hanging_notes() == []


def test_a_callback_after_a_late_one_leaves_its_output_and_writes_next_period(ports_and_recorder):
    # When the last callback finished after this cycle began, a reader may be
    # reading its output now: the callback must neither clear the buffers nor
    # write, and what is due waits for the next period (not lost, not doubled).
    ports, recorder = ports_and_recorder
    client = ports["drums"].client
    drums = ports["drums"]
    # The process thread writes ``_end_ns`` at the end of every callback: a
    # callback running while the test sets it overwrites the mark (a race the
    # test can lose on a loaded machine). Each try sends its own note; a try
    # whose mark was overwritten still must deliver its note exactly once.
    sent = []
    for key in range(40, 46):
        before = client.held_periods
        client._end_ns = time.monotonic_ns() + 10**12  # "finished" after any cycle start
        drums.send([NOTE_ON | 9, key, 100])  # due at once
        drums.send([NOTE_OFF | 9, key, 0], time.monotonic() + 0.010)
        sent.append(key)
        assert recorder.wait_for_events(2 * len(sent), timeout_s=2.0)
        time.sleep(0.05)
        if client.held_periods >= before + 1:
            break
    assert client.held_periods >= before + 1, "no try was held: the hold test never fired"
    assert [e.data[1] for e in recorder.events() if e.is_note_on] == sent
    assert recorder.hanging_notes() == []
    # Only the callback right after a late one holds: output goes on.
    held = client.held_periods
    drums.send([NOTE_ON | 9, 50, 100], time.monotonic() + 0.005)
    drums.send([NOTE_OFF | 9, 50, 0], time.monotonic() + 0.010)
    time.sleep(0.1)
    assert [e.data[1] for e in recorder.events() if e.is_note_on] == [*sent, 50]
    assert client.held_periods - held <= 2  # a late callback now and then on a busy machine


def test_an_xrun_the_server_noted_restarts_the_period_window_at_the_next_callback(ports_and_recorder, monkeypatch):
    # After an xrun the dummy driver starts a new timeline; the window of period
    # starts must restart in the first callback after it, from the delay the
    # server noted (not when the xrun callback arrives from the notification
    # thread). A stale window is simulated by an anchor 5 ms early: messages
    # then come 5 ms late until it leaves the window (16 periods).
    import ai_band.playback.outputs.jack as jackout

    ports, recorder = ports_and_recorder
    client = ports["drums"].client
    drums = ports["drums"]
    noted = {"delay_usecs": client._xrun_delayed_usecs}
    monkeypatch.setattr(jackout, "_xrun_delayed_usecs", lambda _client: noted["delay_usecs"])

    def lateness_ms(pitch: int, xrun_noted: bool) -> float:
        time.sleep(0.05)  # a full window of real anchors
        client._anchors.append(min(client._anchors) - 5e6)  # the old timeline, 5 ms earlier
        if xrun_noted:
            noted["delay_usecs"] += 1500.0
        due = time.monotonic() + 0.006
        drums.send((NOTE_ON | 9, pitch, 100), at_s=due)
        drums.send((NOTE_OFF | 9, pitch, 0), at_s=due + 0.003)
        assert recorder.wait_for_events(2, timeout_s=2.0)
        (note,) = recorder.note_ons("drums")
        recorder.clear()
        return (note.time_s - due) * 1000

    with DropoutGuard(recorder, count_xruns=True):  # a real xrun meanwhile moves the timeline too
        stale = lateness_ms(40, xrun_noted=False)
        assert 3.5 < stale < 6.5  # the stale window does make notes late
        assert abs(lateness_ms(41, xrun_noted=True)) < 1.5


def test_an_xrun_callback_alone_leaves_the_period_window(ports_and_recorder, monkeypatch):
    # JACK2 also calls the xrun callback when a client finished late, which
    # moves no timeline (~1000 times a minute under render load): the window
    # of period starts must keep its anchors then.
    import ai_band.playback.outputs.jack as jackout

    ports, _recorder = ports_and_recorder
    client = ports["drums"].client
    noted = client._xrun_delayed_usecs
    monkeypatch.setattr(jackout, "_xrun_delayed_usecs", lambda _client: noted)  # no overrun noted
    time.sleep(0.05)
    assert len(client._anchors) == jackout.ANCHOR_PERIODS
    for _ in range(3):
        client._on_xrun(0.0)
    time.sleep(0.015)  # ~11 periods: a window restarted by then would not be full again
    assert client.xruns >= 3
    assert len(client._anchors) == jackout.ANCHOR_PERIODS


def test_a_callback_descheduled_before_it_reads_the_frame_time_keeps_its_anchor_an_upper_bound(ports_and_recorder):
    # Each callback adds an anchor, ``callback time - frame time``: an upper
    # bound of the timeline's start only if the time is read after the frame
    # time.  Read before, a callback descheduled in between (5 ms here) adds an
    # anchor 5 ms early, and the next 16 periods' messages go out 5 ms late
    # (the stale-window case above).  Fed by hand, client deactivated.
    ports, _recorder = ports_and_recorder
    client = ports["drums"].client
    client._client.deactivate()
    real = client._client
    try:
        client._client = slow = ClientFrameTimeReadLate(real, 0.005)
        client._write_period(64)
    finally:
        client._client = real
    period_start_ns = client._anchors[-1] + client._frame * client._ns_per_frame
    # The frame time read at read_at_s is a period that began before then, by
    # about a period on the dummy driver: the bound may not be below that.
    assert period_start_ns / 1e9 >= slow.read_at_s - 0.002, (period_start_ns / 1e9 - slow.read_at_s) * 1000


def _jack_thread_ids() -> list[int]:
    return [int(tid) for tid in os.listdir("/proc/self/task")
            if Path(f"/proc/self/task/{tid}/comm").read_text().strip() == "ai-band-jack"]


@pytest.mark.skipif(not hasattr(os, "sched_setscheduler"), reason="needs POSIX scheduling")
def test_the_process_thread_makes_itself_sched_fifo_when_allowed(jack_server):
    ports = open_ports(["drums"], api_name="jack", client_name="ai-band-rt", jack_rtprio=7)
    try:
        deadline = time.monotonic() + 5.0
        while ports.stats()["process_thread"] is None and time.monotonic() < deadline:
            time.sleep(0.01)  # set in the first period
        reported = ports.stats()["process_thread"]
        threads = {tid: (os.sched_getscheduler(tid), os.sched_getparam(tid).sched_priority) for tid in _jack_thread_ids()}
    finally:
        ports.close()
    allowed = os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_RTPRIO)[0] >= 7
    if allowed:
        assert reported == "SCHED_FIFO 7"
        assert (os.SCHED_FIFO, 7) in threads.values(), threads
    else:  # refused: reported as it is, and the client plays on
        assert reported == "SCHED_OTHER"


def test_without_rtprio_the_process_thread_stays_as_libjack_made_it(ports_and_recorder):
    ports, _recorder = ports_and_recorder  # opened with the default, jack_rtprio=0
    deadline = time.monotonic() + 5.0
    while ports.stats()["process_thread"] is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ports.stats()["process_thread"] == "SCHED_OTHER"  # the test server runs --no-realtime


def test_the_write_log_has_the_frame_each_note_on_went_out_in(jack_server):
    ports = open_ports(["drums"], api_name="jack", client_name="ai-band-log", jack_write_log_size=100)
    try:
        with recorder_on(jack_server, "ai-band-log") as recorder:
            skip_reset(recorder, ports=1)
            with DropoutGuard(recorder, count_xruns=True):
                drums = ports["drums"]
                start = time.monotonic() + 0.05
                for i in range(10):
                    drums.send((NOTE_ON | 9, 40 + i, 100), at_s=start + i * 0.011)
                    drums.send((NOTE_OFF | 9, 40 + i, 0), at_s=start + i * 0.011 + 0.004)
                assert recorder.wait_for_events(20, timeout_s=5.0)
                recorded = [(n.frame, n.data[1]) for n in recorder.note_ons("drums")]
                write_log = ports.write_log()
                logged = [(frame, pitch) for frame, port, pitch in write_log["note_ons"]]
                assert all(port == "ai-band-log:drums" for _, port, _ in write_log["note_ons"])
                assert logged == recorded  # note-offs are not logged
                # Each note-on's callback is listed once, with its period's frame time.
                callbacks = write_log["callbacks"]
                bases = [base for base, _since, _lead_us, _late in callbacks]
                assert bases == sorted(set(bases)) and len(bases) == 10
                for frame, _pitch in logged:
                    assert any(base <= frame < base + 64 for base in bases), (frame, bases)
                assert all(0 <= since < 64 * 16 for _base, since, _lead_us, _late in callbacks)
    finally:
        ports.close()


def _hand_fed_period_held(client, end_before_cycle_start_ns: int, late_end: bool = False) -> bool | None:
    """Feed one callback by hand with the last one ending this long before the cycle began.

    Returns whether it held its output, or ``None`` when the server began a
    new cycle during the call (the end then relates to the wrong cycle).
    """
    time.sleep(0.003)  # the server moves on: a period this client has not seen
    before_base = client._client.last_frame_time
    since = client._client.frames_since_cycle_start
    client._end_ns = int(time.monotonic_ns() - since * client._ns_per_frame - end_before_cycle_start_ns)
    client._late_end = late_end
    held = client.held_periods
    client._write_period(64)
    if client._client.last_frame_time != before_base:
        return None
    return client.held_periods == held + 1


def test_a_callback_holds_after_one_that_ended_late_and_only_then(ports_and_recorder):
    # Holding is right only when the last callback finished after this cycle
    # began (its readers then read its output for this cycle), by the clock or
    # because it saw the frame time move on before it ended.  Holding after
    # one that ended before would have this cycle's readers read its output
    # a second time: notes recorded twice.  Hand-fed.
    ports, _recorder = ports_and_recorder
    client = ports["drums"].client
    client._client.deactivate()

    def held(end_before_ns: int, late_end: bool = False) -> bool:
        for _ in range(50):  # a cycle can begin during the call: feed again
            result = _hand_fed_period_held(client, end_before_ns, late_end)
            if result is not None:
                return result
        raise AssertionError("every hand-fed callback straddled a cycle start")

    assert held(-100_000)  # ended after the cycle began
    assert not held(100_000)  # ended just before: its readers have read
    assert held(100_000, late_end=True)  # the frame time had moved on: it ended late
