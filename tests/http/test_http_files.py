"""``GET /files/{job_id}/{name}``: a job generated over OSC by the real daemon, downloaded over HTTP."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from ai_band.errors import HttpError, JobError
from ai_band.host import OscClient
from ai_band.http.files import FileServer
from httpband import HttpBand, fetch, http_band  # noqa: F401 - the fixture


@pytest.fixture(scope="module")
def job(http_band: HttpBand) -> tuple[str, dict[str, str]]:
    """One generated job (MIDI files and job.json): (job id, {part: path})."""
    with OscClient(("127.0.0.1", http_band.daemon.port)) as osc:
        osc.send("/band/generate", "id", "http-files", "chords", "C Am F G", "style", "rock", "bars", 4,
                 "parts", "drums,bass", "seed", 3)
        return osc.wait_job("http-files", timeout=60)


def test_download_is_the_file_on_disk_byte_for_byte(http_band: HttpBand, job) -> None:
    job_id, files = job
    for part, expected_type in (("bass", "audio/midi"), ("full", "audio/midi"), ("job", "application/json")):
        path = Path(files[part])
        data = path.read_bytes()
        reply = http_band.get(f"/files/{job_id}/{path.name}")
        assert reply.status == 200, reply.body
        assert reply.body == data
        assert reply.headers["content-type"] == expected_type
        assert int(reply.headers["content-length"]) == len(data)
        assert reply.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
        assert reply.headers["accept-ranges"] == "bytes"


def test_range_and_conditional_requests(http_band: HttpBand, job) -> None:
    job_id, files = job
    path = Path(files["full"])
    data = path.read_bytes()
    url = f"/files/{job_id}/{path.name}"
    etag = f'"{hashlib.sha256(data).hexdigest()}"'

    part = http_band.get(url, headers={"Range": "bytes=4-13"})
    assert part.status == 206
    assert part.body == data[4:14]
    assert part.headers["content-range"] == f"bytes 4-13/{len(data)}"

    tail = http_band.get(url, headers={"Range": "bytes=-5"})
    assert tail.status == 206 and tail.body == data[-5:]

    beyond = http_band.get(url, headers={"Range": f"bytes={len(data) + 10}-"})
    assert beyond.status == 416

    assert http_band.get(url, headers={"If-None-Match": etag}).status == 304
    assert http_band.get(url, headers={"If-None-Match": '"other"'}).status == 200
    assert http_band.get(url, headers={"If-Match": '"other"'}).status == 412
    assert http_band.get(url, headers={"If-Match": etag}).body == data
    # If-Range with a stale ETag: the whole file, not the range.
    stale = http_band.get(url, headers={"Range": "bytes=0-3", "If-Range": '"stale"'})
    assert stale.status == 200 and stale.body == data
    fresh = http_band.get(url, headers={"Range": "bytes=0-3", "If-Range": etag})
    assert fresh.status == 206 and fresh.body == data[:4]

    head = http_band.get(url, method="HEAD")
    assert head.status == 200 and head.body == b"" and int(head.headers["content-length"]) == len(data)


@pytest.mark.parametrize("path", [
    "/files/{job}/..%2F..%2F..%2Fetc%2Fpasswd",
    "/files/{job}/%2e%2e",
    "/files/..%2F{job}/full.mid",
    "/files/{job}/%2Fetc%2Fpasswd",
    "/files/{job}/nothing.mid",
    "/files/no-such-job/full.mid",
    "/files/{job}/../../../etc/passwd",
])
def test_paths_outside_the_job_are_refused_as_json(http_band: HttpBand, job, path: str) -> None:
    job_id, _ = job
    reply = fetch(http_band.base + path.format(job=job_id))
    assert reply.status in (403, 404), reply.body
    error = reply.json()["error"]
    assert error["code"] in ("not_found", "unknown_job", "forbidden")
    assert b"root:" not in reply.body


def test_a_symlink_leading_out_of_the_job_folder_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not for download")
    folder = tmp_path / "out" / "job-1"
    folder.mkdir(parents=True)
    (folder / "bass.mid").write_bytes(b"MThd")
    os.symlink(secret, folder / "stolen.mid")
    jobs = {"job-1": SimpleNamespace(files=[("bass", str(folder / "bass.mid")),
                                            ("evil", str(folder / "stolen.mid"))])}

    def get_job(job_id: str):
        if job_id not in jobs:
            raise JobError(f"unknown job {job_id!r}")
        return jobs[job_id]

    server = FileServer(get_job, tmp_path / "out")
    assert server.locate("job-1", "bass.mid") == (folder / "bass.mid").resolve()
    with pytest.raises(HttpError) as refused:
        server.locate("job-1", "stolen.mid")
    assert refused.value.status == 403
    with pytest.raises(HttpError) as unknown:
        server.locate("job-2", "bass.mid")
    assert unknown.value.status == 404


def test_job_status_lists_files_with_urls_sizes_and_sha256(http_band: HttpBand, job) -> None:
    job_id, files = job
    reply = http_band.get(f"/api/jobs/{job_id}")
    assert reply.status == 200
    body = reply.json()
    assert body["id"] == job_id and body["request_id"] == "http-files"
    assert body["state"] == "done" and body["progress"] == 1.0 and body["error"] is None
    assert body["request"]["seed"] == 3 and body["request"]["parts"] == ["drums", "bass"]
    listed = {f["part"]: f for f in body["files"]}
    assert set(listed) == set(files)
    for part, path in files.items():
        data = Path(path).read_bytes()
        entry = listed[part]
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        download = fetch(entry["url"])
        assert download.body == data
        assert download.headers["etag"] == f'"{entry["sha256"]}"'
    missing = http_band.get("/api/jobs/no-such-job")
    assert missing.status == 404 and missing.json()["error"]["code"] == "unknown_job"


class _FilesApp:
    """A FileServer behind a real aiohttp server on 127.0.0.1 (its own event loop in a thread)."""

    def __init__(self, folder: Path, max_downloads: int) -> None:
        import asyncio
        import threading

        from aiohttp import web

        files = [("big", str(folder / "big.wav")), ("small", str(folder / "small.mid"))]
        job = SimpleNamespace(files=files)
        self.server = FileServer(lambda job_id: job, folder.parent, max_downloads)

        async def handle(request: web.Request) -> web.StreamResponse:
            return await self.server.respond(request, request.match_info["job"], request.match_info["name"])

        async def start() -> int:
            app = web.Application()
            app.router.add_get("/files/{job}/{name}", handle)
            self.runner = web.AppRunner(app)
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            return site._server.sockets[0].getsockname()[1]

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)

    def close(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def _stalled_download(port: int, path: str):
    """A raw socket that asks for ``path``, reads the status line and then stops reading (a slow client)."""
    import socket

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    first = sock.recv(64)
    assert first.startswith(b"HTTP/1.1 200"), first
    return sock


@pytest.mark.parametrize("max_downloads", [1, 2])
def test_downloads_beyond_max_downloads_wait_their_turn(tmp_path: Path, max_downloads: int) -> None:
    import time
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    folder = tmp_path / "out" / "job-1"
    folder.mkdir(parents=True)
    big = os.urandom(1 << 20) * 48  # 48 MiB: more than the socket buffers hold
    (folder / "big.wav").write_bytes(big)
    (folder / "small.mid").write_bytes(b"MThd" + b"\0" * 60)
    app = _FilesApp(folder, max_downloads)
    try:
        stalled = _stalled_download(app.port, "/files/job-1/big.wav")  # holds its turn: its body cannot go out
        with ThreadPoolExecutor(1) as pool:
            url = f"http://127.0.0.1:{app.port}/files/job-1/small.mid"
            small = pool.submit(lambda: urllib.request.urlopen(url, timeout=30).read())
            time.sleep(1.0)
            assert small.done() is (max_downloads > 1)  # one turn, taken: the small one waits
            received = 0
            while received < len(big):  # the slow client reads on: its turn ends, the small one goes
                chunk = stalled.recv(1 << 20)
                if not chunk:
                    break
                received += len(chunk)
            assert small.result(timeout=10) == b"MThd" + b"\0" * 60
        stalled.close()
    finally:
        app.close()
