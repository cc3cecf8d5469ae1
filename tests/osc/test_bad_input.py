"""Bad input never stops the daemon: it is counted, answered, and the daemon keeps serving."""

import json
import random
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ai_band.host import build_message


def still_alive(osc, tag="alive"):
    osc.drain()
    osc.send("/band/ping", tag)
    while True:
        address, args = osc.receive(timeout=3)
        if address == "/band/pong" and args == [tag]:
            return True


def counters(osc):
    osc.drain()
    osc.send("/band/status")
    return json.loads(osc.receive("/band/status")[1][0])["counters"]


def test_random_bytes_are_counted_and_answered(osc):
    before = counters(osc).get("malformed", 0)
    rng = random.Random(1)
    for _ in range(200):
        osc.send_raw(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300))))
    assert still_alive(osc)
    after = counters(osc)
    # Random bytes that happen to start with "/" parse as OSC with an unknown address.
    assert after.get("malformed", 0) + after.get("unknown_address", 0) - before >= 150


def test_malformed_packet_gets_an_error_reply(osc):
    osc.send_raw(b"\x00\x01garbage")
    ref, code, message = osc.receive("/band/error")[1]
    assert (ref, code) == ("", "malformed")


def test_truncated_packets(osc):
    good = build_message("/band/transport", 1, 120.0, 4.0, 4.0, 4, 4)
    for cut in range(1, len(good)):
        osc.send_raw(good[:cut])
    bundle = b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", 100) + good  # length says 100, only 40 follow
    osc.send_raw(bundle)
    assert still_alive(osc)


def test_wrong_types_and_huge_values(osc):
    cases = [
        ("/band/transport", ["1", "120", "0", "0", "4", "4"]),
        ("/band/transport", [1, 1e30, 0.0, 0.0, 4, 4]),
        ("/band/transport", [1, 120.0, float("inf"), 0.0, 4, 4]),
        ("/band/transport", [1, 120.0, 1e30, 0.0, 4, 4]),
        ("/band/transport", [1, 120.0, 0.0, 0.0, 2**31 - 1, 4]),
        ("/band/hello", ["x" * 5000, 9000]),
        ("/band/generate", ["chords", "C " * 3000]),
        ("/band/generate", ["bars", 2**31 - 1]),
        ("/band/generate", ["seed", -5]),
        ("/band/generate", ["bpm", float("nan")]),
        ("/band/generate", ["id", "x" * 10000]),
        ("/band/mute", [b"\x00\x01", 1]),
        ("/band/play", [None]),
        ("/band/ping", [("T", True), ("F", False), None]),
    ]
    for address, args in cases:
        osc.send(address, *args)
    errors = []
    for _ in range(len(cases) - 1):  # everything but the ping is an error
        errors.append(osc.receive("/band/error", timeout=3)[1])
    assert all(len(e) == 3 and all(isinstance(x, str) for x in e) for e in errors)
    assert still_alive(osc)


def test_empty_blob_is_echoed(osc):
    # python-osc cannot build a size-0 blob; write the packet by hand (OSC 1.0 allows it).
    osc.send_raw(b"/band/ping\x00\x00,b\x00\x00" + b"\x00\x00\x00\x00")
    assert osc.receive("/band/pong")[1] == [b""]


def test_huge_datagram(osc):
    osc.send("/band/ping", b"\x00" * 60000)
    assert len(osc.receive("/band/pong", timeout=3)[1][0]) == 60000
    assert still_alive(osc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    address=st.sampled_from(["/band/transport", "/band/generate", "/band/hello", "/band/play", "/band/mute", "/band/ping", "/band/x"]),
    args=st.lists(
        st.one_of(
            st.integers(-(2**31), 2**31 - 1),
            st.floats(allow_nan=True, allow_infinity=True, width=32),
            st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40),
            st.binary(min_size=1, max_size=40),
        ),
        max_size=8,
    ),
)
def test_fuzzed_messages_never_kill_the_daemon(osc, address, args):
    osc.send(address, *args)


def test_alive_after_fuzzing(osc):
    assert still_alive(osc, "after-fuzz")
    assert counters(osc).get("internal_errors", 0) == 0
