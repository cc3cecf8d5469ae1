"""OSC API v1: one handler per ``/band/...`` address (see docs/osc-api.md).

Every handler runs synchronously on the event loop and returns quickly:
generation goes to worker processes (:mod:`ai_band.jobs.manager`) and MIDI timing to
the scheduler thread (:mod:`ai_band.playback.scheduler`).  Any
:class:`~ai_band.errors.BandError` a handler raises becomes
``/band/error s:ref s:code s:message``; anything else is logged and answered
with code ``internal`` -- the daemon keeps serving either way.  A command that
changes state and succeeds is answered ``/band/ack s:address s:ref ...`` with
the same ``ref`` its error would carry (:meth:`BandApi.ack`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import time
from collections import Counter
from typing import Any, Callable

from ai_band import __version__
from ai_band.system import heap
from ai_band.errors import BandError, JobError, MidiUnavailableError, ProtocolError, RequestError
from ai_band.request import GenerationRequest, parse_request
from ai_band.jobs.manager import Job, JobManager, Listener
from ai_band.model import TS_DENOMINATORS
from ai_band.osc.logs import RateLimitedLog, limit_third_party_logs
from ai_band.osc.protocol import Arg, check_args, encode_message, to_juce_safe
from ai_band.osc.server import Address, OscEndpoint, PacketRefused
from ai_band.playback.scheduler import PlayableJob, Scheduler
from ai_band.transport import TransportModel, TransportState

log = logging.getLogger(__name__)

SPECS: dict[str, list[Arg]] = {
    "/band/hello": [Arg("client", "s", hi=128), Arg("reply_port", "i", 1, 65535)],
    "/band/bye": [Arg("client", "s", hi=128)],
    "/band/transport": [
        Arg("playing", "i", 0, 1),
        Arg("bpm", "f", 1.0, 999.0),
        Arg("ppq", "f", -1e7, 1e7),
        Arg("bar_start_ppq", "f", -1e7, 1e7),
        Arg("ts_num", "i", 1, 64),
        Arg("ts_den", "i", 1, 64),
    ],
    "/band/play": [Arg("job_id", "s", hi=128)],
    "/band/cancel": [Arg("job_id", "s", hi=128)],
    "/band/stop": [],
    "/band/mute": [Arg("part", "s", hi=64), Arg("muted", "i", 0, 1)],
    "/band/panic": [],
    "/band/styles": [],
    "/band/status": [],
    "/band/preview": [Arg("job_id", "s", hi=128)],
    "/band/preview/stop": [],
}

#: Seconds a preview needs before its first sample can sound (stream start-up):
#: a bar line closer than this is skipped for the next one.
PREVIEW_LEAD_S = 0.25


class BandApi:
    """Dispatches OSC messages to the daemon's components and sends the replies.

    Built complete in one step; replies leave once :meth:`attach` has given it
    the bound endpoint (the endpoint is created with this object's handlers,
    so it cannot exist before it).

    Args:
        name: instance name, sent in ``/band/welcome``.
        model: the host clock model, fed by ``/band/transport``.
        scheduler: the playback scheduler.
        make_jobs: builds the job manager from the listener it must call
            (:meth:`on_job_event`), e.g. ``lambda listener: JobManager(..., listener=listener)``;
            the result is :attr:`jobs`.
        port_names: part -> actual MIDI port name, for ``/band/status``.
        style_names: callable returning the available style names.
        validate: callable that checks a request cheaply (style, chords) and
            raises :class:`RequestError`; called before a job is queued.
        max_clients: registrations accepted by ``/band/hello``.
        preview_device: ``[preview] device``: PortAudio output for ``/band/preview`` ("" = default).
        preview_latency: ``[preview] latency``: PortAudio latency, ``"low"`` or ``"high"``.
    """

    def __init__(
        self,
        name: str,
        model: TransportModel,
        scheduler: Scheduler,
        make_jobs: Callable[[Listener], JobManager],
        port_names: dict[str, str],
        style_names: Callable[[], list[str]],
        validate: Callable[[GenerationRequest], None],
        max_clients: int = 32,
        preview_device: str = "",
        preview_latency: str = "high",
    ) -> None:
        self.name = name
        self.model = model
        self.scheduler = scheduler
        self.jobs = make_jobs(self.on_job_event)
        self.port_names = port_names
        self.style_names = style_names
        self.validate = validate
        self.max_clients = max_clients
        self.preview_device = preview_device
        self.preview_latency = preview_latency
        self.endpoint: OscEndpoint | None = None
        self.clients: dict[Address, str] = {}
        self.counters: Counter[str] = Counter()
        self.started_s = time.monotonic()
        self._log = RateLimitedLog()
        limit_third_party_logs()
        self._handlers: dict[str, Callable[[list[Any], Address, float], None]] = {
            "/band/hello": self._hello,
            "/band/bye": self._bye,
            "/band/ping": self._ping,
            "/band/transport": self._transport,
            "/band/generate": self._generate,
            "/band/play": self._play,
            "/band/cancel": self._cancel,
            "/band/stop": self._stop,
            "/band/mute": self._mute,
            "/band/panic": self._panic,
            "/band/styles": self._styles,
            "/band/status": self._status,
            "/band/preview": self._preview,
            "/band/preview/stop": self._preview_stop,
        }
        self._previewer = None
        self._preview_executor: concurrent.futures.ThreadPoolExecutor | None = None

    # -- sending ---------------------------------------------------------------
    def attach(self, endpoint: OscEndpoint) -> None:
        """Send replies through ``endpoint``, the bound OSC socket (once it listens)."""
        self.endpoint = endpoint

    @property
    def osc_port(self) -> int:
        """The UDP port the daemon listens on; 0 before :meth:`attach`."""
        return self.endpoint.port if self.endpoint is not None else 0

    def send(self, addr: Address, address: str, *args: Any) -> None:
        """Send one message to one address (ip, port)."""
        if self.endpoint is not None:
            self.endpoint.sendto(encode_message(address, args), addr)
            self.counters["replies"] += 1

    def reply(self, sender: Address | None, address: str, *args: Any) -> None:
        """Send to the requester and to every registered client (each once)."""
        targets = dict.fromkeys(([sender] if sender else []) + list(self.clients))
        dgram = encode_message(address, args)
        for target in targets:
            if self.endpoint is not None:
                self.endpoint.sendto(dgram, target)
                self.counters["replies"] += 1

    def error(self, sender: Address | None, ref: str, code: str, message: str) -> None:
        """Answer ``/band/error s:ref s:code s:message`` and count it."""
        self.counters["errors_sent"] += 1
        self.counters[f"error:{code}"] += 1
        self.reply(sender, "/band/error", ref, code, message[:1000])

    def ack(self, sender: Address, address: str, ref: str, *details: int | float | str) -> None:
        """Answer ``/band/ack s:address s:ref ...details`` for a command done, and count it.

        The mirror of :meth:`error`, to the same targets: ``ref`` is what an
        error of the same command would carry (request id, job id, part,
        client, else the address); ``details`` use only JUCE's types ``i f s``.
        """
        self.counters["acks_sent"] += 1
        self.reply(sender, "/band/ack", address, ref, *details)

    # -- receiving -------------------------------------------------------------
    def on_bad_packet(self, sender: Address, refused: PacketRefused) -> None:
        """A datagram refused whole before dispatch: count, log (rate-limited), answer.

        Counters: ``packets``, the code (``malformed``, ``bad_type_tag``,
        ``too_many_args``, ``busy``) and ``busy_messages``: the messages of
        bundles refused for want of room in the schedule (a bundle past
        ``max_bundle_messages`` is refused unparsed, its messages uncounted).
        """
        self.counters["packets"] += 1
        self.counters[refused.code] += 1
        if refused.code == "busy":
            self.counters["busy_messages"] += refused.messages
        self._log.warning(refused.code, "%s packet from %s:%d: %s", refused.code, sender[0], sender[1], refused)
        self.error(sender, refused.ref, refused.code, str(refused))

    def on_message(self, address: str, params: list[Any], sender: Address, arrival_s: float) -> None:
        """Dispatch one OSC message; never raises."""
        self.counters["messages"] += 1
        handler = self._handlers.get(address)
        if handler is None:
            self.counters["unknown_address"] += 1
            self._log.warning("unknown", "unknown OSC address %r from %s:%d", address[:80], sender[0], sender[1])
            self.error(sender, address[:200], "unknown_address", f"no such address {address[:200]!r}; see docs/osc-api.md")
            return
        try:
            handler(params, sender, arrival_s)
        except BandError as exc:
            self.counters[f"rejected:{address}"] += 1
            if isinstance(exc, ProtocolError):
                self.counters["bad_args"] += 1
            elif isinstance(exc, RequestError):
                self.counters["bad_values"] += 1
            ref = getattr(exc, "ref", None) or address
            self._log.warning(f"rej:{address}", "%s from %s:%d rejected: %s", address, sender[0], sender[1], exc)
            self.error(sender, ref, exc.code, f"{address}: {exc}")
        except Exception as exc:  # noqa: BLE001 - keep serving whatever happens
            self.counters["internal_errors"] += 1
            self._log.log(logging.ERROR, f"internal:{address}", "handler for %s failed", address, exc_info=True)
            self.error(sender, address, "internal", f"{type(exc).__name__}: {exc}")

    # -- handlers --------------------------------------------------------------
    def _hello(self, params: list[Any], sender: Address, arrival_s: float) -> None:
        args = check_args("/band/hello", params, SPECS["/band/hello"])
        target = (sender[0], args["reply_port"])
        if target not in self.clients and len(self.clients) >= self.max_clients:
            raise RequestError("client", f"{self.max_clients} clients are registered already", "too_many_clients")
        self.clients[target] = args["client"]
        log.info("client %r registered at %s:%d", args["client"], *target)
        self.send(target, "/band/welcome", self.name, __version__)
        if target != sender:
            self.send(sender, "/band/welcome", self.name, __version__)

    def _bye(self, params: list[Any], sender: Address, arrival_s: float) -> None:
        args = check_args("/band/bye", params, SPECS["/band/bye"])
        gone = [t for t, name in self.clients.items() if t[0] == sender[0] and name == args["client"]]
        for target in gone:
            del self.clients[target]
            log.info("client %r at %s:%d unregistered", args["client"], *target)
        self.ack(sender, "/band/bye", args["client"], len(gone))

    def _ping(self, params: list[Any], sender: Address, arrival_s: float) -> None:
        self.reply(sender, "/band/pong", *(to_juce_safe(p) for p in params))

    def _transport(self, params: list[Any], sender: Address, arrival_s: float) -> None:
        args = check_args("/band/transport", params, SPECS["/band/transport"])
        if args["ts_den"] not in TS_DENOMINATORS:
            raise RequestError("ts_den", f"must be one of {TS_DENOMINATORS}, got {args['ts_den']}")
        state = TransportState(
            playing=bool(args["playing"]),
            bpm=args["bpm"],
            ppq=args["ppq"],
            bar_start_ppq=args["bar_start_ppq"],
            ts_num=args["ts_num"],
            ts_den=args["ts_den"],
        )
        snapshot, kind = self.model.update(arrival_s, state)
        self.scheduler.set_transport(snapshot)
        if kind == "held":
            log.debug("transport message %.1f ms behind the clock held back as a possible straggler",
                      (snapshot.ppq_at(arrival_s) - state.ppq) * 60000.0 / snapshot.bpm)
        elif kind not in ("update", "idle"):
            log.info("transport %s: %.2f bpm, ppq %.3f, %d/%d", kind, state.bpm, state.ppq, state.ts_num, state.ts_den)

    def _raw_generate(self, params: list[Any]) -> dict[str, Any]:
        if len(params) == 1 and isinstance(params[0], str) and params[0].lstrip().startswith("{"):
            try:
                obj = json.loads(params[0])
            except json.JSONDecodeError as exc:
                raise RequestError("json", f"not valid JSON: {exc.msg} at char {exc.pos}", "bad_value") from None
            if not isinstance(obj, dict):
                raise RequestError("json", "must be a JSON object", "bad_value")
            return obj
        if len(params) % 2:
            raise ProtocolError("/band/generate takes key/value pairs (s key, then value) or one JSON string")
        raw: dict[str, Any] = {}
        for i in range(0, len(params), 2):
            key, value = params[i], params[i + 1]
            if not isinstance(key, str):
                raise ProtocolError(f"argument {i + 1} must be a key string (s), got {type(key).__name__}")
            if isinstance(value, (bytes, bytearray)) or value is None or isinstance(value, bool):
                raise ProtocolError(f"value of {key!r} must be i, f, d, h or s")
            if key in raw:
                raise RequestError(key, "given twice", "bad_value")
            raw[key] = value
        return raw

    def _generate(self, params: list[Any], sender: Address, arrival_s: float) -> None:
        ref = ""
        try:
            raw = self._raw_generate(params)
            ref = raw.get("id") if isinstance(raw.get("id"), str) else ""
            request = parse_request(raw)
            self.validate(request)
            job = self.jobs.submit(request, reply_to=sender)
        except BandError as exc:
            exc.ref = ref[:128] or "/band/generate"  # type: ignore[attr-defined]
            raise
        self.ack(sender, "/band/generate", ref[:128] or "/band/generate", job.job_id)

    def on_job_event(self, job: Job, event: str) -> None:
        """Job listener: ``/band/file`` for each new file, then ``/band/job``; arms ``play=1`` jobs."""
        for part, path in job.files[job.announced:]:
            self.reply(job.reply_to, "/band/file", job.job_id, part, path)
        job.announced = len(job.files)
        if job.state == "failed" and job.error is not None:
            self.error(job.reply_to, job.request.id or job.job_id, job.error[0], job.error[1])
        self.reply(job.reply_to, "/band/job", job.job_id, job.state, float(job.progress), job.request.id)
        if job.state == "done" and job.request.play and job.arrangement is not None:
            self._arm(job)

    def _arm(self, job: Job) -> None:
        """Hand a done job to the scheduler; its event lattice is long-lived, so settle the heap."""
        self.scheduler.play(PlayableJob.from_arrangement(job.job_id, job.arrangement))
        heap.settle()

    def _job_arg(self, address: str, params: list[Any]) -> str:
        job_id = check_args(address, params, SPECS[address])["job_id"]
        return job_id

    def _play(self, params: list[Any], sender: Address, arrival_s: float) -> None:
        job_id = self._job_arg("/band/play", params)
        try:
            job = self.jobs.get(job_id)
            if job.state != "done" or job.arrangement is None:
                raise JobError(f"job {job_id} is {job.state}; only a done job can play")
            self.scheduler.ports.require_available()  # MidiUnavailableError: midi_unavailable
        except (JobError, MidiUnavailableError) as exc:
            exc.ref = job_id  # type: ignore[attr-defined]
            raise
        self._arm(job)
        self.ack(sender, "/band/play", job_id)

    def _cancel(self, params: list[Any], sender: Address, arrival_s: float) -> None:
        job_id = self._job_arg("/band/cancel", params)
        try:
            self.jobs.cancel(job_id)
        except JobError as exc:
            exc.ref = job_id  # type: ignore[attr-defined]
            raise
        self.ack(sender, "/band/cancel", job_id)

    def _stop(self, params: list[Any], sender: Address, arrival_s: float) -> None:
        check_args("/band/stop", params, SPECS["/band/stop"])
        self.scheduler.stop_playback()
        self.ack(sender, "/band/stop", "/band/stop")

    def _mute(self, params: list[Any], sender: Address, arrival_s: float) -> None:
        args = check_args("/band/mute", params, SPECS["/band/mute"])
        if args["part"] not in self.port_names:
            exc = RequestError("part", f"unknown part {args['part']!r}; ports: {', '.join(self.port_names)}",
                               "unknown_part")
            exc.ref = args["part"]  # type: ignore[attr-defined]
            raise exc
        self.scheduler.mute(args["part"], bool(args["muted"]))
        self.ack(sender, "/band/mute", args["part"], args["muted"])

    def _panic(self, params: list[Any], sender: Address, arrival_s: float) -> None:
        check_args("/band/panic", params, SPECS["/band/panic"])
        self.scheduler.panic()
        self.ack(sender, "/band/panic", "/band/panic")

    def _styles(self, params: list[Any], sender: Address, arrival_s: float) -> None:
        check_args("/band/styles", params, SPECS["/band/styles"])
        self.reply(sender, "/band/styles", *self.style_names())

    # -- audio preview ---------------------------------------------------------
    def _preview_call(self, fn, *args):
        """Run a PortAudio call on the preview thread (stream start can take long; never on the loop)."""
        if self._preview_executor is None:
            self._preview_executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="preview")
        return asyncio.get_running_loop().run_in_executor(self._preview_executor, fn, *args)

    def _previewer_obj(self):
        if self._previewer is None:
            from ai_band.preview.player import Previewer

            self._previewer = Previewer(self.preview_device, self.preview_latency)
        return self._previewer

    def _preview(self, params: list[Any], sender: Address, arrival_s: float) -> None:
        job_id = self._job_arg("/band/preview", params)
        try:
            job = self.jobs.get(job_id)
            mix = next((path for part, path in job.files if part == "mix"), None)
            if job.state != "done" or mix is None:
                raise JobError(f"job {job_id} has no rendered mix (state {job.state}); "
                               "generate it with render=wav or render=flac")
        except JobError as exc:
            exc.ref = job_id  # type: ignore[attr-defined]
            raise
        asyncio.get_running_loop().create_task(self._start_preview(job_id, mix, sender))
        self.ack(sender, "/band/preview", job_id)

    def _preview_start_time(self) -> float | None:
        """Monotonic time of the host's next usable bar line, or None when the transport is not playing."""
        snap = self.model.snapshot
        if not snap.playing:
            return None
        earliest = time.monotonic() + PREVIEW_LEAD_S
        return snap.time_at(snap.next_bar_ppq(snap.ppq_at(earliest)))

    async def _start_preview(self, job_id: str, mix: str, sender: Address) -> None:
        try:
            import soundfile

            audio, rate = await self._preview_call(
                lambda: soundfile.read(mix, dtype="float32", always_2d=True))
            # Open the stream first (the first time PortAudio starts, up to ~1 s), then pick
            # the bar line: a start time computed before would already be past.
            await self._preview_call(lambda: self._previewer_obj().open())
            start_at = self._preview_start_time()
            first = await self._preview_call(
                lambda: self._previewer_obj().play(audio, rate, start_at, job_id))
            self.reply(sender, "/band/preview", job_id, "playing", float(max(0.0, first - time.monotonic())))
            log.info("preview of %s starts in %.3f s", job_id, first - time.monotonic())
        except BandError as exc:
            self.error(sender, job_id, exc.code, f"/band/preview: {exc}")
        except Exception as exc:  # noqa: BLE001 - e.g. an unreadable file: answer, keep serving
            log.exception("preview of %s failed", job_id)
            self.error(sender, job_id, "preview_failed", f"/band/preview: {type(exc).__name__}: {exc}")

    def _preview_stop(self, params: list[Any], sender: Address, arrival_s: float) -> None:
        check_args("/band/preview/stop", params, SPECS["/band/preview/stop"])
        if self._previewer is not None:
            previewer = self._previewer
            self._preview_call(previewer.stop)
        self.ack(sender, "/band/preview/stop", "/band/preview/stop")

    def close_preview(self) -> None:
        """Stop and close the audio preview (shutdown)."""
        if self._previewer is not None:
            try:
                self._previewer.close()
            except Exception:  # noqa: BLE001
                log.exception("closing the audio preview failed")
            self._previewer = None
        if self._preview_executor is not None:
            self._preview_executor.shutdown(wait=False, cancel_futures=True)
            self._preview_executor = None

    def status(self) -> dict:
        """Everything ``/band/status`` reports, as a JSON-ready dict."""
        now = time.monotonic()
        recent = list(self.jobs.jobs.values())[-20:]
        return {
            "name": self.name,
            "version": __version__,
            "uptime_s": round(now - self.started_s, 3),
            "osc_port": self.osc_port,
            "clients": [{"name": n, "host": t[0], "port": t[1]} for t, n in self.clients.items()],
            "transport": self.model.as_dict(now),
            "jobs": [j.as_dict() for j in recent],
            "ports": self.port_names,
            "midi": self.scheduler.ports.state_dict(),
            "playback": self.scheduler.status(),
            "preview": self._previewer.status() if self._previewer is not None else {"playing": False},
            "counters": dict(sorted(self.counters.items())),
        }

    def _status(self, params: list[Any], sender: Address, arrival_s: float) -> None:
        check_args("/band/status", params, SPECS["/band/status"])
        self.reply(sender, "/band/status", json.dumps(self.status(), separators=(",", ":")))
