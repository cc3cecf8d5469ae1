"""bench/fuzz.py's mutator against the real daemon: a short run of what the benchmark sends a million of."""

from __future__ import annotations

from pathlib import Path

from ai_band.host import OscClient
from ai_band.testing.daemonproc import DaemonProcess
from ai_band.testing.jackserver import JackServer
from bench.fuzz import Mutator, fuzz_daemon, malformed_cases, refused_generates


def test_mutator_is_deterministic_and_fits_a_datagram():
    def clock() -> float:
        return 1.8e9

    first = [Mutator(3, 9000, clock=clock).datagram() for _ in range(1)]
    a, b = Mutator(3, 9000, clock=clock), Mutator(3, 9000, clock=clock)
    same = [a.datagram() for _ in range(2000)]
    assert same == [b.datagram() for _ in range(2000)]
    assert first[0] == same[0]
    assert max(len(d) for d in same) <= 65507
    assert len({d[:12] for d in same}) > 50  # many different shapes, not one repeated


def test_harmless_mutator_sends_no_valid_playback_command():
    mutator = Mutator(5, 9000, harmless=True)
    starts = {mutator.datagram()[:16] for _ in range(5000)}
    assert not any(s.startswith((b"/band/stop\x00", b"/band/transport\x00", b"/band/panic\x00")) for s in starts)


def test_fuzzed_datagrams_cost_no_internal_error_and_pings_stay_answered(jack_server: JackServer, tmp_path: Path):
    with DaemonProcess(tmp_path / "jobs", env=jack_server.env()) as daemon:
        figures = fuzz_daemon(daemon, 10_000, seed=7, settle_jobs_s=0.0)
        code, _ = daemon.terminate()
    assert figures["daemon_alive"] and code == 0, daemon.log_text()[-2000:]
    assert figures["counters_internal_errors"] == 0, figures["internal_error_kinds"]
    assert figures["tracebacks_in_log"] == 0, figures["internal_error_kinds"]
    assert figures["pings_unanswered"] == 0
    assert figures["pongs"] == figures["pings_sent"] > 0


#: liblo refuses these; python-osc (so the daemon) reads them leniently: nonzero
#: padding bytes and trailing bytes are ignored, a negative blob size reads as an
#: empty blob.  Each still gets exactly one answer and costs no internal error.
LENIENT = {"path bad padding", "type tags bad padding", "too much argument data", "blob of negative size"}


def test_malformed_generates_and_liblo_cases_are_refused_with_an_error(jack_server: JackServer, tmp_path: Path):
    with DaemonProcess(tmp_path / "jobs", env=jack_server.env()) as daemon, \
            OscClient(("127.0.0.1", daemon.port)) as client:
        for name, datagram in refused_generates() + malformed_cases():
            client.send_raw(datagram)
            address, args = client.receive(timeout=2.0)
            if name in LENIENT:
                assert address in ("/band/error", "/band/pong"), (name, address, args)
            else:
                assert address == "/band/error", (name, address, args)
            if address == "/band/error":
                assert args[1] in ("malformed", "bad_type_tag", "bad_args"), (name, args)
            assert client.drain() == [], name  # one answer per datagram
        client.send("/band/ping", "alive")
        assert client.receive("/band/pong", timeout=2.0)[1] == ["alive"]
        jobs = [p for p in (tmp_path / "jobs").iterdir() if p.is_dir()] if (tmp_path / "jobs").exists() else []
    assert jobs == []
