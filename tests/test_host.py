"""HostClock math, the HostSimulator's /band/transport stream, OscClient round trips."""

from __future__ import annotations

import socket
import statistics
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pythonosc import dispatcher, osc_message_builder, osc_server
from pythonosc.osc_message import OscMessage

from ai_band.host import (
    TRANSPORT_TYPETAGS,
    HostClock,
    HostSimulator,
    OscArg,
    OscClient,
    bar_length_ppq,
    bar_start_ppq,
    build_message,
    parse_datagram,
)


class FakeClock:
    """An injectable clock: seconds, advanced by hand."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------ HostClock


def test_stopped_clock_holds_its_position() -> None:
    fake = FakeClock()
    clock = HostClock(bpm=120, ppq=8.0, clock=fake)
    fake.now += 10
    assert clock.ppq_at(fake.now) == 8.0
    assert not clock.playing
    with pytest.raises(ValueError, match="stopped"):
        clock.time_at(9.0)


def test_play_advances_at_the_tempo() -> None:
    fake = FakeClock()
    clock = HostClock(bpm=120, clock=fake)
    clock.play()
    assert clock.ppq_at(fake.now + 1.0) == pytest.approx(2.0)  # 120 bpm = 2 ppq/s
    assert clock.time_at(4.0) == pytest.approx(fake.now + 2.0)


def test_tempo_change_keeps_the_position_continuous() -> None:
    fake = FakeClock(0.0)
    clock = HostClock(bpm=120, clock=fake, start_time_s=0.0)
    clock.play(at_time_s=0.0)
    state = clock.set_tempo(60, at_time_s=2.0)
    assert state.ppq == pytest.approx(4.0)
    assert state.bpm == 60
    assert clock.ppq_at(2.0 - 1e-9) == pytest.approx(clock.ppq_at(2.0 + 1e-9), abs=1e-6)
    assert clock.ppq_at(3.0) == pytest.approx(5.0)  # 60 bpm = 1 ppq/s
    assert clock.ppq_at(1.0) == pytest.approx(2.0)  # history before the change
    assert [c.kind for c in clock.changes] == ["init", "play", "tempo"]


def test_relocation_and_stop() -> None:
    fake = FakeClock(0.0)
    clock = HostClock(bpm=120, clock=fake, start_time_s=0.0)
    clock.play(at_time_s=0.0)
    assert clock.relocate(32.0, at_time_s=1.0).ppq == 32.0
    assert clock.ppq_at(1.5) == pytest.approx(33.0)
    state = clock.stop(at_time_s=2.0)
    assert state.ppq == pytest.approx(34.0) and not state.playing
    assert clock.ppq_at(5.0) == pytest.approx(34.0)
    with pytest.raises(ValueError, match="precede"):
        clock.play(at_time_s=1.0)


@pytest.mark.parametrize(
    ("ts_num", "ts_den", "ppq", "bar_start", "length"),
    [
        (4, 4, 0.0, 0.0, 4.0),
        (4, 4, 3.999, 0.0, 4.0),
        (4, 4, 4.0, 4.0, 4.0),
        (4, 4, 9.5, 8.0, 4.0),
        (6, 8, 3.0, 3.0, 3.0),
        (6, 8, 7.0, 6.0, 3.0),
        (3, 4, 7.0, 6.0, 3.0),
        (7, 8, 3.6, 3.5, 3.5),
        (4, 4, -1.0, -4.0, 4.0),
        (4, 4, 8.0 - 1e-12, 8.0, 4.0),  # float error at the bar line
    ],
)
def test_bar_start(ts_num: int, ts_den: int, ppq: float, bar_start: float, length: float) -> None:
    assert bar_length_ppq(ts_num, ts_den) == length
    assert bar_start_ppq(ppq, ts_num, ts_den) == pytest.approx(bar_start)


def test_bar_start_follows_the_clock_in_six_eight() -> None:
    fake = FakeClock(0.0)
    clock = HostClock(bpm=90, ts_num=6, ts_den=8, clock=fake, start_time_s=0.0)
    clock.play(at_time_s=0.0)
    # 90 bpm = 1.5 ppq/s; 6/8 bars are 3 ppq = 2 s long.
    assert clock.bar_start_ppq_at(1.9) == 0.0
    assert clock.bar_start_ppq_at(2.1) == 3.0
    state = clock.state_at(4.5)
    assert (state.ppq, state.bar_start_ppq, state.ts_num, state.ts_den) == (6.75, 6.0, 6, 8)


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"bpm": 0}, ValueError, "bpm"),
        ({"bpm": float("nan")}, ValueError, "bpm"),
        ({"ts_num": 0}, ValueError, "ts_num"),
        ({"ts_den": 3}, ValueError, "ts_den"),
        ({"ts_num": 4.0}, TypeError, "ts_num"),
        ({"ppq": float("inf")}, ValueError, "ppq"),
    ],
)
def test_invalid_clock_arguments_name_the_field(
    kwargs: dict[str, Any], error: type[Exception], field: str
) -> None:
    with pytest.raises(error, match=field):
        HostClock(**kwargs)


@given(
    bpm=st.floats(20, 300),
    start_ppq=st.floats(-16, 10_000),
    dt=st.floats(0, 600),
)
def test_time_at_inverts_ppq_at(bpm: float, start_ppq: float, dt: float) -> None:
    clock = HostClock(bpm=bpm, ppq=start_ppq, playing=True, clock=lambda: 50.0)
    t = 50.0 + dt
    assert clock.time_at(clock.ppq_at(t)) == pytest.approx(t, abs=1e-9 * max(1.0, t))


def test_grid_time_of_reconstructs_the_host_grid() -> None:
    fake = FakeClock(0.0)
    clock = HostClock(bpm=120, clock=fake, start_time_s=0.0)
    clock.play(at_time_s=0.0)        # ppq 0..4 during 0..2 s
    clock.set_tempo(60, at_time_s=2.0)   # ppq 4..6 during 2..4 s
    clock.relocate(2.0, at_time_s=4.0)   # loop back: ppq 2.. from 4 s
    clock.stop(at_time_s=5.0)            # at ppq 3
    assert clock.grid_time_of(1.0) == pytest.approx(0.5)
    assert clock.grid_time_of(5.0) == pytest.approx(3.0)
    assert clock.grid_time_of(2.5) == pytest.approx(4.5)  # latest pass
    assert clock.grid_time_of(3.0) == pytest.approx(5.0)  # reached exactly at the stop
    assert clock.grid_time_of(4.0) == pytest.approx(2.0)  # only in the first pass
    with pytest.raises(LookupError):
        clock.grid_time_of(7.0)


def test_clock_is_thread_safe_under_concurrent_changes() -> None:
    clock = HostClock(bpm=120, playing=True)

    def worker() -> None:
        for i in range(200):
            clock.set_tempo(100 + i % 50)
            clock.state_at()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    times = [c.time_s for c in clock.changes]
    assert len(times) == 801 and times == sorted(times)


# -------------------------------------------------------------- HostSimulator


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    yield sock
    sock.close()


def _typetags(dgram: bytes) -> str:
    end = dgram.index(b"\0")
    start = (end + 4) & ~3
    return dgram[start:dgram.index(b"\0", start)].decode()


def _collect(sock: socket.socket, duration_s: float) -> list[tuple[float, bytes]]:
    out = []
    deadline = time.monotonic() + duration_s
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            dgram = sock.recv(1024)
        except TimeoutError:
            break
        out.append((time.monotonic(), dgram))
    return out


def test_simulator_sends_transport_at_the_rate(receiver: socket.socket) -> None:
    with HostSimulator(receiver.getsockname(), rate_hz=50, register=False) as host:
        host.play()
        received = _collect(receiver, 1.0)
    sent = host.sent()
    assert 40 <= len(received) <= 60  # 50 Hz for 1 s, plus the play message, coarse
    assert len(sent) == len(received)
    for (recv_time, dgram), record in zip(received, sent, strict=True):
        assert _typetags(dgram) == TRANSPORT_TYPETAGS
        message = OscMessage(dgram)
        assert message.address == "/band/transport"
        playing, bpm, ppq, bar_start, ts_num, ts_den = message.params
        state = record.state
        assert (playing, bpm, ts_num, ts_den) == (int(state.playing), 120.0, 4, 4)
        # float32 on the wire: equal to the float64 state rounded to float32.
        assert ppq == float(np.float32(state.ppq))
        assert bar_start == float(np.float32(state.bar_start_ppq))
        # The state is the clock's at the nominal time (ppq of "that audio block").
        assert state.ppq == pytest.approx(host.clock.ppq_at(record.nominal_time_s), abs=1e-9)
        assert 0 <= recv_time - record.send_time_s < 0.05
    periodic = [r for r in sent if r.reason == "periodic"]
    lateness = [r.send_time_s - r.nominal_time_s for r in periodic]
    assert statistics.median(lateness) < 2e-3  # absolute deadlines, no jitter asked
    gaps = np.diff([r.nominal_time_s for r in periodic])
    assert np.allclose(gaps, 0.02)  # nominal grid exactly 1/rate apart: no drift


def test_simulator_sends_at_once_on_changes(receiver: socket.socket) -> None:
    with HostSimulator(receiver.getsockname(), rate_hz=2, register=False) as host:
        receiver.recv(1024)  # the first periodic message, sent at start
        for action, check in (
            (lambda: host.play(), lambda p: p[0] == 1),
            (lambda: host.set_tempo(140.0), lambda p: p[1] == 140.0),
            (lambda: host.relocate(64.0), lambda p: abs(p[2] - 64.0) < 0.01),
            (lambda: host.set_time_signature(6, 8), lambda p: p[4:] == [6, 8]),
            (lambda: host.stop(), lambda p: p[0] == 0),
        ):
            before = time.monotonic()
            state = action()
            params = OscMessage(receiver.recv(1024)).params
            assert time.monotonic() - before < 0.1  # not the 0.5 s periodic slot
            assert check(params)
            assert params[2] == float(np.float32(state.ppq))
    assert [r.reason for r in host.sent()][1:6] == ["play", "tempo", "relocate", "meter", "stop"]


def test_simulator_jitter_is_bounded_and_seeded(receiver: socket.socket) -> None:
    with HostSimulator(receiver.getsockname(), rate_hz=100, jitter_ms=4.0, seed=7, register=False) as host:
        _collect(receiver, 0.6)
    offsets_ms = [(r.send_time_s - r.nominal_time_s) * 1000 for r in host.sent()]
    assert len(offsets_ms) > 40
    assert min(offsets_ms) >= -4.0 - 0.1
    assert max(offsets_ms) <= 4.0 + 5.0  # late wake-ups on a busy machine
    assert statistics.pstdev(offsets_ms) > 1.0  # U(-4, 4) has sd 2.3 ms


def test_stopped_host_keeps_reporting(receiver: socket.socket) -> None:
    with HostSimulator(receiver.getsockname(), rate_hz=50, clock=HostClock(ppq=12.5), register=False):
        received = _collect(receiver, 0.2)
    params = [OscMessage(d).params for _, d in received]
    assert len(params) >= 5
    assert all(p[0] == 0 and p[2] == 12.5 and p[3] == 12.0 for p in params)


def test_targets_must_be_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        OscClient(("192.0.2.1", 9000))
    with pytest.raises(ValueError, match="rate_hz"):
        HostSimulator(("127.0.0.1", 9000), rate_hz=0)


# ------------------------------------------------------------------ OscClient


@pytest.fixture
def echo_server() -> Iterator[tuple[str, int]]:
    """A python-osc server on loopback: the /band/hello handshake, X -> X/reply."""
    disp = dispatcher.Dispatcher()
    server = osc_server.ThreadingOSCUDPServer(("127.0.0.1", 0), disp)

    def reply(client: tuple[str, int], address: str, *args: Any) -> None:
        if address == "/band/hello":  # the daemon's handshake, with a fixed nonce
            client_name, reply_port, _token, nonce = args[:4]
            if not nonce:
                server.socket.sendto(build_message("/band/welcome", "echo", client_name, "n0nce"), client)
            elif nonce == "n0nce":
                server.socket.sendto(build_message("/band/welcome", "echo", client_name, nonce, "control"),
                                     ("127.0.0.1", reply_port))
        else:  # python-osc's own type inference for the echo (int64 -> h, float -> f)
            builder = osc_message_builder.OscMessageBuilder(address + "/reply")
            for arg in args:
                builder.add_arg(arg)
            server.socket.sendto(builder.build().dgram, client)

    disp.set_default_handler(reply, needs_reply_address=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server.server_address
    server.shutdown()
    server.server_close()
    thread.join()


def test_round_trip_with_inferred_and_explicit_types(echo_server: tuple[str, int]) -> None:
    with OscClient(echo_server) as client:
        assert client.address[0] == "127.0.0.1"
        args = client.request("/x", 7, 0.5, "text", b"\x00\x01", ("h", 2**40), ("d", 0.1),
                              OscArg("f", 3), reply_address="/x/reply")
        assert args == [7, 0.5, "text", b"\x00\x01", 2**40, pytest.approx(0.1), 3.0]


def test_receive_buffers_other_addresses(echo_server: tuple[str, int]) -> None:
    with OscClient(echo_server) as client:
        client.send("/a", 1)
        client.send("/b", 2)
        assert client.receive("/b/reply") == ("/b/reply", [2])
        assert client.receive("/a/reply") == ("/a/reply", [1])
        with pytest.raises(TimeoutError, match="/c/reply"):
            client.receive("/c/reply", timeout=0.1)


def test_bundles_hello_and_garbage(echo_server: tuple[str, int]) -> None:
    with OscClient(echo_server) as client:
        assert client.hello("pytest") == ["echo", "pytest", "n0nce", "control"]
        client.send_bundle([("/p", [1]), ("/q", ["s"])])
        replies = {client.receive()[0], client.receive()[0]}
        assert replies == {"/p/reply", "/q/reply"}
        client.send_raw(b"not osc")  # the echo server drops it
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
            other.sendto(b"garbage", client.address)
            other.sendto(build_message("/ok"), client.address)
        assert client.receive() == ("/ok", [])
        assert client.drain() == []


@pytest.mark.parametrize(
    ("arg", "error"),
    [(True, TypeError), (2**31, ValueError), (object(), TypeError), (("z", 1), ValueError)],
)
def test_bad_arguments_are_rejected(arg: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        build_message("/x", arg)


def test_parse_datagram_flattens_bundles() -> None:
    with pytest.raises(ValueError):
        parse_datagram(b"\x01\x02")
    assert parse_datagram(build_message("/m", 1.5)) == [("/m", [1.5])]
    assert struct.unpack(">f", build_message("/m", 1.5)[-4:]) == (1.5,)


@pytest.mark.parametrize("name", ["p", "plugin", "a-much-longer-client-name-of-many-bytes"])
def test_a_first_hello_is_padded_so_the_daemon_may_answer_it(name: str) -> None:
    from ai_band.host import HELLO_PADDED_BYTES, hello_message, parse_datagram

    first = hello_message(name, 9000, "tok", "", HELLO_PADDED_BYTES)
    assert HELLO_PADDED_BYTES <= len(first) < HELLO_PADDED_BYTES + 8
    ((address, args),) = parse_datagram(first)
    assert address == "/band/hello" and args[:4] == [name, 9000, "tok", ""]
    assert set(args[4]) == {0}  # the padding blob
    echo = hello_message(name, 9000, "tok", "n0nce")
    assert parse_datagram(echo)[0][1] == [name, 9000, "tok", "n0nce"]  # the echo needs no padding


def test_a_client_says_bye_when_closed_and_a_simulator_registers_before_it_sends(echo_server) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as watcher:
        watcher.bind(("127.0.0.1", 0))
        watcher.settimeout(2.0)
        client = OscClient(watcher.getsockname(), auto_register=False)
        client.client_name = "leaving"  # as after a hello
        client.close()
        assert parse_datagram(watcher.recv(1024)) == [("/band/bye", ["leaving"])]
    with HostSimulator(echo_server, rate_hz=50) as host:
        assert host.osc.client_name is not None  # registered in start(), before the thread sent anything
