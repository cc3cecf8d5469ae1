"""Who may control the daemon (issue 15 item 3): real UDP from 127.0.0.1 and from 127.0.0.2.

On Linux the whole of 127.0.0.0/8 is loopback, so a socket bound to
127.0.0.2 stands for another host on the LAN.  Three daemons: the module's
default one (loopback allowed, no token), a guarded one (only 127.0.0.1/32,
a token, two clients, a short timeout) and a stingy one (small rate budgets).
"""

from __future__ import annotations

import json
import socket
import time
from typing import Iterator

import pytest

from ai_band.errors import ProtocolError
from ai_band.host import OscClient, build_message, hello_message, parse_datagram
from ai_band.testing.daemonproc import DaemonProcess
from conftest import generate_args

TOKEN = "studio-secret-42"
OTHER_HOST = "127.0.0.2"


def _daemon(jack_server, tmp_path_factory, **env: str) -> Iterator[DaemonProcess]:
    environ = {**jack_server.env(), **{f"AI_BAND_OSC_{k.upper()}": v for k, v in env.items()}}
    daemon = DaemonProcess(tmp_path_factory.mktemp("access"), env=environ).start()
    try:
        yield daemon
    finally:
        daemon.terminate_cleanly()


@pytest.fixture(scope="module")
def guarded(jack_server, tmp_path_factory):
    """Only 127.0.0.1/32, token required, two clients at most, registrations lapse after 3 s."""
    yield from _daemon(jack_server, tmp_path_factory, allow="127.0.0.1/32", token=TOKEN,
                       max_clients="2", client_timeout_s="3")


@pytest.fixture(scope="module")
def stingy(jack_server, tmp_path_factory):
    """Small budgets: 50 messages/s with a burst of 20, 2 generations a minute."""
    yield from _daemon(jack_server, tmp_path_factory, rate_messages_per_s="50", burst_messages="20",
                       rate_generations_per_min="2", rate_renders_per_min="1")


def raw(ip: str = "127.0.0.1") -> socket.socket:
    """An unregistered UDP socket on ``ip`` (not an OscClient: it never says hello)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ip, 0))
    return sock


def collect(sock: socket.socket, quiet_s: float = 0.3) -> list[bytes]:
    """Every datagram arriving on ``sock`` until none has come for ``quiet_s``."""
    got = []
    sock.settimeout(quiet_s)
    while True:
        try:
            got.append(sock.recv(65536))
        except TimeoutError:
            return got


def status(client: OscClient) -> dict:
    client.send("/band/status")
    return json.loads(client.receive("/band/status")[1][0])


# -- allow-list ----------------------------------------------------------------


def test_the_allow_list_drops_other_hosts_unanswered_and_counts_them(guarded):
    with OscClient(("127.0.0.1", guarded.port), token=TOKEN) as inside, raw(OTHER_HOST) as outside:
        before = status(inside)["counters"]
        for _ in range(5):
            outside.sendto(build_message("/band/ping", "hi"), ("127.0.0.1", guarded.port))
            outside.sendto(b"garbage", ("127.0.0.1", guarded.port))
        assert collect(outside) == []
        after = status(inside)["counters"]
    assert after.get("packets_denied", 0) - before.get("packets_denied", 0) == 10
    assert after["packets"] - before["packets"] == 11  # the ten, and the status request


def test_hello_from_outside_the_allow_list_gets_nothing(guarded):
    with OscClient(("127.0.0.1", guarded.port), token=TOKEN, auto_register=False, bind_ip=OTHER_HOST) as outside:
        with pytest.raises(TimeoutError):
            outside.hello("intruder", timeout=0.6)


# -- token -------------------------------------------------------------------


def test_without_the_token_a_client_may_only_read(guarded):
    with OscClient(("127.0.0.1", guarded.port), token="") as reader:
        assert reader.hello("reader")[3] == "read"
        assert status(reader)["osc"]["token_required"] is True
        reader.send("/band/styles")
        assert "rock" in reader.receive("/band/styles")[1]
        for address, args in (("/band/stop", []), ("/band/panic", []), ("/band/mute", ["bass", 1]),
                              ("/band/transport", [1, 120.0, 0.0, 0.0, 4, 4]), ("/band/generate", generate_args())):
            reader.send(address, *args)
            assert reader.receive("/band/error")[1][:2] == [address, "unauthorized"]
        reader.send("/band/ping", 1)
        assert reader.receive("/band/pong")[1] == [1]


def test_a_wrong_token_is_refused_and_the_right_one_controls(guarded):
    with OscClient(("127.0.0.1", guarded.port), token="not-the-token", auto_register=False) as wrong:
        with pytest.raises(ProtocolError) as refused:
            wrong.hello("wrong")
        assert refused.value.code == "unauthorized"
    with OscClient(("127.0.0.1", guarded.port), token=TOKEN) as right:
        assert right.hello("right")[3] == "control"
        right.send("/band/stop")
        assert right.receive("/band/ack")[1] == ["/band/stop", "/band/stop"]


# -- registrations: expiry, a full table -----------------------------------------


def test_registrations_expire_and_a_full_table_refuses_newcomers_but_not_returning_clients(guarded):
    target = ("127.0.0.1", guarded.port)
    with OscClient(target, token=TOKEN, auto_register=False) as first, \
            OscClient(target, token=TOKEN, auto_register=False) as second, \
            OscClient(target, token=TOKEN, auto_register=False) as third:
        first.hello("first")
        second.hello("second")
        with pytest.raises(ProtocolError) as full:
            third.hello("third")
        assert full.value.code == "too_many_clients"
        first.hello("first")  # returning: same ip and reply port
        with OscClient(target, token=TOKEN, auto_register=False) as first_again:
            first_again.hello("first")  # returning: same ip and name, new port
            names = [c["name"] for c in status(first_again)["clients"]]
            assert sorted(names) == ["first", "second"]
            time.sleep(3.5)  # past client_timeout_s: both lapse
            first_again.send("/band/status")  # lapsed: no answer longer than the request
            assert first_again.drain() == [] and not _arrives(first_again, "/band/status")
            third.hello("third")  # the lapsed registrations make room
            assert [c["name"] for c in status(third)["clients"]] == ["third"]


def _arrives(client: OscClient, address: str, timeout: float = 0.4) -> bool:
    try:
        client.receive(address, timeout=timeout)
    except TimeoutError:
        return False
    return True


# -- return routability --------------------------------------------------------


def test_a_hello_naming_a_port_welcomes_only_the_sender_and_an_echo_from_elsewhere_is_refused(band):
    target = ("127.0.0.1", band.port)
    with raw() as victim, raw(OTHER_HOST) as attacker, raw() as accomplice, OscClient(target) as observer:
        victim_port = victim.getsockname()[1]
        attacker.sendto(hello_message("plugin", victim_port, "", "", 256), target)
        (welcome,) = collect(attacker)  # the nonce goes to the sender's address
        (_, (name, version, nonce)), = parse_datagram(welcome)
        assert name == "ai-band" and nonce
        # the echo from another IP (127.0.0.1) cannot complete it
        echo = hello_message("plugin", victim_port, "", nonce)
        accomplice.sendto(echo, target)
        answers = collect(accomplice)
        assert sum(map(len, answers)) <= len(echo)
        assert [parse_datagram(a)[0][1][:2] for a in answers] == [["/band/hello", "bad_nonce"]]
        assert collect(victim) == []  # 127.0.0.1:<victim port> never heard a thing
        clients = status(observer)["clients"]
        assert not [c for c in clients if c["port"] == victim_port]
        # the attacker registering itself, on its own IP, is all it can do
        attacker.sendto(echo, target)
        (confirm,) = collect(attacker)
        assert parse_datagram(confirm)[0][1][3] == "control"
        assert [(c["host"], c["port"]) for c in status(observer)["clients"] if c["name"] == "plugin"] == \
            [(OTHER_HOST, victim_port)]
        attacker.sendto(build_message("/band/bye", "plugin"), target)


def test_the_welcome_goes_to_the_reply_port_too_when_the_hello_pays_for_it(band):
    """JUCE sends from one socket and listens on another: the nonce reaches both."""
    target = ("127.0.0.1", band.port)
    with raw() as sender, raw() as listener:
        port = listener.getsockname()[1]
        sender.sendto(hello_message("juce", port, "", "", 256), target)
        (challenge,) = collect(listener)
        nonce = parse_datagram(challenge)[0][1][2]
        assert len(collect(sender)) == 1
        sender.sendto(hello_message("juce", port, "", nonce), target)
        assert parse_datagram(collect(listener)[0])[0][1][2:] == [nonce, "control"]
        sender.sendto(build_message("/band/status"), target)  # from the sending socket: answered at both
        assert parse_datagram(collect(listener)[0])[0][0] == "/band/status"
        sender.sendto(build_message("/band/bye", "juce"), target)


# -- no amplification, no broadcast --------------------------------------------------


@pytest.mark.parametrize("address, args", [
    ("/band/ping", []),
    ("/band/ping", [("T", True), ("N", None), ("h", 2**40)]),
    ("/band/ping", [("d", 1e300)]),
    ("/band/styles", []),
    ("/band/status", []),
    ("/band/status", [("i", 0)]),
    ("/band/hello", ["c", 9000]),
    ("/band/hello", ["c", 9000, "", "forged-nonce"]),
    ("/band/bye", ["c"]),
    ("/band/generate", ["bpm", 9999]),
    ("/band/generate", ["chords", "C G", "bars", 1, "id", "unregistered"]),
    ("/band/stop", []),
    ("/band/transport", [1, 120.0, 0.0, 0.0, 4, 4]),
    ("/band/nope", []),
])
@pytest.mark.parametrize("ip", ["127.0.0.1", OTHER_HOST])
def test_no_reply_to_an_unregistered_sender_is_larger_than_its_request(band, address, args, ip):
    with raw(ip) as sock:
        request = build_message(address, *args)
        sock.sendto(request, ("127.0.0.1", band.port))
        assert sum(map(len, collect(sock, 0.2))) <= len(request)


@pytest.mark.parametrize("garbage", [b"x", b"/band/ping\0\0,Sxx\0\0\0\0", b"#bundle\0" + bytes(9)])
def test_no_answer_to_garbage_from_an_unregistered_sender_is_larger_than_it(band, garbage):
    with raw() as sock:
        sock.sendto(garbage, ("127.0.0.1", band.port))
        assert sum(map(len, collect(sock, 0.2))) <= len(garbage)


def test_without_a_token_an_unregistered_sender_may_control_but_hears_nothing_big(band):
    target = ("127.0.0.1", band.port)
    with raw() as sock, OscClient(target) as observer:
        mute = build_message("/band/mute", "keys", 1)
        sock.sendto(mute, target)
        assert sum(map(len, collect(sock))) <= len(mute)
        assert "keys" in status(observer)["playback"]["muted"]
        sock.sendto(build_message("/band/mute", "keys", 0), target)
        collect(sock)
        assert "keys" not in status(observer)["playback"]["muted"]


def test_job_events_go_to_the_client_that_asked_only(band):
    target = ("127.0.0.1", band.port)
    with OscClient(target) as owner, OscClient(target) as other:
        other.hello("other")
        owner.send("/band/generate", *generate_args(id="mine", bars=1))
        owner.wait_job("mine")
        assert not [m for m in other.drain() if m[0] in ("/band/job", "/band/file", "/band/ack")]


# -- rate limits -----------------------------------------------------------------


def test_a_ping_flood_is_rate_limited_and_the_transport_is_not_starved(stingy):
    with OscClient(("127.0.0.1", stingy.port)) as client:
        client.hello("flooder")
        for i in range(200):
            client.send("/band/ping", i)
            if i % 20 == 0:
                client.send("/band/transport", 0, 120.0, 0.0, 0.0, 4, 4)
        time.sleep(0.5)  # the bucket refills for the status request
        client.send("/band/status")  # answered after every pong (one socket, in order)
        counters = json.loads(client.receive("/band/status")[1][0])["counters"]
        replies = client.drain()
        pongs = [m for m in replies if m[0] == "/band/pong"]
        limited = [m for m in replies if m[0] == "/band/error" and m[1][1] == "rate_limited"]
        assert 20 <= len(pongs) < 200
        assert 1 <= len(limited) <= 2  # the answer itself is limited to one a second
        assert limited[0][1][2].startswith("retry in ")
        assert not [m for m in replies if m[0] == "/band/error" and m[1][0] == "/band/transport"]
        assert counters["rate_limited"] == 200 - len(pongs)


def test_generations_are_rate_limited_per_minute(stingy):
    with OscClient(("127.0.0.1", stingy.port)) as client:
        for i in range(3):
            client.send("/band/generate", *generate_args(id=f"g{i}", bars=1))
        assert client.receive("/band/ack")[1][1] == "g0"
        assert client.receive("/band/ack")[1][1] == "g1"
        ref, code, message = client.receive("/band/error")[1]
        assert (ref, code) == ("g2", "rate_limited") and "retry in" in message


# -- counting --------------------------------------------------------------------


def test_every_datagram_is_counted_exactly_once(band):
    target = ("127.0.0.1", band.port)
    mixed = [
        build_message("/band/ping", 1),
        b"",
        b"/\0\0\0,bs\0,\x00\x0f\x42\x3f",
        b"/band/ping\0\0,Sxx\0\0\0\0",
        b"#bundle\0" + bytes(8) + (16).to_bytes(4, "big") + build_message("/band/ping", 2)[:16],
        build_message("/band/nope"),
        build_message("/band/status"),  # unregistered: counted, not answered
        b"random bytes",
    ] * 5
    with OscClient(target) as counter, raw() as here, raw(OTHER_HOST) as there:
        before = status(counter)["counters"]
        for i, dgram in enumerate(mixed):
            (here if i % 2 else there).sendto(dgram, target)
        here.sendto(build_message("/band/ping", "last"), target)
        assert any(parse_datagram(d)[0] == ("/band/pong", ["last"]) for d in collect(here))
        after = status(counter)["counters"]
    sent = len(mixed) + 2  # the final ping, the status request
    assert after["packets"] - before["packets"] == sent
    fates = ("packets_ok", "packets_refused", "packets_denied")
    assert sum(after.get(k, 0) - before.get(k, 0) for k in fates) == sent
