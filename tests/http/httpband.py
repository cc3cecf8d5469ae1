"""The real daemon with HTTP on a free port, and a small urllib client (imported by the tests here; not a conftest.py,
whose module name would shadow tests/conftest.py for `from conftest import ...`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ai_band.testing.daemonproc import DaemonProcess
from ai_band.testing.jackserver import JackServer

HTTP_LINE = r"HTTP listening on http://([\d.]+):(\d+)"


@dataclass
class Reply:
    """One HTTP answer: status, headers (lower-case names), body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        assert self.headers.get("content-type", "").startswith("application/json"), self.headers
        return json.loads(self.body)


def fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None,
          data: bytes | None = None, timeout_s: float = 10.0) -> Reply:
    """One request with urllib; HTTP errors are returned as replies, not raised."""
    request = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return Reply(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())


@dataclass
class HttpBand:
    """The daemon process and its HTTP base URL."""

    daemon: DaemonProcess
    base: str

    def get(self, path: str, **kwargs: object) -> Reply:
        return fetch(self.base + path, **kwargs)  # type: ignore[arg-type]


def start_http_band(jack_server: JackServer, out, extra_env: dict[str, str] | None = None,
                    **kwargs: object) -> HttpBand:
    """Start ``ai-band run`` with ``AI_BAND_HTTP_PORT=0`` and wait for its HTTP log line."""
    env = {**jack_server.env(), "AI_BAND_HTTP_PORT": "0", **(extra_env or {})}
    daemon = DaemonProcess(out, env=env, **kwargs).start()  # type: ignore[arg-type]
    match = daemon.wait_for_log(HTTP_LINE, timeout_s=20)
    if match is None:
        daemon.terminate()
        raise AssertionError("no HTTP listening line:\n" + daemon.log_text())
    return HttpBand(daemon, f"http://{match.group(1)}:{match.group(2)}")


@pytest.fixture(scope="module")
def http_band(jack_server: JackServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpBand]:
    """The real daemon (own process, JACK MIDI) with HTTP on 127.0.0.1, a free port; must exit 0."""
    band = start_http_band(jack_server, tmp_path_factory.mktemp("http-band"))
    try:
        yield band
    finally:
        band.daemon.terminate_cleanly()
