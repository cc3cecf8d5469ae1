"""The ``midi-clock`` source (issue 16, items 3 and 8): the clock model, then real JACK, then the daemon.

* :class:`~ai_band.sync.clock_model.ClockModel` alone: jitter, a ramp, a jump,
  a clock out of range, a lost tick.
* The band's playback in this process (:class:`bench.sync_midi_clock.Rig`: the
  daemon's JACK client, scheduler and source) with a sender writing clock,
  Start, Stop, SPP and Continue into ``ai-band:clock-in`` at exact frames
  (:class:`bench.sync_midi_clock.ClockSender`), recorded in a child process:
  notes on the sender's grid, nothing after Stop, SPP followed at Continue,
  the timeout.
* The daemon (``ai-band run --sync midi-clock``) driven over UDP OSC on
  127.0.0.1: it plays by the clock, each bad input is counted in
  ``/band/status``, ``/band/sync midi-clock`` at run time.

Timing bounds are a test's on a shared machine with a ``--no-realtime``
jackd; the issue's figures come from ``python -m bench.sync_midi_clock``.
"""

from __future__ import annotations

import os
import random
import statistics
import time

import pytest

from bench.sync_jack import GRID_QN, expected_pitch, grid_job
from bench.sync_midi_clock import CLOCK, CONTINUE, START, STOP, ClockScript, ClockSender, Rig, spp
from conftest import DropoutGuard, generate_args, wait_job
from conftest import osc_ack as ack
from conftest import osc_status as status
from ai_band.errors import SyncError
from ai_band.host import OscClient
from ai_band.sync.clock_model import ClockModel
from ai_band.sync.midi_clock import MidiClockSource
from ai_band.sync.source import SyncContext
from ai_band.testing.daemonproc import DaemonProcess
from ai_band.testing.recorder import MidiRecorder

RATE = 48000


# -- the model -----------------------------------------------------------------------------
def feed(model: ClockModel, bpms, jitter_s: float = 0.001, seed: int = 1, t0: float = 100.0) -> list[float]:
    """One tick per entry of ``bpms`` (the tempo of the interval after it), jittered; returns the ideal times."""
    rng = random.Random(seed)
    t, ideal = t0, []
    for bpm in bpms:
        ideal.append(t)
        model.add(t + rng.uniform(-jitter_s, jitter_s))
        t += 60.0 / (24 * bpm)
    return ideal


def test_model_smooths_uniform_jitter_of_one_ms():
    model = ClockModel()
    ideal = feed(model, [120.0] * 600)
    assert model.bpm == pytest.approx(120.0, rel=1e-3)
    assert model.restarts == 0
    assert 0.7e-3 < model.jitter_s < 1.3e-3  # the peak residual: the jitter's half-width
    # The fitted time of the newest tick is far closer to the ideal than the jitter.
    assert abs(model.time_of(model.index) - ideal[-1]) < 0.5e-3


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_model_follows_a_jump_within_a_beat(seed):
    model = ClockModel()
    feed(model, [120.0] * 200 + [140.0] * 24, seed=seed)  # the jump, then one beat
    assert model.restarts >= 1
    assert model.bpm == pytest.approx(140.0, rel=0.01)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_model_follows_a_ramp_within_a_beat_of_its_end(seed):
    model = ClockModel()
    ramp = [120.0 + 20.0 * i / 96 for i in range(96)]  # one bar from 120 to 140
    feed(model, [120.0] * 200 + ramp + [140.0] * 24, seed=seed)
    assert model.bpm == pytest.approx(140.0, rel=0.01)


@pytest.mark.parametrize("bpm_to", [140.0, 90.0])
def test_model_follows_a_ramp_as_a_curve_not_a_lagging_line(bpm_to):
    # From the ramp's second beat to its end, the fitted time of the next tick (what the band
    # plays by) against the ideal one, over ten jitter seeds.  A straight line restarted each
    # time the lag leaves the prediction interval: mean 1.05-1.09 ms, p90 2.3-2.4 ms.
    errors = []
    for seed in range(1, 11):
        model = ClockModel()
        rng = random.Random(seed)
        bpms = [120.0] * 200 + [120.0 + (bpm_to - 120.0) * i / 96 for i in range(96)]
        t = 100.0
        for i, bpm in enumerate(bpms):
            if i >= 224:
                errors.append(abs(model.time_of(model.index + 1) - t))
            model.add(t + rng.uniform(-0.001, 0.001))
            t += 60.0 / (24 * bpm)
    errors.sort()
    assert statistics.mean(errors) < 0.85e-3
    assert errors[int(0.9 * len(errors))] < 1.8e-3


def test_model_restarts_rarely_on_a_steady_clock():
    # The ramp checks (a curve, a trend, a straight newest half) must not keep cutting the
    # window of a steady clock: a restart leaves a short, noisier fit.
    model = ClockModel()
    feed(model, [120.0] * 20000, seed=7)
    assert model.restarts <= 40  # 0.2 %; 30 in 60,000 ticks over three seeds when measured


def test_model_does_not_follow_a_clock_ten_times_too_fast():
    model = ClockModel()
    feed(model, [120.0] * 100, jitter_s=0.0)
    index = model.index
    t = model.time_of(index) + 60.0 / (24 * 1200)
    accepted = []
    for _ in range(20):
        accepted.append(model.add(t))
        t += 60.0 / (24 * 1200)
    assert model.out_of_range >= 18
    assert accepted.count(True) <= 2  # the first intervals cannot tell yet (median of 3)


def test_model_counts_a_lost_tick_and_keeps_the_grid():
    model = ClockModel()
    rng = random.Random(4)
    t = 0.0
    for i in range(300):
        if i != 150:
            model.add(t + rng.uniform(-0.001, 0.001))
        t += 60.0 / (24 * 120)
    assert model.missed_ticks == 1
    assert model.index == 299
    assert model.bpm == pytest.approx(120.0, rel=1e-3)


def test_model_moves_with_a_step_of_the_timing_and_keeps_its_tempo():
    model = ClockModel()
    rng = random.Random(6)
    period = 60.0 / (24 * 120)
    for i in range(300):
        model.add(i * period + rng.uniform(-0.001, 0.001) + (0.006 if i >= 150 else 0.0))
    assert model.phase_steps == 1 and model.restarts == 0
    assert model.bpm == pytest.approx(120.0, rel=1e-3)
    assert model.time_of(299) == pytest.approx(299 * period + 0.006, abs=0.5e-3)


def test_model_counts_a_lost_tick_when_the_timing_moved_with_it():
    """As around a JACK overrun: the period with a tick is lost and the timeline moves by 3 ms."""
    model = ClockModel()
    rng = random.Random(8)
    period = 60.0 / (24 * 120)
    for i in range(300):
        if i != 150:
            model.add(i * period + rng.uniform(-0.001, 0.001) + (0.003 if i > 150 else 0.0))
    assert model.missed_ticks == 1 and model.index == 299
    assert model.bpm == pytest.approx(120.0, rel=1e-3)


def test_model_half_tempo_is_a_tempo_change_not_lost_ticks():
    model = ClockModel()
    feed(model, [120.0] * 150 + [60.0] * 48)
    assert model.missed_ticks == 0
    assert model.bpm == pytest.approx(60.0, rel=0.01)


# -- the source on real JACK -------------------------------------------------------------------


def test_without_jack_the_source_needs_a_virtual_midi_input():
    if os.path.exists("/dev/snd/seq"):
        pytest.skip("this machine has an ALSA sequencer: the virtual input opens")
    source = MidiClockSource(SyncContext(jack_client=None), midi_api="alsa")
    with pytest.raises(SyncError) as info:
        source.start(lambda snapshot: None)
    assert info.value.code == "sync_unavailable"


@pytest.mark.skipif(not os.path.exists("/dev/snd/seq"), reason="no ALSA sequencer (/dev/snd/seq) on this machine")
def test_alsa_virtual_input_opens():
    source = MidiClockSource(SyncContext(jack_client=None), midi_api="alsa")
    source.start(lambda snapshot: None)
    try:
        assert source.port == "ai-band-clock:clock-in"
    finally:
        source.stop()


@pytest.mark.jack
def test_the_rtmidi_virtual_input_follows_start_clock_and_stop(jack_server):
    """The python-rtmidi input (ALSA/CoreMIDI's path), here on python-rtmidi's JACK API: timed on arrival."""
    published = []
    source = MidiClockSource(SyncContext(jack_client=None), midi_api="jack")
    source.start(published.append)
    sender = ClockSender(jack_server.name, name="rt-sender", connect_to="ai-band-clock:clock-in")
    try:
        assert source.port == "ai-band-clock:clock-in"
        script = ClockScript(sender.rate, sender.client.frame_time + RATE // 10, jitter_s=0.0)
        script.start()
        script.beats(4)
        script.stop()
        sender.send(script.sorted_events())
        time.sleep(2.3)
        snaps = [s for s in published if s.playing]
        assert snaps and snaps[-1].bpm == pytest.approx(120.0, rel=0.02)
        assert published[-1].playing is False
        assert source.events["starts"] == 1 and source.events["stops"] == 1
        # Stopped after 4 beats, within one tick: timed on arrival, a tick the dummy server
        # without real-time priority loses to an xrun is missed (a CI run: 95 of 96, 3.9583).
        assert abs(published[-1].anchor_ppq - 4.0) <= 1 / 24 + 1e-9, source.status(time.monotonic())
    finally:
        sender.close()
        source.stop()


@pytest.fixture(scope="module")
def rig(jack_server):
    rig = Rig(jack_server, client_name="ai-band-mc", timeout_s=0.3)
    try:
        rig.scheduler.play(grid_job())
        # Let the server settle first: right after the python-rtmidi test's client closed, the
        # recorder lost periods for a while (its next test was rerun for dropouts, alone not).
        deadline = time.monotonic() + 8.0
        lost = rig.recorder.missed_periods
        while time.monotonic() < deadline:
            time.sleep(1.0)
            now = rig.recorder.missed_periods
            if now == lost:
                break
            lost = now
        yield rig
    finally:
        rig.close()


def _check(script: ClockScript, notes):
    """(deviation ms from the sender's grid, grid ppq, pitch) of each recorded note-on inside a run."""
    out = []
    for note in notes:
        run = script.run_at(note.frame)
        ppq = run.ppq_at(note.frame) if run is not None else None
        if ppq is None:
            continue
        grid = round(ppq / GRID_QN) * GRID_QN
        exact = run.frame_of(grid)
        if exact is not None:
            out.append(((note.frame - exact) * 1000.0 / RATE, grid, note.data[1]))
    return out


def _script(rig) -> ClockScript:
    rig.recorder.clear()
    return ClockScript(RATE, rig.sender.client.frame_time + RATE // 5, jitter_s=0.001, seed=7)


@pytest.mark.jack
def test_band_plays_on_the_senders_grid_and_nothing_after_stop(rig):
    with DropoutGuard(rig.recorder):
        script = _script(rig)
        script.beats(2)  # clock while stopped: the tempo is known before Start
        script.start()
        script.beats(12)
        script.stop()
        script.beats(2)
        rig.sender.send(script.sorted_events())
        time.sleep(7.2)
        notes = rig.note_ons()
        checks = _check(script, notes)
        run = script.runs[0]
        steady = [c for c in checks if c[1] >= 1.0]  # after the first beat
        assert len(steady) >= 70, len(checks)
        devs = [d for d, _, _ in steady]
        median = statistics.median(devs)
        spread = sorted(abs(d - median) for d in devs)
        assert abs(median) < 1.0, median
        assert spread[int(0.9 * (len(spread) - 1))] <= 1.5, spread[-10:]
        assert spread[-1] <= 6.0, spread[-10:]
        assert [c for c in checks if c[2] != expected_pitch(c[1])] == []
        # The clock ran before Start: the run was published at Start, the downbeat is on time too.
        downbeat = [d for d, ppq, _ in checks if ppq == 0.0]
        assert downbeat and abs(downbeat[0] - median) <= 3.0, (downbeat, median)
        # Stop: no note-on more than 30 ms after it, none hanging.
        after = [(n.frame - run.stop_frame) * 1000.0 / RATE for n in notes if n.frame >= run.stop_frame]
        assert max(after, default=0.0) <= 30.0, after
        assert rig.recorder.hanging_notes() == []
        assert rig.source.snapshot.playing is False
        assert rig.source.snapshot.anchor_ppq == pytest.approx(12.0)  # where a Continue would resume


@pytest.mark.jack
def test_song_position_pointer_is_followed_at_the_next_continue(rig):
    with DropoutGuard(rig.recorder):
        script = _script(rig)
        script.start()  # the job armed in the fixture starts (at a bar line)
        script.beats(2)
        script.stop()
        script.beats(1)  # clock while stopped, as DAWs send it
        script.song_position(64)  # bar 5, while stopped
        script.beats(2)
        script.start(64 + 2)  # SPP and Continue at ppq 16.5 (mid-bar)
        script.beats(6)
        script.stop()
        rig.sender.send(script.sorted_events())
        time.sleep(0.2 + 1.5 + 0.5)  # between the SPP and the Continue
        snap = rig.source.snapshot
        assert not snap.playing and snap.anchor_ppq == pytest.approx(16.0)  # shown before it plays
        time.sleep(1.0 + 3.0 + 0.3)
        checks = _check(script, rig.note_ons())
        assert checks, "no note after Continue"
        first = min((c for c in checks if c[1] >= 16.0), key=lambda c: c[1])
        assert first[1] == pytest.approx(16.5)
        assert [c for c in checks if c[2] != expected_pitch(c[1])] == []
        assert rig.recorder.hanging_notes() == []


@pytest.mark.jack
def test_a_clock_that_stops_without_stop_times_out_cleanly(rig):
    with DropoutGuard(rig.recorder):
        script = _script(rig)
        script.start()
        script.beats(4)
        last_tick = script.runs[0].tick_frames[-1]
        rig.sender.send(script.sorted_events())
        time.sleep(2.0 + 0.3 + 0.6)
        rig.source.poll(time.monotonic())
        assert rig.source.snapshot.playing is False
        assert rig.source.status(time.monotonic())["counters"].get("clock_timeout") == 1
        late = [(n.frame - last_tick) / RATE for n in rig.note_ons() if n.frame > last_tick]
        assert max(late, default=0.0) <= 0.3 + 0.03 + 0.01, late  # timeout, then nothing
        assert rig.recorder.hanging_notes() == []


# -- the daemon ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def band(jack_server, tmp_path_factory):
    """The daemon with ``--sync midi-clock`` on the module's JACK server."""
    daemon = DaemonProcess(tmp_path_factory.mktemp("midi-clock"), env=jack_server.env(),
                           extra_args=["--sync", "midi-clock"]).start()
    try:
        yield daemon
    finally:
        daemon.terminate_cleanly()


@pytest.fixture(scope="module")
def daemon_rig(band, jack_server):
    """(sender into ai-band:clock-in, recorder of ai-band:drums)."""
    with MidiRecorder(servername=jack_server.name) as rec:
        rec.wait_for_ports("ai-band:drums", count=1, timeout_s=20)
        rec.connect("ai-band:drums")
        deadline = time.monotonic() + 10
        sender = None
        while sender is None:
            try:
                sender = ClockSender(jack_server.name, name="daemon-sender", connect_to="ai-band:clock-in")
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        try:
            time.sleep(0.1)
            yield sender, rec
        finally:
            sender.close()


@pytest.fixture
def clock_stopped(daemon_rig, osc):
    """``daemon_rig`` with the sender's queue emptied, a Stop sent and the daemon not playing.

    A test rerun after a JACK dropout starts while the sender may still be
    writing the first attempt's clock (seen in CI: the daemon already playing).
    """
    sender, rec = daemon_rig
    sender.send([])
    sender.send_now(STOP)
    deadline = time.monotonic() + 3.0
    while status(osc)["sync"]["playing"] and time.monotonic() < deadline:
        time.sleep(0.05)
    return sender, rec


def _connections(sender) -> dict[str, list[str]]:
    """What feeds the daemon's clock input and what the sender's port feeds, by JACK port name."""
    client = sender.client
    return {port: [p.name for p in client.get_all_connections(port)] for port in ("ai-band:clock-in", sender.port.name)}


@pytest.fixture
def osc(band):
    with OscClient(("127.0.0.1", band.port)) as client:
        yield client



@pytest.mark.jack
def test_daemon_plays_by_the_midi_clock_and_stops_at_stop(osc, clock_stopped):
    sender, rec = clock_stopped
    osc.send("/band/generate", *generate_args(id="mc-1", chords="| C | F | G | C |", style="rock", parts="drums",
                                              humanize=0, swing=0, seed=2))
    job_id, _ = wait_job(osc, "mc-1")
    assert ack(osc, "/band/play", job_id) == [job_id]
    sync = status(osc)["sync"]
    assert sync["source"] == "midi-clock" and sync["port"] == "ai-band:clock-in" and sync["playing"] is False, (
        sync, _connections(sender))
    with DropoutGuard(rec):
        rec.clear()
        script = ClockScript(RATE, sender.client.frame_time + RATE // 5, jitter_s=0.001, seed=3)
        script.beats(1)
        script.start()
        script.beats(10)
        script.stop()
        script.beats(1)
        sender.send(script.sorted_events())
        time.sleep(0.2 + 1.0 / 2 + 3.0)
        sync = status(osc)["sync"]
        assert sync["playing"] is True and sync["locked"] is True, sync
        assert sync["bpm"] == pytest.approx(120.0, rel=0.01)
        assert sync["jitter_ms"] is not None and sync["jitter_ms"] < 2.0
        time.sleep(2.5)
        run = script.runs[0]
        ons = [e for e in rec.events() if e.is_note_on]
        in_run = [e for e in ons if e.frame < run.stop_frame]
        assert len(in_run) > 20
        # Drum onsets of a straight rock beat sit on the sender's 16th grid (coarse: 6 ms).
        devs = []
        for e in in_run:
            ppq = run.ppq_at(e.frame)
            if ppq is not None:
                devs.append((e.frame - run.frame_of(round(ppq * 4) / 4)) * 1000.0 / RATE)
        median = statistics.median(devs)
        assert max(abs(d - median) for d in devs) <= 6.0, devs
        after = [(e.frame - run.stop_frame) * 1000.0 / RATE for e in ons if e.frame >= run.stop_frame]
        assert max(after, default=0.0) <= 30.0, after
        offs = {(e.data[0] & 0x0F, e.data[1]) for e in rec.events() if e.is_note_off}
        assert {(e.data[0] & 0x0F, e.data[1]) for e in ons} <= offs  # no hanging note
        assert status(osc)["sync"]["playing"] is False


@pytest.mark.jack
def test_daemon_counts_each_bad_input_in_status(osc, clock_stopped):
    sender, rec = clock_stopped
    def clock(count: int, bpm: float = 120.0, first: tuple[bytes, ...] = ()) -> None:
        start = sender.client.frame_time + RATE // 20
        events = [(start, m) for m in first]
        events += [(start + 1 + int(i * RATE * 60.0 / (24 * bpm)), CLOCK) for i in range(count)]
        sender.send(events)
        time.sleep(count * 60.0 / (24 * bpm) + 0.1)

    before = status(osc)["sync"]["counters"]
    assert status(osc)["sync"]["playing"] is False, _connections(sender)
    time.sleep(0.4)  # silence: the next clock begins a stretch
    clock(24)  # clock without Start
    sender.send_now(b"\x40\x10")  # running status (a stray data pair)
    sender.send_now(b"\xf0\x7e\x7f\x06\x01\xf7")  # sysex
    sender.send_now(b"\x90\x3c\x64", b"\x80\x3c\x00")  # notes
    sender.send_now(b"\xf2\x10")  # malformed (truncated SPP)
    sender.send_now(b"\xf2\x80\x01")  # SPP data byte out of range
    time.sleep(0.2)
    clock(24, first=(START,))  # playing
    sender.send_now(spp(8))  # SPP while running
    time.sleep(0.03)  # sent before clock() replaces the sender's queue
    clock(48, bpm=1200.0)  # ten times the tempo: not followed, the band stops
    clock(24, first=(CONTINUE,))
    time.sleep(0.6)  # the clock stops without Stop: timeout
    time.sleep(0.4)  # poll (10 Hz) logs and counts
    sync = status(osc)["sync"]
    counters = sync["counters"]
    new = {k: counters.get(k, 0) - before.get(k, 0) for k in counters}
    for kind in ("clock_without_start", "running_status", "sysex", "ignored", "malformed", "spp_out_of_range",
                 "spp_while_running", "clock_out_of_range", "clock_timeout"):
        assert new.get(kind, 0) >= 1, (kind, counters)
    assert new["ignored"] == 2 and new["sysex"] == 1
    assert sync["playing"] is False
    sender.send_now(STOP)
    time.sleep(0.2)
    ons = {(e.data[0] & 0x0F, e.data[1]) for e in rec.events() if e.is_note_on}
    offs = {(e.data[0] & 0x0F, e.data[1]) for e in rec.events() if e.is_note_off}
    assert ons <= offs


@pytest.mark.jack
def test_switching_to_midi_clock_at_run_time(osc, jack_server):
    assert ack(osc, "/band/sync", "internal") == ["internal"]
    assert status(osc)["sync"]["source"] == "internal"
    assert ack(osc, "/band/sync", "midi-clock") == ["midi-clock"]
    sync = status(osc)["sync"]
    assert sync["source"] == "midi-clock" and sync["port"] == "ai-band:clock-in"
