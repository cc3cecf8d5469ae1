"""Live playback on real JACK ports, recorded through a real MIDI input.

Bounds here are coarse (the machine is shared); the tight figures are
bench/tempo_lock.py's.
"""

import json
import re
import time

import pytest

from conftest import DropoutGuard, generate_args, guard_dropouts, wait_job
from ai_band.testing.daemonproc import DaemonProcess
from ai_band.host import HostSimulator, OscClient
from ai_band.testing.recorder import MidiRecorder
from ai_band.generate.pipeline import generate
from ai_band.request import KNOWN_PARTS, parse_request

COARSE_MS = 6.0


@pytest.fixture(scope="module")
def recorder(band, jack_server):
    with MidiRecorder(servername=jack_server.name) as rec:
        rec.wait_for_ports("ai-band", count=len(KNOWN_PARTS), timeout_s=20)
        rec.connect("ai-band")
        yield rec


@pytest.fixture
def host(band, recorder):
    with HostSimulator(("127.0.0.1", band.port), rate_hz=25, jitter_ms=2, seed=3) as sim:
        # Each test (and each rerun after a JACK dropout) starts with nothing armed or playing.
        sim.osc.send("/band/stop")
        time.sleep(0.05)
        recorder.clear()
        yield sim
        sim.stop()
        sim.osc.send("/band/stop")
    time.sleep(0.1)


def make_job(osc, request_id, **fields):
    fields = {"chords": "| C | Am | F | G |", "style": "rock", "humanize": 0, "swing": 0, "seed": 4, "bpm": 120, **fields}
    osc.send("/band/generate", *generate_args(id=request_id, **fields))
    job_id, _ = wait_job(osc, request_id)
    return job_id, generate(parse_request(fields))


def host_position(clock, t):
    """(ppq, bpm, segment) of the host at monotonic t, from the simulator's change log."""
    seg = [c for c in clock.changes if c.time_s <= t][-1]
    return seg.ppq_at(t), seg.bpm, seg


def deviation_ms(clock, t, grid_ppq=0.25):
    ppq, bpm, _ = host_position(clock, t)
    return (ppq - round(ppq / grid_ppq) * grid_ppq) * 60000.0 / bpm


@guard_dropouts
def test_armed_job_starts_on_bar_line_locked_to_the_grid(osc, host, recorder):
    job_id, arrangement = make_job(osc, "live-1")
    host.play()
    time.sleep(0.7)
    recorder.clear()
    osc.send("/band/play", job_id)
    time.sleep(4.5)
    host.stop()
    time.sleep(0.3)
    ons = [e for e in recorder.events() if e.is_note_on]
    assert len(ons) > 40
    first = ons[0]
    ppq, bpm, _ = host_position(host.clock, first.time_s)
    assert ppq == pytest.approx(4.0, abs=COARSE_MS * bpm / 60000.0)  # the next bar line after 0.7 s
    devs = [deviation_ms(host.clock, e.time_s) for e in ons]
    assert max(abs(d) for d in devs) < COARSE_MS, sorted(devs)[-5:]
    # Each note-on is the arrangement's note at that host position.
    expected = {(p.name, round(n.start_ppq, 6), n.pitch) for p in arrangement.parts for n in p.notes}
    for e in ons:
        pos = round(round(host_position(host.clock, e.time_s)[0] * 4) / 4 - 4.0, 6) % arrangement.length_ppq
        assert (e.source_port.split(":")[-1], pos, e.data[1]) in expected
    assert recorder.hanging_notes() == []


@guard_dropouts
def test_stop_relocate_mute_leave_no_hanging_notes(osc, host, recorder):
    job_id, _ = make_job(osc, "live-2", style="ambient", bpm=90)  # long notes: most likely to hang
    host.play()
    time.sleep(0.2)
    osc.send("/band/play", job_id)
    time.sleep(3.0)
    # Relocation mid-note: notes of the old position end at once.
    recorder.clear()
    host.relocate(33.0)
    time.sleep(0.05)
    sounding_after_relocate = recorder.hanging_notes()
    time.sleep(1.5)
    osc.send("/band/mute", "keys", 1)
    time.sleep(0.1)
    before_mute = recorder.events()
    keys_ons_after = lambda: [e for e in recorder.events()[len(before_mute):] if e.is_note_on and "keys" in e.source_port]
    time.sleep(2.5)
    assert keys_ons_after() == []
    assert all("keys" not in port for port, _, _ in recorder.hanging_notes())
    osc.send("/band/mute", "keys", 0)
    stop_at = time.monotonic()
    host.stop()
    time.sleep(0.3)
    late_ons = [e for e in recorder.events() if e.is_note_on and e.time_s > stop_at + 0.030]
    assert late_ons == []
    assert recorder.hanging_notes() == []
    # Notes sounding at the relocation were released within 50 ms (only new ones may sound).
    released = {(e.source_port, e.channel, e.data[1]) for e in recorder.events() if e.is_note_off}
    assert all(n in released for n in sounding_after_relocate) or sounding_after_relocate == []


@guard_dropouts
def test_replacing_a_playing_job_switches_on_a_bar_line(osc, host, recorder):
    job_a, _ = make_job(osc, "live-3a", style="ambient", bpm=120)
    job_b, arr_b = make_job(osc, "live-3b", style="electronic", bpm=120, seed=9)
    host.play()
    time.sleep(0.2)
    osc.send("/band/play", job_a)
    time.sleep(2.5)
    while not 1.0 < host.clock.ppq_at(time.monotonic()) % 4 < 2.0:  # mid-bar: the switch bar is unambiguous
        time.sleep(0.01)
    switch_sent = time.monotonic()
    osc.send("/band/play", job_b)
    time.sleep(3.0)
    host.stop()
    time.sleep(0.3)
    events = recorder.events()
    # From the switch bar on, every note-on belongs to job B at its position.
    ppq_sent, _, _ = host_position(host.clock, switch_sent)
    switch_ppq = (int(ppq_sent // 4) + 1) * 4.0
    first_b = [e for e in events if e.is_note_on and host_position(host.clock, e.time_s)[0] > switch_ppq - 0.01]
    assert host_position(host.clock, first_b[0].time_s)[0] == pytest.approx(switch_ppq, abs=0.01)
    expected = {(p.name, round(n.start_ppq, 6), n.pitch) for p in arr_b.parts for n in p.notes}
    after = [e for e in events if e.is_note_on and host_position(host.clock, e.time_s)[0] > switch_ppq - 0.01]
    assert after
    for e in after:
        grid = round(host_position(host.clock, e.time_s)[0] * 4) / 4
        assert (e.source_port.split(":")[-1], round((grid - switch_ppq) % arr_b.length_ppq, 6), e.data[1]) in expected
    assert recorder.hanging_notes() == []


@guard_dropouts
def test_band_stop_and_panic(osc, host, recorder):
    job_id, _ = make_job(osc, "live-4", style="ambient")
    host.play()
    osc.send("/band/play", job_id)
    time.sleep(2.5)
    osc.send("/band/stop")
    time.sleep(0.2)
    assert recorder.hanging_notes() == []
    n = len(recorder.events())
    time.sleep(1.0)
    assert [e for e in recorder.events()[n:] if e.is_note_on] == []
    recorder.clear()
    osc.send("/band/panic")
    time.sleep(0.3)
    ccs = {(e.source_port, e.channel, e.data[1]) for e in recorder.events() if e.status == 0xB0}
    for port in {e.source_port for e in recorder.events()} - {"ai-band:clock"}:  # the part ports
        for channel in range(16):
            assert (port, channel, 123) in ccs and (port, channel, 120) in ccs


@guard_dropouts
def test_vanished_host_stops_the_band(osc, band, recorder):
    job_id, _ = make_job(osc, "live-5", style="ambient")
    client = OscClient(("127.0.0.1", band.port))
    t0 = time.monotonic()
    for i in range(25):  # the plugin plays for a second, then goes silent (DAW crashed)
        ppq = (time.monotonic() - t0) * 2
        client.send("/band/transport", 1, 120.0, ppq, ppq - ppq % 4, 4, 4)
        if i == 2:
            osc.send("/band/play", job_id)
        time.sleep(0.04)
    time.sleep(1.6)  # transport.timeout_ms = 1000
    assert recorder.hanging_notes() == []
    client.close()


def test_sigterm_while_playing_releases_notes_and_exits_zero(jack_server, tmp_path):
    write_log = tmp_path / "jack-writes.json"
    with DaemonProcess(tmp_path, env=jack_server.env(), extra_args=("--jack-write-log", str(write_log))) as daemon, \
            MidiRecorder(servername=jack_server.name) as rec:
        # This daemon's own ports: "ai-band:*", or "ai-band-01:*" when the
        # module's daemon runs on the same server (JACK renames the client).
        with OscClient(("127.0.0.1", daemon.port)) as client:
            client.send("/band/status")
            _, args = client.receive("/band/status", timeout=5.0)
        own = sorted(json.loads(args[0])["ports"].values())
        client_name = own[0].split(":")[0]
        assert len(own) == len(KNOWN_PARTS) and all(p.startswith(client_name + ":") for p in own), own
        pattern = "^" + re.escape(client_name) + ":"
        rec.wait_for_ports(pattern, count=len(KNOWN_PARTS), timeout_s=20)
        rec.connect(pattern)
        guard = DropoutGuard(rec).__enter__()
        with HostSimulator(("127.0.0.1", daemon.port)) as sim, OscClient(("127.0.0.1", daemon.port)) as client:
            client.send("/band/generate", *generate_args(id="term", chords="C F", style="ambient", play=1))
            wait_job(client, "term")
            sim.play()
            time.sleep(2.5)
            assert [e for e in rec.events() if e.is_note_on], "nothing played"
            code, took = daemon.terminate()
            time.sleep(0.2)
        assert code == 0 and took < 5.0, daemon.log_text()
        try:
            assert rec.hanging_notes() == []
        except AssertionError as exc:
            guard.__exit__(AssertionError, exc, None)
            raise
        # The daemon's write log (--jack-write-log): the frame of every note-on it
        # wrote.  Each recorded note-on is in it at its frame, or a period later
        # where the writer's or the reader's callback started late (the frame
        # time JACK gives a late callback is the next cycle's).
        logged = [(frame, port, pitch) for frame, port, pitch in json.loads(write_log.read_text())["note_ons"]]
        recorded = [(e.frame, e.source_port, e.data[1]) for e in rec.events() if e.is_note_on]
        assert logged and recorded
        exact = set(recorded) & set(logged)
        for frame, port, pitch in recorded:
            assert any(p == port and n == pitch and abs(f - frame) <= 64 for f, p, n in logged), (frame, port, pitch)
        assert len(exact) >= 0.8 * len(recorded), (len(exact), len(recorded))
