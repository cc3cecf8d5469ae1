"""The ``jack`` source: the band follows a real JACK server's transport, note-ons on the transport's frames.

A real ``jackd`` (dummy driver), the band's JACK client, scheduler and
:class:`~ai_band.sync.jack_transport.JackTransportSource`, a timebase master
in this process (:class:`bench.sync_jack.TimebaseMaster`: tempo and meter map,
BBT truncated to the tick as Ardour's), ``jack_transport`` (jackd2) for the
tests without a master, and a recorder in its own process.  Each recorded
note-on's JACK frame is mapped to the transport frame it fell on and compared
with the master's grid frame (the frame nearest the exact time of the nearest
32nd).  The server runs ``--no-realtime`` on a shared machine, so the tests
ask most notes on their frame, none far off in the steady part, and the right
pitch; the figure (p99 <= 1 frame) comes from ``python -m bench.sync_jack``.
"""

from __future__ import annotations

import logging
import statistics
import subprocess
import time

import pytest

from bench.sync_jack import GRID_QN, Rig, TimebaseMaster, check_notes, expected_pitch, grid_job
from conftest import DropoutGuard
from ai_band.errors import SyncError
from ai_band.sync.jack_transport import JackTransportSource
from ai_band.sync.source import SyncContext

pytestmark = pytest.mark.jack

RATE = 48000
SETTLE_FRAMES = RATE // 10  # notes this soon after a start or jump may be late (handed over late)


@pytest.fixture(scope="module")
def rig(jack_server):
    rig = Rig(jack_server, bpm=120.0, client_name="ai-band-jt")
    try:
        yield rig
    finally:
        rig.close()


@pytest.fixture
def master(rig, jack_server):
    """A fresh timebase master at 120 bpm 4/4, transport stopped at frame 0, band and recorder reset."""
    m = TimebaseMaster(jack_server.name, 120.0, name="test-master")
    try:
        m.stop()
        m.locate(0)
        time.sleep(0.15)
        rig.scheduler.stop_playback()
        rig.recorder.clear()
        yield m
    finally:
        m.stop()
        time.sleep(0.1)
        m.close()
        time.sleep(0.1)


def _steady(checks, master):
    return [c for c in checks if c.after_jump_frames >= SETTLE_FRAMES]


def _assert_on_grid(checks, min_count, check_pitch=True):
    """Most steady notes on their grid frame, none far off, and (optionally) the pitch of their grid position."""
    assert len(checks) >= min_count, len(checks)
    devs = [abs(c.deviation_frames) for c in checks]
    within_1 = sum(1 for d in devs if d <= 1) / len(devs)
    assert statistics.median(devs) == 0, sorted(devs)[-10:]
    assert within_1 >= 0.9, (within_1, sorted(devs)[-10:])
    if check_pitch:
        wrong = [(c.ppq, c.pitch) for c in checks if c.pitch != expected_pitch(c.ppq)]
        assert not wrong, wrong[:10]


def _play(rig, master, seconds):
    rig.scheduler.play(grid_job())
    time.sleep(0.1)
    master.start()
    time.sleep(seconds)


def test_start_without_a_jack_client_is_sync_unavailable():
    source = JackTransportSource(SyncContext(jack_client=None))
    with pytest.raises(SyncError) as info:
        source.start(lambda snapshot: None)
    assert info.value.code == "sync_unavailable"


def test_notes_land_on_the_masters_grid_frames_and_stop_with_the_transport(rig, master):
    with DropoutGuard(rig.recorder):
        _play(rig, master, 3.0)
        snap = rig.source.snapshot
        assert snap.playing and snap.bpm == pytest.approx(120.0) and (snap.ts_num, snap.ts_den) == (4, 4)
        assert rig.source.status(time.monotonic())["master"] is True
        master.stop()
        time.sleep(0.3)
        notes = rig.note_ons()
        checks = check_notes(master, notes)
        _assert_on_grid(_steady(checks, master), min_count=30)
        assert not rig.source.snapshot.playing
        assert master.stops, "the master saw no stop"
        # Nothing after the stop (the scheduler holds and takes back what was queued).
        assert max(n.frame for n in notes) < master.stops[-1] + 64, (max(n.frame for n in notes), master.stops)
        assert rig.recorder.hanging_notes() == []


def test_a_tempo_change_keeps_the_position_and_the_notes_follow_the_new_grid(rig, master):
    with DropoutGuard(rig.recorder):
        _play(rig, master, 1.5)
        runs = rig.source.snapshot.run
        tempo_changes = rig.source.events["tempo_changes"]
        master.set_tempo(137.0)  # a 32nd is 2627.74 frames: grid frames are rounded
        time.sleep(2.0)
        assert rig.source.snapshot.bpm == pytest.approx(137.0)
        assert rig.source.snapshot.run == runs, "a tempo change is not a new run"
        assert rig.source.events["tempo_changes"] == tempo_changes + 1
        change_frame = master.segments[-1].frame
        checks = check_notes(master, rig.note_ons())
        after = [c for c in _steady(checks, master) if c.transport_frame > change_frame + RATE // 10]
        _assert_on_grid(after, min_count=20)


def test_a_locate_while_rolling_is_followed_at_once(rig, master):
    with DropoutGuard(rig.recorder):
        _play(rig, master, 1.0)
        locates = rig.source.events["locates"] + rig.source.events["starts"]
        run = rig.source.snapshot.run
        master.locate(30 * RATE + 1234)  # not on the grid
        time.sleep(1.5)
        assert rig.source.snapshot.run > run
        assert rig.source.events["locates"] + rig.source.events["starts"] > locates
        checks = check_notes(master, rig.note_ons())
        after = [c for c in _steady(checks, master) if c.transport_frame >= 30 * RATE]
        _assert_on_grid(after, min_count=8)
        # The first note after the locate: the next grid position, not a burst of the old ones.
        first = min((c for c in checks if c.transport_frame >= 30 * RATE), key=lambda c: c.jack_frame)
        assert first.ppq == pytest.approx(master.ppq_at(30 * RATE + 1234) // GRID_QN * GRID_QN + GRID_QN, abs=0.5)


def test_a_loop_is_followed_every_pass(rig, master):
    with DropoutGuard(rig.recorder):
        _play(rig, master, 0.5)
        loop = (2 * RATE, 3 * RATE)  # bar 2 (from its start) to its middle at 120 bpm
        locates = rig.source.events["locates"] + rig.source.events["starts"]
        master.set_loop(loop)
        time.sleep(5.0)
        master.set_loop(None)
        passes = master.loop_jumps
        assert passes >= 3, passes
        checks = check_notes(master, rig.note_ons())
        in_loop = [c for c in _steady(checks, master) if loop[0] <= c.transport_frame < loop[1]]
        _assert_on_grid(in_loop, min_count=2 * 16)  # 16 32nds a pass, some just after the jump left out
        assert rig.source.events["locates"] + rig.source.events["starts"] - locates >= passes


def test_a_meter_change_is_a_new_run_with_the_masters_bar_lines(rig, master):
    with DropoutGuard(rig.recorder):
        _play(rig, master, 1.2)
        run = rig.source.snapshot.run
        master.set_meter(3, 4)
        time.sleep(1.5)
        snap = rig.source.snapshot
        assert (snap.ts_num, snap.ts_den) == (3, 4)
        assert snap.run > run
        seg = master.segments[-1]
        # The master's bar lines (from the new meter's first bar) are the snapshot's: the same place in the bar.
        band_in_bar = (snap.ppq_at(time.monotonic()) - snap.bar_start_ppq) % 3.0
        master_in_bar = (master.ppq_at(master.client.transport_frame) - seg.bar_ppq) % 3.0
        apart = abs(band_in_bar - master_in_bar)
        assert min(apart, 3.0 - apart) < 0.05, (band_in_bar, master_in_bar)  # 25 ms at 120 bpm: two reads apart
        checks = check_notes(master, rig.note_ons())
        after = [c for c in _steady(checks, master) if c.transport_frame > seg.frame + RATE // 10]
        _assert_on_grid(after, min_count=15, check_pitch=False)  # the job's bar is 4 beats, the meter's 3


def test_odd_input_is_counted_and_logged_from_poll_not_a_crash(rig, master, caplog):
    with DropoutGuard(rig.recorder):
        _play(rig, master, 0.5)
        master.jump_every_period.extend(range(10 * RATE, 70 * RATE, 41 * 64))  # ~1,100 jumps of 41 periods, one a period
        time.sleep(0.5)
        master.jump_every_period.clear()
        master.invalid_bbt = True
        time.sleep(0.3)
        master.invalid_bbt = False
        time.sleep(0.3)
        with caplog.at_level(logging.WARNING, logger="ai_band.sync.source"):
            rig.source.poll(time.monotonic())
        counters = rig.source.status(time.monotonic())["counters"]
        assert counters.get("jumps", 0) > 50, counters
        assert counters.get("bbt_invalid", 0) > 50, counters
        assert any("jumped again" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
        assert sum("sync jack" in r.getMessage() for r in caplog.records) <= 3  # one line per kind
        assert rig.source.snapshot.playing
        master.stop()
        time.sleep(0.3)
        assert rig.recorder.hanging_notes() == []


def test_without_a_master_jack_transport_drives_the_band_on_the_configured_tempo(rig, jack_server):
    """``jack_transport`` (jackd2) plays, locates and stops; the grid is 120 bpm 4/4 from frame 0."""
    probe = TimebaseMaster(jack_server.name, 120.0, name="test-probe", timebase=False)
    cli = subprocess.Popen(["jack_transport"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=jack_server.env())

    def say(command: str) -> None:
        cli.stdin.write(command.encode() + b"\n")
        cli.stdin.flush()

    try:
        with DropoutGuard(rig.recorder):
            say("stop")
            say("locate 0")
            time.sleep(0.3)
            rig.scheduler.stop_playback()
            rig.recorder.clear()
            rig.scheduler.play(grid_job())
            time.sleep(0.1)
            say("play")
            time.sleep(2.0)
            assert rig.source.status(time.monotonic())["master"] is False
            assert rig.source.snapshot.bpm == pytest.approx(120.0)
            say(f"locate {20 * RATE + 777}")
            time.sleep(1.5)
            say("stop")
            time.sleep(0.3)
            assert not rig.source.snapshot.playing
            checks = check_notes(probe, rig.note_ons())
            before = [c for c in _steady(checks, probe) if c.transport_frame < 20 * RATE]
            after = [c for c in _steady(checks, probe) if c.transport_frame >= 20 * RATE]
            _assert_on_grid(before, min_count=15)
            _assert_on_grid(after, min_count=10)
            assert rig.recorder.hanging_notes() == []
    finally:
        say("exit")
        try:
            cli.wait(5)
        except subprocess.TimeoutExpired:
            cli.kill()
            cli.wait()
        probe.close()
