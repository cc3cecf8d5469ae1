"""Allow-list, token, health probes and bind errors: an HttpServer on 127.0.0.1 with an aiohttp client.

The daemon is replaced by plain callables here (the rules are the server's
own); tests/http/test_http_daemon.py covers the server inside the real daemon.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import aiohttp
import pytest

from ai_band.errors import HttpError
from ai_band.http import access
from ai_band.http.server import HttpServer, Sources
from ai_band.osc.api import SPECS


def sources(**probes: Any) -> Sources:
    return Sources(name="t", status=lambda: {"name": "t", "counters": {"messages": 2}},
                   styles=lambda: ["rock"], osc_port=lambda: 9999, specs=SPECS, probes=probes)


async def _get(base: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    async with aiohttp.ClientSession() as session, session.get(base + path, headers=headers) as response:
        body = await response.json() if response.content_type == "application/json" else await response.text()
        return response.status, body, response.headers


async def _serving(server: HttpServer, *requests: tuple[str, dict[str, str] | None]) -> list[tuple[int, Any, Any]]:
    port = await server.start()
    try:
        return [await _get(f"http://127.0.0.1:{port}", path, headers) for path, headers in requests]
    finally:
        await server.stop()
        await server.stop()  # idempotent


def test_allow_list_refuses_peers_outside_it() -> None:
    outside = HttpServer("127.0.0.1", 0, sources(), allow=access.parse_networks(["10.0.0.0/8"]))
    [(status, body, _)] = asyncio.run(_serving(outside, ("/health", None)))
    assert status == 403 and body["error"]["code"] == "forbidden"
    inside = HttpServer("127.0.0.1", 0, sources(), allow=access.parse_networks(["127.0.0.0/8"]))
    [(status, _, _)] = asyncio.run(_serving(inside, ("/health", None)))
    assert status == 200


def test_token_guards_api_metrics_and_files_not_health_or_oscquery() -> None:
    server = HttpServer("127.0.0.1", 0, sources(), token="s3cret")
    good = {"Authorization": "Bearer s3cret"}
    bad = {"Authorization": "Bearer s3cre"}
    replies = asyncio.run(_serving(
        server, ("/api/status", None), ("/api/status", bad), ("/api/status", good), ("/metrics", None),
        ("/files/j/x.mid", None), ("/health", None), ("/?HOST_INFO", None), ("/band/mute", None)))
    statuses = [r[0] for r in replies]
    assert statuses[:5] == [401, 401, 200, 401, 401]
    assert statuses[5:] == [200, 200, 200]
    assert replies[0][2]["WWW-Authenticate"].startswith("Bearer")
    assert replies[0][1]["error"]["code"] == "unauthorized"
    assert replies[2][1]["counters"] == {"messages": 2}


def test_health_is_503_naming_what_is_not_alive() -> None:
    def broken() -> tuple[bool, str]:
        raise RuntimeError("port gone")

    server = HttpServer("127.0.0.1", 0, sources(playback=lambda: (False, "scheduler thread is not running"),
                                                midi_output=broken, other=lambda: (True, "fine")))
    [(status, body, _)] = asyncio.run(_serving(server, ("/health", None)))
    assert status == 503
    assert body["failing"] == ["playback", "midi_output"]
    assert "scheduler thread is not running" in body["message"] and "port gone" in body["message"]
    assert body["checks"]["other"]["ok"] and body["checks"]["event_loop"]["ok"]


def test_files_without_a_job_store_are_a_json_404() -> None:
    [(status, body, _)] = asyncio.run(_serving(HttpServer("127.0.0.1", 0, sources()), ("/files/a/b.mid", None)))
    assert status == 404 and body["error"]["code"] == "not_found"


def test_a_port_in_use_is_an_http_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = HttpServer("127.0.0.1", port, sources())
        with pytest.raises(HttpError, match=f"cannot listen on TCP 127.0.0.1:{port}"):
            asyncio.run(server.start())
        assert server._runner is None


@pytest.mark.parametrize(("peer", "allow", "ok"), [
    ("127.0.0.1", [], True),
    (None, [], True),
    ("192.168.1.20", ["192.168.1.0/24"], True),
    ("192.168.2.20", ["192.168.1.0/24"], False),
    ("::ffff:192.168.1.20", ["192.168.1.0/24"], True),
    ("::1", ["127.0.0.1/32"], False),
    ("fe80::1%eth0", ["fe80::/10"], True),
    (None, ["127.0.0.1"], False),
    ("not an address", ["127.0.0.1"], False),
])
def test_peer_allowed(peer: str | None, allow: list[str], ok: bool) -> None:
    assert access.peer_allowed(peer, access.parse_networks(allow)) is ok


@pytest.mark.parametrize(("header", "ok"), [
    (None, False), ("", False), ("Bearer s3cret", True), ("bearer s3cret", True), ("Basic s3cret", False),
    ("Bearer s3cret2", False), ("Bearer", False),
])
def test_token_ok(header: str | None, ok: bool) -> None:
    assert access.token_ok(header, "s3cret") is ok
    assert access.token_ok(header, "") is True


def test_rules_come_from_the_osc_section_when_it_has_them() -> None:
    from types import SimpleNamespace

    assert access.rules_from_config(SimpleNamespace(osc=SimpleNamespace(host="0.0.0.0"))) == ((), "")
    cfg = SimpleNamespace(osc=SimpleNamespace(allow=("10.0.0.0/8", "127.0.0.1"), token="t"))
    assert access.rules_from_config(cfg) == ((ipaddress.ip_network("10.0.0.0/8"),
                                              ipaddress.ip_network("127.0.0.1/32")), "t")
