"""``GET /api/events``: the job events the OSC clients get, as JSON, over a WebSocket or SSE.

:class:`EventHub` is subscribed to :attr:`ai_band.osc.api.BandApi.job_watchers`
and called on the event loop right after the OSC replies of each job event
(:meth:`~ai_band.osc.api.BandApi.on_job_event`): ``queued``, ``generating``,
``rendering`` (each progress step), ``done``, ``failed``, ``cancelled``,
``interrupted``.  Each event is encoded once and put on every open stream's
queue; a stream whose queue is full (:data:`QUEUE_MAX_EVENTS` events the
client has not read) is a slow reader: it is closed and counted
(``dropped_slow``), never allowed to grow the daemon's memory.  At most
``[http] max_websockets`` streams (WebSocket and SSE together) are open; one
more is refused with 503 ``busy`` before the upgrade.

Messages (one JSON object per WebSocket text frame, or per SSE ``data:`` line
with ``event: file`` / ``event: job``)::

    {"type": "file", "job_id": "...", "part": "mix", "name": "mix.wav", "size": 1234,
     "url": "http://127.0.0.1:9101/files/<job_id>/mix.wav"}
    {"type": "job", "job_id": "...", "request_id": "...", "state": "rendering", "progress": 0.72,
     "eta_s": 1.9, "error": null, "url": "http://127.0.0.1:9101/api/jobs/<job_id>"}

as ``/band/file`` and ``/band/job`` send them (a job's new files first, then
its state).  ``?job=<id>`` limits a stream to one job.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

#: Events a stream may hold unsent; one more and the stream is closed as a slow reader.
QUEUE_MAX_EVENTS = 256

#: Seconds between WebSocket pings (aiohttp's heartbeat) and SSE comment lines; a dead peer is found this fast.
HEARTBEAT_S = 20.0

#: WebSocket close code for a slow reader (RFC 6455 1008 "policy violation").
WS_CLOSE_SLOW = 1008
#: WebSocket close code when the daemon stops (RFC 6455 1001 "going away").
WS_CLOSE_GOING_AWAY = 1001

#: The final job states (:data:`ai_band.jobs.manager.FINAL_STATES`).
FINAL_STATES = frozenset({"done", "failed", "cancelled", "interrupted"})

def eta_s(state: str, progress: float, since: tuple[float, float] | None, now_s: float) -> float | None:
    """Seconds until a job is final, from its progress and the time it took so far.

    Args:
        state: the job's state.
        progress: 0..1 now.
        since: ``(unix time, progress)`` when the job left ``queued`` (first seen working), or None.
        now_s: Unix time now.

    Returns:
        0 for a done job; None for a queued, failed, cancelled or interrupted
        one, or when the progress has not moved since ``since`` (no rate yet);
        else ``elapsed * (1 - progress) / (progress - progress_then)``, rounded to 0.1 s.
    """
    if state == "done":
        return 0.0
    if state in FINAL_STATES or state == "queued" or since is None:
        return None
    t0, p0 = since
    gained = progress - p0
    if gained <= 1e-6:
        return None
    return round(max(0.0, now_s - t0) * max(0.0, 1.0 - progress) / gained, 1)


class EventHub:
    """Fans job events out to the open event streams.

    Args:
        max_streams: ``[http] max_websockets``: open streams (WebSocket + SSE) at most.
        file_url: ``(job_id, path) -> URL`` of a job file ("" when unknown).
        job_url: ``job_id -> URL`` of ``GET /api/jobs/{id}`` ("" when unknown).
        queue_max: :data:`QUEUE_MAX_EVENTS`.

    Attributes:
        counters: ``opened``, ``refused`` (beyond the bound), ``dropped_slow``,
            ``events`` (job events seen), ``sent`` (messages queued to streams).
        since: job id -> ``(unix time, progress)`` when first seen working; for :func:`eta_s`
            (kept for unfinished jobs only).
    """

    def __init__(self, max_streams: int, file_url: Callable[[str, str], str], job_url: Callable[[str], str],
                 queue_max: int = QUEUE_MAX_EVENTS) -> None:
        self.max_streams = max_streams
        self.file_url = file_url
        self.job_url = job_url
        self.queue_max = queue_max
        self.counters: Counter[str] = Counter()
        self.since: dict[str, tuple[float, float]] = {}
        self._streams: dict[Stream, str | None] = {}

    @property
    def open_streams(self) -> int:
        """Streams open now."""
        return len(self._streams)

    # -- producer side (the job listener) ---------------------------------------
    def on_job(self, job: Any, new_files: list[tuple[str, str]]) -> None:
        """Job watcher (:attr:`BandApi.job_watchers`): one ``file`` message per new file, then the ``job`` message.

        Runs on the event loop; encodes each message once and never blocks.
        """
        now_s = time.time()
        self.counters["events"] += 1
        if job.state in FINAL_STATES:
            self.since.pop(job.job_id, None)
        elif job.state != "queued" and job.job_id not in self.since:
            self.since[job.job_id] = (now_s, float(job.progress))
        if not self._streams:
            return
        messages = [self.file_message(job, part, path) for part, path in new_files]
        messages.append(self.job_message(job, now_s))
        encoded = [(m["type"], json.dumps(m, separators=(",", ":"))) for m in messages]
        for stream, only in list(self._streams.items()):
            if only is not None and only != job.job_id:
                continue
            for item in encoded:
                if stream.queue.qsize() >= self.queue_max:
                    self._drop_slow(stream)
                    break
                stream.queue.put_nowait(item)
                self.counters["sent"] += 1

    def file_message(self, job: Any, part: str, path: str) -> dict:
        """The ``file`` message: ``/band/file``'s job id, part and path as a name, its size and URL."""
        return {"type": "file", "job_id": job.job_id, "part": part, "name": Path(path).name,
                "size": job.sizes.get(path), "url": self.file_url(job.job_id, path) or None}

    def job_message(self, job: Any, now_s: float | None = None) -> dict:
        """The ``job`` message: ``/band/job``'s fields, the error of a failed job, an ETA and the job's URL."""
        now_s = time.time() if now_s is None else now_s
        error = getattr(job, "error", None)
        return {"type": "job", "job_id": job.job_id, "request_id": job.request.id, "state": job.state,
                "progress": float(job.progress), "eta_s": self.eta(job, now_s),
                "error": {"code": error[0], "message": error[1]} if error and job.state != "done" else None,
                "url": self.job_url(job.job_id) or None}

    def eta(self, job: Any, now_s: float | None = None) -> float | None:
        """:func:`eta_s` of a job; a job the hub never saw start counts from its creation, at progress 0."""
        since = self.since.get(job.job_id)
        if since is None and job.state not in FINAL_STATES and job.state != "queued":
            since = (job.created_s, 0.0)
        return eta_s(job.state, float(job.progress), since, time.time() if now_s is None else now_s)

    def _drop_slow(self, stream: "Stream") -> None:
        """Close a stream whose reader fell :attr:`queue_max` events behind (its pump is cancelled)."""
        self._streams.pop(stream, None)
        self.counters["dropped_slow"] += 1
        log.warning("HTTP: an event stream from %s fell %d events behind; closed", stream.peer, self.queue_max)
        stream.end("slow")

    # -- consumer side (one per stream) -----------------------------------------
    def open(self, job_id: str | None, peer: str = "") -> "Stream | None":
        """A new stream (``job_id``: only that job's events), or None at the bound (counted ``refused``)."""
        if len(self._streams) >= self.max_streams:
            self.counters["refused"] += 1
            return None
        stream = Stream(job_id, peer)
        self._streams[stream] = job_id
        self.counters["opened"] += 1
        return stream

    def close(self, stream: "Stream") -> None:
        """The stream has ended (idempotent)."""
        self._streams.pop(stream, None)

    def close_all(self) -> None:
        """End every stream (the server stops): each gets ``ended = "stop"``."""
        for stream in list(self._streams):
            self._streams.pop(stream, None)
            stream.end("stop")


class Stream:
    """One open event stream: a queue of ``(type, json text)`` and why it ended.

    Attributes:
        job_id: only this job's events, or None for all.
        peer: the client's address, for the log.
        queue: messages not yet sent.
        ended: None while open; ``"slow"`` (dropped as a slow reader) or ``"stop"`` (the server stops).
        pump: the task sending the queue to the client; cancelled when the stream is ended.
    """

    def __init__(self, job_id: str | None, peer: str = "") -> None:
        self.job_id = job_id
        self.peer = peer
        self.queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.ended: str | None = None
        self.pump: asyncio.Task | None = None

    def end(self, why: str) -> None:
        """End the stream: empty its queue, note why, cancel its pump."""
        if self.ended is None:
            self.ended = why
        while not self.queue.empty():
            self.queue.get_nowait()
        if self.pump is not None:
            self.pump.cancel()
