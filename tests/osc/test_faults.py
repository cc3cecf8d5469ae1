"""The smaller OSC faults of issue 15 item 10, against the real daemon over UDP.

Each once ended in ``internal`` with a traceback, or in silence.
"""

from __future__ import annotations

import json
import os

import pytest

from ai_band.host import OscClient
from ai_band.osc.server import MAX_DATAGRAM_BYTES
from ai_band.testing.daemonproc import DaemonProcess
from conftest import generate_args


def test_a_double_too_large_for_float32_comes_back_as_text(osc):
    osc.send("/band/ping", ("d", 1e300), ("d", -1e300), ("d", 0.5))
    assert osc.receive("/band/pong")[1] == ["1e+300", "-1e+300", 0.5]


@pytest.mark.parametrize("text, code, field", [
    ('{"seed":1' + "0" * 400 + "}", "out_of_range", "seed"),  # OverflowError in float()
    ('{"seed":' + "1" * 5000 + "}", "bad_value", "json"),  # ValueError: int digits limit
    ('{"a":' * 5000 + "1" + "}" * 5000, "bad_value", "json"),  # RecursionError
    ('{"sections": "' + "[" * 20000 + '"}', "bad_value", "sections"),
    ('{"id": 1' + "0" * 400 + "}", "bad_value", "id"),  # OverflowError in format(:g)
])
def test_numbers_and_nesting_past_pythons_limits_are_client_errors(osc, text, code, field):
    osc.send("/band/generate", text)
    ref, got, message = osc.receive("/band/error")[1]
    assert (got, message.split(":")[1].strip()) == (code, field), message
    osc.send("/band/status")
    assert "internal_errors" not in json.loads(osc.receive("/band/status")[1][0])["counters"]


def test_the_receive_buffer_is_raised(osc, band):
    status = json.loads(osc.request("/band/status", reply_address="/band/status")[0])
    got = status["osc"]["recv_buffer_bytes"]
    with open("/proc/sys/net/core/rmem_max", encoding="ascii") as f:
        rmem_max = int(f.read())
    # Linux reports twice what it grants; without CAP_NET_ADMIN it grants at most rmem_max.
    expected = 2 * 4194304 if os.geteuid() == 0 else 2 * min(4194304, rmem_max)
    assert got == expected
    assert band.wait_for_log(r"OSC receive buffer: asked 4194304 bytes, kernel reports \d+", 1.0)


@pytest.fixture(scope="module")
def deep_band(jack_server, tmp_path_factory):
    """A daemon whose output folder path is ~3,000 characters: each job's file list is ~30 KB."""
    out = tmp_path_factory.mktemp("deep")
    for i in range(12):
        out = out / (f"{i:02d}" + "d" * 240)
    out.mkdir(parents=True)
    daemon = DaemonProcess(out, env=jack_server.env()).start()
    try:
        yield daemon
    finally:
        daemon.terminate_cleanly()


def test_a_status_past_one_datagram_is_trimmed_and_paged_never_silent(deep_band):
    parts = "drums,bass,keys,pad,melody,arp,guitar,strings"
    with OscClient(("127.0.0.1", deep_band.port)) as client:
        for i in range(4):
            client.send("/band/generate", *generate_args(id=f"deep{i}", bars=1, parts=parts))
            client.wait_job(f"deep{i}", 60)
        client.send("/band/status")
        _, (text,) = client.receive("/band/status")
        status = json.loads(text)
        assert len(text) < MAX_DATAGRAM_BYTES
        assert status["jobs_total"] == 4 and status["jobs_truncated"] >= 1
        assert len(status["jobs"]) + status["jobs_truncated"] == 4
        assert status["jobs"][-1]["request_id"] == "deep3"  # the newest are kept
        assert status["counters"]["status_trimmed"] >= 1
        client.send("/band/status", 1)  # page 1: older than the 20 newest: none here
        assert json.loads(client.receive("/band/status")[1][0])["jobs"] == []
