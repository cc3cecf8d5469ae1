"""Bad input over HTTP (issue 17, item 5): fuzzed requests, bodies too large or too slow, slow headers,
symlinks out of the output folder, many event streams.

Against the real daemon (own process) unless the rule is the server's own
(the idle timeout: an in-process :class:`HttpServer` with a short one).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from ai_band.host import OscClient
from ai_band.http.server import MAX_BODY_BYTES, HttpServer, Sources
from ai_band.osc.api import SPECS
from ai_band.request import FIELDS
from ai_band.testing.jackserver import JackServer
from httpband import HttpBand, Reply, fetch, start_http_band

#: Event streams the fuzzing daemon allows (``[http] max_websockets``).
MAX_STREAMS = 8


@pytest.fixture(scope="module")
def band(jack_server: JackServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpBand]:
    """The real daemon with a small stream bound and OSC generation rates high enough for the fuzzing."""
    band = start_http_band(jack_server, tmp_path_factory.mktemp("http-hostile"), extra_env={
        "AI_BAND_HTTP_MAX_WEBSOCKETS": str(MAX_STREAMS),
        "AI_BAND_OSC_RATE_GENERATIONS_PER_MIN": "100000", "AI_BAND_OSC_RATE_RENDERS_PER_MIN": "100000"})
    try:
        yield band
    finally:
        band.daemon.terminate_cleanly()


def assert_json_refusal(reply: Reply) -> dict:
    """A refusal: JSON ``{"error": {code, message[, field]}}``, never a 500."""
    assert reply.status != 500 and 400 <= reply.status < 600, (reply.status, reply.body[:300])
    error = reply.json()["error"]  # type: ignore[index]
    assert isinstance(error["code"], str) and error["code"] and isinstance(error["message"], str), error
    assert set(error) <= {"code", "message", "field"}, error
    return error


def osc_code(band: HttpBand, body: str) -> str | None:
    """The ``/band/error`` code of ``/band/generate s:body`` (None when acknowledged)."""
    with OscClient(("127.0.0.1", band.daemon.port)) as osc:
        osc.send("/band/generate", body)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            address, args = osc.receive(timeout=10)
            if address == "/band/error":
                return args[1]
            if address == "/band/ack":
                return None
    raise AssertionError("no answer over OSC")


def post_generate(band: HttpBand, body: bytes, content_type: str = "application/json") -> Reply:
    return band.get("/api/generate", method="POST", data=body, headers={"Content-Type": content_type})


# -- fuzzing ---------------------------------------------------------------------------------------------------------

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False, width=64),
                     st.text(max_size=24),
                     st.sampled_from(["C Am F G", "| C | G |", "rock", "jazz", "4/4", "7/8", "drums,bass", "wav",
                                      "mid,flac", "bass=33", "C", "", "-1", "1e400", "NaN"]))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                       max_leaves=8)
_keys = st.one_of(st.sampled_from(sorted(FIELDS)), st.text(min_size=1, max_size=12))
_requests = st.dictionaries(_keys, _values, max_size=6)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=_requests)
def test_fuzzed_generate_never_500_and_codes_match_osc(band: HttpBand, raw: dict) -> None:
    raw = {**raw, "render": raw.get("render", "mid")}  # an accepted job stays cheap
    body = json.dumps(raw)
    reply = post_generate(band, body.encode())
    if reply.status == 202:
        job_id = reply.json()["id"]  # type: ignore[index]
        band.get(f"/api/jobs/{job_id}", method="DELETE")  # cancel: the fuzzing must not queue up work
        return
    error = assert_json_refusal(reply)
    assert reply.status in (400, 503), (reply.status, error)
    if reply.status == 400:
        assert error.get("field"), error  # every request refusal names its field
    assert error["code"] == osc_code(band, body), (raw, error)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)),
       content_type=st.sampled_from(["application/json", "application/json; charset=latin-1", "text/plain",
                                     "", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"]))
def test_fuzzed_generate_bodies_are_json_refusals(band: HttpBand, body: bytes, content_type: str) -> None:
    reply = post_generate(band, body, content_type)
    if reply.status == 202:
        band.get(f"/api/jobs/{reply.json()['id']}", method="DELETE")  # type: ignore[index]
        return
    error = assert_json_refusal(reply)
    if content_type.split(";")[0] != "application/json":
        assert reply.status == 415 and error["code"] == "unsupported_media_type"
    else:
        assert reply.status == 400 and error["code"] == "bad_value" and error["field"], error


_segment = st.text(max_size=30).map(lambda text: urllib.parse.quote(text, safe=""))
_query = st.lists(st.tuples(st.sampled_from(["state", "limit", "offset", "job", "HOST_INFO", "TYPE", "x"]),
                            st.text(max_size=12)), max_size=3).map(urllib.parse.urlencode)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(route=st.sampled_from(["/api/jobs/{a}", "/api/jobs", "/files/{a}/{b}", "/files/{a}/../{b}", "/{a}",
                              "/band/{a}", "/api/jobs/{a}/play", "/api/{a}", "/metrics", "/health"]),
       a=_segment, b=_segment, query=_query,
       method=st.sampled_from(["GET", "HEAD", "DELETE", "POST", "PUT", "OPTIONS"]))
def test_fuzzed_routes_never_500(band: HttpBand, route: str, a: str, b: str, query: str, method: str) -> None:
    path = route.format(a=a, b=b) + (f"?{query}" if query else "")
    reply = fetch(band.base + path, method=method, data=b"" if method in ("POST", "PUT") else None)
    assert reply.status != 500, (path, reply.body[:300])
    if reply.status >= 400 and method != "HEAD":
        assert_json_refusal(reply)


# -- bodies and clients ----------------------------------------------------------------------------------------------

def raw_exchange(base: str, data: bytes, read_timeout_s: float = 15.0) -> bytes:
    """Send raw bytes on a new connection, read the answer until the server closes or the timeout."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=read_timeout_s) as sock:
        sock.sendall(data)
        out = b""
        try:
            while b"\r\n\r\n" not in out or not _complete(out):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                out += chunk
        except socket.timeout:
            pass
        return out


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def test_a_body_announced_too_large_is_refused_before_it_is_sent(band: HttpBand) -> None:
    t0 = time.monotonic()
    answer = raw_exchange(band.base, b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                     b"Content-Length: 10000000000\r\n\r\n{")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "too_large"
    assert time.monotonic() - t0 < 5


def test_a_chunked_body_too_large_is_refused(band: HttpBand) -> None:
    chunk = b"x" * 8192
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(MAX_BODY_BYTES // len(chunk) + 2))
    answer = raw_exchange(band.base, b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                     b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_body_that_never_arrives_times_out(band: HttpBand) -> None:
    from ai_band.http.server import BODY_TIMEOUT_S

    t0 = time.monotonic()
    answer = raw_exchange(band.base, b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                     b"Content-Length: 100\r\n\r\n{\"chords\":", read_timeout_s=BODY_TIMEOUT_S + 10)
    took = time.monotonic() - t0
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "timeout"
    assert BODY_TIMEOUT_S - 0.5 <= took < BODY_TIMEOUT_S + 5


def test_slow_headers_are_cut_after_the_idle_timeout(tmp_path: Path) -> None:
    """Slowloris: a client trickling header bytes is disconnected ``idle_timeout_s`` after connecting."""
    sources = Sources(name="t", status=lambda: {}, styles=lambda: [], osc_port=lambda: 1, specs=SPECS)
    server = HttpServer("127.0.0.1", 0, sources, idle_timeout_s=1.0)

    async def run() -> tuple[float, bytes]:
        port = await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            t0 = time.monotonic()
            writer.write(b"GET /health HTTP/1.1\r\n")
            got = b""
            async with asyncio.timeout(10):
                for i in range(100):  # one header byte each 0.1 s: never a whole request
                    try:
                        writer.write(b"X"[:1])
                        await writer.drain()
                    except ConnectionError:
                        break
                    try:
                        got = await asyncio.wait_for(reader.read(100), 0.1)
                        if not got:
                            break
                    except asyncio.TimeoutError:
                        continue
            writer.close()
            return time.monotonic() - t0, got
        finally:
            await server.stop()

    took, got = asyncio.run(run())
    assert 0.9 <= took < 3.0 and not got.startswith(b"HTTP/1.1 200"), (took, got)


def test_a_symlink_in_the_job_folder_leading_out_is_refused_over_http(band: HttpBand, tmp_path: Path) -> None:
    body = {"chords": "C G", "style": "rock", "bars": 1, "parts": "bass", "seed": 1}
    job_id = post_generate(band, json.dumps(body).encode()).json()["id"]  # type: ignore[index]
    deadline = time.monotonic() + 60
    while band.get(f"/api/jobs/{job_id}").json()["state"] != "done":  # type: ignore[index]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    bass = band.daemon.output_dir / job_id / "bass.mid"
    bass.unlink()
    os.symlink(secret, bass)
    reply = band.get(f"/files/{job_id}/bass.mid")
    assert reply.status == 403 and assert_json_refusal(reply)["code"] == "forbidden"
    assert b"root:" not in reply.body
    time.sleep(1.1)  # the job's cached file list expires
    listed = {f["name"]: f for f in band.get(f"/api/jobs/{job_id}").json()["files"]}  # type: ignore[index]
    assert listed["bass.mid"]["url"] is None and listed["bass.mid"]["sha256"] is None
    assert listed["full.mid"]["url"]


def test_many_event_streams_are_bounded_and_the_band_answers(band: HttpBand) -> None:
    attempts = 300

    async def run() -> tuple[int, int, list[int]]:
        accepted, refused, statuses = [], 0, []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

            async def connect() -> Any:
                try:
                    return await session.ws_connect(f"{band.base}/api/events")
                except aiohttp.WSServerHandshakeError as exc:
                    statuses.append(exc.status)
                    return None

            results = await asyncio.gather(*(connect() for _ in range(attempts)))
            accepted = [ws for ws in results if ws is not None]
            refused = attempts - len(accepted)
            # the band still answers over OSC and HTTP while they are open
            pong = await asyncio.to_thread(lambda: OscClient(("127.0.0.1", band.daemon.port)).request(
                "/band/ping", 7, reply_address="/band/pong", timeout=5))
            assert pong == [7]
            async with session.get(f"{band.base}/health") as health:
                assert health.status == 200
            for ws in accepted:
                await ws.close()
        return len(accepted), refused, statuses

    opened, refused, statuses = asyncio.run(run())
    assert opened == MAX_STREAMS and refused == attempts - MAX_STREAMS
    assert set(statuses) == {503}
    samples = {(s.name, tuple(s.labels.items())): s.value
               for family in text_string_to_metric_families(band.get("/metrics").body.decode())
               for s in family.samples}
    assert samples[("ai_band_http_event_streams_events_total", (("event", "refused"),))] >= refused


@pytest.mark.parametrize("body", [
    b'{"seed": ' + b"9" * 5000 + b"}",  # past Python's int conversion limit
    b'{"chords": ' + b"[" * 20000 + b"]" * 20000 + b"}",  # past the recursion limit
    b'{"bpm": NaN}', b'{"bpm": Infinity}', b'{"bpm": 1e999}',
    b'\xef\xbb\xbf{"bpm": 120}',  # a byte-order mark
    b'{"bpm": 120}{"bpm": 130}', b'"just a string"', b"null", b"",
])
def test_nasty_json_is_refused_as_over_osc(band: HttpBand, body: bytes) -> None:
    reply = post_generate(band, body)
    if reply.status == 202:
        band.get(f"/api/jobs/{reply.json()['id']}", method="DELETE")  # type: ignore[index]
        pytest.fail(f"accepted {body[:40]!r}")
    error = assert_json_refusal(reply)
    assert reply.status == 400 and error["field"], error
    if body.lstrip().startswith(b"{"):  # /band/generate takes a JSON string only when it looks like an object
        assert error["code"] == osc_code(band, body.decode("utf-8", "replace")), error
