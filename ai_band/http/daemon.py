"""Wiring the HTTP server into :class:`ai_band.service.BandDaemon`, read-only.

:func:`build_http` makes the :class:`~ai_band.http.server.Sources` from the
running daemon (each member reads the daemon's attributes when called, so a
component stopped later is seen as gone, never as a stale object) and the
health probes; :func:`serve_http` starts the server in the background and
advertises ``_oscjson._tcp`` once it listens.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ai_band.errors import BandError, JobError
from ai_band.http import access
from ai_band.http.server import HttpServer, Sources

if TYPE_CHECKING:
    from ai_band.discovery import Advertiser
    from ai_band.service import BandDaemon

log = logging.getLogger(__name__)


def playback_probe(daemon: "BandDaemon") -> tuple[bool, str]:
    """The scheduler thread runs.

    Reads ``Scheduler.alive`` if the scheduler has one, else its thread
    (``Scheduler._thread``, started by ``Scheduler.start``).
    """
    scheduler = daemon.scheduler
    if scheduler is None:
        return False, "no scheduler (stopped or not started)"
    alive = getattr(scheduler, "alive", None)
    if alive is None:
        thread = getattr(scheduler, "_thread", None)
        alive = thread is not None and thread.is_alive()
    return (True, "scheduler thread running") if alive else (False, "scheduler thread is not running")


def midi_probe(daemon: "BandDaemon") -> tuple[bool, str]:
    """Every MIDI output is open and, on JACK, the server has not dropped the client."""
    ports = daemon.ports
    if ports is None:
        return False, "no MIDI ports (stopped or not started)"
    closed = [part for part, output in ports.items() if output.closed]
    if closed:
        return False, "closed: " + ", ".join(closed)
    gone = ports.stats().get("server_gone")
    if gone:
        return False, f"JACK server dropped the client: {gone}"
    return True, f"{len(ports)} port(s) open"


def build_http(daemon: "BandDaemon") -> HttpServer:
    """The HTTP server for a daemon whose API, ports and scheduler have started (not yet listening).

    Host: ``[http] host``, else ``[osc] host``; the allow-list and token are
    ``[osc] allow`` and ``[osc] token`` when the config has them.
    """
    from ai_band.osc.api import SPECS
    from ai_band.service import style_names

    cfg = daemon.config
    api = daemon.api
    assert api is not None and daemon.ports is not None

    def get_job(job_id: str) -> Any:
        if daemon.jobs is None:
            raise JobError("the job store is closed")
        return daemon.jobs.get(job_id)

    def submit(raw: dict) -> Any:
        """``/band/generate``'s path: parse_request, the daemon's cheap check, queue (no OSC reply address)."""
        from ai_band.request import parse_request

        request = parse_request(raw)
        api.validate(request)
        if daemon.jobs is None:
            raise JobError("the job store is closed")
        return daemon.jobs.submit(request, reply_to=None)

    def jobs_manager() -> Any:
        if daemon.jobs is None:
            raise JobError("the job store is closed")
        return daemon.jobs

    async def delete(job_id: str) -> None:
        await jobs_manager().delete(job_id)

    def jobs_active() -> int:
        return daemon.jobs.active_count() if daemon.jobs is not None else 0

    sources = Sources(
        name=cfg.daemon.name,
        status=api.status,
        styles=style_names,
        osc_port=lambda: api.osc_port,
        specs=SPECS,
        parts=tuple(daemon.ports.names()),
        probes={"playback": lambda: playback_probe(daemon), "midi_output": lambda: midi_probe(daemon)},
        jobs_active=jobs_active,
        get_job=get_job,
        output_dir=cfg.output_path,
        submit=submit,
        list_jobs=lambda: list(jobs_manager().jobs.values()),
        cancel=lambda job_id: jobs_manager().cancel(job_id),
        delete=delete,
        play=api.play_job,
        watch_jobs=lambda watcher: _watch(api.job_watchers, watcher),
    )
    allow, token = access.rules_from_config(cfg)
    server = HttpServer(cfg.http.bind_host(cfg.osc.host), cfg.http.port, sources, allow, token,
                        max_streams=cfg.http.max_websockets, max_downloads=cfg.http.max_downloads)
    # /band/file and /band/job carry the URLs ("" until the server listens and after it stops).
    api.file_url, api.job_url = server.file_url, server.job_url
    return server


def _watch(watchers: list, watcher: Any) -> Any:
    """Add ``watcher`` to ``watchers``; return the call that removes it (idempotent)."""
    watchers.append(watcher)

    def unwatch() -> None:
        if watcher in watchers:
            watchers.remove(watcher)

    return unwatch


async def serve_http(server: HttpServer, advertiser: "Advertiser | None") -> None:
    """Start ``server`` (background task of the daemon) and advertise it; a failure is logged, never fatal.

    The daemon's OSC side keeps serving when the HTTP port cannot be bound;
    the log says why (``HTTP: cannot listen on TCP ...``).
    """
    try:
        port = await server.start()
    except BandError as exc:
        log.error("HTTP: %s; the daemon runs without HTTP", exc)
        return
    log.info("HTTP listening on http://%s:%d", server.host, port)
    if advertiser is not None:
        await advertiser.add_oscquery(port)
