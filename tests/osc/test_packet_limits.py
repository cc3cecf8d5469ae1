"""No packet costs more than its share: hostile datagrams against the real daemon over real UDP.

Type tags are checked on the raw datagram before python-osc parses it (which
would log one warning per unknown tag), arguments per message and messages per
bundle are capped, and future-dated bundles are capped in count, in total
messages waiting and in how far ahead ([osc] in the config).
"""

import json
import socket
import struct
import time
from pathlib import Path

import pytest

from ai_band.config import Config
from ai_band.host import build_message

from test_bad_input import counters, still_alive

LIMITS = Config().osc
PING = build_message("/band/ping")
NTP_EPOCH_S = 2208988800


def _timetag(unix_s: float) -> bytes:
    """OSC 1.0 time tag (NTP: seconds since 1900, 32.32 fixed point)."""
    ntp = unix_s + NTP_EPOCH_S
    return struct.pack(">II", int(ntp), int((ntp % 1) * 2**32))


def bundle(messages: list[bytes], unix_s: float | None = None) -> bytes:
    """An OSC 1.0 bundle of ready-built messages, dated ``unix_s`` (None: immediately)."""
    tag = struct.pack(">II", 0, 1) if unix_s is None else _timetag(unix_s)
    return b"#bundle\x00" + tag + b"".join(struct.pack(">i", len(m)) + m for m in messages)


def rss_kb(pid: int) -> int:
    """Resident set size of ``pid`` (VmRSS from /proc/<pid>/status), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def log_bytes(band) -> int:
    time.sleep(0.2)  # the reader thread collects the daemon's stderr
    return len(band.log_text())


def answered_within(osc, datagram: bytes) -> tuple[float, list]:
    """Send ``datagram`` raw; return (seconds to the /band/error, its args)."""
    osc.drain()
    sent_s = time.monotonic()
    osc.send_raw(datagram)
    _, args = osc.receive("/band/error", timeout=3)
    return time.monotonic() - sent_s, args


@pytest.mark.parametrize(("tags", "code"), [(b"x" * 65000, "bad_type_tag"), (b"T" * 65000, "too_many_args")])
def test_a_65000_tag_ping_is_refused_at_once_and_logged_once(band, osc, tags, code):
    datagram = b"/band/ping\x00\x00," + tags + b"\x00\x00\x00"
    before, log_before = counters(osc), log_bytes(band)
    delays = []
    for _ in range(3):
        delay_s, (ref, got, message) = answered_within(osc, datagram)
        assert (ref, got) == ("/band/ping", code), message
        delays.append(delay_s)
    assert max(delays) < 0.05, delays
    after = counters(osc)
    assert after.get(code, 0) - before.get(code, 0) == 3
    assert after.get(f"error:{code}", 0) - before.get(f"error:{code}", 0) == 3
    log_growth = log_bytes(band) - log_before
    assert log_growth < 1024, band.log_text()[log_before:]
    assert still_alive(osc)
    print(f"65,000 {tags[:1].decode()!r} tags: {code} in {', '.join(f'{d * 1000:.1f}' for d in delays)} ms, "
          f"log +{log_growth} bytes")


@pytest.mark.parametrize("tag", ["S", "c", "I", "x"])
def test_type_tags_python_osc_does_not_parse_are_refused_not_skipped(osc, tag):
    # python-osc would skip the tag and read the int after it as the string: the reply would be wrong.
    osc.send_raw(b"/band/ping\x00\x00,%si\x00\x00" % tag.encode() + struct.pack(">i", 7))
    ref, code, message = osc.receive("/band/error")[1]
    assert (ref, code) == ("/band/ping", "bad_type_tag")
    assert repr(tag) in message


def test_the_argument_cap_keeps_generate_pairs_and_refuses_more(osc):
    osc.send("/band/ping", *range(LIMITS.max_args))
    assert osc.receive("/band/pong")[1] == list(range(LIMITS.max_args))
    osc.send("/band/ping", *range(LIMITS.max_args + 1))
    ref, code, message = osc.receive("/band/error")[1]
    assert (ref, code) == ("/band/ping", "too_many_args")
    assert f"at most {LIMITS.max_args}" in message


@pytest.mark.parametrize("size", [-4, 0, 6, 1 << 20])
def test_bundle_element_sizes_that_are_not_osc_are_malformed(osc, size):
    # A negative size sent python-osc's bundle parser back to the same size field for ever.
    osc.send_raw(b"#bundle\x00" + struct.pack(">II", 0, 1) + struct.pack(">i", size) + PING)
    assert osc.receive("/band/error")[1][1] == "malformed"
    assert still_alive(osc)


def test_deeply_nested_bundles_are_malformed(osc):
    packet = PING
    for _ in range(100):
        packet = bundle([packet])
    osc.send_raw(packet)
    assert osc.receive("/band/error")[1][1] == "malformed"
    osc.send_raw(bundle([bundle([bundle([build_message("/band/ping", "nested")])])]))
    assert osc.receive("/band/pong")[1] == ["nested"]


def test_a_future_bundle_within_the_caps_runs_on_time(osc):
    for lead_s in (0.3, 0.6):
        osc.drain()
        due_s = time.time() + lead_s
        osc.send_raw(bundle([build_message("/band/ping", "due", i) for i in range(3)], due_s))
        got = [osc.receive("/band/pong", timeout=3)[1] for _ in range(3)]
        late_s = time.time() - due_s
        assert got == [["due", 0], ["due", 1], ["due", 2]]
        assert -0.002 < late_s < 0.03, late_s


def test_a_bundle_dated_too_far_ahead_is_busy(osc):
    osc.send_raw(bundle([build_message("/band/ping", "far")] * 2, time.time() + LIMITS.max_schedule_ahead_s + 5))
    ref, code, message = osc.receive("/band/error")[1]
    assert code == "busy" and "max_schedule_ahead_s" in message
    with pytest.raises(TimeoutError):
        osc.receive("/band/pong", timeout=0.3)


def test_the_future_bundle_attack_is_refused_beyond_the_caps(band, osc):
    status = lambda: (osc.drain(), osc.send("/band/status"), json.loads(osc.receive("/band/status")[1][0]))[-1]
    before = status()["counters"]
    rss_before = rss_kb(band.proc.pid)
    due_s = time.time() + 3.0
    fits = LIMITS.max_scheduled_messages // LIMITS.max_bundle_messages
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker:  # never reads the replies
        target = ("127.0.0.1", band.port)
        # 50 bundles of 1,000 pings: past max_bundle_messages, each refused whole before parsing.
        big = bundle([PING] * 1000, due_s)
        # 50 bundles of max_bundle_messages pings: the first `fits` fill max_scheduled_messages.
        full = bundle([PING] * LIMITS.max_bundle_messages, due_s)
        ping_delays = []
        for i in range(50):
            attacker.sendto(big, target)
            attacker.sendto(full, target)
            if i % 10 == 0:
                sent_s = time.monotonic()
                osc.send("/band/ping", "during", i)
                assert osc.receive("/band/pong", timeout=1)[1] == ["during", i]
                ping_delays.append(time.monotonic() - sent_s)
            time.sleep(0.002)  # paced: the kernel's receive buffer, not the daemon, would drop a burst
        waiting = status()
    after = waiting["counters"]
    refused = 50 + (50 - fits)
    assert after.get("busy", 0) - before.get("busy", 0) == refused
    assert after.get("error:busy", 0) - before.get("error:busy", 0) == refused
    # busy_messages: those of bundles that found no room in the schedule (the oversized ones are not parsed).
    assert after.get("busy_messages", 0) - before.get("busy_messages", 0) == (50 - fits) * LIMITS.max_bundle_messages
    rss_growth_kb = rss_kb(band.proc.pid) - rss_before
    assert rss_growth_kb < 20 * 1024, rss_growth_kb
    assert max(ping_delays) < 0.05, ping_delays
    # The accepted ones run when due, and then the room is free again.
    time.sleep(max(0.0, due_s - time.time()) + 0.3)
    assert counters(osc)["messages"] - after["messages"] >= fits * LIMITS.max_bundle_messages
    osc.drain()
    osc.send_raw(bundle([build_message("/band/ping", "room again")], time.time() + 0.2))
    assert osc.receive("/band/pong", timeout=2)[1] == ["room again"]
    print(f"future-bundle attack: {refused} bundles busy, RSS +{rss_growth_kb} KiB, "
          f"ping answered in <= {max(ping_delays) * 1000:.1f} ms")


def test_an_immediate_bundle_up_to_the_cap_runs_whole_and_one_more_is_busy(osc):
    n = LIMITS.max_bundle_messages
    osc.send_raw(bundle([build_message("/band/ping", i) for i in range(n)]))
    assert [osc.receive("/band/pong")[1] for _ in range(n)] == [[i] for i in range(n)]
    osc.send_raw(bundle([PING] * (n + 1)))
    ref, code, message = osc.receive("/band/error")[1]
    assert code == "busy" and "max_bundle_messages" in message
    with pytest.raises(TimeoutError):
        osc.receive("/band/pong", timeout=0.3)


def test_a_flood_of_pings_the_reply_cannot_carry_costs_one_log_entry_per_second(band, osc):
    # A float64 beyond float32's range cannot be echoed as `f`: whatever the answer
    # (today `internal`), 200 of them must not write 200 tracebacks.
    datagram = b"/band/ping\x00\x00,d\x00\x00" + struct.pack(">d", 1e300)
    log_before = log_bytes(band)
    osc.drain()
    for _ in range(200):
        osc.send_raw(datagram)
    answers = [osc.receive(timeout=3)[0] for _ in range(200)]
    assert set(answers) <= {"/band/pong", "/band/error"}
    log_growth = log_bytes(band) - log_before
    assert log_growth < 4096, band.log_text()[log_before:]
    assert still_alive(osc)
