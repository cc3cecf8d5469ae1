"""The HTTP stack is loaded only with ``[http] enabled``; a taken HTTP port never stops the daemon."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ai_band.testing.daemonproc import DaemonProcess
from ai_band.testing.jackserver import JackServer
from httpband import HTTP_LINE

ROOT = Path(__file__).resolve().parents[2]


def _loaded(code: str) -> list[str]:
    """Top-level modules of the HTTP stack loaded after ``code`` in a fresh interpreter."""
    code += "\nimport sys, json\nprint(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
    code += "('aiohttp', 'prometheus_client', 'multidict', 'yarl'))))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("code", [
    "import ai_band.service, ai_band.http, ai_band.http.daemon, ai_band.http.oscquery, ai_band.http.access",
    "import sys\nfrom ai_band.cli import main\nsys.argv = ['ai-band', '--help']\ntry:\n    main()\n"
    "except SystemExit:\n    pass",
])
def test_importing_the_daemon_or_help_loads_no_http_stack(code: str) -> None:
    assert _loaded(code) == []


def _maps_aiohttp(pid: int) -> bool:
    """The process has one of aiohttp's compiled modules mapped (it imported aiohttp)."""
    return "/aiohttp/" in Path(f"/proc/{pid}/maps").read_text()


def test_http_disabled_means_no_port_and_no_aiohttp(jack_server: JackServer, tmp_path: Path) -> None:
    env = {**jack_server.env(), "AI_BAND_HTTP_ENABLED": "false"}
    with DaemonProcess(tmp_path, env=env) as daemon:
        assert daemon.wait_for_log(HTTP_LINE, timeout_s=2.0) is None
        assert not _maps_aiohttp(daemon.proc.pid)


def test_a_taken_port_is_logged_and_osc_keeps_serving(jack_server: JackServer, tmp_path: Path) -> None:
    import socket

    from ai_band.host import OscClient

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = {**jack_server.env(), "AI_BAND_HTTP_PORT": str(busy.getsockname()[1])}
        with DaemonProcess(tmp_path, env=env) as daemon:
            assert daemon.wait_for_log(r"HTTP: cannot listen on TCP 127\.0\.0\.1:\d+.*runs without HTTP", 20), \
                daemon.log_text()
            with OscClient(("127.0.0.1", daemon.port)) as osc:
                assert osc.request("/band/ping", 7, reply_address="/band/pong") == [7]
        assert daemon.proc.returncode == 0
