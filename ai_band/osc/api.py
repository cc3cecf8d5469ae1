"""OSC API v1: one handler per ``/band/...`` address (see docs/osc-api.md).

Every handler runs synchronously on the event loop and returns quickly:
generation goes to worker processes (:mod:`ai_band.jobs.manager`) and MIDI timing to
the scheduler thread (:mod:`ai_band.playback.scheduler`).  Any
:class:`~ai_band.errors.BandError` a handler raises becomes
``/band/error s:ref s:code s:message``; anything else is logged and answered
with code ``internal`` -- the daemon keeps serving either way.  A command that
changes state and succeeds is answered ``/band/ack s:address s:ref ...`` with
the same ``ref`` its error would carry (:meth:`BandApi.ack`).

Who may send what (docs/security.md, :mod:`ai_band.osc.access`): addresses
fall in three tiers, :data:`OPEN` (anyone the allow-list admits),
:data:`READ` (a verified ``/band/hello`` first) and :data:`CONTROL` (a
verified hello with the token, when ``[osc] token`` is set).  No reply to a
sender without a verified registration is longer than its request (the
message's share of its datagram): errors are cut to fit, other replies that
do not fit are dropped and counted (``replies_dropped``).  Replies go to the
sender and to its registration's reply port, job events to the client that
submitted the job; nothing is broadcast.
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
from ai_band.config.schema import OscSection
from ai_band.system import heap
from ai_band.errors import (BandError, JobError, JobStateError, MidiUnavailableError, ProtocolError, RequestError,
                             SyncError)
from ai_band.request import GenerationRequest, load_json, parse_request
from ai_band.jobs.manager import Job, JobManager, Listener
from ai_band.model import TS_DENOMINATORS
from ai_band.osc.access import AccessError, ClientTable, Rates, Registration
from ai_band.osc.logs import RateLimitedLog, limit_third_party_logs
from ai_band.osc.protocol import Arg, check_args, encode_message, to_juce_safe
from ai_band.osc.server import MAX_DATAGRAM_BYTES, Address, OscEndpoint, PacketRefused
from ai_band.playback.scheduler import PlayableJob, Scheduler
from ai_band.playback.ports import set_part_offsets
from ai_band.sync.manager import SyncManager
from ai_band.transport import TransportState

log = logging.getLogger(__name__)

SPECS: dict[str, list[Arg]] = {
    # Arguments past the fourth are padding (see docs/osc-api.md) and ignored.
    "/band/hello": [Arg("client", "s", hi=128), Arg("reply_port", "i", 1, 65535),
                    Arg("token", "s", hi=128), Arg("nonce", "s", hi=64)],
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
    "/band/status": [Arg("page", "i", 0, 1_000_000)],
    "/band/preview": [Arg("job_id", "s", hi=128)],
    "/band/preview/stop": [],
    "/band/sync": [Arg("source", "s", hi=32)],
    "/band/tempo": [Arg("bpm", "f", 20.0, 300.0)],
    "/band/start": [Arg("ppq", "f", 0.0, 1e7)],
    "/band/offset": [Arg("part", "s", hi=64), Arg("ms", "f", -100.0, 100.0)],
}

#: Answered to anyone the allow-list admits; each reply no longer than the request.
OPEN = frozenset({"/band/hello", "/band/ping"})
#: Need a verified registration (their answers are big, or they act on it); no token.
READ = frozenset({"/band/styles", "/band/status", "/band/bye"})
#: Change what plays or what is made: with a token set, a verified registration that gave it;
#: without, anyone the allow-list admits (``oscsend``), though an unregistered sender's
#: replies stay no longer than its requests and its jobs report to nobody.
CONTROL = frozenset({"/band/transport", "/band/generate", "/band/play", "/band/cancel", "/band/stop",
                     "/band/mute", "/band/panic", "/band/preview", "/band/preview/stop",
                     "/band/sync", "/band/tempo", "/band/start", "/band/offset"})
#: Sources that run the transport themselves: ``/band/stop`` stops their transport, not just playback.
TRANSPORT_OWNERS = frozenset({"internal", "link"})
#: Jobs per ``/band/status`` page, newest first.
STATUS_PAGE_JOBS = 20
#: At most one ``rate_limited`` answer per client per this many seconds.
RATE_LIMITED_REPLY_INTERVAL_S = 1.0
#: A nonce as :func:`secrets.token_urlsafe` makes it, for sizing the welcome before making one.
_NONCE_SIZED = "n" * 16

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
        sync: the :class:`SyncManager`: ``/band/transport`` feeds its OSC source;
            ``/band/sync``, ``/band/tempo``, ``/band/start`` go to it.
        scheduler: the playback scheduler.
        make_jobs: builds the job manager from the listener it must call
            (:meth:`on_job_event`), e.g. ``lambda listener: JobManager(..., listener=listener)``;
            the result is :attr:`jobs`.
        port_names: part -> actual MIDI port name, for ``/band/status``.
        style_names: callable returning the available style names.
        validate: callable that checks a request cheaply (style, chords) and
            raises :class:`RequestError`; called before a job is queued.
        max_clients: registrations accepted by ``/band/hello`` (default ``osc.max_clients``).
        osc: the ``[osc]`` section: ``allow`` (shown in status), ``token``,
            ``client_timeout_s``, ``max_clients`` and the rate figures.
        preview_device: ``[preview] device``: PortAudio output for ``/band/preview`` ("" = default).
        preview_latency: ``[preview] latency``: PortAudio latency, ``"low"`` or ``"high"``.
    """

    def __init__(
        self,
        name: str,
        sync: SyncManager,
        scheduler: Scheduler,
        make_jobs: Callable[[Listener], JobManager],
        port_names: dict[str, str],
        style_names: Callable[[], list[str]],
        validate: Callable[[GenerationRequest], None],
        max_clients: int | None = None,
        preview_device: str = "",
        preview_latency: str = "high",
        osc: OscSection = OscSection(),
    ) -> None:
        self.name = name
        self.sync = sync
        self.scheduler = scheduler
        self.jobs = make_jobs(self.on_job_event)
        self.port_names = port_names
        self.style_names = style_names
        self.validate = validate
        self.max_clients = osc.max_clients if max_clients is None else max_clients
        self.osc = osc
        self.access = ClientTable(self.max_clients, osc.client_timeout_s, osc.token, Rates(
            osc.rate_messages_per_s, osc.burst_messages, osc.rate_generations_per_min, osc.rate_renders_per_min))
        #: During the dispatch of a message from a sender without a verified
        #: registration: ``[sender, bytes its replies may still take]``.
        self._unverified: list | None = None
        self.preview_device = preview_device
        self.preview_latency = preview_latency
        self.endpoint: OscEndpoint | None = None
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
            "/band/sync": self._sync,
            "/band/tempo": self._tempo,
            "/band/start": self._start,
            "/band/offset": self._offset,
        }
        self._previewer = None
        self._preview_executor: concurrent.futures.ThreadPoolExecutor | None = None
        #: Called on the loop after each job event's OSC replies as ``watcher(job, new_files)``
        #: (the HTTP event stream, :mod:`ai_band.http.events`); a watcher that raises is logged.
        self.job_watchers: list[Callable[[Job, list[tuple[str, str]]], None]] = []
        #: ``(job_id, path) -> URL`` of a job file and ``job_id -> URL`` of the job, for the last
        #: argument of ``/band/file`` and ``/band/job``; set by the HTTP server, "" without HTTP.
        self.file_url: Callable[[str, str], str] = lambda job_id, path: ""
        self.job_url: Callable[[str], str] = lambda job_id: ""

    # -- sending ---------------------------------------------------------------
    def attach(self, endpoint: OscEndpoint) -> None:
        """Send replies through ``endpoint``, the bound OSC socket (once it listens)."""
        self.endpoint = endpoint

    @property
    def osc_port(self) -> int:
        """The UDP port the daemon listens on; 0 before :meth:`attach`."""
        return self.endpoint.port if self.endpoint is not None else 0

    def _sendto(self, dgram: bytes, target: Address) -> bool:
        """Send one datagram, unless it would exceed an unverified sender's budget; True if sent."""
        if self.endpoint is None:
            return False
        if self._unverified is not None:  # every reply while answering an unverified sender
            if len(dgram) > self._unverified[1]:
                self.counters["replies_dropped"] += 1
                return False
            self._unverified[1] -= len(dgram)
        if len(dgram) > MAX_DATAGRAM_BYTES:
            self.counters["replies_too_large"] += 1
            self._log.warning("too_large", "a %d-byte reply cannot be sent over UDP", len(dgram))
            return False
        self.endpoint.sendto(dgram, target)
        self.counters["replies"] += 1
        return True

    def send(self, addr: Address, address: str, *args: Any) -> None:
        """Send one message to one address (ip, port)."""
        self._sendto(encode_message(address, args), addr)

    def targets(self, sender: Address | None) -> list[Address]:
        """Where replies to ``sender`` go: ``sender``, and its registration's reply port if it has one."""
        if sender is None:
            return []
        reg = self.access.peek(sender, time.monotonic())
        if reg is None or reg.reply_addr == sender:
            return [sender]
        return [sender, reg.reply_addr]

    def reply(self, sender: Address | None, address: str, *args: Any) -> None:
        """Send to the requester (and its registration's reply port); never to other clients."""
        dgram = encode_message(address, args)
        for target in self.targets(sender):
            self._sendto(dgram, target)

    def error(self, sender: Address | None, ref: str, code: str, message: str) -> None:
        """Answer ``/band/error s:ref s:code s:message`` and count it.

        To a sender without a verified registration the message is cut so
        that the reply is no longer than the request; when even an empty
        message would be longer, nothing is sent (``replies_dropped``).
        """
        self.counters["errors_sent"] += 1
        self.counters[f"error:{code}"] += 1
        message = message[:1000]
        if self._unverified is not None and sender == self._unverified[0]:
            base = len(encode_message("/band/error", (ref, code, "")))
            room = 4 * ((self._unverified[1] - base + 4) // 4) - 1  # bytes of text, the NUL padding aside
            if room < len(message.encode()):
                message = message.encode()[:max(0, room)].decode("utf-8", "ignore")
        self.reply(sender, "/band/error", ref, code, message)

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

        Counters: the code (``malformed``, ``bad_type_tag``,
        ``too_many_args``, ``busy``) and ``busy_messages``: the messages of
        bundles refused for want of room in the schedule (a bundle past
        ``max_bundle_messages`` is refused unparsed, its messages uncounted);
        the datagram itself is counted by the endpoint (``packets_refused``).
        The answer to a sender without a registration is cut to the datagram's size.
        """
        self.counters[refused.code] += 1
        if refused.code == "busy":
            self.counters["busy_messages"] += refused.messages
        self._log.warning(refused.code, "%s packet from %s:%d: %s", refused.code, sender[0], sender[1], refused)
        reg = self.access.lookup(sender, time.monotonic())
        self._unverified = None if reg is not None else [sender, refused.size_bytes]
        try:
            self.error(sender, refused.ref, refused.code, str(refused))
        finally:
            self._unverified = None

    def on_message(self, address: str, params: list[Any], sender: Address, arrival_s: float,
                   size_bytes: int = 0) -> None:
        """Dispatch one OSC message; never raises.

        Args:
            size_bytes: the message's share of its datagram: the most the
                replies to a sender without a verified registration may take.
        """
        self.counters["messages"] += 1
        now_s = time.monotonic()
        reg = self.access.lookup(sender, now_s)
        self._unverified = None if reg is not None else [sender, size_bytes]
        try:
            self._dispatch(address, params, sender, arrival_s, reg, now_s)
        finally:
            self._unverified = None

    def _dispatch(self, address: str, params: list[Any], sender: Address, arrival_s: float,
                  reg: Registration | None, now_s: float) -> None:
        handler = self._handlers.get(address)
        if handler is None:
            self.counters["unknown_address"] += 1
            self._log.warning("unknown", "unknown OSC address %r from %s:%d", address[:80], sender[0], sender[1])
            self.error(sender, address[:200], "unknown_address", f"no such address {address[:200]!r}; see docs/osc-api.md")
            return
        budget = self.access.budget(sender, reg, now_s)
        wait_s = (budget.transport if address == "/band/transport" else budget.messages).take(now_s)
        if wait_s:
            self._rate_limited(sender, budget, address, wait_s, now_s, "[osc] rate_messages_per_s")
            return
        try:
            if address not in OPEN:
                if reg is None and (address in READ or self.access.token_required):
                    raise AccessError("register_first", "send /band/hello and echo its nonce first")
                if address in CONTROL and reg is not None and not reg.control:
                    raise AccessError("unauthorized", "control needs the [osc] token in /band/hello")
            handler(params, sender, arrival_s)
        except AccessError as exc:
            self.counters[exc.code] += 1
            self._log.warning(f"access:{exc.code}", "%s from %s:%d refused: %s", address, sender[0], sender[1], exc)
            self.error(sender, address, exc.code, f"{address}: {exc}")
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

    def _rate_limited(self, sender: Address, budget: Any, ref: str, wait_s: float, now_s: float, key: str) -> None:
        """Count a message refused for its rate; answer ``rate_limited`` at most once a second per client."""
        self.counters["rate_limited"] += 1
        self._log.warning("rate_limited", "%s from %s:%d over its rate (%s)", ref[:80], sender[0], sender[1], key)
        if now_s - budget.last_refusal_s >= RATE_LIMITED_REPLY_INTERVAL_S:
            budget.last_refusal_s = now_s
            self.error(sender, ref, "rate_limited", f"retry in {wait_s:.2f} s ({key})")

    # -- handlers --------------------------------------------------------------
    def _hello(self, params: list[Any], sender: Address, arrival_s: float) -> None:
        """The handshake (docs/osc-api.md): a nonce to the sender, then the registration when it comes back."""
        args = check_args("/band/hello", params[:4], SPECS["/band/hello"], min_count=2)
        name, reply_port = args["client"], args["reply_port"]
        now_s = time.monotonic()
        if not args.get("nonce"):
            budget = self._unverified[1] if self._unverified is not None else MAX_DATAGRAM_BYTES
            fitting = [welcome for welcome in ((self.name, __version__), ("", ""))
                       if len(encode_message("/band/welcome", (*welcome, _NONCE_SIZED))) <= budget]
            if not fitting:
                self.counters["hello_too_short"] += 1
                self._log.warning("hello_too_short", "/band/hello from %s:%d too short (%d bytes) to answer with "
                                  "a nonce: pad it (docs/osc-api.md)", sender[0], sender[1], budget)
                return
            nonce = self.access.challenge(name, sender, reply_port, now_s)
            welcome = encode_message("/band/welcome", (*fitting[0], nonce))
            self._sendto(welcome, sender)
            if (sender[0], reply_port) != sender:
                self._sendto(welcome, (sender[0], reply_port))
            return
        reg = self.access.verify(name, sender, reply_port, args.get("token", ""), args["nonce"], now_s)
        self._unverified = None  # the nonce came back from this IP: it is return-routable
        self.counters["registrations"] += 1
        log.info("client %r registered at %s:%d (%s)", name, *reg.reply_addr,
                 "control" if reg.control else "read only: no token")
        self.reply(sender, "/band/welcome", self.name, __version__, args["nonce"],
                   "control" if reg.control else "read")

    def _bye(self, params: list[Any], sender: Address, arrival_s: float) -> None:
        args = check_args("/band/bye", params, SPECS["/band/bye"])
        targets = self.targets(sender)
        gone = self.access.remove(sender[0], args["client"])
        for reg in gone:
            log.info("client %r at %s:%d unregistered", args["client"], *reg.reply_addr)
        self.counters["acks_sent"] += 1
        dgram = encode_message("/band/ack", ("/band/bye", args["client"], len(gone)))
        for target in targets:
            self._sendto(dgram, target)

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
        snapshot, kind = self.sync.on_osc_transport(arrival_s, state)
        if kind == "held":
            log.debug("transport message %.1f ms behind the clock held back as a possible straggler",
                      (snapshot.ppq_at(arrival_s) - state.ppq) * 60000.0 / snapshot.bpm)
        elif kind not in ("update", "idle"):
            log.info("transport %s: %.2f bpm, ppq %.3f, %d/%d", kind, state.bpm, state.ppq, state.ts_num, state.ts_den)

    def _raw_generate(self, params: list[Any]) -> dict[str, Any]:
        if len(params) == 1 and isinstance(params[0], str) and params[0].lstrip().startswith("{"):
            obj = load_json("json", params[0])
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
        except BandError as exc:
            exc.ref = ref[:128] or "/band/generate"  # type: ignore[attr-defined]
            raise
        if not self._charge_generation(sender, request, ref[:128] or "/band/generate"):
            return
        try:  # an unverified sender's job reports to nobody: its events are far longer than the request
            reg = self.access.peek(sender, time.monotonic())
            job = self.jobs.submit(request, reply_to=sender if self._unverified is None else None,
                                   client=reg.name if reg is not None else "")
        except BandError as exc:
            exc.ref = ref[:128] or "/band/generate"  # type: ignore[attr-defined]
            raise
        self.ack(sender, "/band/generate", ref[:128] or "/band/generate", job.job_id)

    def _charge_generation(self, sender: Address, request: GenerationRequest, ref: str) -> bool:
        """Take one generation (and one render, for audio) from the sender's budget; False if refused."""
        now_s = time.monotonic()
        budget = self.access.budget(sender, self.access.peek(sender, now_s), now_s)
        wait_s = budget.generations.take(now_s)
        if wait_s:
            self._rate_limited(sender, budget, ref, wait_s, now_s, "[osc] rate_generations_per_min")
            return False
        if {"wav", "flac"} & set(request.render or ()):
            wait_s = budget.renders.take(now_s)
            if wait_s:
                budget.generations.tokens += 1.0  # not made after all
                self._rate_limited(sender, budget, ref, wait_s, now_s, "[osc] rate_renders_per_min")
                return False
        return True

    def on_job_event(self, job: Job, event: str) -> None:
        """Job listener: ``/band/file`` for each new file, then ``/band/job``; then the :attr:`job_watchers`;
        arms ``play=1`` jobs."""
        new_files = job.files[job.announced:]
        for part, path in new_files:
            self.reply(job.reply_to, "/band/file", job.job_id, part, path, self.file_url(job.job_id, path))
        job.announced = len(job.files)
        if job.state == "failed" and job.error is not None:
            self.error(job.reply_to, job.request.id or job.job_id, job.error[0], job.error[1])
        self.reply(job.reply_to, "/band/job", job.job_id, job.state, float(job.progress), job.request.id,
                   self.job_url(job.job_id))
        for watcher in self.job_watchers:
            try:
                watcher(job, new_files)
            except Exception:  # noqa: BLE001 - a watcher must not stop the job or the other watchers
                log.exception("job watcher failed for %s", job.job_id)
        if job.state == "done" and job.request.play and job.arrangement is not None:
            self._arm(job)

    def _arm(self, job: Job) -> None:
        """Hand a done job to the scheduler; its event lattice is long-lived, so settle the heap."""
        self.scheduler.play(PlayableJob.from_arrangement(job.job_id, job.arrangement))
        heap.settle()

    def _job_arg(self, address: str, params: list[Any]) -> str:
        job_id = check_args(address, params, SPECS[address])["job_id"]
        return job_id

    def play_job(self, job_id: str) -> Job:
        """Arm a done job for the next bar line: ``/band/play`` and ``POST /api/jobs/{id}/play``.

        Raises:
            JobError: unknown job (``unknown_job``).
            JobStateError: the job is not done (``unknown_job``, as ``/band/play`` documents).
            MidiUnavailableError: the MIDI system is gone (``midi_unavailable``).
        """
        job = self.jobs.get(job_id)
        if job.state != "done" or job.arrangement is None:
            raise JobStateError(f"job {job_id} is {job.state}; only a done job can play")
        self.scheduler.ports.require_available()
        self._arm(job)
        return job

    def _play(self, params: list[Any], sender: Address, arrival_s: float) -> None:
        job_id = self._job_arg("/band/play", params)
        try:
            self.play_job(job_id)
        except (JobError, MidiUnavailableError) as exc:
            exc.ref = job_id  # type: ignore[attr-defined]
            raise
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
        if self.sync.active.name in TRANSPORT_OWNERS:
            # The daemon runs the transport: stop it; the job stays armed for /band/start.
            self.sync.active.stop_transport()
            self.ack(sender, "/band/stop", "transport")
            return
        self.scheduler.stop_playback()
        self.ack(sender, "/band/stop", "/band/stop")

    # -- sync ------------------------------------------------------------------
    def _sync(self, params: list[Any], sender: Address, arrival_s: float) -> None:
        args = check_args("/band/sync", params, SPECS["/band/sync"])
        try:
            source = self.sync.switch(args["source"])
        except SyncError as exc:
            exc.ref = args["source"]  # type: ignore[attr-defined]
            raise
        self.ack(sender, "/band/sync", source.name)

    def _tempo(self, params: list[Any], sender: Address, arrival_s: float) -> None:
        args = check_args("/band/tempo", params, SPECS["/band/tempo"])
        self.sync.active.set_tempo(args["bpm"])
        self.ack(sender, "/band/tempo", float(self.sync.active.snapshot.bpm))

    def _start(self, params: list[Any], sender: Address, arrival_s: float) -> None:
        args = check_args("/band/start", params, SPECS["/band/start"], min_count=0)
        self.sync.active.start_transport(args.get("ppq"))
        self.ack(sender, "/band/start", float(self.sync.active.snapshot.anchor_ppq))

    def _offset(self, params: list[Any], sender: Address, arrival_s: float) -> None:
        args = check_args("/band/offset", params, SPECS["/band/offset"])
        part, ms = args["part"], args["ms"]
        if part in ("", "all"):
            self.scheduler.offset_s = ms / 1000.0
        elif part not in self.port_names:
            exc = RequestError("part", f"unknown part {part!r}; ports: {', '.join(self.port_names)}", "unknown_part")
            exc.ref = part  # type: ignore[attr-defined]
            raise exc
        elif set_part_offsets(self.scheduler.ports, {part: ms}):
            exc = RequestError("part", f"port of {part!r} is not timed (JACK only): no per-part offset",
                               "bad_value")
            exc.ref = part  # type: ignore[attr-defined]
            raise exc
        self.ack(sender, "/band/offset", part or "all", float(ms))

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
        reply_to = sender if self._unverified is None else None  # the later answers only to a registered client
        asyncio.get_running_loop().create_task(self._start_preview(job_id, mix, reply_to))
        self.ack(sender, "/band/preview", job_id)

    def _preview_start_time(self) -> float | None:
        """Monotonic time of the host's next usable bar line, or None when the transport is not playing."""
        snap = self.sync.snapshot
        if not snap.playing:
            return None
        earliest = time.monotonic() + PREVIEW_LEAD_S
        return snap.time_at(snap.next_bar_ppq(snap.ppq_at(earliest)))

    async def _start_preview(self, job_id: str, mix: str, sender: Address | None) -> None:
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

    def status(self, page: int = 0, jobs_shown: int = STATUS_PAGE_JOBS) -> dict:
        """Everything ``/band/status`` reports, as a JSON-ready dict.

        Args:
            page: which jobs: page 0 the :data:`STATUS_PAGE_JOBS` newest, page 1 the next older ones, ...
            jobs_shown: how many of the page's jobs to list (the newest of them);
                ``jobs_truncated`` says how many more the page holds.
        """
        now = time.monotonic()
        self.access.expire(now)
        every = list(self.jobs.jobs.values())
        stop = max(0, len(every) - page * STATUS_PAGE_JOBS)
        on_page = every[max(0, stop - STATUS_PAGE_JOBS):stop]
        shown = on_page[len(on_page) - jobs_shown:] if jobs_shown > 0 else []
        counters = self.counters.copy()
        if self.endpoint is not None:
            counters.update(self.endpoint.counters)
        return {
            "name": self.name,
            "version": __version__,
            "uptime_s": round(now - self.started_s, 3),
            "osc_port": self.osc_port,
            "osc": {
                "allow": list(self.osc.allow),
                "token_required": self.access.token_required,
                "max_clients": self.max_clients,
                "client_timeout_s": self.osc.client_timeout_s,
                "recv_buffer_bytes": self.endpoint.recv_buffer_bytes if self.endpoint is not None else 0,
            },
            "clients": [{"name": r.name, "host": r.ip, "port": r.reply_port,
                         "access": "control" if r.control else "read",
                         "idle_s": round(now - r.last_seen_s, 3)} for r in self.access.clients.values()],
            "transport": self.sync.osc.model.as_dict(now),
            "sync": self.sync.status(now),
            "offsets_ms": {"all": round(self.scheduler.offset_s * 1000.0, 3),
                           **{part: round(out.offset_ns / 1e6, 3) for part, out in self.scheduler.ports.items()
                              if out.offset_ns}},
            "page": page,
            "jobs_total": len(every),
            "jobs": [j.as_dict() for j in shown],
            "jobs_truncated": len(on_page) - len(shown),
            "ports": self.port_names,
            "midi": self.scheduler.ports.state_dict(),
            "playback": self.scheduler.status(),
            "preview": self._previewer.status() if self._previewer is not None else {"playing": False},
            "counters": dict(sorted(counters.items())),
        }

    def status_message(self, page: int = 0) -> bytes:
        """The ``/band/status`` reply as one datagram of at most 65,507 bytes.

        The page's jobs are listed newest first until the datagram would be too
        large; the rest are counted in ``jobs_truncated`` (fetch them with a
        later page, or read job.json in the output folder).

        Raises:
            ProtocolError: ``status_too_large`` if even without jobs it does not fit.
        """
        shown = STATUS_PAGE_JOBS
        while True:
            dgram = encode_message("/band/status", (json.dumps(self.status(page, shown), separators=(",", ":")),))
            if len(dgram) <= MAX_DATAGRAM_BYTES:
                return dgram
            if shown == 0:
                exc = ProtocolError(f"the status is {len(dgram)} bytes even without jobs, "
                                    f"more than one datagram ({MAX_DATAGRAM_BYTES})")
                exc.code = "status_too_large"
                raise exc
            self.counters["status_trimmed"] += 1
            shown = shown // 2 if shown > 4 else shown - 1

    def _status(self, params: list[Any], sender: Address, arrival_s: float) -> None:
        args = check_args("/band/status", params, SPECS["/band/status"], min_count=0)
        dgram = self.status_message(args.get("page", 0))
        for target in self.targets(sender):
            self._sendto(dgram, target)
