"""The daemon's lifecycle: start components in order, stop them in reverse.

Order (uvicorn's ``startup(); main_loop(); shutdown()``; Mopidy stops in
reverse in ``finally``): output folder checked -> MIDI ports -> scheduler
thread -> generation workers -> OSC endpoint -> zeroconf -> transport
watchdog -> systemd READY=1 (so READY means: MIDI open and OSC listening).
What takes long runs in the background so that READY=1 is sent and OSC
answers within ~0.3 s of the process start (``bench/daemon_start.py``): the
workers' warm-up (their pool exists at once; jobs queue until a worker is
up), zeroconf's probing and announcing (~1.7 s; a failure is logged, never
fatal) and the generator's import (in a thread; the first request imports it
itself if it comes first).  :meth:`BandDaemon.stop` cancels what is still
running and still says goodbye over zeroconf once the service was announced.
The first SIGTERM/SIGINT asks for a graceful stop; a second one exits at
once (after releasing sounding notes).

Under systemd (``Type=notify``, :mod:`ai_band.system.notify`) each start step
says what it does in ``STATUS=``, a step that may wait (the forkserver's boot,
JACK) extends the start timeout (``EXTEND_TIMEOUT_USEC=``), and once ready
``STATUS=`` follows what is playing.  ``WATCHDOG=1`` comes from a task on the
event loop, and only while the playback thread's heartbeat
(:attr:`Scheduler.heartbeat_s`) is fresh: a stalled loop or a stalled playback
thread both stop the pings, and systemd restarts the daemon after
``WatchdogSec=``.
"""

from __future__ import annotations

import asyncio
import faulthandler
import importlib
import logging
import os
import signal
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path

from ai_band import __version__
from ai_band.system import heap
from ai_band.system.priority import SWITCH_INTERVAL_S, pin_threads, raise_priority, refuse_numpy_hugepages, split_cpus
from ai_band.config import Config
from ai_band.discovery import Advertiser
from ai_band.errors import BandError, UsageError
from ai_band.jobs.lifeline import start_forkserver
from ai_band.jobs.manager import JobManager, playing_jobs
from ai_band.system.notify import Notifier
from ai_band.osc.api import BandApi
from ai_band.osc.server import OscEndpoint
from ai_band.request import GenerationRequest
from ai_band.playback.ports import PortSet, open_ports
from ai_band.playback.scheduler import Scheduler
from ai_band.config.schema import parse_part_offsets
from ai_band.playback.ports import set_part_offsets
from ai_band.sync.manager import SyncManager
from ai_band.sync.osc import OscSource
from ai_band.sync.source import SyncContext

log = logging.getLogger(__name__)

#: Note-ons kept for ``[playback] jack_write_log`` (about 3 minutes of 8 busy parts).
JACK_WRITE_LOG_SIZE = 200_000


#: The playback thread wakes at least every 0.1 s; a heartbeat older than this
#: (s) is a stall, and the systemd watchdog pings stop until it beats again.
PLAYBACK_STALL_S = 1.0

#: Seconds between ``STATUS=`` refreshes when systemd asks for no watchdog.
STATUS_INTERVAL_S = 1.0

#: ``EXTEND_TIMEOUT_USEC=`` per start step that may wait (the forkserver's boot,
#: opening the MIDI ports on a JACK server), s; each takes ~0.1 s when all is well.
START_STEP_TIMEOUT_S = 10.0


def check_output_dir(path: Path) -> None:
    """Create the output folder if missing and check that files can be created in it.

    Done first at start-up: a folder the daemon cannot write ends ``ai-band
    run`` at once (exit 2, one line) instead of a daemon whose every job fails.

    Raises:
        UsageError: it cannot be created (e.g. on a read-only file system), is
            not a folder, or does not accept a new file.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        failed = Path(exc.filename) if exc.filename else path
        where = f" (at {failed})" if failed in path.parents else ""  # a parent folder could not be made
        raise UsageError(f"output dir {path}: {reason}{where}; set a writable folder with --output-dir "
                         "or [daemon] output_dir") from None


#: Imported in a thread once the daemon is ready (the generator takes ~0.2 s
#: to import), and by the first request that needs it if that comes first.
GENERATOR_MODULE = "ai_band.generate.pipeline"


def style_names() -> list[str]:
    """The generator's style names (imports the generator on first use)."""
    from ai_band.generate.pipeline import style_names as names

    return names()


def validate_request(request: GenerationRequest) -> None:
    """Cheap request check on the loop: style known and chord sheet parses (imports the generator on first use).

    Raises:
        RequestError: as :func:`ai_band.generate.pipeline.validate_request`.
    """
    from ai_band.generate.pipeline import validate_request as validate

    validate(request)


#: Seconds from SIGTERM to the end of the stop at most (the unit's TimeoutStopSec is above it);
#: past it the daemon dumps every thread's stack to its log and exits 1 (issue 15: stop within 5 s).
STOP_DEADLINE_S = 4.5


class BandDaemon:
    """The running daemon.

    Args:
        config: validated configuration.

    Use ``await daemon.start()`` / ``await daemon.stop()``, or
    ``await daemon.run()`` which also installs signal handlers and returns
    after a graceful stop.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.ports: PortSet | None = None
        self.scheduler: Scheduler | None = None
        self.jobs: JobManager | None = None
        self.api: BandApi | None = None
        self.sync: SyncManager | None = None
        self.endpoint: OscEndpoint | None = None
        self.advertiser: Advertiser | None = None
        self.http = None  # ai_band.http.server.HttpServer when [http] enabled
        self.osc_port: int | None = None
        self._watchdog: asyncio.Task | None = None
        # Started in the background once OSC listens: the workers' warm-up,
        # zeroconf's registration, the generator's import.
        self._background: list[asyncio.Task] = []
        self._stop_event: asyncio.Event | None = None
        self._signals = 0
        self._notifier: Notifier | None = None
        self._systemd: asyncio.Task | None = None
        self._workers_state = "starting"
        self._stopped = False  # stop() has run: a second call (after a failed start) is silent
        self._gc_log: heap.GcLog | None = None  # with [playback] jack_write_log: every collection

    async def start(self) -> None:
        """Start every component; on failure, stop what was started and re-raise.

        Raises:
            BandError: a component could not start (e.g. MidiPortError, OSError as BandError).
        """
        cfg = self.config
        if self._stop_event is None:
            self._stop_event = asyncio.Event()
        if self._notifier is None:
            self._notifier = Notifier()
        notify = self._notifier
        notify.status("starting: checking the output folder")
        check_output_dir(cfg.output_path)
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        notify.extend_timeout(START_STEP_TIMEOUT_S, "starting: booting the generation workers' forkserver")
        # The generation workers' forkserver (a fresh interpreter) boots while
        # JACK activates the ports.  Started before the priority and CPUs are
        # set below, it does not compete with the daemon at its priority on its
        # CPU, and the workers it forks start at nice 0 (WorkerContext demotes them).
        # It dies with the daemon, and so do the workers it forks (ai_band.jobs.lifeline).
        start_forkserver()
        if cfg.daemon.nice:
            # Before any thread is started: threads inherit the nice value of their creator.
            raise_priority(cfg.daemon.nice)
        # Also before any thread or worker starts: workers get their CPUs explicitly.
        daemon_cpus, worker_cpus = split_cpus(cfg.render.cpus)
        if cfg.daemon.avoid_worker_cpus and daemon_cpus != worker_cpus:
            pin_threads(daemon_cpus)
        refuse_numpy_hugepages()  # the daemon's own arrays; workers do it in their initializer
        try:
            notify.extend_timeout(START_STEP_TIMEOUT_S, f"starting: opening {len(cfg.midi.parts)} MIDI ports "
                                                        f"({cfg.midi.api})")
            self.ports = open_ports(cfg.midi.parts, cfg.midi.api, cfg.midi.client_name, cfg.playback.jack_rtprio,
                                    JACK_WRITE_LOG_SIZE if cfg.playback.jack_write_log else 0, cfg.midi.reconnect_s)
            if cfg.playback.jack_write_log:
                self._gc_log = heap.GcLog().install()
            self.scheduler = Scheduler(
                self.ports,
                offset_s=cfg.playback.offset_ms / 1000.0,
                late_drop_s=cfg.playback.late_drop_ms / 1000.0,
                spin_s=cfg.playback.spin_ms / 1000.0,
                lookahead_s=cfg.playback.lookahead_ms / 1000.0,
            )
            set_part_offsets(self.ports, parse_part_offsets(cfg.playback.part_offsets_ms))
            self.scheduler.start()
            self.sync = self._make_sync()
            notify.status(f"starting: sync source {cfg.sync.source}")
            self.sync.start(cfg.sync.source)
            self.api = BandApi(
                name=cfg.daemon.name,
                sync=self.sync,
                scheduler=self.scheduler,
                make_jobs=lambda listener: JobManager(
                    cfg.output_path,
                    workers=cfg.generation.workers,
                    max_queued=cfg.generation.max_queued,
                    listener=listener,
                    render=cfg.render,
                    worker_cpus=tuple(sorted(worker_cpus)),
                    limits=cfg.jobs,
                    db_path=cfg.jobs_db_path,
                    is_protected=lambda job_id: job_id in playing_jobs(self.scheduler.status()),
                ),
                port_names=self.ports.names(),
                style_names=style_names,
                validate=validate_request,
                osc=cfg.osc,
                preview_device=cfg.preview.device,
                preview_latency=cfg.preview.latency,
            )
            self.jobs = self.api.jobs
            loop = asyncio.get_running_loop()
            self._open_jobs()  # the stored jobs are listed and jobs can be queued before OSC listens
            notify.status(f"starting: opening OSC on udp {cfg.osc.host}:{cfg.osc.port}")
            try:
                _, endpoint = await loop.create_datagram_endpoint(
                    lambda: OscEndpoint(self.api.on_message, self.api.on_bad_packet, cfg.osc),
                    local_addr=(cfg.osc.host, cfg.osc.port),
                )
            except OSError as exc:
                raise BandError(f"cannot listen on UDP {cfg.osc.host}:{cfg.osc.port}: {exc.strerror}") from exc
            self.endpoint = endpoint
            self.api.attach(endpoint)
            self.osc_port = endpoint.port
            log.info("OSC listening on udp %s:%d", cfg.osc.host, self.osc_port)
            if cfg.zeroconf.enabled:
                # Probing and announcing take ~1.7 s (RFC 6762 sections 8.1 and 8.3):
                # in the background; a failure is logged, never fatal.
                self.advertiser = Advertiser(cfg.daemon.name, self.osc_port, cfg.zeroconf.interfaces, cfg.osc.host)
                self._background.append(loop.create_task(self.advertiser.start(), name="zeroconf"))
            else:
                log.info("zeroconf: disabled")
            if cfg.http.enabled:
                # aiohttp takes ~0.4 s to import: started in the background; a failure is logged, never fatal.
                from ai_band.http.daemon import build_http, serve_http

                self.http = build_http(self)
                self._background.append(loop.create_task(serve_http(self.http, self.advertiser), name="http"))
            self._watchdog = loop.create_task(self._transport_watchdog())
            # READY=1 only now: the MIDI ports are open and OSC answers.
            notify.ready(self._status_text(0.0))
            self._systemd = loop.create_task(self._systemd_watch(), name="systemd-watch")
            log.info("ai-band %s ready: ports %s", __version__, ", ".join(self.ports.names().values()))
            if self._workers_state == "starting":
                self._background.append(loop.create_task(self._start_workers(), name="generation-workers"))
            heap.settle()  # start-up objects live as long as the daemon (a full collection: ~20 ms)
            self._background.append(loop.create_task(self._import_generator(), name="generator-import"))
        except BaseException:
            await self.stop()
            raise

    def _open_jobs(self) -> None:
        """Open the job store and the worker pool; a failure is logged (jobs then fail one by one)."""
        self._workers_state = "starting"
        try:
            self.jobs.open()
        except Exception as exc:  # noqa: BLE001 - the daemon still plays and answers
            self._workers_state = "failed"
            log.error("generation workers did not start: %s", exc)

    async def _start_workers(self) -> None:
        """Start and warm up the generation workers (after READY=1); a failure is logged."""
        try:
            await self.jobs.warm_up()
            self._workers_state = "ready"
        except Exception as exc:  # noqa: BLE001 - the daemon still plays and answers
            self._workers_state = "failed"
            log.error("generation workers did not start: %s", exc)

    async def _import_generator(self) -> None:
        """Import the generator in a thread, so that the first request does not wait ~0.2 s on the loop."""
        try:
            await asyncio.get_running_loop().run_in_executor(None, importlib.import_module, GENERATOR_MODULE)
        except Exception as exc:  # noqa: BLE001 - the first request imports it again and reports
            log.error("cannot import the generator: %s", exc)
            return
        heap.settle()

    def _make_sync(self) -> SyncManager:
        """The sync manager with the OSC source and every source's options from ``[sync]`` and ``[transport]``."""
        cfg = self.config
        context = SyncContext(bpm=cfg.sync.bpm, ts_num=cfg.sync.ts_num, ts_den=cfg.sync.ts_den,
                              jack_client=self.ports.jack_client)
        osc_source = OscSource(context, window_s=cfg.transport.window_s,
                               relocate_threshold_s=cfg.transport.relocate_threshold_ms / 1000.0,
                               timeout_s=cfg.transport.timeout_ms / 1000.0)
        options = {
            "internal": {"autostart": cfg.sync.autostart},
            "midi-clock": {"timeout_s": cfg.sync.clock_timeout_ms / 1000.0, "midi_api": cfg.midi.api},
            "link": {"start_stop_sync": cfg.sync.link_start_stop_sync, "join_delay_s": cfg.sync.link_join_delay_s},
        }
        return SyncManager(context, self.scheduler.set_transport, osc_source, options,
                           clock_out=cfg.sync.clock_out)

    async def _transport_watchdog(self) -> None:
        """Every 0.1 s: the sources' timeouts (no ``/band/transport``, no clock: the band stops)."""
        while True:
            await asyncio.sleep(0.1)
            self.sync.poll(time.monotonic())

    def _status_text(self, stalled_s: float) -> str:
        """The ``STATUS=`` line once ready: where OSC listens, the ports, what plays, the workers.

        Starts ``listening on udp port N`` (``bench/daemon_start.py`` reads the port from it).
        """
        cfg = self.config
        text = (f"listening on udp port {self.osc_port} at {cfg.osc.host}, "
                f"{len(self.ports) if self.ports is not None else 0} MIDI ports ({cfg.midi.api})")
        playing = self.scheduler.status() if self.scheduler is not None else {}
        if playing.get("current_job"):
            text += f"; playing job {playing['current_job']}"
        else:
            text += "; nothing playing"
        if playing.get("pending_job"):
            text += f"; job {playing['pending_job']} armed"
        if self._workers_state != "ready":
            text += f"; generation workers {self._workers_state}"
        if stalled_s > 0.0:
            text += f"; playback thread stalled for {stalled_s:.1f} s: watchdog pings withheld"
        return text

    async def _systemd_watch(self) -> None:
        """``WATCHDOG=1`` every ``WATCHDOG_USEC/3`` while the playback thread beats; ``STATUS=`` as it changes.

        Running on the event loop, the task itself shows that the loop turns;
        the scheduler's heartbeat shows that the playback thread does.  Without
        a watchdog (no ``WATCHDOG_USEC``, or ``WATCHDOG_PID`` names another
        process) it only keeps ``STATUS=`` current, every :data:`STATUS_INTERVAL_S`;
        with one, ``STATUS=`` is refreshed with each ping.
        """
        notify = self._notifier
        interval_s = notify.watchdog_interval_s
        was_stalled = False
        while True:
            age_s = time.monotonic() - self.scheduler.heartbeat_s
            stalled = age_s > PLAYBACK_STALL_S
            if stalled and not was_stalled:
                log.error("playback thread stalled (no progress for %.1f s): systemd watchdog pings withheld", age_s)
            elif was_stalled and not stalled:
                log.warning("playback thread progresses again: systemd watchdog pings resumed")
            was_stalled = stalled
            if interval_s is not None and not stalled:
                notify.watchdog()
            notify.status(self._status_text(age_s if stalled else 0.0))
            await asyncio.sleep(interval_s or STATUS_INTERVAL_S)

    async def stop(self) -> None:
        """Stop components in reverse order; idempotent (a second call does nothing); never raises."""
        if self._stopped:
            return
        self._stopped = True
        if self._notifier is not None:
            self._notifier.stopping("stopping")
        tasks = [t for t in (self._systemd, self._watchdog, *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError):
                await task
        self._systemd = self._watchdog = None
        self._background = []
        if self.http is not None:
            await self.http.stop()
            self.http = None
        if self.advertiser is not None:
            await self.advertiser.stop()
            self.advertiser = None
        if self.endpoint is not None:
            self.endpoint.close()
            self.endpoint = None
        if self.api is not None:
            self.api.close_preview()
        if self.jobs is not None:
            try:
                await asyncio.wait_for(self.jobs.close(), timeout=3)
            except Exception as exc:  # noqa: BLE001
                log.warning("stopping generation workers: %s", exc)
            self.jobs = None
        if self.sync is not None:
            try:
                self.sync.stop()
            except Exception:  # noqa: BLE001 - never raises
                log.exception("stopping the sync source failed")
            self.sync = None
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        if self.ports is not None:
            self._write_jack_log()
            self.ports.close()
            self.ports = None
        if self._notifier is not None:
            self._notifier.close()
            self._notifier = None
        with suppress(RuntimeError, ValueError):
            faulthandler.cancel_dump_traceback_later()
        log.info("ai-band stopped")

    def _write_jack_log(self) -> None:
        """``[playback] jack_write_log``: the note-ons' frames as JSON, written atomically; never raises."""
        path = self.config.playback.jack_write_log
        if not path or self.ports is None:
            return
        import json

        from ai_band.render.atomic import write_atomic

        try:
            data = self.ports.write_log() or {"note_ons": [], "callbacks": []}
            if self._gc_log is not None:
                self._gc_log.uninstall()
                data["gc"] = self._gc_log.record()
            write_atomic(Path(path).expanduser(), json.dumps(data).encode("utf-8"))
            log.info("JACK write log: %d note-ons in %s", len(data["note_ons"]), path)
        except Exception as exc:  # noqa: BLE001 - diagnostics must not spoil the stop
            log.warning("cannot write the JACK write log %s: %s", path, exc)

    def request_stop(self, signame: str = "request") -> None:
        """Ask for a graceful stop (first call); a second call exits at once."""
        self._signals += 1
        if self._signals == 1:
            log.info("%s received: stopping (send again to force)", signame)
            # The stop must end within STOP_DEADLINE_S whatever hangs (a JACK call, a thread join):
            # past it every thread's stack goes to stderr (the log) and the process exits 1.
            with suppress(RuntimeError, ValueError, OSError):  # stderr closed or not a file
                faulthandler.dump_traceback_later(STOP_DEADLINE_S, exit=True)
            if self._stop_event is not None:
                self._stop_event.set()
        else:
            log.warning("%s received again: exiting now", signame)
            if self.ports is not None:
                self.ports.all_notes_off()
                time.sleep(0.05)  # let JACK write the note-offs out
            os._exit(1)

    async def run(self) -> None:
        """Start, serve until SIGTERM/SIGINT, stop."""
        loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        # Handlers first: a signal during start-up must still stop us gracefully.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        try:
            await self.start()
            await self._stop_event.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.stop()
