"""``GET /api/events``: job events over a WebSocket and SSE.

The real daemon (own process) streams a rendered job's events; an in-process
:class:`HttpServer` with plain callables covers the bound, the slow reader
and the access rules, driving the job watcher directly.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from ai_band.host import OscClient
from ai_band.http.events import QUEUE_MAX_EVENTS, WS_CLOSE_GOING_AWAY, WS_CLOSE_SLOW, EventHub, eta_s
from ai_band.http.server import HttpServer, Sources
from ai_band.osc.api import SPECS
from httpband import HttpBand, fetch, http_band  # noqa: F401 - the fixture

FINAL = ("done", "failed", "cancelled", "interrupted")


async def _collect_ws(base: str, body: dict, query: str = "", timeout_s: float = 90.0) -> list[dict]:
    """Open the WebSocket, POST the job, collect that job's messages until it is final."""
    out: list[dict] = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{base}/api/events{query}") as ws:
            async with session.post(f"{base}/api/generate", json=body) as response:
                assert response.status == 202, await response.text()
                job_id = (await response.json())["id"]
            async with asyncio.timeout(timeout_s):
                async for msg in ws:
                    assert msg.type == aiohttp.WSMsgType.TEXT, msg
                    event = json.loads(msg.data)
                    if event["job_id"] == job_id:
                        out.append(event)
                        if event["type"] == "job" and event["state"] in FINAL:
                            return out
    raise AssertionError(f"the stream ended before the job was final: {out}")


def test_websocket_streams_a_rendered_job(http_band: HttpBand) -> None:
    body = {"id": "ev-ws", "chords": "C Am F G", "style": "rock", "bars": 4, "parts": "drums,bass",
            "seed": 5, "render": "mid,wav"}
    events = asyncio.run(_collect_ws(http_band.base, body))
    jobs = [e for e in events if e["type"] == "job"]
    states = [e["state"] for e in jobs]
    assert states[0] == "queued" and states[1] == "generating" and states[-1] == "done", states
    rendering = [e["progress"] for e in jobs if e["state"] == "rendering"]
    assert len(rendering) >= 2 and rendering == sorted(rendering), rendering  # progress steps, rising
    assert jobs[-1]["eta_s"] == 0.0 and jobs[-1]["error"] is None and jobs[-1]["request_id"] == "ev-ws"
    job_id = jobs[-1]["job_id"]
    assert jobs[-1]["url"] == f"{http_band.base}/api/jobs/{job_id}"
    files = {e["part"]: e for e in events if e["type"] == "file"}
    assert {"drums", "bass", "full", "job", "mix"} <= set(files)
    mix = files["mix"]
    assert mix["name"] == "mix.wav" and mix["url"] == f"{http_band.base}/files/{job_id}/mix.wav"
    on_disk = (http_band.daemon.output_dir / job_id / "mix.wav").read_bytes()
    download = fetch(mix["url"])
    assert download.status == 200 and download.body == on_disk and mix["size"] == len(on_disk)
    # every file message comes before the done message
    assert max(i for i, e in enumerate(events) if e["type"] == "file") < len(events) - 1


def test_sse_stream_filtered_to_one_job(http_band: HttpBand) -> None:
    async def run() -> tuple[str, list[tuple[str, dict]]]:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{http_band.base}/api/generate", json={
                    "chords": "C G", "style": "rock", "bars": 1, "parts": "bass", "seed": 1}) as response:
                job_id = (await response.json())["id"]
            other = {"chords": "C G", "style": "rock", "bars": 1, "parts": "drums", "seed": 2}
            got: list[tuple[str, dict]] = []
            async with session.get(f"{http_band.base}/api/events?job={job_id}",
                                   headers={"Accept": "text/event-stream"}) as stream:
                assert stream.status == 200 and stream.content_type == "text/event-stream"
                await session.post(f"{http_band.base}/api/generate", json=other)
                kind = ""
                async with asyncio.timeout(60):
                    async for raw in stream.content:
                        line = raw.decode().rstrip("\n")
                        if line.startswith("event: "):
                            kind = line[7:]
                        elif line.startswith("data: "):
                            got.append((kind, json.loads(line[6:])))
                            if kind == "job" and got[-1][1]["state"] in FINAL:
                                return job_id, got
            raise AssertionError(got)

    job_id, got = asyncio.run(run())
    assert {event["job_id"] for _, event in got} == {job_id}  # the other job is filtered out
    assert all(kind == event["type"] for kind, event in got)
    assert got[-1][1]["state"] == "done" and {e["part"] for k, e in got if k == "file"} >= {"bass", "full"}


def test_osc_file_and_job_carry_the_urls(http_band: HttpBand) -> None:
    with OscClient(("127.0.0.1", http_band.daemon.port)) as osc:
        osc.send("/band/generate", "id", "ev-osc", "chords", "C G", "style", "rock", "bars", 1, "parts", "bass",
                 "seed", 4)
        file_args, job_args = [], []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            address, args = osc.receive(timeout=30)
            if address == "/band/file":
                file_args.append(args)
            elif address == "/band/job" and args[3] == "ev-osc":
                job_args.append(args)
                if args[1] in FINAL:
                    break
    job_id = job_args[-1][0]
    assert job_args[-1][1] == "done"
    assert all(args[4] == f"{http_band.base}/api/jobs/{job_id}" for args in job_args)
    for _job_id, part, path, url in file_args:
        assert url == f"{http_band.base}/files/{job_id}/{Path(path).name}"
        reply = fetch(url)
        assert reply.status == 200 and reply.body == Path(path).read_bytes(), part
    view = fetch(job_args[-1][4]).json()
    assert view["eta_s"] == 0.0
    for entry in view["files"]:  # type: ignore[index]
        data = (http_band.daemon.output_dir / job_id / entry["name"]).read_bytes()
        assert entry["size"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()


def test_plain_get_is_a_json_refusal(http_band: HttpBand) -> None:
    reply = http_band.get("/api/events")
    assert reply.status == 400 and reply.json()["error"]["code"] == "bad_request"  # type: ignore[index]
    reply = http_band.get("/api/events?job=", headers={"Accept": "text/event-stream"})
    error = reply.json()["error"]  # type: ignore[index]
    assert reply.status == 400 and error["code"] == "bad_value" and error["field"] == "job"


# -- in-process server: bound, slow reader, access -----------------------------------------------------------------

class Watched:
    """The ``watch_jobs`` source: remembers the watcher the server subscribes."""

    def __init__(self) -> None:
        self.watchers: list[Any] = []

    def __call__(self, watcher: Any) -> Any:
        self.watchers.append(watcher)
        return lambda: self.watchers.remove(watcher)

    def emit(self, job: Any, new_files: list | None = None) -> None:
        for watcher in list(self.watchers):
            watcher(job, new_files or [])


def fake_job(job_id: str = "j1", state: str = "generating", progress: float = 0.2) -> SimpleNamespace:
    return SimpleNamespace(job_id=job_id, state=state, progress=progress, request=SimpleNamespace(id="r"),
                           error=None, sizes={}, created_s=time.time(), files=[])


def server_with(watched: Watched, tmp_path: Path, max_streams: int = 2, token: str = "") -> HttpServer:
    def get_job(job_id: str) -> Any:
        return fake_job(job_id)

    sources = Sources(name="t", status=lambda: {"name": "t"}, styles=lambda: [], osc_port=lambda: 9999,
                      specs=SPECS, get_job=get_job, output_dir=tmp_path, watch_jobs=watched)
    return HttpServer("127.0.0.1", 0, sources, token=token, max_streams=max_streams)


def test_streams_beyond_the_bound_are_refused_then_admitted_again(tmp_path: Path) -> None:
    watched = Watched()
    server = server_with(watched, tmp_path, max_streams=2)

    async def run() -> None:
        port = await server.start()
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as session:
                first = await session.ws_connect(f"{base}/api/events")
                second = await session.get(f"{base}/api/events", headers={"Accept": "text/event-stream"})
                assert second.status == 200
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await session.ws_connect(f"{base}/api/events")
                assert refused.value.status == 503
                async with session.get(f"{base}/api/events", headers={"Accept": "text/event-stream"}) as third:
                    assert third.status == 503 and (await third.json())["error"]["code"] == "busy"
                assert server.events.counters["refused"] == 2 and server.events.open_streams == 2
                watched.emit(fake_job("j7", "rendering", 0.6))
                msg = json.loads((await first.receive(timeout=5)).data)
                assert msg["type"] == "job" and msg["job_id"] == "j7" and msg["state"] == "rendering"
                assert msg["url"] == f"{base}/api/jobs/j7"
                await first.close()
                second.close()
                for _ in range(100):
                    if server.events.open_streams == 0:
                        break
                    await asyncio.sleep(0.01)
                assert server.events.open_streams == 0
                again = await session.ws_connect(f"{base}/api/events")
                await server.stop()  # the server stops: the stream is closed "going away"
                closing = await again.receive(timeout=5)
                assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == WS_CLOSE_GOING_AWAY
        finally:
            await server.stop()
        assert watched.watchers == []  # unsubscribed on stop

    asyncio.run(run())


def test_slow_reader_is_dropped_and_counted(tmp_path: Path) -> None:
    watched = Watched()
    server = server_with(watched, tmp_path)

    async def run() -> None:
        port = await server.start()
        try:
            async with aiohttp.ClientSession() as session:
                slow = await session.ws_connect(f"http://127.0.0.1:{port}/api/events")
                fine = await session.ws_connect(f"http://127.0.0.1:{port}/api/events?job=other")
                for i in range(QUEUE_MAX_EVENTS + 5):  # in one loop turn: the pump cannot send any of them
                    watched.emit(fake_job("j1", "rendering", 0.5 + i * 1e-4))
                assert server.events.counters["dropped_slow"] == 1
                got = []
                async with asyncio.timeout(5):
                    while (msg := await slow.receive()).type == aiohttp.WSMsgType.TEXT:
                        got.append(msg)
                assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == WS_CLOSE_SLOW, msg
                assert not fine.closed and server.events.open_streams == 1  # filtered: it queued nothing
                await fine.close()
        finally:
            await server.stop()

    asyncio.run(run())


def test_events_follow_the_token_rule(tmp_path: Path) -> None:
    server = server_with(Watched(), tmp_path, token="s3cret-token")

    async def run() -> None:
        port = await server.start()
        try:
            async with aiohttp.ClientSession() as session:
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await session.ws_connect(f"http://127.0.0.1:{port}/api/events")
                assert refused.value.status == 401
                ws = await session.ws_connect(f"http://127.0.0.1:{port}/api/events",
                                              headers={"Authorization": "Bearer s3cret-token"})
                await ws.close()
        finally:
            await server.stop()

    asyncio.run(run())


def test_eta_from_progress_and_elapsed() -> None:
    assert eta_s("done", 1.0, None, 100.0) == 0.0
    assert eta_s("queued", 0.0, (90.0, 0.0), 100.0) is None
    assert eta_s("failed", 0.4, (90.0, 0.1), 100.0) is None
    assert eta_s("rendering", 0.1, (90.0, 0.1), 100.0) is None  # no progress since: no rate
    # 0.1 -> 0.6 in 10 s: 0.05 per s, 0.4 to go -> 8 s
    assert eta_s("rendering", 0.6, (90.0, 0.1), 100.0) == 8.0
    hub = EventHub(1, lambda j, p: "", lambda j: "")
    job = fake_job("j", "rendering", 0.5)
    job.created_s = time.time() - 10.0  # never seen starting: counted from creation at progress 0
    assert hub.eta(job) == pytest.approx(10.0, abs=0.3)
