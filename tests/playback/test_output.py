"""The output interface (ai_band.playback.output.Output) against both back-ends, on a real JACK server.

Each test runs once with the JACK back-end (JACK-Client, timed: each message
at its frame) and once with python-rtmidi's JACK API (untimed: the caller
sends when due, and python-rtmidi writes at offset 0 of the next period).
What was sent is read back through the real recorder.  python-rtmidi holds
the GIL while libjack waits for the server, which waits for an in-process
recorder's Python callback: rtmidi ports are opened before such a recorder
and closed after it, or recorded from a child process.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator

import jack
import pytest
import rtmidi

from conftest import DropoutGuard, recorder_on
from ai_band.playback.output import CC_ALL_NOTES_OFF, CONTROL_CHANGE, NOTE_OFF, NOTE_ON, Output, due_ns
from ai_band.playback.outputs import jack as jack_outputs
from ai_band.playback.outputs import rtmidi as rtmidi_outputs
from ai_band.testing.jackserver import JackServer
from ai_band.testing.recorder_process import RecorderProcess

pytestmark = pytest.mark.jack

BACKENDS = ("jack", "rtmidi")


def open_outputs(backend: str, client_name: str, parts: list[str]) -> dict[str, Output]:
    """Open ``parts`` on ``backend`` through its ``open_outputs`` (as :func:`ai_band.playback.ports.open_ports` does)."""
    if backend == "jack":
        return jack_outputs.open_outputs(parts, client_name)
    return rtmidi_outputs.open_outputs(parts, rtmidi.API_UNIX_JACK, client_name)


def midi_output_ports(server: JackServer) -> list[str]:
    """The JACK MIDI output ports of ``server`` now, read by a client that is never activated."""
    probe = jack.Client("aiband-probe", no_start_server=True, servername=server.name)
    try:
        return [port.name for port in probe.get_ports(is_midi=True, is_output=True)]
    finally:
        probe.close()


def send_when_due(output: Output, message: tuple[int, ...], at_s: float) -> None:
    """Send as the scheduler does: a timed output ahead with its time, an untimed one when it is due."""
    if not output.timed:
        while time.monotonic() < at_s:
            time.sleep(min(0.0005, max(0.0, at_s - time.monotonic())))
    output.send(message, at_s)


def wait_for_events(recorder: RecorderProcess, count: int, timeout_s: float = 2.0) -> bool:
    """Whether ``recorder`` (in a child process, asked over a pipe) has ``count`` events within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while len(recorder.events()) < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def record_in_child(server: JackServer, pattern: str, count: int) -> RecorderProcess:
    """A :class:`RecorderProcess` of ``count`` ports matching ``pattern``, started again once if connecting raced.

    The child connects the ports in ``wait_for_ports`` and then again in
    ``connect``; JACK may not list the first connections yet and refuse the
    second ones ("already exists"), failing the start.
    """
    try:
        return RecorderProcess(server.name, pattern, count=count)
    except RuntimeError as exc:
        if "already exists" not in str(exc):
            raise
        return RecorderProcess(server.name, pattern, count=count)


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """The back-end under test: ``jack`` or ``rtmidi``."""
    return request.param


@pytest.fixture
def drums_and_recorder(backend, jack_server) -> Iterator[tuple[Output, object]]:
    """A ``drums`` output of client ``ai-band-out-<backend>`` and an in-process recorder of it."""
    client_name = f"ai-band-out-{backend}"
    (drums,) = open_outputs(backend, client_name, ["drums"]).values()
    try:
        with recorder_on(jack_server, f"^{client_name}:") as recorder:
            yield drums, recorder
    finally:
        drums.close()


def test_the_output_is_the_named_port_and_says_whether_it_is_timed(backend, drums_and_recorder):
    drums, recorder = drums_and_recorder
    assert drums.part == "drums"
    assert drums.name == f"ai-band-out-{backend}:drums"
    assert recorder.sources == [drums.name]
    assert drums.timed is (backend == "jack")
    assert drums.stats()["timed"] is drums.timed
    assert not drums.closed


def test_messages_go_out_at_the_time_they_are_sent_for(drums_and_recorder):
    drums, recorder = drums_and_recorder
    with DropoutGuard(recorder, count_xruns=True):
        start = time.monotonic() + 0.05
        due = [start + i * 0.0173 for i in range(12)]  # not a multiple of the 1.333 ms period
        for i, at_s in enumerate(due):
            send_when_due(drums, (NOTE_ON | 9, 40 + i, 100), at_s)
            send_when_due(drums, (NOTE_OFF | 9, 40 + i, 0), at_s + 0.004)
        assert recorder.wait_for_events(24, timeout_s=5.0)
        notes = recorder.note_ons("drums")
        assert [n.data[1] for n in notes] == [40 + i for i in range(12)]
        errors_ms = [(n.time_s - at_s) * 1000 for n, at_s in zip(notes, due, strict=True)]
        if drums.timed:  # at its frame
            assert abs(statistics.median(errors_ms)) < 0.3, errors_ms
            assert max(abs(e) for e in errors_ms) < 1.5, errors_ms
        else:  # at the start of the period after the send: 0..1.33 ms late, plus the sender's wake-up
            assert -0.5 < statistics.median(errors_ms) < 3.0, errors_ms
            assert all(-0.5 < e < 8.0 for e in errors_ms), errors_ms
        assert recorder.hanging_notes() == []
        assert drums.sent_messages == 24


def test_all_notes_off_releases_the_sounding_notes_on_each_channel(drums_and_recorder):
    drums, recorder = drums_and_recorder
    with DropoutGuard(recorder, count_xruns=True):
        drums.send((NOTE_ON | 9, 36, 100))
        drums.send((NOTE_ON | 2, 60, 90))
        drums.send((NOTE_ON | 2, 64, 90))
        drums.send((NOTE_OFF | 2, 64, 0))
        assert recorder.wait_for_events(4, timeout_s=2.0)
        assert drums.sounding == {(9, 36), (2, 60)}
        assert len(recorder.hanging_notes()) == 2
        assert drums.all_notes_off() == 2
        assert recorder.wait_for_events(8, timeout_s=2.0)
        time.sleep(0.02)
        released = [tuple(e.data) for e in recorder.events()[4:]]
        assert released == [(NOTE_OFF | 2, 60, 0), (NOTE_OFF | 9, 36, 0),
                            (CONTROL_CHANGE | 2, CC_ALL_NOTES_OFF, 0), (CONTROL_CHANGE | 9, CC_ALL_NOTES_OFF, 0)]
        assert recorder.hanging_notes() == []
        assert drums.sounding == frozenset()
        assert drums.all_notes_off() == 0  # nothing sounding: nothing sent
        time.sleep(0.02)
        assert len(recorder.events()) == 8


def test_a_held_timed_output_keeps_its_queue_and_retime_moves_it_an_untimed_one_has_none(drums_and_recorder):
    # The scheduler holds and retimes every output; an untimed one has nothing queued to hold or move.
    drums, recorder = drums_and_recorder
    with DropoutGuard(recorder, count_xruns=True):
        drums.hold()
        due_s = time.monotonic() + 0.010
        drums.send((NOTE_ON | 9, 36, 100), due_s)
        drums.send((NOTE_OFF | 9, 36, 0), due_s + 0.004)
        time.sleep(0.03)
        if not drums.timed:  # sent at once, held or not
            assert [e.data[1] for e in recorder.note_ons("drums")] == [36]
            assert drums.retime({due_ns(due_s): due_ns(due_s + 0.1)}) == 0
            return
        assert recorder.events() == []  # due 20 ms ago, held
        new_due_s = time.monotonic() + 0.030
        moves = {due_ns(due_s): due_ns(new_due_s), due_ns(due_s + 0.004): due_ns(new_due_s + 0.004)}
        assert drums.retime(moves) == 2
        drums.resume()
        assert recorder.wait_for_events(2, timeout_s=2.0)
        (note,) = recorder.note_ons("drums")
        assert abs(note.time_s - new_due_s) < 0.0015, (note.time_s - new_due_s) * 1000


@pytest.mark.parametrize("backend", ["jack"])  # an untimed output sends at once and queues nothing
def test_all_notes_off_takes_back_notes_a_timed_output_has_queued(drums_and_recorder):
    drums, recorder = drums_and_recorder
    with DropoutGuard(recorder, count_xruns=True):
        now = time.monotonic()
        drums.send((NOTE_ON | 9, 36, 100), now)
        drums.send((NOTE_OFF | 9, 36, 0), now + 0.5)  # queued for later
        drums.send((NOTE_ON | 9, 38, 100), now + 0.5)  # never sounds
        assert recorder.wait_for_events(1, timeout_s=2.0)
        assert drums.all_notes_off() == 1
        time.sleep(0.6)
        assert [tuple(e.data) for e in recorder.events()] == [
            (NOTE_ON | 9, 36, 100), (NOTE_OFF | 9, 36, 0), (CONTROL_CHANGE | 9, CC_ALL_NOTES_OFF, 0)]


@pytest.mark.parametrize("backend", ["jack"])  # only a timed output queues messages for later
def test_late_on_arrival_goes_at_once_and_late_messages_counts_only_the_outputs_own_lateness(drums_and_recorder):
    drums, recorder = drums_and_recorder
    with DropoutGuard(recorder, count_xruns=True):
        before = drums.stats()
        sent_s = time.monotonic()
        drums.send((NOTE_ON | 9, 36, 100), sent_s - 0.050)  # handed over 50 ms after it was due
        due_s = time.monotonic() + 0.5
        drums.send((NOTE_OFF | 9, 36, 0), due_s)
        moved_s = time.monotonic()
        assert drums.retime({due_ns(due_s): due_ns(moved_s - 0.020)}) == 1  # moved into the past
        assert recorder.wait_for_events(2, timeout_s=2.0)
        on, off = recorder.events()
        assert -0.001 < on.time_s - sent_s < 0.010, (on.time_s - sent_s) * 1000  # at once
        assert -0.001 < off.time_s - moved_s < 0.010, (off.time_s - moved_s) * 1000  # at once, not at due_s
        middle = drums.stats()
        assert middle["late_on_arrival"] - before["late_on_arrival"] == 2
        assert middle["late_messages"] == before["late_messages"]
        # Queued in time but held past its due time: the output's own lateness.
        drums.hold()
        drums.send((NOTE_ON | 9, 38, 100), time.monotonic() + 0.005)
        time.sleep(0.05)
        drums.resume()
        assert recorder.wait_for_events(3, timeout_s=2.0)
        after = drums.stats()
        assert after["late_messages"] - middle["late_messages"] == 1
        assert after["late_on_arrival"] == middle["late_on_arrival"]


def test_close_releases_sounding_notes_and_removes_the_port(backend, jack_server):
    client_name = f"ai-band-close-{backend}"
    outputs = open_outputs(backend, client_name, ["drums", "keys"])
    drums, keys = outputs["drums"], outputs["keys"]
    try:
        assert {drums.name, keys.name} <= set(midi_output_ports(jack_server))
        # A recorder in a child process: closing an rtmidi port must not wait for this process's GIL.
        with record_in_child(jack_server, f"^{client_name}(-01)?:", count=2) as recorder:  # rtmidi: a client per port
            time.sleep(0.1)  # JACK applies new connections at a later cycle
            with DropoutGuard(recorder, count_xruns=True):  # a lost period loses the note-ons
                drums.send((NOTE_ON | 9, 36, 100))
                keys.send((NOTE_ON, 60, 90))
                assert wait_for_events(recorder, 2), recorder.stats()  # sounding: close must release them
                drums.close()
                assert drums.closed
                drums.send((NOTE_ON | 9, 38, 100))  # closed: ignored
                drums.close()  # idempotent
                ports = midi_output_ports(jack_server)
                assert drums.name not in ports and keys.name in ports
                keys.send((NOTE_OFF, 60, 0))
                time.sleep(0.1)
                events = recorder.events()
                stats = recorder.stats()
                assert [(e.source_port, tuple(e.data)) for e in events if e.source_port == drums.name] == [
                    (drums.name, (NOTE_ON | 9, 36, 100)), (drums.name, (NOTE_OFF | 9, 36, 0)),
                    (drums.name, (CONTROL_CHANGE | 9, CC_ALL_NOTES_OFF, 0))], (events, stats)
                assert [e.data[1] for e in events if e.source_port == keys.name] == [60, 60], (events, stats)
    finally:
        keys.close()
        drums.close()
    assert keys.closed and not ({drums.name, keys.name} & set(midi_output_ports(jack_server)))
    if backend == "jack":  # the client closed with its last port
        assert keys.client.closed and not any(p.startswith(client_name) for p in midi_output_ports(jack_server))
