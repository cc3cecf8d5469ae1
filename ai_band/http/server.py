"""The HTTP server: aiohttp in the daemon's own event loop.

Routes (docs/http-api.md):

* ``GET /health``: 200 when every probe passes, 503 naming those that fail.
* ``GET /metrics``: Prometheus text (:mod:`ai_band.http.metrics`).
* ``GET /api/status``: :meth:`ai_band.osc.api.BandApi.status`, as ``/band/status`` sends it.
* ``GET /api/styles``: ``{"styles": [...]}``.
* ``GET /api/jobs``: the jobs, newest first, ``?state=``, ``?limit=``, ``?offset=``.
* ``GET /api/jobs/{job_id}``: one job with its files' URLs, sizes and SHA-256.
* ``DELETE /api/jobs/{job_id}``: cancel an unfinished job (202), or delete a finished one and its files.
* ``POST /api/jobs/{job_id}/play``: arm a done job, as ``/band/play``; 202.
* ``POST /api/generate``: a JSON object of ``/band/generate`` keys; 202 with the job.
* ``GET /`` and ``GET /band/...``: the OSCQuery tree (:mod:`ai_band.http.oscquery`),
  ``?HOST_INFO`` and ``?ATTRIBUTE`` queries.
* ``GET /files/{job_id}/{name}``: a job's file (:mod:`ai_band.http.files`).
* ``GET /api/events``: the job events as JSON over a WebSocket, or SSE with
  ``Accept: text/event-stream`` (:mod:`ai_band.http.events`); ``?job=`` for one job.

Every refusal is JSON ``{"error": {"code", "message"}}`` (404, 405 and 400
included, through :func:`_json_errors`); only a request the HTTP parser
cannot read at all gets aiohttp's plain-text 400.  Handlers never block the
loop: the style list (which may import the generator) and file hashing run in
threads, file bodies go out with sendfile.

The server reads the daemon through :class:`Sources`, a bundle of read-only
callables, so it knows nothing of the scheduler, the job store or the OSC
endpoint.  aiohttp is imported by :meth:`HttpServer.start` (in a thread: it
takes ~0.4 s), so nothing loads it unless ``[http] enabled``.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import socket
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ai_band.errors import BandError, HttpError, JobError, JobStateError, MidiUnavailableError, RequestError
from ai_band.http import access, oscquery
from ai_band.osc.protocol import Arg
from ai_band.request import load_json

log = logging.getLogger(__name__)

#: A health probe: returns (ok, detail), e.g. ``(False, "thread ai-band-scheduler is not running")``.
Probe = Callable[[], tuple[bool, str]]

#: Largest request body accepted (no route takes a body yet), bytes.
MAX_BODY_BYTES = 64 * 1024

#: Seconds a request body may take to arrive (``POST /api/generate``); then 408 ``timeout``.
BODY_TIMEOUT_S = 5.0

#: Seconds a connection may stay without a whole request: from its opening
#: (a client trickling its headers, "slowloris", is cut then) and between
#: requests on a keep-alive connection.  aiohttp's own default is an hour.
IDLE_TIMEOUT_S = 15.0

#: Seconds :meth:`HttpServer.stop` waits for requests in flight (downloads) before closing them.
SHUTDOWN_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Sources:
    """What the HTTP server reads from the daemon; every member is read-only.

    Attributes:
        name: instance name (``[daemon] name``), HOST_INFO ``NAME``.
        status: returns the ``/band/status`` dict (:meth:`BandApi.status`); called on the loop.
        styles: returns the style names; called in a thread (it may import the generator).
        osc_port: returns the bound OSC UDP port.
        specs: OSC address -> argument table (:data:`ai_band.osc.api.SPECS`).
        parts: the parts that have MIDI ports (``/band/mute`` VALS).
        probes: name -> :data:`Probe` for ``/health``; the event loop's own
            probe is added by the server (if it answers, the loop runs).
        jobs_active: returns the number of unfinished jobs, or None.
        get_job: job id -> object with ``files`` [(part, path)], raising
            :class:`~ai_band.errors.JobError` when unknown; None disables ``/files``.
        submit: raw request fields (a JSON object) -> the queued job, through
            the same validation as ``/band/generate``; raises
            :class:`~ai_band.errors.RequestError`; None disables ``POST /api/generate``.
        list_jobs: returns every job (objects as ``get_job`` gives); None disables ``GET /api/jobs``.
        cancel: job id -> the job, cancelled (:meth:`JobManager.cancel`); raises JobError.
        delete: async, job id -> None: a finished job's files and row go
            (:meth:`JobManager.delete`); raises JobError / JobStateError.
        play: job id -> the job, armed (:meth:`BandApi.play_job`); raises
            JobError, JobStateError, MidiUnavailableError.
        output_dir: the jobs' parent folder (``[daemon] output_dir``); files
            outside ``output_dir/<job_id>/`` are refused.
        watch_jobs: subscribes ``watcher(job, new_files)`` to the job events
            (:attr:`BandApi.job_watchers`) and returns the call that
            unsubscribes it; None disables ``GET /api/events``.
    """

    name: str
    status: Callable[[], dict]
    styles: Callable[[], list[str]]
    osc_port: Callable[[], int]
    specs: Mapping[str, Sequence[Arg]]
    parts: Sequence[str] = ()
    probes: Mapping[str, Probe] = field(default_factory=dict)
    jobs_active: Callable[[], int] | None = None
    get_job: Callable[[str], Any] | None = None
    output_dir: Path | None = None
    submit: Callable[[dict], Any] | None = None
    list_jobs: Callable[[], Sequence[Any]] | None = None
    cancel: Callable[[str], Any] | None = None
    delete: Callable[[str], Any] | None = None
    play: Callable[[str], Any] | None = None
    watch_jobs: Callable[[Callable[[Any, list], None]], Callable[[], None]] | None = None


def route_kind(path: str) -> str:
    """The access class of a request path: ``health``, ``metrics``, ``api``, ``files`` or ``oscquery``."""
    if path == "/health":
        return "health"
    if path == "/metrics":
        return "metrics"
    if path == "/api" or path.startswith("/api/"):
        return "api"
    if path.startswith("/files/"):
        return "files"
    return "oscquery"


def _json_response(web: Any, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Any:
    return web.Response(text=json.dumps(data, separators=(",", ":")), status=status,
                        content_type="application/json", headers=headers)


def error_body(code: str, message: str, field: str | None = None) -> dict:
    """The JSON body of every refusal: ``{"error": {"code", "message"[, "field"]}}``."""
    error = {"code": code, "message": message}
    if field:
        error["field"] = field
    return {"error": error}


#: HTTP status -> error code for refusals aiohttp raises itself (routing, body size).
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 408: "timeout", 413: "too_large", 415: "unsupported_media_type",
              416: "range_not_satisfiable", 503: "busy"}

#: Default ``[http] max_websockets``: event streams (WebSocket and SSE) open at once.
MAX_EVENT_STREAMS = 64
#: Default ``[http] max_downloads``: file bodies sent at once (the others wait their turn).
MAX_DOWNLOADS = 4

#: Seconds between looks at an idle SSE client's socket: a client gone holds its stream this long at most.
SSE_POLL_S = 1.0

#: Seconds the ``GET /api/jobs/{id}`` answer of a finished job is served from memory.
VIEW_TTL_S = 1.0
#: Finished jobs' answers kept (by job id, scheme and Host); the oldest is dropped beyond this.
VIEW_CACHE_SIZE = 1024

#: Seconds a closing WebSocket waits for the peer's close frame before the connection is cut.
WS_CLOSE_TIMEOUT_S = 1.0

#: ``/band/error`` codes answered with another status than 400 by ``POST /api/generate``.
REQUEST_STATUS = {"busy": 503}

#: Job states ``GET /api/jobs?state=`` accepts (:data:`ai_band.jobs.manager.STATES`, copied so the
#: server imports nothing of the job manager; tests/http/test_http_jobs.py checks they agree).
JOB_STATES = ("queued", "generating", "rendering", "done", "failed", "cancelled", "interrupted")
#: The final ones (:data:`ai_band.jobs.manager.FINAL_STATES`): ``DELETE`` deletes these, cancels the others.
FINAL_JOB_STATES = JOB_STATES[3:]

#: ``GET /api/jobs`` paging: default and largest ``limit``.
JOBS_PAGE_DEFAULT = 50
JOBS_PAGE_MAX = 200


class HttpServer:
    """One aiohttp application served on one TCP address.

    Args:
        host: address to bind (``[http] host``, or the ``[osc] host``).
        port: TCP port; 0 takes a free one (:attr:`port` tells which once started).
        sources: the daemon's read-only views.
        allow: allowed client networks (``[osc] allow``); empty = all.
        token: bearer token (``[osc] token``); empty = none.
        max_streams: ``[http] max_websockets``: event streams open at once.
        max_downloads: ``[http] max_downloads``: file bodies sent at once.
        idle_timeout_s: :data:`IDLE_TIMEOUT_S`.

    Attributes:
        port: the bound port once :meth:`start` returned, else None.
        events: the :class:`~ai_band.http.events.EventHub` of ``/api/events``
            once started (None when ``sources.watch_jobs`` is None).
    """

    def __init__(self, host: str, port: int, sources: Sources,
                 allow: Sequence[access.IpNetwork] = (), token: str = "",
                 max_streams: int = MAX_EVENT_STREAMS, idle_timeout_s: float = IDLE_TIMEOUT_S,
                 max_downloads: int = MAX_DOWNLOADS) -> None:
        self.host = host
        self.max_downloads = max_downloads
        self.idle_timeout_s = idle_timeout_s
        self.max_streams = max_streams
        self.events: Any = None
        self._unwatch: Callable[[], None] | None = None
        self.requested_port = port
        self.sources = sources
        self.allow = tuple(allow)
        self.token = token
        self.port: int | None = None
        self._runner: Any = None
        self._tree = oscquery.build_tree(sources.specs, sources.parts)
        self._registry: Any = None
        self._files: Any = None
        self._views: dict[tuple[str, str, str], tuple[Any, tuple[str, int], float, bytes]] = {}
        self._view_refresh: dict[tuple[str, str, str], asyncio.Future] = {}  # refreshes under way, by key

    # -- lifecycle -------------------------------------------------------------
    async def start(self) -> int:
        """Import aiohttp (in a thread), bind and serve; returns the bound port.

        Raises:
            HttpError: the address cannot be bound (in use, not local, no permission).
        """
        await asyncio.to_thread(_import_stack)
        from aiohttp import web

        from ai_band.http.files import FileServer
        from ai_band.http.metrics import make_registry

        if self.sources.get_job is not None and self.sources.output_dir is not None:
            self._files = FileServer(self.sources.get_job, self.sources.output_dir, self.max_downloads)
        from ai_band.http.events import EventHub

        self.events = EventHub(self.max_streams, self.file_url, self.job_url)
        self._registry = make_registry(self.sources.status, self.sources.jobs_active, self.events.counters,
                                       lambda: self.events.open_streams, self.sources.list_jobs)

        @web.middleware
        async def guard(request: web.Request, handler: Callable) -> web.StreamResponse:
            # one middleware, not two: each costs a layer of calls on every request
            return await self._json_errors(request, partial(self._access, handler=handler))

        app = web.Application(middlewares=[guard], client_max_size=MAX_BODY_BYTES)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/api/status", self._api_status)
        app.router.add_get("/api/styles", self._api_styles)
        app.router.add_get("/api/jobs", self._api_jobs)
        app.router.add_get("/api/jobs/{job_id}", self._api_job)
        app.router.add_delete("/api/jobs/{job_id}", self._api_job_delete)
        app.router.add_post("/api/jobs/{job_id}/play", self._api_job_play)
        app.router.add_post("/api/generate", self._api_generate)
        app.router.add_get("/api/events", self._api_events)
        app.router.add_get("/files/{job_id}/{name}", self._file)  # HEAD too (aiohttp's default)
        app.router.add_get("/{path:.*}", self._oscquery)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S,
                               keepalive_timeout=self.idle_timeout_s)
        await runner.setup()
        self._runner = runner  # from here on stop() cleans up, also after a cancelled start
        try:
            site = web.TCPSite(runner, self.host, self.requested_port, reuse_address=True)
            await site.start()
        except OSError as exc:
            await self.stop()
            raise HttpError(f"cannot listen on TCP {self.host}:{self.requested_port}: "
                            f"{exc.strerror or exc}") from exc
        self.port = runner.addresses[0][1]
        if self.sources.watch_jobs is not None and self._files is not None:
            self._unwatch = self.sources.watch_jobs(self.events.on_job)
        return self.port

    async def stop(self) -> None:
        """End the event streams, stop listening, give requests in flight :data:`SHUTDOWN_TIMEOUT_S`, close.

        Idempotent, never raises.
        """
        unwatch, self._unwatch = self._unwatch, None
        if unwatch is not None:
            unwatch()
        self.port = None
        if self.events is not None:
            self.events.close_all()
        runner, self._runner = self._runner, None
        if runner is None:
            return
        try:
            await runner.cleanup()
        except Exception as exc:  # noqa: BLE001 - the daemon must finish stopping
            log.warning("HTTP: stopping the server: %s", exc)

    # -- URLs ------------------------------------------------------------------
    def base_url(self) -> str:
        """``http://<host>:<port>`` of the listening server, or "" when it does not listen.

        The host is the bound address; a wildcard (``0.0.0.0``, ``::``) is
        replaced by this machine's host name, an IPv6 address is bracketed.
        """
        if self.port is None:
            return ""
        host = self.host
        if host in ("", "0.0.0.0", "::"):
            host = socket.gethostname()
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def file_url(self, job_id: str, path: str) -> str:
        """The download URL of a job's file (``/files/{job_id}/{name}``), or "" when HTTP does not listen."""
        base = self.base_url()
        return f"{base}/files/{job_id}/{Path(path).name}" if base else ""

    def job_url(self, job_id: str) -> str:
        """The URL of ``GET /api/jobs/{job_id}``, or "" when HTTP does not listen."""
        base = self.base_url()
        return f"{base}/api/jobs/{job_id}" if base else ""

    # -- middlewares -----------------------------------------------------------
    @property
    def _web(self) -> Any:
        """``aiohttp.web``, imported by :meth:`start` before any handler runs."""
        from aiohttp import web

        return web

    async def _json_errors(self, request: Any, handler: Callable) -> Any:
        """Every refusal as JSON: aiohttp's HTTP errors, BandErrors, and anything unexpected (500, logged)."""
        web = self._web
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = HTTP_CODES.get(exc.status, f"http_{exc.status}")
            message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
            headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "www-authenticate",
                                                                              "content-range")}
            return _json_response(web, error_body(code, message), exc.status, headers)
        except BandError as exc:
            if isinstance(exc, HttpError):
                status = exc.status
            elif isinstance(exc, JobStateError):
                status = 409
            elif isinstance(exc, JobError):
                status = 404
            elif isinstance(exc, MidiUnavailableError):
                status = 503
            else:
                status = REQUEST_STATUS.get(exc.code, 400)
            return _json_response(web, error_body(exc.code, str(exc), getattr(exc, "field", None)), status)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - answer and keep serving
            log.exception("HTTP %s %s failed", request.method, request.path)
            return _json_response(web, error_body("internal", "internal error; see the daemon's log"), 500)

    async def _access(self, request: Any, handler: Callable) -> Any:
        """The allow-list and the token (:func:`ai_band.http.access.check`)."""
        refusal = access.check(request.remote, request.headers.get("Authorization"), route_kind(request.path),
                               self.allow, self.token)
        if refusal is not None:
            headers = {"WWW-Authenticate": 'Bearer realm="ai-band"'} if refusal.status == 401 else None
            return _json_response(self._web, error_body(refusal.code, refusal.message), refusal.status, headers)
        return await handler(request)

    # -- handlers --------------------------------------------------------------
    async def _health(self, request: Any) -> Any:
        t0 = time.perf_counter()  # not loop.time(): uvloop's counts whole milliseconds
        await asyncio.sleep(0)
        lag_ms = (time.perf_counter() - t0) * 1000.0
        checks: dict[str, dict[str, Any]] = {
            "event_loop": {"ok": True, "detail": f"answering; one turn took {lag_ms:.2f} ms"},
        }
        for name, probe in self.sources.probes.items():
            try:
                ok, detail = probe()
            except Exception as exc:  # noqa: BLE001 - a broken probe is a failing check
                ok, detail = False, f"probe failed: {type(exc).__name__}: {exc}"
            checks[name] = {"ok": bool(ok), "detail": str(detail)}
        failing = [name for name, c in checks.items() if not c["ok"]]
        body: dict[str, Any] = {"status": "ok" if not failing else "failing", "checks": checks}
        if failing:
            body["failing"] = failing
            body["message"] = "not alive: " + ", ".join(f"{n} ({checks[n]['detail']})" for n in failing)
        return _json_response(self._web, body, 503 if failing else 200)

    async def _metrics(self, request: Any) -> Any:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        body = generate_latest(self._registry)
        return self._web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _api_status(self, request: Any) -> Any:
        return _json_response(self._web, self.sources.status())

    async def _api_styles(self, request: Any) -> Any:
        styles = await asyncio.to_thread(self.sources.styles)
        return _json_response(self._web, {"styles": list(styles)})

    async def _api_generate(self, request: Any) -> Any:
        """Queue a generation job from a JSON object of ``/band/generate`` keys; 202 with the job.

        The object goes through :func:`ai_band.request.parse_request` and the
        daemon's cheap check, as ``/band/generate``'s JSON form does, so the
        refusals carry the same ``code`` and ``field`` (``busy`` is 503).
        """
        if self.sources.submit is None or self._files is None:
            raise HttpError("generation is not available (no job store)", 404, "not_found")
        if request.content_type != "application/json":
            raise HttpError(f"the body must be application/json, not {request.content_type!r}", 415,
                            "unsupported_media_type")
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise HttpError(f"the body may be {MAX_BODY_BYTES} bytes at most, not {request.content_length}", 413,
                            "too_large")  # before reading it: a client announcing gigabytes is not waited for
        try:
            body = await asyncio.wait_for(request.read(), BODY_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise HttpError(f"the body did not arrive within {BODY_TIMEOUT_S:g} s", 408, "timeout") from None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestError("json", f"not UTF-8 (byte {exc.start})", "bad_value") from None
        raw = load_json("json", text)  # /band/generate's parser: also huge integers and deep nesting
        if not isinstance(raw, dict):
            raise RequestError("json", "must be a JSON object", "bad_value")
        try:
            job = self.sources.submit(raw)
        except JobError as exc:
            raise HttpError(f"cannot queue the job: {exc}", 503, "unavailable") from None
        view = await self._job_view(request, job)
        return _json_response(self._web, view, 202, {"Location": f"/api/jobs/{job.job_id}"})

    async def _api_job(self, request: Any) -> Any:
        """One job: state, progress, error, the resolved request, files with URL, size and SHA-256."""
        if self._files is None:
            raise HttpError("jobs are not available (no job store)", 404, "not_found")
        job_id = request.match_info["job_id"]
        try:
            job = self.sources.get_job(job_id)  # type: ignore[misc]
        except JobError as exc:
            raise HttpError(str(exc), 404, "unknown_job") from None
        if job.state not in FINAL_JOB_STATES:
            return _json_response(self._web, await self._job_view(request, job))
        # A finished job no longer changes: its answer is kept VIEW_TTL_S (polled thousands of times a second,
        # the request's to_dict and the JSON encoding would be most of the cost).  One refresh at a time per
        # answer: the first poll after the expiry runs it (a thread hop to stat the files) and waits; the polls
        # that come in meanwhile get the answer it replaces instead of each starting their own (hundreds a
        # second did, with 200 clients polling).
        key = (job.job_id, request.scheme, request.host)
        now_s = time.monotonic()
        cached = self._views.get(key)
        same = cached is not None and cached[0] is job and cached[1] == (job.state, len(job.files))
        if same and now_s - cached[2] < VIEW_TTL_S:
            body = cached[3]
        else:
            refresh = self._view_refresh.get(key)
            if refresh is None:  # this poll refreshes the answer and waits for it
                refresh = asyncio.ensure_future(self._refresh_view(key, request, job))
                self._view_refresh[key] = refresh
                refresh.add_done_callback(partial(self._view_refreshed, key))
                body = await asyncio.shield(refresh)
            else:  # another poll is refreshing it: the answer it replaces, if it is this job's
                body = cached[3] if same else await asyncio.shield(refresh)
        return self._web.Response(body=body, content_type="application/json")

    async def _refresh_view(self, key: tuple[str, str, str], request: Any, job: Any) -> bytes:
        """A finished job's ``GET /api/jobs/{id}`` answer, encoded and kept in the view cache."""
        body = json.dumps(await self._job_view(request, job), separators=(",", ":")).encode()
        if len(self._views) >= VIEW_CACHE_SIZE and key not in self._views:
            self._views.pop(next(iter(self._views)))
        self._views[key] = (job, (job.state, len(job.files)), time.monotonic(), body)
        return body

    def _view_refreshed(self, key: tuple[str, str, str], task: asyncio.Future) -> None:
        """Forget a finished refresh; its error, if any, was the awaiting request's (retrieved here, never logged)."""
        self._view_refresh.pop(key, None)
        if not task.cancelled():
            task.exception()

    def _job_routes(self, member: str) -> Callable:
        """The :class:`Sources` member a job route needs; 404 ``not_found`` when the daemon has none."""
        fn = getattr(self.sources, member)
        if fn is None or self._files is None:
            raise HttpError("jobs are not available (no job store)", 404, "not_found")
        return fn

    async def _api_jobs(self, request: Any) -> Any:
        """The jobs, newest first: ``?state=`` (one of :data:`JOB_STATES`), ``?limit=`` 1..200, ``?offset=`` >= 0.

        Answer: ``{"jobs": [...], "total", "limit", "offset"}``; ``total`` counts
        the jobs that pass the filter; each job as ``GET /api/jobs/{id}`` gives it.
        """
        list_jobs = self._job_routes("list_jobs")
        query = request.query
        state = query.get("state")
        if state is not None and state not in JOB_STATES:
            raise RequestError("state", f"state must be one of {', '.join(JOB_STATES)}, not {state[:40]!r}",
                               "bad_value")
        limit = _int_param(query, "limit", JOBS_PAGE_DEFAULT, 1, JOBS_PAGE_MAX)
        offset = _int_param(query, "offset", 0, 0, None)
        jobs = [job for job in list_jobs() if state is None or job.state == state]
        jobs.sort(key=lambda job: job.created_s, reverse=True)
        views = [await self._job_view(request, job) for job in jobs[offset:offset + limit]]
        return _json_response(self._web, {"jobs": views, "total": len(jobs), "limit": limit, "offset": offset})

    async def _api_job_delete(self, request: Any) -> Any:
        """Cancel an unfinished job (202 with the job), or delete a finished one with its files (200).

        A playing or armed job is refused (409 ``job_playing``), an unknown one 404 ``unknown_job``.
        """
        cancel, delete = self._job_routes("cancel"), self._job_routes("delete")
        job_id = request.match_info["job_id"]
        job = self.sources.get_job(job_id)  # type: ignore[misc] # JobError: 404 unknown_job
        if job.state not in FINAL_JOB_STATES:
            try:
                job = cancel(job_id)
            except JobError:
                job = self.sources.get_job(job_id)  # type: ignore[misc] # finished meanwhile: delete it
            else:
                return _json_response(self._web, await self._job_view(request, job), 202)
        await delete(job_id)
        return _json_response(self._web, {"deleted": job_id})

    async def _api_job_play(self, request: Any) -> Any:
        """Arm a done job for the next bar line (``/band/play``'s path and codes); 202 with the job."""
        play = self._job_routes("play")
        job = play(request.match_info["job_id"])
        return _json_response(self._web, await self._job_view(request, job), 202)

    async def _job_view(self, request: Any, job: Any) -> dict:
        """The JSON view of a job (``GET /api/jobs/{job_id}``)."""
        files = await self._files.describe(job.job_id, f"{request.scheme}://{request.host}")
        error = getattr(job, "error", None)
        return {
            "id": job.job_id,
            "request_id": job.request.id,
            "state": job.state,
            "progress": job.progress,
            "error": {"code": error[0], "message": error[1]} if error else None,
            "elapsed_ms": getattr(job, "elapsed_ms", None),
            "eta_s": self.events.eta(job),
            "request": job.request.to_dict(),
            "files": files,
        }

    async def _api_events(self, request: Any) -> Any:
        """The job events: a WebSocket (``Upgrade: websocket``) or SSE (``Accept: text/event-stream``).

        Refused with 503 ``busy`` beyond ``[http] max_websockets`` open
        streams, 400 ``bad_request`` for a plain GET, 400 ``bad_value`` for a
        bad ``?job=``; a slow reader is closed (WebSocket code 1008).
        """
        web = self._web
        if self._unwatch is None:
            raise HttpError("job events are not available (no job store)", 404, "not_found")
        job_id = request.query.get("job")
        if job_id is not None and not 0 < len(job_id) <= 128:
            raise RequestError("job", "job must be a job id of 1..128 characters", "bad_value")
        from ai_band.http.events import HEARTBEAT_S

        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=4096)
        is_ws = ws.can_prepare(request).ok
        if not is_ws and "text/event-stream" not in request.headers.get("Accept", ""):
            raise HttpError("GET /api/events is a WebSocket (Upgrade: websocket) or Server-Sent Events "
                            "(Accept: text/event-stream)", 400, "bad_request")
        stream = self.events.open(job_id, str(request.remote))
        if stream is None:
            raise HttpError(f"{self.max_streams} event streams are open ([http] max_websockets); try later",
                            503, "busy")
        try:
            if is_ws:
                return await self._ws_stream(request, ws, stream)
            return await self._sse_stream(request, stream)
        finally:
            self.events.close(stream)

    async def _ws_stream(self, request: Any, ws: Any, stream: Any) -> Any:
        """Send ``stream``'s messages as text frames until the client or the server ends it."""
        from ai_band.http.events import WS_CLOSE_GOING_AWAY, WS_CLOSE_SLOW

        await ws.prepare(request)

        async def pump() -> None:
            while True:
                _kind, text = await stream.queue.get()
                await ws.send_str(text)

        async def drain_client() -> None:  # answers pings and sees the close; client text is ignored
            async for _msg in ws:
                pass

        stream.pump = asyncio.create_task(pump())
        if stream.ended is not None:  # ended while preparing
            stream.pump.cancel()
        reader = asyncio.create_task(drain_client())
        try:
            await asyncio.wait({stream.pump, reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (stream.pump, reader):
                task.cancel()
            await asyncio.gather(stream.pump, reader, return_exceptions=True)
        if stream.ended == "slow":
            code, message = WS_CLOSE_SLOW, b"too slow: the event queue overflowed"
        else:
            code, message = WS_CLOSE_GOING_AWAY if stream.ended == "stop" else 1000, b""
        try:
            await asyncio.wait_for(ws.close(code=code, message=message), WS_CLOSE_TIMEOUT_S)
        except (asyncio.TimeoutError, ConnectionError):
            if request.transport is not None:
                request.transport.abort()  # a reader too slow to take the close frame
        return ws

    async def _sse_stream(self, request: Any, stream: Any) -> Any:
        """Send ``stream``'s messages as Server-Sent Events until the client or the server ends it."""
        from ai_band.http.events import HEARTBEAT_S

        response = self._web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                                     "Cache-Control": "no-cache"})
        await response.prepare(request)

        loop = asyncio.get_running_loop()

        async def pump() -> None:
            await response.write(b": ai-band job events\n\n")
            quiet_since = loop.time()
            while True:
                try:
                    kind, text = await asyncio.wait_for(stream.queue.get(), SSE_POLL_S)
                except asyncio.TimeoutError:
                    # aiohttp does not cancel a handler whose client left: look at the socket
                    if request.transport is None or request.transport.is_closing():
                        return
                    if loop.time() - quiet_since >= HEARTBEAT_S:
                        await response.write(b": keep-alive\n\n")
                        quiet_since = loop.time()
                    continue
                await response.write(f"event: {kind}\ndata: {text}\n\n".encode())
                quiet_since = loop.time()

        stream.pump = asyncio.create_task(pump())
        if stream.ended is not None:
            stream.pump.cancel()
        try:
            await asyncio.gather(stream.pump, return_exceptions=True)
        finally:
            stream.pump.cancel()
        if stream.ended == "slow" and request.transport is not None:
            request.transport.abort()
        return response

    async def _file(self, request: Any) -> Any:
        if self._files is None:
            raise HttpError("file downloads are not available (no job store)", 404, "not_found")
        return await self._files.respond(request, request.match_info["job_id"], request.match_info["name"])

    async def _oscquery(self, request: Any) -> Any:
        """OSCQuery: the node at the path (with its sub-tree), one attribute, or HOST_INFO."""
        web = self._web
        attribute = request.query_string.split("&", 1)[0].split("=", 1)[0].strip()
        if attribute == "HOST_INFO":
            return _json_response(web, oscquery.host_info(self.sources.name, self.sources.osc_port()))
        node = oscquery.find_node(self._tree, request.path)
        if node is None:
            return _json_response(web, error_body("not_found", f"no OSC node or route at {request.path[:200]!r}"),
                                  404)
        if not attribute:
            return _json_response(web, node)
        if attribute in node:
            return _json_response(web, {attribute: node[attribute]})
        if attribute in ("FULL_PATH", "CONTENTS", "TYPE", "ACCESS", "RANGE", "DESCRIPTION"):
            return _json_response(web, {})  # supported, but this node has none (a container's TYPE)
        if attribute in oscquery.KNOWN_ATTRIBUTES:
            return web.Response(status=204)  # an OSCQuery attribute this server does not give
        return _json_response(web, error_body("bad_request", f"unknown OSCQuery attribute {attribute[:80]!r}"), 400)


def _int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int | None) -> int:
    """An integer query parameter in ``low..high`` (``high`` None: no upper bound).

    Raises:
        RequestError: not an integer (``bad_value``) or out of range (``out_of_range``), naming ``name``.
    """
    text = query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise RequestError(name, f"{name} must be an integer, not {text[:40]!r}", "bad_value") from None
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise RequestError(name, f"{name} must be {bound}, not {value}", "out_of_range")
    return value


def _import_stack() -> None:
    """Import the HTTP stack (~0.4 s, ~25 MiB; docs/http-api.md): run in a thread by :meth:`HttpServer.start`."""
    importlib.import_module("aiohttp.web")
    importlib.import_module("prometheus_client")
