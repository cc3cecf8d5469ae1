"""MIDI clock out on ``ai-band:clock``: ticks on the grid, SPP, Start/Continue/Stop in order.

A real JACK server, the daemon's :class:`JackMidiClient` with a
:class:`ClockOut` hook, a test transport source (snapshots built here: start,
tempo change, relocation, stop) and the JACK recorder reading
``ai-band:clock``.  Bounds are a test's (9 ticks in 10 within 3 frames of
the ideal grid, all within 16); the benchmark (``python -m bench.clock_out``)
measures the p99 against the issue's 2 frames.  A failure while JACK lost
periods or had xruns is rerun (:class:`DropoutGuard`).

The test publishes each change half a clock away from any tick, as a source
publishes a change "now": no tick falls between the publish and the change,
so the ideal grid of every tick is known exactly.
"""

from __future__ import annotations

import contextlib
import statistics
import time

import pytest

from conftest import DropoutGuard
from ai_band.playback.outputs.jack import JackMidiClient
from ai_band.sync.clock_out import SPP_MAX, ClockOut, spp_message
from ai_band.testing.recorder_process import RecorderProcess
from ai_band.transport import TransportSnapshot

pytestmark = pytest.mark.jack

TICK = b"\xf8"
START, CONTINUE, STOP = b"\xfa", b"\xfb", b"\xfc"
#: |deviation - median| of 9 in 10 ticks from their ideal times, at most, frames (the bench's p99 bound is 2).
P90_DEV_FRAMES = 3
#: ... and of every tick, frames (a third of a ms; writing at a period's start would miss by up to 64).
MAX_DEV_FRAMES = 16


class Source:
    """The test's transport source: :meth:`get` is the ``get_snapshot`` ClockOut reads each period."""

    def __init__(self) -> None:
        self.snapshot = TransportSnapshot()

    def get(self) -> TransportSnapshot:
        return self.snapshot

    def publish(self, **fields) -> TransportSnapshot:
        old = self.snapshot
        snap = TransportSnapshot(**{"ts_num": 4, "ts_den": 4, "run": old.run, "version": old.version + 1,
                                    "bpm": old.bpm, **fields})
        self.snapshot = snap
        return snap

    def play(self, at_s: float, ppq: float, bpm: float, new_run: bool = True) -> TransportSnapshot:
        """Play from ``ppq`` at ``at_s`` (a start, a relocation with ``new_run``, or a tempo change)."""
        run = self.snapshot.run + (1 if new_run else 0)
        return self.publish(playing=True, bpm=bpm, anchor_time_s=at_s, anchor_ppq=ppq, run=run, run_start_ppq=ppq)

    def stop(self, at_s: float) -> TransportSnapshot:
        ppq = self.snapshot.ppq_at(at_s)
        return self.publish(playing=False, anchor_time_s=at_s, anchor_ppq=ppq, run=self.snapshot.run + 1)


def sleep_until(t_s: float) -> None:
    """Sleep until CLOCK_MONOTONIC ``t_s`` (the last stretch spun)."""
    while (left := t_s - time.monotonic()) > 0.002:
        time.sleep(left - 0.002)
    while time.monotonic() < t_s:
        pass


def mid_tick(snap: TransportSnapshot, ppq: float) -> tuple[float, float]:
    """The position half a clock after the tick at or before ``ppq``, and its time: no tick is near it."""
    pos = (int(ppq * 24) + 0.5) / 24
    return pos, snap.time_at(pos)


@contextlib.contextmanager
def clock_rig(jack_server, hook_around=None, **options):
    """(source, clock_out, hook, jack client, recorder) on the module's server; all closed after.

    The recorder runs in a child process: in this one its callback would
    compete for the GIL with the client's (ticks recorded a period late).
    """
    source = Source()
    client = JackMidiClient([], client_name="ai-band", servername=jack_server.name)
    clock = ClockOut(source.get, **options)
    hook = clock if hook_around is None else hook_around(clock)
    recorder = None
    try:
        client.add_process_hook(hook)
        assert clock.port == "ai-band:clock"
        recorder = RecorderProcess(jack_server.name, "^ai-band:clock$")
        time.sleep(0.1)  # JACK applies a new connection at a later cycle
        yield source, clock, hook, client, recorder
    finally:
        if recorder is not None:
            recorder.close()
        client.remove_process_hook(hook)
        clock.close()
        client.close()


@pytest.fixture
def rig(jack_server):
    """(source, clock_out, jack client, recorder): :func:`clock_rig` with a plain ClockOut."""
    with clock_rig(jack_server) as (source, clock, _hook, client, recorder):
        yield source, clock, client, recorder


def split(events):
    """(ticks, other messages) of the recorded events, in time order."""
    return [e for e in events if e.data == TICK], [e for e in events if e.data != TICK]


def deviations_frames(ticks, expected_s: list[float], rate: int) -> list[float]:
    """Each tick's recorded time minus its ideal time, frames, less the median of them."""
    devs = [(tick.time_s - t) * rate for tick, t in zip(ticks, expected_s, strict=True)]
    median = statistics.median(devs)
    assert abs(median) < 0.3e-3 * rate, f"median offset {median:.1f} frames"
    return [d - median for d in devs]


def assert_on_grid(devs: list[float]) -> None:
    """Deviations (frames, median removed) within :data:`P90_DEV_FRAMES` for 90 %, :data:`MAX_DEV_FRAMES` for all.

    jackd runs without realtime scheduling on a shared machine: both the
    client's and the recorder's estimates of when a period begins wobble by a
    few frames now and then (the benchmark measures the p99).
    """
    ordered = sorted(abs(d) for d in devs)
    assert ordered[int(0.9 * (len(ordered) - 1))] <= P90_DEV_FRAMES, devs
    assert ordered[-1] <= MAX_DEV_FRAMES, devs


def test_spp_message_is_14_bit_lsb_first():
    assert spp_message(0) == b"\xf2\x00\x00"
    assert spp_message(133) == b"\xf2\x05\x01"
    assert spp_message(SPP_MAX) == b"\xf2\x7f\x7f"
    for bad in (-1, SPP_MAX + 1):
        with pytest.raises(ValueError, match="0..16383"):
            spp_message(bad)


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="callable"):
        ClockOut(TransportSnapshot())
    with pytest.raises(ValueError, match="port_name"):
        ClockOut(TransportSnapshot, port_name="ai-band:clock")


def test_start_tempo_change_stop(rig, jack_server):
    source, clock, client, recorder = rig
    rate = client.samplerate
    with DropoutGuard(recorder, count_xruns=True):
        time.sleep(0.05)
        assert recorder.events() == []  # stopped: no clock (clock_while_stopped is off)
        t0 = time.monotonic() + 0.1
        first = source.play(t0, 0.0, 120.0)
        change_ppq, change_s = mid_tick(first, 1.0)
        sleep_until(change_s - 0.004)
        second = source.play(change_s, change_ppq, 150.0, new_run=False)  # a tempo change, same run
        stop_ppq, stop_s = mid_tick(second, 2.0)
        sleep_until(stop_s)
        source.stop(stop_s)
        time.sleep(0.1)
        ticks, others = split(recorder.events())
        assert [e.data for e in others] == [spp_message(0), START, STOP]
        spp, start, stop = others
        # SPP and Start right before the first tick, at its frame; Stop after the last one.
        assert spp.frame == start.frame == ticks[0].frame
        assert recorder.events().index(start) == recorder.events().index(ticks[0]) - 1
        assert 0 <= stop.time_s - stop_s < 0.01 and stop.frame > ticks[-1].frame
        # Ticks 0..48 (ppq 0..2), at 120 bpm up to the change, 150 after.
        expected = [(first if k / 24 < change_ppq else second).time_at(k / 24) for k in range(49)]
        assert len(ticks) == 49, [round(t.time_s - t0, 4) for t in ticks]
        devs = deviations_frames(ticks, expected, rate)
        assert_on_grid(devs)
        # Intervals in frames: 1000 at 120 bpm, 800 at 150 (48 kHz).  (An xrun
        # of the dummy driver moves JACK's frame time against the clock: the
        # median, not each one.)
        intervals = [b.frame - a.frame for a, b in zip(ticks, ticks[1:])]
        assert abs(statistics.median(intervals[:24]) - 1000) <= 1, intervals
        assert abs(statistics.median(intervals[25:]) - 800) <= 1, intervals
    status = clock.status()
    assert {k: status[k] for k in ("ticks_sent", "starts", "continues", "stops", "spp_sent", "relocations")} == {
        "ticks_sent": 49, "starts": 1, "continues": 0, "stops": 1, "spp_sent": 1, "relocations": 0}
    assert status["state"] == "stopped" and status["port"] == "ai-band:clock"


def test_start_mid_song_relocation_and_stop(rig, jack_server):
    source, clock, client, recorder = rig
    rate = client.samplerate
    with DropoutGuard(recorder, count_xruns=True):
        t0 = time.monotonic() + 0.1
        first = source.play(t0, 8.1, 120.0)  # off the grid: the clock starts on the next sixteenth, 8.25
        jump_ppq, jump_s = mid_tick(first, 9.0)
        sleep_until(jump_s - 0.004)
        # A loop back to ppq 2 (a new run), from the mid-tick moment on.
        second = source.play(jump_s, 2.0, 120.0)
        stop_ppq, stop_s = mid_tick(second, 2.5)
        sleep_until(stop_s)
        source.stop(stop_s)
        time.sleep(0.1)
        events = recorder.events()
        ticks, others = split(events)
        assert [e.data for e in others] == [spp_message(33), CONTINUE, STOP, spp_message(8), CONTINUE, STOP]
        spp1, cont1, stop1, spp2, cont2, stop2 = others
        before = [t for t in ticks if t.frame < stop1.frame]
        after = [t for t in ticks if t.frame > stop1.frame]
        # 8.25 .. 9.0 before the jump (ticks 198..216), 2.0 .. 2.5 after it (ticks 48..60).
        ks = list(range(198, 217)) + list(range(48, 61))
        assert (len(before), len(after)) == (19, 13)
        assert spp1.frame == cont1.frame == before[0].frame
        assert spp2.frame == cont2.frame == after[0].frame
        # Stop at once (the period the new run is seen in, 4 ms before its first tick), no tick in between.
        assert 0 < (spp2.time_s - stop1.time_s) < 0.01
        assert events.index(cont2) == events.index(after[0]) - 1
        expected = [(first if i < 19 else second).time_at(k / 24) for i, k in enumerate(ks)]
        devs = deviations_frames(ticks, expected, rate)
        assert_on_grid(devs)
        assert stop2.frame > after[-1].frame
    status = clock.status()
    assert (status["continues"], status["starts"], status["spp_sent"], status["stops"], status["relocations"]) == (
        2, 0, 2, 2, 1)


def test_position_beyond_spp_range_continues_without_spp(rig):
    source, clock, client, recorder = rig
    with DropoutGuard(recorder, count_xruns=True):
        t0 = time.monotonic() + 0.05
        source.play(t0, 5000.0, 120.0)  # 20000 sixteenths > 16383
        time.sleep(0.2)
        source.stop(time.monotonic())
        time.sleep(0.05)
        ticks, others = split(recorder.events())
        assert [e.data for e in others] == [CONTINUE, STOP]
        assert others[0].frame == ticks[0].frame and len(ticks) >= 5
    assert clock.status()["spp_out_of_range"] == 1


class HoldSome:
    """A hook around :class:`ClockOut` that holds every ``every``-th period, as a late callback does.

    In a held period the real client leaves its buffers to the readers of a
    late predecessor; here the predecessor was on time and has been read, so
    the held period's buffer is cleared (else the recorder would read it twice).
    """

    def __init__(self, clock: ClockOut, every: int) -> None:
        self.clock = clock
        self.every = every
        #: JACK frames of the periods held (wrapped at 2**32 as recorded frames are).
        self.held_frames: set[int] = set()

    def attach(self, client) -> None:
        self.clock.attach(client)

    def process(self, frames: int, frame: int, start_ns: float, writable: bool) -> None:
        if writable and (frame // frames) % self.every == 0:
            self.held_frames.add(frame & 0xFFFFFFFF)
            self.clock._port.clear_buffer()
            writable = False
        self.clock.process(frames, frame, start_ns, writable)


def test_ticks_due_in_a_held_period_go_out_at_the_next_periods_start(jack_server):
    with (clock_rig(jack_server, lambda clock: HoldSome(clock, every=4)) as (source, clock, hook, client, recorder),
          DropoutGuard(recorder, count_xruns=True)):
        t0 = time.monotonic() + 0.05
        snap = source.play(t0, 0.0, 120.0)
        _, stop_s = mid_tick(snap, 1.0)
        sleep_until(stop_s)
        source.stop(stop_s)
        time.sleep(0.1)
        ticks, others = split(recorder.events())
        assert [e.data for e in others] == [spp_message(0), START, STOP]
        assert len(ticks) == 25  # none lost, none twice
        period = client.frames_per_period
        rate = client.samplerate
        lates = 0
        devs = [(tick.time_s - snap.time_at(k / 24)) * rate for k, tick in enumerate(ticks)]
        median = statistics.median(devs)  # most are on time: the offset between writer's and recorder's clocks
        for k, tick in enumerate(ticks):
            late_frames = devs[k] - median
            assert -MAX_DEV_FRAMES <= late_frames <= period + MAX_DEV_FRAMES, (k, late_frames)
            if late_frames > 8:  # beyond the clocks' wobble: written late
                lates += 1
                assert (tick.frame - period) & 0xFFFFFFFF in hook.held_frames  # offset 0 of the next period
        assert lates > 0
        # Counted: every tick written after its nearest frame (the last few frames of a held period too).
        after_held = sum(1 for tick in ticks if (tick.frame - period) & 0xFFFFFFFF in hook.held_frames)
        assert lates <= clock.late_ticks <= after_held
        assert clock.held_periods >= len(hook.held_frames)  # and any the client held itself


def test_clock_while_stopped_runs_at_the_tempo_until_the_start(jack_server):
    with (clock_rig(jack_server, clock_while_stopped=True) as (source, clock, hook, client, recorder),
          DropoutGuard(recorder, count_xruns=True)):
        published_s = time.monotonic()
        source.publish(playing=False, bpm=100.0, anchor_time_s=published_s, anchor_ppq=0.0)
        time.sleep(0.2)
        t0 = time.monotonic() + 0.05
        source.play(t0, 0.0, 120.0)
        time.sleep(0.15)
        events = recorder.events()
        start = next(e for e in events if e.data == START)
        free = [e for e in events if e.data == TICK and e.frame < start.frame and e.time_s > published_s + 0.002]
        playing = [e for e in events if e.data == TICK and e.frame >= start.frame]
        assert len(free) >= 6
        # 100 bpm: 1200 frames a tick at 48 kHz; then the 120 bpm grid from t0.
        assert abs(statistics.median(b.frame - a.frame for a, b in zip(free, free[1:])) - 1200) <= 1
        assert playing[0].frame == start.frame
        devs = deviations_frames(playing, [t0 + k * 0.5 / 24 for k in range(len(playing))], client.samplerate)
        assert_on_grid(devs)


def test_a_snapshot_without_a_usable_tempo_is_ignored_and_counted(rig):
    source, clock, client, recorder = rig
    with DropoutGuard(recorder, count_xruns=True):
        t0 = time.monotonic() + 0.05
        first = source.play(t0, 0.0, 120.0)
        sleep_until(first.time_at(0.5 + 0.5 / 24))
        for bad in (0.0, -120.0, float("nan"), float("inf")):
            source.publish(playing=True, bpm=bad, anchor_time_s=time.monotonic(), anchor_ppq=0.5, run=first.run)
            time.sleep(0.02)
        _, stop_s = mid_tick(first, 1.0)
        sleep_until(stop_s)
        source.publish(playing=False, anchor_time_s=stop_s, anchor_ppq=first.ppq_at(stop_s), run=first.run + 1)
        time.sleep(0.05)
        ticks, others = split(recorder.events())
        assert [e.data for e in others] == [spp_message(0), START, STOP]
        assert len(ticks) == 25  # the 120 bpm grid went on: ppq 0 .. 1
        assert_on_grid(deviations_frames(ticks, [first.time_at(k / 24) for k in range(25)], client.samplerate))
    assert clock.status()["bad_snapshots"] == 4
    assert client.hook_errors == 0
