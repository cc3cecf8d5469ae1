"""JackServer: a private jackd per test, found by name, stopped by pid."""

from __future__ import annotations

import os
import subprocess

import jack
import pytest

from ai_band.testing.jackserver import JackServer, JackServerError, jackd_path

pytestmark = pytest.mark.jack


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_start_accepts_clients_and_stop_ends_the_process() -> None:
    with JackServer() as server:
        assert server.running
        pid = server.pid
        assert pid is not None and _alive(pid)
        assert server.env()["JACK_DEFAULT_SERVER"] == server.name
        client = jack.Client("t", no_start_server=True, servername=server.name)
        assert client.samplerate == 48000
        assert client.blocksize == 64
        client.close()
    assert not server.running
    assert server.pid is None
    assert not _alive(pid)
    server.stop()  # idempotent


def _ports_seen_by_a_subprocess(server: JackServer) -> list[str]:
    result = subprocess.run(["jack_lsp"], env=server.env(), capture_output=True, text=True,
                            timeout=10, check=True)
    return result.stdout.split()


def test_two_servers_run_at_once_with_distinct_names() -> None:
    # libjack lets one process use one server at a time, so the second server
    # is observed through subprocesses that find it by JACK_DEFAULT_SERVER.
    with JackServer() as first, JackServer(rate=44100, period=128) as second:
        assert first.name != second.name
        assert first.pid != second.pid
        client = jack.Client("only-on-first", no_start_server=True, servername=first.name)
        client.midi_outports.register("out")
        assert "only-on-first:out" in _ports_seen_by_a_subprocess(first)
        assert "only-on-first:out" not in _ports_seen_by_a_subprocess(second)
        client.close()
        other = jack.Client("t", no_start_server=True, servername=second.name)
        assert (other.samplerate, other.blocksize) == (44100, 128)
        other.close()


def test_a_second_server_with_a_taken_name_is_refused() -> None:
    with JackServer() as server:
        with pytest.raises(JackServerError, match="already running"):
            JackServer(name=server.name).start()
        assert server.running


def test_missing_jackd_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(JackServerError, match="apt-get install jackd2"):
        jackd_path()
    with pytest.raises(JackServerError, match="apt-get install jackd2"):
        JackServer().start()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"rate": 0}, "rate"), ({"period": -1}, "period"), ({"name": "a/b"}, "name")],
)
def test_invalid_arguments_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JackServer(**kwargs)  # type: ignore[arg-type]


class _UnknownDriverServer(JackServer):
    def command(self) -> list[str]:
        return [jackd_path(), "--no-realtime", "-n", self.name, "-d", "no-such-driver"]


def test_start_failure_reports_jackd_output() -> None:
    server = _UnknownDriverServer(start_timeout_s=3.0)
    try:
        with pytest.raises(JackServerError, match="jackd said") as info:
            server.start()
        assert "no-such-driver" in str(info.value)
        assert not server.running
    finally:
        server.stop()


def test_command_is_the_prescribed_non_realtime_server_unless_asked():
    default = JackServer(name="aiband-test-cmd").command()
    assert default[1:] == ["--no-realtime", "-n", "aiband-test-cmd", "-d", "dummy", "-r", "48000", "-p", "64"]
    realtime = JackServer(name="aiband-test-cmd", realtime=True).command()
    assert realtime[1:4] == ["--realtime", "-P", "70"] and "--no-realtime" not in realtime
