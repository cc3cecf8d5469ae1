"""A simulated DAW host: transport clock, the plugin's ``/band/transport`` stream, OSC helpers.

The JUCE plugin reports the host's ``AudioPlayHead::PositionInfo`` to the daemon:

=================  ========  ==================================================
OSC argument       type      JUCE ``AudioPlayHead::PositionInfo``
=================  ========  ==================================================
playing            ``i``     ``getIsPlaying()`` (1 or 0)
bpm                ``f``     ``getBpm()``
ppq                ``f``     ``getPpqPosition()`` (quarter notes from song start)
bar_start_ppq      ``f``     ``getPpqPositionOfLastBarStart()``
ts_num, ts_den     ``i i``   ``getTimeSignature()`` numerator, denominator
=================  ========  ==================================================

Types follow the OSC 1.0 specification: ``i`` is a big-endian int32, ``f`` a
big-endian IEEE 754 float32. Float32 has a 24-bit significand, so a ppq near
10000 is quantised to 2**-10 ppq, about 0.49 ms at 120 bpm (0.06 ms near ppq
1000); the daemon must not expect better.

:class:`HostClock` is the host's transport in absolute CLOCK_MONOTONIC time,
:class:`HostSimulator` sends it over UDP at a fixed rate (and at once on every
change) as the plugin does, and :class:`OscClient` sends requests and waits for
replies. ``ai-band host`` (:mod:`ai_band.cli.host`) drives them from a shell.
An :class:`OscClient` targets loopback addresses only unless it is built with
``loopback_only=False`` (as ``ai-band host --host`` does): the tests, the
benchmarks and ``make demo`` never leave the machine.

The daemon answers only a registered client in full (docs/osc-api.md,
"Registration"), so an :class:`OscClient` registers itself before its first
message (:meth:`OscClient.hello`: hello, welcome with a nonce, the nonce
echoed, the confirming welcome), again after :data:`REREGISTER_IDLE_S` of
silence, and says ``/band/bye`` when closed.  The token is
``AI_BAND_OSC_TOKEN`` from the environment unless given.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import ipaddress
import logging
import math
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Literal, NamedTuple

from pythonosc import osc_bundle_builder, osc_message, osc_message_builder, osc_packet

from ai_band.errors import ProtocolError
from ai_band.model import TS_DENOMINATORS, TimeSignature

logger = logging.getLogger(__name__)

TRANSPORT_ADDRESS = "/band/transport"
TRANSPORT_TYPETAGS = ",ifffii"
HELLO_ADDRESS = "/band/hello"
WELCOME_ADDRESS = "/band/welcome"
BYE_ADDRESS = "/band/bye"
#: A first ``/band/hello`` is padded to this many bytes: the daemon answers an
#: unregistered sender with no more bytes than it sent (its welcome, name,
#: version and nonce, to the sending port and the reply port).
HELLO_PADDED_BYTES = 256
#: An :class:`OscClient` silent this long registers again before it sends
#: (the daemon forgets a client after ``[osc] client_timeout_s``, 30 s by default).
REREGISTER_IDLE_S = 10.0
#: How often the first hello is sent again while no welcome comes, seconds.
_HELLO_RESEND_S = 0.5

ChangeKind = Literal["init", "play", "stop", "tempo", "relocate", "meter"]

_VALID_DENOMINATORS = TS_DENOMINATORS
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_BAR_EPSILON_PPQ = 1e-9  # float error allowed at a bar line


# --------------------------------------------------------------------- clock


def _check_bpm(bpm: float) -> float:
    if isinstance(bpm, bool) or not isinstance(bpm, (int, float)):
        raise TypeError(f"bpm must be a number, got {type(bpm).__name__}")
    if not math.isfinite(bpm) or not 1.0 <= bpm <= 999.0:
        raise ValueError(f"bpm must be in range 1..999, got {bpm}")
    return float(bpm)


def _check_meter(ts_num: int, ts_den: int) -> tuple[int, int]:
    for field, value in (("ts_num", ts_num), ("ts_den", ts_den)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{field} must be int, got {type(value).__name__}")
    if not 1 <= ts_num <= 64:
        raise ValueError(f"ts_num must be in range 1..64, got {ts_num}")
    if ts_den not in _VALID_DENOMINATORS:
        raise ValueError(f"ts_den must be one of {_VALID_DENOMINATORS}, got {ts_den}")
    return ts_num, ts_den


def _check_ppq(ppq: float) -> float:
    if isinstance(ppq, bool) or not isinstance(ppq, (int, float)) or not math.isfinite(ppq):
        raise ValueError(f"ppq must be a finite number of quarter notes, got {ppq!r}")
    return float(ppq)


@dataclasses.dataclass(frozen=True, slots=True)
class ClockChange:
    """One entry of :attr:`HostClock.changes`: the transport from ``time_s`` on.

    Attributes:
        time_s: When it took effect, CLOCK_MONOTONIC seconds.
        kind: What changed: ``"init"``, ``"play"``, ``"stop"``, ``"tempo"``,
            ``"relocate"`` or ``"meter"``.
        playing: Whether the transport runs from ``time_s`` on.
        bpm: Tempo from ``time_s`` on, quarter notes per minute.
        ppq: Position at ``time_s``, quarter notes.
        ts_num, ts_den: Time signature from ``time_s`` on.
    """

    time_s: float
    kind: ChangeKind
    playing: bool
    bpm: float
    ppq: float
    ts_num: int
    ts_den: int

    def ppq_at(self, t_s: float) -> float:
        """Position at ``t_s`` (seconds) if this segment held then, in ppq."""
        if not self.playing:
            return self.ppq
        return self.ppq + (t_s - self.time_s) * self.bpm / 60.0


@dataclasses.dataclass(frozen=True, slots=True)
class TransportState:
    """The host transport at one instant: the fields of ``/band/transport``.

    Attributes:
        time_s: The instant, CLOCK_MONOTONIC seconds.
        playing: ``PositionInfo::getIsPlaying()``.
        bpm: ``getBpm()``, quarter notes per minute.
        ppq: ``getPpqPosition()``, quarter notes (float64 here; float32 on the wire).
        bar_start_ppq: ``getPpqPositionOfLastBarStart()``, quarter notes.
        ts_num, ts_den: ``getTimeSignature()``.
    """

    time_s: float
    playing: bool
    bpm: float
    ppq: float
    bar_start_ppq: float
    ts_num: int
    ts_den: int

    def osc_args(self) -> list[tuple[str, Any]]:
        """Return the ``/band/transport`` arguments as ``(OSC type tag, value)`` pairs."""
        return [
            ("i", int(self.playing)),
            ("f", self.bpm),
            ("f", self.ppq),
            ("f", self.bar_start_ppq),
            ("i", self.ts_num),
            ("i", self.ts_den),
        ]


def bar_length_ppq(ts_num: int, ts_den: int) -> float:
    """Length of one bar in quarter notes: ``ts_num * 4 / ts_den`` (6/8 -> 3.0).

    Raises:
        TypeError, ValueError: Not a valid time signature (ts_num 1..64, ts_den a
            power of two 1..64).
    """
    ts_num, ts_den = _check_meter(ts_num, ts_den)
    return TimeSignature(ts_num, ts_den).bar_length_ppq


def bar_start_ppq(ppq: float, ts_num: int, ts_den: int) -> float:
    """The ppq of the start of the bar containing ``ppq``, bars counted from ppq 0.

    A position within 1e-9 ppq below a bar line counts as on it (float error).
    Negative positions (pre-roll) belong to bars before bar 0.
    """
    length = bar_length_ppq(ts_num, ts_den)
    return math.floor(ppq / length + _BAR_EPSILON_PPQ) * length


class HostClock:
    """The host's transport in absolute CLOCK_MONOTONIC time. Thread-safe.

    The transport is piecewise linear: each change (play, stop, tempo, relocate,
    meter) starts a segment, recorded in :attr:`changes`, so the exact host grid
    can be reconstructed afterwards (:meth:`grid_time_of`). Positions are
    continuous across tempo changes. Bars are counted from ppq 0 with the meter
    in force (a meter change does not re-base bar numbering), as most hosts
    report ``ppqPositionOfLastBarStart`` for a single-meter song.

    Args:
        bpm: Initial tempo, quarter notes per minute, 1..999.
        ts_num, ts_den: Initial time signature (``ts_den`` a power of two).
        ppq: Initial position, quarter notes.
        playing: Whether the transport runs from the start.
        clock: Source of "now" in seconds; ``time.monotonic`` (inject a fake in tests).
        start_time_s: Time of the initial segment; default ``clock()``.

    Raises:
        TypeError, ValueError: An argument out of range (the message names it).
    """

    def __init__(
        self,
        bpm: float = 120.0,
        ts_num: int = 4,
        ts_den: int = 4,
        ppq: float = 0.0,
        playing: bool = False,
        clock: Callable[[], float] = time.monotonic,
        start_time_s: float | None = None,
    ) -> None:
        ts_num, ts_den = _check_meter(ts_num, ts_den)
        self._clock = clock
        self._lock = threading.Lock()
        first = ClockChange(
            time_s=clock() if start_time_s is None else float(start_time_s),
            kind="init", playing=bool(playing), bpm=_check_bpm(bpm),
            ppq=_check_ppq(ppq), ts_num=ts_num, ts_den=ts_den,
        )
        self._changes: list[ClockChange] = [first]
        self._times: list[float] = [first.time_s]

    # ------------------------------------------------------------- reading

    def now(self) -> float:
        """The clock's current time, seconds."""
        return self._clock()

    @property
    def current(self) -> ClockChange:
        """The segment in force now (the latest change)."""
        with self._lock:
            return self._changes[-1]

    @property
    def playing(self) -> bool:
        """Whether the transport runs (latest change)."""
        return self.current.playing

    @property
    def bpm(self) -> float:
        """Tempo in quarter notes per minute (latest change)."""
        return self.current.bpm

    @property
    def ts_num(self) -> int:
        """Time-signature numerator (latest change)."""
        return self.current.ts_num

    @property
    def ts_den(self) -> int:
        """Time-signature denominator (latest change)."""
        return self.current.ts_den

    @property
    def anchor_time_s(self) -> float:
        """CLOCK_MONOTONIC seconds of the latest change."""
        return self.current.time_s

    @property
    def anchor_ppq(self) -> float:
        """Position at :attr:`anchor_time_s`, quarter notes."""
        return self.current.ppq

    @property
    def changes(self) -> list[ClockChange]:
        """A copy of every change in time order, the first one of kind ``"init"``."""
        with self._lock:
            return list(self._changes)

    def segment_at(self, t_s: float) -> ClockChange:
        """The change in force at ``t_s`` seconds (the first one for earlier times)."""
        with self._lock:
            index = bisect.bisect_right(self._times, t_s) - 1
            return self._changes[max(index, 0)]

    def ppq_at(self, t_s: float) -> float:
        """Host position at ``t_s`` (CLOCK_MONOTONIC seconds), in quarter notes.

        Uses the change history, so past times give what the host reported then;
        times after the latest change extrapolate it.
        """
        return self.segment_at(t_s).ppq_at(t_s)

    def time_at(self, ppq: float) -> float:
        """Inverse of :meth:`ppq_at` for the current segment: when the host is at ``ppq``.

        The answer may lie in the future, or before the latest change (where the
        current tempo is extrapolated backwards). Use :meth:`grid_time_of` for
        positions the host actually passed.

        Raises:
            ValueError: The transport is stopped (the position does not advance).
        """
        segment = self.current
        if not segment.playing:
            raise ValueError("transport is stopped: no time corresponds to a ppq")
        return segment.time_s + (ppq - segment.ppq) * 60.0 / segment.bpm

    def bar_start_ppq_at(self, t_s: float) -> float:
        """The ppq of the start of the bar containing the position at ``t_s`` seconds."""
        segment = self.segment_at(t_s)
        return bar_start_ppq(segment.ppq_at(t_s), segment.ts_num, segment.ts_den)

    def state_at(self, t_s: float | None = None) -> TransportState:
        """The transport at ``t_s`` seconds (default now), as the plugin would report it."""
        t = self._clock() if t_s is None else t_s
        segment = self.segment_at(t)
        ppq = segment.ppq_at(t)
        return TransportState(
            time_s=t, playing=segment.playing, bpm=segment.bpm, ppq=ppq,
            bar_start_ppq=bar_start_ppq(ppq, segment.ts_num, segment.ts_den),
            ts_num=segment.ts_num, ts_den=segment.ts_den,
        )

    def grid_time_of(self, ppq: float) -> float:
        """When the host reached ``ppq``, in the most recent play segment containing it.

        A play segment runs from its change to the next change; its end is
        included. For the segment in force the answer may be in the future.
        After a relocation backwards (a loop) the latest pass is returned; for
        earlier passes, walk :attr:`changes` (each segment is linear:
        ``t = time_s + (ppq - segment.ppq) * 60 / bpm``).

        Raises:
            LookupError: No play segment contains ``ppq``.
        """
        changes = self.changes
        for index in range(len(changes) - 1, -1, -1):
            segment = changes[index]
            if not segment.playing or ppq < segment.ppq:
                continue
            if index + 1 < len(changes):
                end_ppq = segment.ppq_at(changes[index + 1].time_s)
                if ppq > end_ppq:
                    continue
            return segment.time_s + (ppq - segment.ppq) * 60.0 / segment.bpm
        raise LookupError(f"the host never played through ppq {ppq}")

    # ------------------------------------------------------------- changes

    def _change(self, kind: ChangeKind, at_time_s: float | None, **fields: Any) -> TransportState:
        with self._lock:
            t = self._clock() if at_time_s is None else float(at_time_s)
            last = self._changes[-1]
            if t < last.time_s:
                raise ValueError(
                    f"at_time_s must not precede the latest change ({t} < {last.time_s})"
                )
            fields.setdefault("ppq", last.ppq_at(t))
            change = dataclasses.replace(last, time_s=t, kind=kind, **fields)
            self._changes.append(change)
            self._times.append(t)
        logger.debug("Host %s at %.6f: %s", kind, t, change)
        return TransportState(
            time_s=t, playing=change.playing, bpm=change.bpm, ppq=change.ppq,
            bar_start_ppq=bar_start_ppq(change.ppq, change.ts_num, change.ts_den),
            ts_num=change.ts_num, ts_den=change.ts_den,
        )

    def set_tempo(self, bpm: float, at_time_s: float | None = None) -> TransportState:
        """Change the tempo at ``at_time_s`` (default now); the position stays continuous.

        Returns:
            The transport at the change.

        Raises:
            TypeError, ValueError: ``bpm`` not in 1..999, or ``at_time_s`` before the latest change.
        """
        return self._change("tempo", at_time_s, bpm=_check_bpm(bpm))

    def relocate(self, ppq: float, at_time_s: float | None = None) -> TransportState:
        """Jump to ``ppq`` (quarter notes) at ``at_time_s``; playing or not is kept.

        Raises:
            ValueError: ``ppq`` not finite, or ``at_time_s`` before the latest change.
        """
        return self._change("relocate", at_time_s, ppq=_check_ppq(ppq))

    def play(self, at_time_s: float | None = None) -> TransportState:
        """Start the transport from the current position at ``at_time_s``.

        Raises:
            ValueError: ``at_time_s`` before the latest change.
        """
        return self._change("play", at_time_s, playing=True)

    def stop(self, at_time_s: float | None = None) -> TransportState:
        """Stop the transport at ``at_time_s``; the position stays where it stopped.

        Raises:
            ValueError: ``at_time_s`` before the latest change.
        """
        return self._change("stop", at_time_s, playing=False)

    def set_time_signature(
        self, ts_num: int, ts_den: int, at_time_s: float | None = None
    ) -> TransportState:
        """Change the meter at ``at_time_s`` (bars stay counted from ppq 0).

        Raises:
            TypeError, ValueError: Invalid meter, or ``at_time_s`` before the latest change.
        """
        ts_num, ts_den = _check_meter(ts_num, ts_den)
        return self._change("meter", at_time_s, ts_num=ts_num, ts_den=ts_den)


# ----------------------------------------------------------------------- OSC


class OscArg(NamedTuple):
    """An OSC argument with an explicit OSC 1.0 type tag, e.g. ``OscArg("f", 1)``.

    A plain 2-tuple ``("f", 1)`` works too wherever arguments are accepted.
    """

    tag: str
    value: Any


def _typed_arg(arg: Any) -> tuple[str, Any]:
    """Return ``(type tag, value)`` for an explicit or inferred OSC argument.

    Inference: int -> ``i`` (int32), float -> ``f`` (float32), str -> ``s``,
    bytes/bytearray -> ``b`` (blob), None -> ``N``.

    Raises:
        TypeError: bool (ambiguous: pass ``("i", 1)`` or ``("T", True)``) or another type.
        ValueError: Unknown tag, or an int outside int32 for ``i``.
    """
    if isinstance(arg, tuple) and len(arg) == 2 and isinstance(arg[0], str):
        tag, value = arg
        if tag not in osc_message_builder.OscMessageBuilder._SUPPORTED_ARG_TYPES:
            raise ValueError(f"unsupported OSC type tag {tag!r}")
        if tag == "i" and not _INT32_MIN <= int(value) <= _INT32_MAX:
            raise ValueError(f"int32 argument out of range: {value}")
        if tag in ("i", "h"):
            value = int(value)
        elif tag in ("f", "d"):
            value = float(value)
        elif tag == "b":
            value = bytes(value)
        return tag, value
    if isinstance(arg, bool):
        raise TypeError("bool is ambiguous in OSC: pass ('i', 1) or ('T', True)")
    if isinstance(arg, int):
        if not _INT32_MIN <= arg <= _INT32_MAX:
            raise ValueError(f"int {arg} does not fit int32; pass ('h', value) for int64")
        return "i", arg
    if isinstance(arg, float):
        return "f", arg
    if isinstance(arg, str):
        return "s", arg
    if isinstance(arg, (bytes, bytearray)):
        return "b", bytes(arg)
    if arg is None:
        return "N", None
    raise TypeError(f"cannot infer an OSC type for {type(arg).__name__}: pass (tag, value)")


def _build(address: str, *args: Any) -> osc_message.OscMessage:
    builder = osc_message_builder.OscMessageBuilder(address=address)
    for arg in args:
        tag, value = _typed_arg(arg)
        builder.add_arg(value, tag)
    return builder.build()


def build_message(address: str, *args: Any) -> bytes:
    """Build one OSC message datagram.

    Args:
        address: OSC address, starting with ``/``.
        *args: Values with inferred types or ``(tag, value)`` pairs (see :class:`OscArg`).

    Raises:
        TypeError, ValueError: An argument has no valid OSC type (see ``_typed_arg``).
    """
    return _build(address, *args).dgram


def transport_message(state: TransportState) -> bytes:
    """Build the ``/band/transport i f f f i i`` datagram for ``state``."""
    return build_message(TRANSPORT_ADDRESS, *state.osc_args())


def parse_datagram(dgram: bytes) -> list[tuple[str, list[Any]]]:
    """Parse an OSC message or bundle (nested bundles flattened) into ``(address, args)``.

    Raises:
        ValueError: Not a valid OSC packet.
    """
    try:
        packet = osc_packet.OscPacket(dgram)
    except osc_packet.ParseError as exc:
        raise ValueError(f"invalid OSC packet: {exc}") from exc
    return [(timed.message.address, list(timed.message.params)) for timed in packet.messages]


def _check_target(target: tuple[str, int], loopback_only: bool) -> tuple[str, int]:
    """Return ``target`` as ``(IPv4 address, port)``, a host name resolved.

    Raises:
        ValueError: port outside 1..65535, a name that does not resolve to an
            IPv4 address, or (``loopback_only``) an address off loopback.
    """
    host, port = target
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"target port must be in range 1..65535, got {port}")
    if host == "localhost":
        host = "127.0.0.1"
    if loopback_only:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback or ipaddress.ip_address(host).version != 4:
            raise ValueError(f"target must be an IPv4 loopback address such as 127.0.0.1, got {host!r}")
        return host, int(port)
    try:
        infos = socket.getaddrinfo(host, int(port), socket.AF_INET, socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValueError(f"cannot resolve host {host!r} to an IPv4 address: {exc}") from None
    return infos[0][4][0], int(port)


def hello_message(client_name: str, reply_port: int, token: str = "", nonce: str = "",
                  pad_to_bytes: int = 0) -> bytes:
    """``/band/hello s:client i:reply_port s:token s:nonce [b:padding]`` as one datagram.

    Args:
        pad_to_bytes: add a blob argument so that the datagram is at least this long.
    """
    args: list[Any] = [("s", client_name), ("i", reply_port), ("s", token), ("s", nonce)]
    dgram = build_message(HELLO_ADDRESS, *args)
    if len(dgram) < pad_to_bytes:
        # with a 4-byte blob, then grown by what is missing (a multiple of 4: OSC pads to 4)
        padded = build_message(HELLO_ADDRESS, *args, ("b", bytes(4)))
        dgram = build_message(HELLO_ADDRESS, *args, ("b", bytes(4 + max(0, pad_to_bytes - len(padded)))))
    return dgram


def handshake(send: Callable[[bytes], None], receive: Callable[[Callable[[str, list[Any]], bool], float],
              tuple[str, list[Any]]], client_name: str, reply_port: int, token: str = "",
              timeout: float = 2.0) -> list[Any]:
    """Register with a daemon: the ``/band/hello`` handshake of docs/osc-api.md.

    Sends a padded hello (again every 0.5 s until answered), takes the nonce
    from the ``/band/welcome s:name s:version s:nonce`` that answers it, echoes
    it as ``/band/hello client reply_port token nonce`` and waits for the
    confirming ``/band/welcome s:name s:version s:nonce s:access``.

    Args:
        send: sends one datagram to the daemon.
        receive: ``receive(predicate, timeout_s)``: the next message for which
            ``predicate(address, args)`` holds (others kept for later); raises
            ``TimeoutError``.
        reply_port: where the daemon is to send replies (on the sender's IP).
        token: the daemon's ``[osc] token``, or "".

    Returns:
        The confirming welcome's arguments: ``[name, version, nonce, access]``,
        access ``"control"`` or ``"read"`` (a token is configured and none was given).

    Raises:
        TimeoutError: no welcome within ``timeout`` seconds.
        ProtocolError: the daemon refused (``code``: ``too_many_clients``,
            ``unauthorized``, ``bad_nonce``, ...).
    """
    deadline = time.monotonic() + timeout

    def answer(address: str, args: list[Any]) -> bool:
        return address == WELCOME_ADDRESS or (address == "/band/error" and bool(args) and args[0] == HELLO_ADDRESS)

    def wait(check: Callable[[list[Any]], bool], resend: bytes | None) -> list[Any]:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no /band/welcome within {timeout:g} s")
            try:
                address, args = receive(answer, min(left, _HELLO_RESEND_S) if resend else left)
            except TimeoutError:
                if resend is not None:
                    send(resend)
                continue
            if address == "/band/error":
                exc = ProtocolError(f"/band/hello refused: {args[2] if len(args) > 2 else args}")
                exc.code = str(args[1]) if len(args) > 1 else "error"
                raise exc
            if check(args):
                return args

    first = hello_message(client_name, reply_port, token, "", HELLO_PADDED_BYTES)
    send(first)
    challenge = wait(lambda args: len(args) == 3, first)
    nonce = str(challenge[2])
    send(hello_message(client_name, reply_port, token, nonce))
    return wait(lambda args: len(args) >= 4 and args[2] == nonce, None)


class OscClient:
    """A UDP OSC endpoint (ephemeral port) that talks to one target.

    The daemon replies to the sender's address, so replies arrive on this socket.
    Use from one thread at a time for receiving; sending is thread-safe, but
    the automatic registration receives, so a client shared between threads
    (``ai-band host``) registers before it is shared (:meth:`ensure_registered`).

    Args:
        target: ``(host, port)`` of the daemon: an IPv4 address or a name.
        loopback_only: Refuse targets off loopback (the default: tests and
            benchmarks stay on the machine). A loopback target binds to
            127.0.0.1, any other to all interfaces.
        token: the daemon's ``[osc] token``; None: ``AI_BAND_OSC_TOKEN`` from
            the environment, else none.
        auto_register: register (:meth:`hello`) before the first message and
            after :data:`REREGISTER_IDLE_S` of silence, and say ``/band/bye`` on
            :meth:`close`; False for talking to something else than the daemon,
            or to test what an unregistered sender gets.
        bind_ip: the local address to send from (e.g. ``127.0.0.2`` to act as
            another host on loopback); default as above.

    Raises:
        ValueError: ``target`` is not on loopback (``loopback_only``), its port
            is outside 1..65535, or its name does not resolve to IPv4.
        OSError: The socket cannot be bound.
    """

    def __init__(self, target: tuple[str, int], loopback_only: bool = True, token: str | None = None,
                 auto_register: bool = True, bind_ip: str | None = None) -> None:
        self.target: tuple[str, int] = _check_target(target, loopback_only)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if bind_ip is None:
            bind_ip = "127.0.0.1" if ipaddress.ip_address(self.target[0]).is_loopback else "0.0.0.0"
        self._sock.bind((bind_ip, 0))
        self._pending: collections.deque[tuple[str, list[Any]]] = collections.deque()
        self._closed = False
        self.token = os.environ.get("AI_BAND_OSC_TOKEN", "") if token is None else token
        self.auto_register = auto_register
        #: The name registered with (:meth:`hello`), or None.
        self.client_name: str | None = None
        self._last_send_s = -math.inf
        self._registering = False

    @property
    def address(self) -> tuple[str, int]:
        """The local ``(ip, port)`` this client sends from and receives on."""
        host, port = self._sock.getsockname()[:2]
        return host, port

    @property
    def port(self) -> int:
        """The local UDP port (the ``reply_port`` to announce in ``/band/hello``)."""
        return self.address[1]

    def fileno(self) -> int:
        """The socket's file descriptor, for ``select`` (readable when a reply waits)."""
        return self._sock.fileno()

    def ensure_registered(self) -> None:
        """Register (:meth:`hello`) unless registered and heard from within :data:`REREGISTER_IDLE_S`.

        Does nothing without ``auto_register``.

        Raises:
            TimeoutError, ProtocolError: see :meth:`hello`.
        """
        if not self.auto_register or self._registering or self._closed:
            return
        if self.client_name is None or time.monotonic() - self._last_send_s > REREGISTER_IDLE_S:
            self.hello(self.client_name or f"ai-band.host:{self.port}")

    def send(self, address: str, *args: Any) -> None:
        """Send one OSC message to the target (registering first, see ``auto_register``).

        Args:
            address: OSC address, e.g. ``"/band/transport"``.
            *args: int -> ``i``, float -> ``f``, str -> ``s``, bytes -> ``b``,
                None -> ``N``; or an explicit ``(tag, value)`` such as ``("h", 1)``.

        Raises:
            TypeError, ValueError: An argument has no valid OSC type.
            OSError: The datagram could not be sent.
        """
        self.ensure_registered()
        self._sendto(build_message(address, *args))
        if address == BYE_ADDRESS and args and args[0] == self.client_name:
            self.client_name = None  # the daemon forgets it: register again before the next message

    def send_bundle(
        self, messages: Iterable[tuple[str, Sequence[Any]]], timetag: float | None = None
    ) -> None:
        """Send several messages in one OSC bundle.

        Args:
            messages: ``(address, args)`` pairs; args as for :meth:`send`.
            timetag: Seconds since the Unix epoch, or ``None`` for "immediately".
        """
        self.ensure_registered()
        # python-osc annotates the stamp as int but takes float seconds too.
        stamp: Any = osc_bundle_builder.IMMEDIATELY if timetag is None else timetag
        bundle = osc_bundle_builder.OscBundleBuilder(stamp)
        for address, args in messages:
            bundle.add_content(_build(address, *args))
        self._sendto(bundle.build().dgram)

    def send_raw(self, data: bytes) -> None:
        """Send ``data`` unchanged as one UDP datagram to the target (for malformed input)."""
        self.ensure_registered()
        self._sendto(data)

    def _sendto(self, data: bytes) -> None:
        self._sock.sendto(data, self.target)
        self._last_send_s = time.monotonic()

    def receive(self, address: str | None = None, timeout: float = 2.0) -> tuple[str, list[Any]]:
        """Return the next received message, or the next one at ``address``.

        Messages at other addresses are buffered for later calls; bundles are
        flattened; datagrams that are not OSC are logged and dropped.

        Args:
            address: Exact OSC address to wait for; ``None`` for any.
            timeout: Seconds to wait.

        Returns:
            ``(address, args)`` with args decoded by python-osc (int, float, str, bytes ...).

        Raises:
            TimeoutError: Nothing matching arrived within ``timeout`` seconds.
        """
        return self._receive_where(lambda a, args: address is None or a == address, timeout,
                                   address or "any address")

    def _receive_where(self, predicate: Callable[[str, list[Any]], bool], timeout: float,
                       what: str = "the expected address") -> tuple[str, list[Any]]:
        """The next message for which ``predicate(address, args)`` holds; others are kept for later."""
        for index, message in enumerate(self._pending):
            if predicate(*message):
                del self._pending[index]
                return message
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no OSC message at {what} within {timeout:g} s")
            self._sock.settimeout(remaining)
            try:
                dgram, sender = self._sock.recvfrom(65536)
            except TimeoutError:
                continue
            try:
                messages = parse_datagram(dgram)
            except ValueError as exc:
                logger.warning("Dropping a datagram from %s: %s", sender, exc)
                continue
            found: tuple[str, list[Any]] | None = None
            for message in messages:
                if found is None and predicate(*message):
                    found = message
                else:
                    self._pending.append(message)
            if found is not None:
                return found

    def drain(self) -> list[tuple[str, list[Any]]]:
        """Return every buffered and already-arrived message without waiting."""
        messages = list(self._pending)
        self._pending.clear()
        self._sock.setblocking(False)
        try:
            while True:
                try:
                    dgram = self._sock.recv(65536)
                except BlockingIOError:
                    break
                try:
                    messages.extend(parse_datagram(dgram))
                except ValueError as exc:
                    logger.warning("Dropping a datagram: %s", exc)
        finally:
            self._sock.setblocking(True)
        return messages

    def request(
        self, address: str, *args: Any, reply_address: str, timeout: float = 2.0
    ) -> list[Any]:
        """Send a message and return the arguments of the next reply at ``reply_address``.

        Raises:
            TimeoutError: No reply within ``timeout`` seconds.
        """
        self.send(address, *args)
        return self.receive(reply_address, timeout)[1]

    def wait_job(self, request_id: str, timeout: float = 20.0) -> tuple[str, dict[str, str]]:
        """Wait for the final ``/band/job`` of a ``/band/generate`` request.

        Args:
            request_id: the ``id`` sent with the request.
            timeout: seconds to wait in all.

        Returns:
            ``(job_id, {part: path})`` from the ``/band/file`` messages.

        Raises:
            RuntimeError: the daemon answered ``/band/error`` for the request, or
                the job ended ``failed`` or ``cancelled``.
            TimeoutError: no final state within ``timeout``.
        """
        files: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"job of request {request_id!r} did not finish in {timeout} s")
            address, args = self.receive(timeout=remaining)
            if address == "/band/error" and args and args[0] == request_id:
                raise RuntimeError(f"request {request_id!r} refused: {args}")
            if address == "/band/file":
                files[args[1]] = args[2]
            if address == "/band/job" and args[3] == request_id and args[1] in ("done", "failed", "cancelled"):
                if args[1] != "done":
                    raise RuntimeError(f"job {args[0]} {args[1]}")
                return args[0], files

    def hello(self, client_name: str, timeout: float = 2.0) -> list[Any]:
        """Register with the daemon as ``client_name``, replies to this socket (:func:`handshake`).

        Returns:
            The confirming ``/band/welcome``'s arguments: ``[name, version, nonce, access]``.

        Raises:
            TimeoutError: No welcome within ``timeout`` seconds.
            ProtocolError: The daemon refused (its ``code``, e.g. ``too_many_clients``).
        """
        self._registering = True
        try:
            welcome = handshake(self._sendto, self._receive_where, client_name, self.port, self.token, timeout)
        finally:
            self._registering = False
        self.client_name = client_name
        return welcome

    def close(self) -> None:
        """Say ``/band/bye`` if registered, close the socket. Idempotent."""
        if not self._closed:
            self._closed = True
            if self.client_name is not None:
                try:
                    self._sendto(build_message(BYE_ADDRESS, self.client_name))
                except OSError:
                    pass
            self._sock.close()

    def __enter__(self) -> OscClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# ----------------------------------------------------------------- simulator


@dataclasses.dataclass(frozen=True, slots=True)
class SentTransport:
    """A ``/band/transport`` message the simulator sent.

    Attributes:
        nominal_time_s: The instant whose position it carries (CLOCK_MONOTONIC s).
        send_time_s: When it was handed to the socket (nominal + jitter + wake-up
            delay, or just after the change), CLOCK_MONOTONIC seconds.
        reason: ``"periodic"`` or the clock change kind (``"play"``, ``"tempo"`` ...).
        state: The transport it carries (float64; the wire has float32).
    """

    nominal_time_s: float
    send_time_s: float
    reason: str
    state: TransportState


class HostSimulator:
    """Drives the daemon as the JUCE plugin does: ``/band/transport`` over UDP.

    A background thread sends the transport every ``1 / rate_hz`` seconds on
    absolute deadlines ``t_n = t_0 + n / rate_hz`` (no drift). Each message
    carries the position at its nominal time ``t_n`` (like a plugin reporting
    its audio block) but leaves at ``t_n + U(-jitter_ms, +jitter_ms)``. Every
    play, stop, tempo change, relocation and meter change also sends a message
    at once with the exact position of that moment; a periodic message whose
    nominal time precedes such an immediate message is dropped as stale. If the
    thread falls more than a period behind, missed slots are skipped, not burst.

    The thread waits on ``time.monotonic`` (sleep, then spin the last
    ``spin_s``), so ``clock`` must run on CLOCK_MONOTONIC.

    Args:
        target: The daemon's ``(host, port)``; loopback only unless ``osc`` is given.
        rate_hz: Periodic messages per second (> 0).
        jitter_ms: Half-width of the uniform send jitter in ms (>= 0).
        seed: Seed of the jitter's ``random.Random``.
        clock: The host transport; default a new stopped :class:`HostClock` at 120 bpm, 4/4.
        osc: Endpoint to send from (and receive replies on); default a new :class:`OscClient`.
        register: register with the daemon (:meth:`OscClient.ensure_registered`)
            in :meth:`start`, before the sender thread runs: the daemon takes
            ``/band/transport`` only from a registered client. False to send to
            something else than the daemon.
        spin_s: Final stretch of each wait spent spinning, seconds.
        log_size: How many sent messages :meth:`sent` keeps.

    Raises:
        ValueError: Argument out of range or target not on loopback.
    """

    def __init__(
        self,
        target: tuple[str, int],
        rate_hz: float = 25.0,
        jitter_ms: float = 0.0,
        seed: int = 0,
        clock: HostClock | None = None,
        osc: OscClient | None = None,
        spin_s: float = 0.001,
        register: bool = True,
        log_size: int = 100_000,
    ) -> None:
        if not (math.isfinite(rate_hz) and 0 < rate_hz <= 1000):
            raise ValueError(f"rate_hz must be in range (0, 1000], got {rate_hz}")
        if not (math.isfinite(jitter_ms) and jitter_ms >= 0):
            raise ValueError(f"jitter_ms must be >= 0, got {jitter_ms}")
        self.clock: HostClock = clock if clock is not None else HostClock()
        self.osc: OscClient = osc if osc is not None else OscClient(target, auto_register=register)
        self.register = register
        if not register:
            self.osc.auto_register = False  # the sender thread must never wait for a handshake
        self._owns_osc = osc is None
        self.rate_hz = float(rate_hz)
        self.jitter_ms = float(jitter_ms)
        self.spin_s = float(spin_s)
        self._rng = random.Random(seed)
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._last_immediate_s = -math.inf
        self._sent: collections.deque[SentTransport] = collections.deque(maxlen=log_size)

    # -------------------------------------------------------------- lifecycle

    def start(self) -> HostSimulator:
        """Start the periodic sender thread (first message at once).

        Raises:
            RuntimeError: Already started, or closed.
            TimeoutError, ProtocolError: ``register`` and the daemon did not register it.
        """
        if self._thread is not None or self._closed:
            raise RuntimeError("HostSimulator already started (it cannot be restarted)")
        if self.register:
            self.osc.ensure_registered()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="hostsim-transport", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the sender thread and close the socket if this simulator created it. Idempotent."""
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._owns_osc:
            self.osc.close()

    def __enter__(self) -> HostSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---------------------------------------------------------------- sending

    def sent(self) -> list[SentTransport]:
        """A copy of the log of sent transport messages, in send order."""
        with self._send_lock:
            return list(self._sent)

    def _send_state(self, state: TransportState, reason: str) -> None:
        # Caller holds _send_lock, which keeps sends and the log in one order.
        dgram = transport_message(state)
        send_time_s = time.monotonic()
        self.osc.send_raw(dgram)
        self._sent.append(SentTransport(state.time_s, send_time_s, reason, state))

    def _immediate(self, change: Callable[[], TransportState], reason: str) -> TransportState:
        with self._send_lock:
            state = change()
            self._last_immediate_s = state.time_s
            self._send_state(state, reason)
        return state

    def send_now(self) -> TransportState:
        """Send the transport of this instant at once (e.g. a host's redraw); return it."""
        return self._immediate(self.clock.state_at, "now")

    def play(self) -> TransportState:
        """Start the host transport now and send it at once; return the state sent."""
        return self._immediate(self.clock.play, "play")

    def stop(self) -> TransportState:
        """Stop the host transport now and send it at once; return the state sent."""
        return self._immediate(self.clock.stop, "stop")

    def set_tempo(self, bpm: float) -> TransportState:
        """Change tempo now (quarter notes per minute) and send at once.

        Raises:
            TypeError, ValueError: ``bpm`` not in 1..999.
        """
        return self._immediate(lambda: self.clock.set_tempo(bpm), "tempo")

    def relocate(self, ppq: float, at_time_s: float | None = None, reason: str = "relocate") -> TransportState:
        """Jump to ``ppq`` (quarter notes) at ``at_time_s`` (default now) and send at once.

        Args:
            ppq: The new position, quarter notes.
            at_time_s: When the jump takes effect (CLOCK_MONOTONIC s), e.g. the
                instant a loop's end was reached; not before the latest change.
            reason: Logged with the message (:meth:`sent`), e.g. ``"loop"``.

        Raises:
            ValueError: ``ppq`` not finite, or ``at_time_s`` before the latest change.
        """
        return self._immediate(lambda: self.clock.relocate(ppq, at_time_s), reason)

    def set_time_signature(self, ts_num: int, ts_den: int) -> TransportState:
        """Change the meter now and send at once.

        Raises:
            TypeError, ValueError: Invalid meter.
        """
        return self._immediate(lambda: self.clock.set_time_signature(ts_num, ts_den), "meter")

    def _wait_until(self, deadline_s: float) -> bool:
        """Wait for ``deadline_s`` (monotonic s); False if asked to stop meanwhile."""
        while True:
            remaining = deadline_s - time.monotonic()
            if remaining <= 0:
                return not self._stop.is_set()
            if remaining > self.spin_s:
                if self._stop.wait(remaining - self.spin_s):
                    return False
            elif self._stop.is_set():
                return False

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        jitter = self.jitter_ms / 1000.0
        t0 = time.monotonic()
        n = 0
        try:
            while not self._stop.is_set():
                nominal = t0 + n * period
                lag = time.monotonic() - nominal
                if lag > period:
                    skipped = int(lag / period)
                    logger.debug("Transport sender %.1f ms late; skipping %d slots",
                                 lag * 1000, skipped)
                    n += skipped
                    continue
                offset = self._rng.uniform(-jitter, jitter) if jitter > 0 else 0.0
                if not self._wait_until(nominal + offset):
                    break
                with self._send_lock:
                    if nominal >= self._last_immediate_s:
                        self._send_state(self.clock.state_at(nominal), "periodic")
                n += 1
        except Exception:  # noqa: BLE001 - a dying sender must be visible
            logger.exception("Transport sender thread failed")
