"""The source switch and the own clock, on the real daemon: OSC over UDP, note-ons read back from JACK.

``ai-band run --sync internal`` runs the band on its own timeline; ``/band/tempo``,
``/band/start`` and ``/band/stop`` drive it, ``/band/sync`` changes the source at
run time and ``/band/offset`` shifts a part.  Timing bounds are coarse here (a
shared machine); the frame-level figures come from bench/.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from conftest import DropoutGuard, generate_args, wait_job
from conftest import osc_ack as ack
from conftest import osc_status as status
from ai_band.host import OscClient
from ai_band.testing.daemonproc import DaemonProcess
from ai_band.testing.recorder import MidiRecorder

#: Coarse bound on a note-on's distance from its grid frame here (as tests/playback/test_live.py): 6 ms.
COARSE_FRAMES = 288


@pytest.fixture(scope="module")
def band(jack_server, tmp_path_factory):
    """The daemon with ``--sync internal`` on the module's JACK server."""
    daemon = DaemonProcess(tmp_path_factory.mktemp("sync-out"), env=jack_server.env(),
                           extra_args=["--sync", "internal"]).start()
    try:
        yield daemon
    finally:
        daemon.terminate_cleanly()


@pytest.fixture(scope="module")
def recorder(band, jack_server):
    with MidiRecorder(servername=jack_server.name) as rec:
        rec.wait_for_ports("ai-band:drums", count=1, timeout_s=20)
        rec.connect("ai-band:drums")
        time.sleep(0.1)
        yield rec


@pytest.fixture
def osc(band):
    with OscClient(("127.0.0.1", band.port)) as client:
        yield client
        client.send("/band/sync", "internal")
        client.send("/band/stop")



def error_code(osc: OscClient, address: str, *args) -> str:
    osc.drain()
    osc.send(address, *args)
    _, reply = osc.receive("/band/error", timeout=3)
    return reply[1]


def drum_job(osc: OscClient, request_id: str) -> str:
    osc.send("/band/generate", *generate_args(id=request_id, chords="| C | F | G | C |", style="rock", parts="drums",
                                              humanize=0, swing=0, seed=2))
    job_id, _ = wait_job(osc, request_id)
    return job_id


def test_status_shows_the_internal_source_stopped_and_locked(osc):
    sync = status(osc)["sync"]
    assert sync["source"] == "internal"
    assert sync["locked"] is True
    assert sync["playing"] is False
    assert sync["bpm"] == 120.0
    assert set(sync["sources"]) == {"osc", "jack", "midi-clock", "link", "internal"}


def test_own_clock_plays_at_the_tempo_set_and_stops(osc, recorder):
    job_id = drum_job(osc, "own-1")
    assert ack(osc, "/band/play", job_id) == [job_id]
    assert ack(osc, "/band/tempo", 150.0) == [150.0]
    with DropoutGuard(recorder):
        recorder.clear()
        assert ack(osc, "/band/start", 0.0) == [0.0]
        time.sleep(3.3)
        sync = status(osc)["sync"]
        assert ack(osc, "/band/stop") == ["transport"]
        stopped_s = time.monotonic()
        time.sleep(0.4)
        ons = [e for e in recorder.events() if e.is_note_on]
        assert sync["playing"] is True and sync["bpm"] == 150.0
        assert 20 < len(ons)
        # Drum onsets of a straight rock beat (no humanize, no swing) sit on the 16th grid of 150 bpm:
        # every interval between note-ons is a whole number of 16ths (coarse bound: bench/ measures frames).
        sixteenth_frames = 48000 * 60 / 150 / 4
        gaps = sorted({e.frame for e in ons})
        steps = [(b - a) / sixteenth_frames for a, b in zip(gaps, gaps[1:])]
        assert max(abs(s - round(s)) * sixteenth_frames for s in steps) <= COARSE_FRAMES, steps
        # The first bar line is ppq 0 at /band/start; nothing after the stop (a note-on due
        # in the 80 ms handed over early is taken back).
        assert all(e.time_s < stopped_s + 0.03 for e in ons)
        offs = {(e.data[0] & 0x0F, e.data[1]) for e in recorder.events() if e.is_note_off}
        assert {(e.data[0] & 0x0F, e.data[1]) for e in ons} <= offs  # no hanging note


def test_tempo_change_keeps_the_grid_continuous(osc, recorder):
    job_id = drum_job(osc, "own-2")
    ack(osc, "/band/play", job_id)
    ack(osc, "/band/tempo", 100.0)
    with DropoutGuard(recorder):
        ack(osc, "/band/start", 0.0)
        time.sleep(2.6)
        recorder.clear()
        ack(osc, "/band/tempo", 140.0)
        changed_s = time.monotonic()
        time.sleep(2.0)
        ack(osc, "/band/stop")
        time.sleep(0.3)
        ons = sorted({e.frame for e in recorder.events() if e.is_note_on and e.time_s > changed_s + 0.1})
        assert len(ons) > 8
        sixteenth_frames = 48000 * 60 / 140 / 4
        steps = [(b - a) / sixteenth_frames for a, b in zip(ons, ons[1:])]
        assert max(abs(s - round(s)) * sixteenth_frames for s in steps) <= COARSE_FRAMES, steps


def test_switching_source_is_acknowledged_and_checked(osc):
    assert ack(osc, "/band/sync", "osc") == ["osc"]
    assert status(osc)["sync"]["source"] == "osc"
    assert error_code(osc, "/band/tempo", 130.0) == "wrong_source"
    assert error_code(osc, "/band/start") == "wrong_source"
    assert error_code(osc, "/band/sync", "gps") == "bad_value"
    assert ack(osc, "/band/sync", "internal") == ["internal"]
    assert status(osc)["sync"]["switches"] >= 2
    assert error_code(osc, "/band/tempo", 400.0) == "out_of_range"


def test_offsets_are_set_per_part_and_shown(osc):
    assert ack(osc, "/band/offset", "drums", 12.5) == ["drums", 12.5]
    assert ack(osc, "/band/offset", "all", -3.0) == ["all", -3.0]
    offsets = status(osc)["offsets_ms"]
    assert offsets == {"all": -3.0, "drums": 12.5}
    assert error_code(osc, "/band/offset", "kazoo", 1.0) == "unknown_part"
    assert error_code(osc, "/band/offset", "drums", 250.0) == "out_of_range"
    ack(osc, "/band/offset", "drums", 0.0)
    ack(osc, "/band/offset", "all", 0.0)


def test_command_line_drives_the_own_clock(band):
    env = {**band.env}
    base = [sys.executable, "-m", "ai_band", "sync", "--port", str(band.port)]
    done = subprocess.run([*base, "tempo", "97"], env=env, capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert "/band/tempo 97.0" in done.stdout
    shown = subprocess.run([*base, "--json"], env=env, capture_output=True, text=True, timeout=20)
    assert json.loads(shown.stdout)["bpm"] == 97.0
    bad = subprocess.run([*base, "source", "gps"], env=env, capture_output=True, text=True, timeout=20)
    assert bad.returncode == 2 and bad.stderr.startswith("ai-band: error:")


def test_switching_to_the_jack_transport_at_run_time(osc):
    assert ack(osc, "/band/sync", "jack") == ["jack"]
    sync = status(osc)["sync"]
    assert sync["source"] == "jack"
    assert sync["playing"] is False  # the module's JACK server's transport is stopped
    assert error_code(osc, "/band/tempo", 120.0) == "wrong_source"
    assert ack(osc, "/band/sync", "internal") == ["internal"]


def test_the_own_clock_goes_out_as_midi_clock(osc, jack_server):
    """``ai-band:clock``: Start (after SPP 0), then 24 ticks per quarter note at the tempo set, then Stop."""
    with MidiRecorder(servername=jack_server.name) as clock_rec:
        clock_rec.wait_for_ports("ai-band:clock", count=1, timeout_s=10)
        clock_rec.connect("ai-band:clock")
        time.sleep(0.2)
        with DropoutGuard(clock_rec):
            ack(osc, "/band/tempo", 125.0)
            ack(osc, "/band/start", 0.0)
            time.sleep(1.5)
            ack(osc, "/band/stop")
            time.sleep(0.2)
            kinds = [e.data[0] for e in clock_rec.events() if e.source_port.endswith(":clock")]
            assert 0xFA in kinds and kinds.index(0xFA) < kinds.index(0xF8)
            assert kinds[-1] == 0xFC
            ticks = [e.frame for e in clock_rec.events() if e.data[0] == 0xF8]
            tick_frames = 48000 * 60 / 125 / 24
            gaps = [b - a for a, b in zip(ticks, ticks[1:])]
            assert len(ticks) > 50
            assert sorted(gaps)[len(gaps) // 2] == pytest.approx(tick_frames, abs=1)
