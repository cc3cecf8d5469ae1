"""bench/fuzz.py's mutator against the real daemon: a short run of what the benchmark sends a million of."""

from __future__ import annotations

from pathlib import Path

from ai_band.host import OscClient
from ai_band.testing.daemonproc import DaemonProcess
from ai_band.testing.jackserver import JackServer
from bench.fuzz import Mutator, fuzz_daemon, malformed_cases, refused_generates


def test_mutator_is_deterministic_and_fits_a_datagram():
    first = [Mutator(3, 9000).datagram() for _ in range(1)]
    a, b = Mutator(3, 9000), Mutator(3, 9000)
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
        figures = fuzz_daemon(daemon, 20_000, seed=7, settle_jobs_s=0.0)
        code, _ = daemon.terminate()
    assert figures["daemon_alive"] and code == 0, daemon.log_text()[-2000:]
    assert figures["counters_internal_errors"] == 0, figures["internal_error_kinds"]
    assert figures["tracebacks_in_log"] == 0, figures["internal_error_kinds"]
    assert figures["pings_unanswered"] == 0
    assert figures["pongs"] == figures["pings_sent"] > 0


def test_malformed_generates_and_liblo_cases_are_refused_with_an_error(jack_server: JackServer, tmp_path: Path):
    with DaemonProcess(tmp_path / "jobs", env=jack_server.env()) as daemon, \
            OscClient(("127.0.0.1", daemon.port)) as client:
        for name, datagram in refused_generates() + [c for c in malformed_cases() if c[0] != "too much argument data"]:
            client.send_raw(datagram)
            address, args = client.receive(timeout=2.0)
            assert address == "/band/error", (name, address, args)
            assert args[1] in ("malformed", "bad_type_tag", "bad_args"), (name, args)
        client.send("/band/ping", "alive")
        assert client.receive("/band/pong", timeout=2.0)[1] == ["alive"]
        jobs = [p for p in (tmp_path / "jobs").iterdir() if p.is_dir()] if (tmp_path / "jobs").exists() else []
    assert jobs == []
