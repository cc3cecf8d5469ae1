"""A JACK server that dies and comes back under the playing daemon, and the reset each port writes first.

Everything real: ``jackd`` (:class:`~ai_band.testing.jackserver.JackServer`,
killed with SIGKILL and started again under the same name), the daemon
(``python -m ai_band run``), a host sending ``/band/transport`` over UDP and
a recorder in a process of its own on a JACK MIDI input.  Each test has a
server of its own: it is killed.
"""

from __future__ import annotations

import json
import math
import threading
import time

import pytest

from conftest import DropoutGuard, generate_args, wait_job
from ai_band.host import HostSimulator, OscClient
from ai_band.playback.output import RESET_MESSAGES
from ai_band.request import KNOWN_PARTS
from ai_band.testing.daemonproc import DaemonProcess
from ai_band.testing.jackserver import JackServer
from ai_band.testing.recorder_process import RecorderProcess

pytestmark = pytest.mark.jack

PORTS = "^ai-band:(?!clock)"  # the part ports, not the MIDI clock out
#: ``[midi] reconnect_s`` for these daemons: long enough for a recorder process to be
#: waiting on the restarted server before the daemon's next attempt finds it.
RECONNECT_S = 3.0
LOOKAHEAD_S = 0.080  # [playback] lookahead_ms, the default
COARSE_MS = 6.0  # as tests/playback/test_live.py: the machine is shared


def band_status(osc: OscClient) -> dict:
    osc.send("/band/status")
    _, args = osc.receive("/band/status", timeout=5.0)
    return json.loads(args[0])


def wait_for(predicate, timeout_s: float, step_s: float = 0.05):
    """The first true value of ``predicate()`` within ``timeout_s``, else its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step_s)


def recorder_waiting(server: JackServer) -> tuple[threading.Thread, list]:
    """Start a RecorderProcess that connects each daemon port as it appears; join the thread for it."""
    box: list = []

    def run() -> None:
        try:
            box.append(RecorderProcess(server.name, PORTS, count=len(KNOWN_PARTS), timeout_s=30.0))
        except Exception as exc:  # noqa: BLE001 - reported by the test
            box.append(exc)

    thread = threading.Thread(target=run, name="recorder-start")
    thread.start()
    return thread, box


def joined(thread: threading.Thread, box: list) -> RecorderProcess:
    thread.join(60)
    assert box and not isinstance(box[0], Exception), box
    return box[0]


class GuardSinceStart(DropoutGuard):
    """A DropoutGuard counting every period the recorder missed since it started.

    The reset goes out while the recorder connects (the graph changes, xruns
    follow): a period missed then, before the guard is entered, is as much a
    dropout as one missed later.
    """

    def __enter__(self) -> "GuardSinceStart":
        self.start = 0
        return self


def first_events_by_port(events) -> dict[str, list[bytes]]:
    by_port: dict[str, list[bytes]] = {}
    for event in events:
        by_port.setdefault(event.source_port, []).append(bytes(event.data))
    return by_port


def assert_reset_first(events, recorder: RecorderProcess) -> None:
    """Every daemon port's first messages are the reset, in order (ai_band.playback.output.RESET_MESSAGES)."""
    by_port = first_events_by_port(events)
    assert sorted(by_port) == sorted(f"ai-band:{part}" for part in KNOWN_PARTS), (
        sorted(by_port), {k: v for k, v in recorder.stats().items() if not k.startswith("missed_")})
    for port, data in by_port.items():
        assert tuple(data[:len(RESET_MESSAGES)]) == RESET_MESSAGES, (port, data[:6])


def test_each_port_writes_the_reset_first_to_its_first_reader(tmp_path):
    # A new JACK port has no reader: the reset goes to the first one that connects,
    # before anything else.  The recorder connects once the daemon has settled
    # (its start-up load makes a non-realtime recorder miss periods).
    with JackServer() as server, DaemonProcess(tmp_path, env=server.env()) as daemon:
        time.sleep(2.0)
        with RecorderProcess(server.name, PORTS, count=len(KNOWN_PARTS), timeout_s=20.0) as recorder:
            with GuardSinceStart(recorder):
                assert wait_for(lambda: recorder.count() >= len(KNOWN_PARTS) * len(RESET_MESSAGES), 5.0)
                time.sleep(0.1)
                assert_reset_first(recorder.events(), recorder)
                assert len(recorder.events()) == len(KNOWN_PARTS) * len(RESET_MESSAGES)  # once, nothing more
        daemon.terminate_cleanly()


def host_ppq(host: HostSimulator, t_s: float) -> float:
    return host.clock.ppq_at(t_s)


def test_a_jack_server_killed_during_playback_comes_back_and_playback_resumes_on_a_bar_line(tmp_path):
    with JackServer() as server:
        env = server.env()
        env["AI_BAND_MIDI_RECONNECT_S"] = str(RECONNECT_S)
        with DaemonProcess(tmp_path, env=env) as daemon, OscClient(("127.0.0.1", daemon.port)) as osc, \
                HostSimulator(("127.0.0.1", daemon.port), rate_hz=25, jitter_ms=2, seed=5) as host:
            before = band_status(osc)
            assert before["midi"]["state"] == "ok" and before["midi"]["restores"] == 0
            osc.send("/band/generate", *generate_args(id="jr", chords="| C | Am | F | G |", style="rock", bpm=120,
                                                      seed=4, humanize=0, swing=0))
            job_id, _ = wait_job(osc, "jr")
            first = RecorderProcess(server.name, PORTS, count=len(KNOWN_PARTS), timeout_s=20.0)
            try:
                host.play()
                osc.send("/band/play", job_id)
                assert osc.receive("/band/ack")[1] == ["/band/play", job_id]
                time.sleep(3.0)
                assert [e for e in first.events() if e.is_note_on], "nothing played before the kill"
            finally:
                first.close()

            # -- the server dies mid-bar, notes sounding ------------------------------------
            killed_s = time.monotonic()
            server.kill()
            lost = wait_for(lambda: (s := band_status(osc))["midi"]["state"] == "lost" and s, 3.0)
            assert lost, band_status(osc)["midi"]
            assert lost["midi"]["since_s"] < time.monotonic() - killed_s + 0.05
            assert lost["midi"]["reason"]
            assert daemon.wait_for_log(r"JACK server gone", timeout_s=2.0)
            osc.drain()
            osc.send("/band/play", job_id)  # refused while MIDI is gone, with the reason
            _, error = osc.receive("/band/error", timeout=2.0)
            assert error[:2] == [job_id, "midi_unavailable"], error
            # The scheduler plays on (the host does); what it sends is dropped and counted.
            dropped = wait_for(lambda: band_status(osc)["midi"]["dropped_messages"], 2.0)
            assert dropped > 0
            assert band_status(osc)["playback"]["groups_sent"] > before["playback"]["groups_sent"]

            # -- the same server comes back; a recorder waits for the ports -------------------
            server.start()
            thread, box = recorder_waiting(server)
            recorder = joined(thread, box)  # returns once the daemon's ports are back and connected
            try:
                back = wait_for(lambda: (s := band_status(osc))["midi"]["state"] == "ok" and s, RECONNECT_S + 2)
                assert back, band_status(osc)["midi"]
                restored_s = time.monotonic() - back["midi"]["since_s"]
                assert back["midi"]["restores"] == 1
                assert back["ports"] == before["ports"]  # the same names
                assert sorted(recorder.ports) == sorted(before["ports"].values())
                assert daemon.wait_for_log(r"JACK server back", timeout_s=2.0)
                with GuardSinceStart(recorder):
                    time.sleep(4.5)
                    host.stop()
                    time.sleep(0.3)
                    events = recorder.events()
                    # Each port wrote the reset first, then the notes.
                    assert_reset_first(events, recorder)
                    ons = [e for e in events if e.is_note_on]
                    assert len(ons) > 20
                    # The first note-on is on the host's first bar line at least a lookahead after the restore.
                    restored_ppq = host_ppq(host, restored_s)
                    first_ppq = host_ppq(host, ons[0].time_s)
                    tolerance_ppq = COARSE_MS / 1000 * 2.0  # 120 bpm: 2 quarter notes per second
                    earliest_ppq = restored_ppq + LOOKAHEAD_S * 2.0
                    # restored_s is known to a few ms: either bar line if it is that close to one
                    bars = {4.0 * math.ceil((earliest_ppq + d) / 4.0) for d in (-0.02, 0.02)}
                    assert any(abs(first_ppq - bar) < tolerance_ppq for bar in bars), (first_ppq, restored_ppq)
                    # Every note-on on the 16th grid, none hanging after the stop.
                    off_grid_ms = [abs(host_ppq(host, e.time_s) * 4 - round(host_ppq(host, e.time_s) * 4)) / 4 * 500
                                   for e in ons]
                    assert max(off_grid_ms) < COARSE_MS, sorted(off_grid_ms)[-3:]
                    assert recorder.hanging_notes() == []
            finally:
                recorder.close()
            code, took = daemon.terminate()
            assert code == 0 and took < 5.0, daemon.log_text()
