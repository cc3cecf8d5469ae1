"""The OSC UDP endpoint on asyncio.

python-osc's ``AsyncIOOSCUDPServer`` calls handlers synchronously and, with
``strict_timing`` (its default), *sleeps inside the event loop* until a
future-dated bundle is due.  We use python-osc only to parse packets
(:class:`pythonosc.osc_packet.OscPacket`, OSC 1.0 messages and nested
bundles) and schedule future-dated messages with ``loop.call_at`` instead,
so the loop never blocks.

What one datagram may cost is bounded before python-osc parses it
(:func:`scan_packet`, a walk over the raw bytes): type tags outside
:data:`TYPE_TAGS`, more than ``[osc] max_args`` arguments in a message, more
than ``[osc] max_bundle_messages`` messages in a bundle and bundles nested
deeper than :data:`MAX_BUNDLE_DEPTH` are refused whole.  Future-dated bundles
wait as one timer per time tag, at most ``[osc] max_scheduled_messages``
messages in all and at most ``[osc] max_schedule_ahead_s`` ahead; a bundle past
either cap is refused whole (``busy``).

Every datagram is counted exactly once in :attr:`OscEndpoint.counters`:
``packets`` (all), and one of ``packets_denied`` (from outside ``[osc] allow``:
dropped unanswered, before any parsing), ``packets_refused`` (refused whole,
see above) or ``packets_ok`` (its messages dispatched or scheduled).  The
socket's receive buffer is raised to ``[osc] recv_buffer_bytes`` at start, so
that a burst from one sender does not push the host's transport messages out
of the kernel's queue.

Arrival times come from the kernel where it can tell (Linux: the
``SIOCGSTAMPNS`` ioctl, socket(7), the receive time of the last datagram
read from the socket), not from when the event loop got round to the
datagram: the transport clock model (:mod:`ai_band.transport`) averages
arrival times, and a loop that wakes a few milliseconds late (the machine
busy rendering, say) would otherwise bias its estimate of the host's clock
for the whole averaging window.  Elsewhere, or when the kernel has no stamp,
the arrival time is read as the datagram is handled.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import socket
import struct
import sys
import time
from collections import Counter
from typing import Any, Callable

from pythonosc.osc_packet import OscPacket

from ai_band.config.schema import OscSection
from ai_band.errors import ProtocolError
from ai_band.osc.access import AllowList
from ai_band.osc.logs import RateLimitedLog

log = logging.getLogger(__name__)

#: Largest datagram accepted (bytes); bigger ones are counted as malformed.
MAX_DATAGRAM_BYTES = 65507
#: Type tags accepted: exactly those python-osc 1.10 parses, OSC 1.0's required
#: ``i f s b`` and, of its nonstandard ones, ``h t d r m T F N [ ]``.  Any other
#: (``S c I`` or garbage) is refused before python-osc sees the message: it would
#: log one warning per such tag and read the arguments after it from the wrong bytes.
TYPE_TAGS = b"ifsbhtdrmTFN[]"
#: Bundles nested deeper than this are malformed (python-osc parses them recursively).
MAX_BUNDLE_DEPTH = 8
#: A message dated less than this ahead runs at once, seconds.
_IMMEDIATE_S = 0.0005
_BUNDLE_PREFIX = b"#bundle\x00"
_INT32 = struct.Struct(">i")

Address = tuple[str, int]
MessageHandler = Callable[[str, list[Any], Address, float, int], None]


class PacketRefused(ProtocolError):
    """A datagram refused whole before any of its messages is dispatched.

    Args:
        code: the ``/band/error`` code: ``malformed`` (not OSC 1.0),
            ``bad_type_tag``, ``too_many_args`` or ``busy`` (a bundle past a cap).
        reason: what was wrong, for the error message.
        ref: the offending message's address, when there is one.
        messages: how many messages the refused datagram held (0 if unknown).

    Attributes:
        size_bytes: the refused datagram's length (set by the endpoint): an
            unregistered sender's error reply may not be longer.
    """

    def __init__(self, code: str, reason: str, ref: str = "", messages: int = 0) -> None:
        super().__init__(reason)
        self.code = code
        self.ref = ref
        self.messages = messages
        self.size_bytes = 0


BadPacketHandler = Callable[[Address, PacketRefused], None]


def _malformed(reason: str) -> PacketRefused:
    return PacketRefused("malformed", reason[:200])


def _check_message(msg: bytes, max_args: int) -> None:
    """Check one message's type tag string (OSC 1.0: ``,`` then one tag per argument) on the raw bytes.

    Raises:
        PacketRefused: ``bad_type_tag``, ``too_many_args`` or ``malformed``.
    """
    end = msg.find(b"\x00")
    if end < 0:
        raise _malformed("address pattern is not terminated")
    ref = msg[:min(end, 200)].decode("utf-8", "replace")
    start = (end // 4 + 1) * 4
    if start >= len(msg):
        return  # no type tag string: no arguments (OSC 1.0 tolerates it from older senders)
    if msg[start] != ord(","):
        raise PacketRefused("malformed", "type tag string does not start with ','", ref)
    stop = msg.find(b"\x00", start)
    if stop < 0:
        raise PacketRefused("malformed", "type tag string is not terminated", ref)
    tags = msg[start + 1:stop]
    unknown = tags.translate(None, TYPE_TAGS)
    if unknown:
        shown = ", ".join(repr(chr(c)) for c in sorted(set(unknown[:1000])))[:100]
        raise PacketRefused("bad_type_tag", f"{ref}: unsupported type tag(s) {shown}; "
                            f"accepted: {' '.join(TYPE_TAGS.decode())}", ref)
    if len(tags) > max_args:
        raise PacketRefused("too_many_args", f"{ref}: {len(tags)} type tags, at most {max_args} "
                            "([osc] max_args)", ref)


def scan_packet(data: bytes, max_args: int, max_bundle_messages: int) -> int:
    """Walk a datagram's bundles and type tag strings without decoding arguments; return its message count.

    Cost: linear in ``len(data)``, in C (``bytes.find``, ``bytes.translate``)
    except one Python step per bundle element.

    Raises:
        PacketRefused: ``malformed`` (not an OSC 1.0 packet: a bundle element
            of a size that is not a positive multiple of 4 within its bundle,
            neither a message nor a bundle, nested deeper than
            :data:`MAX_BUNDLE_DEPTH`), ``bad_type_tag``, ``too_many_args``
            (see :func:`_check_message`) or ``busy`` (more than
            ``max_bundle_messages`` messages).
    """
    pending = [(data, 0)]
    count = 0
    while pending:
        element, depth = pending.pop()
        if element.startswith(b"/"):
            count += 1
            if count > max_bundle_messages:
                raise PacketRefused("busy", f"a bundle holds more than {max_bundle_messages} messages "
                                    "([osc] max_bundle_messages)")
            _check_message(element, max_args)
        elif element.startswith(_BUNDLE_PREFIX):
            if depth >= MAX_BUNDLE_DEPTH:
                raise _malformed(f"bundles nested deeper than {MAX_BUNDLE_DEPTH}")
            if len(element) < 16:
                raise _malformed("bundle without a time tag")
            index = 16
            while index < len(element):
                if index + 4 > len(element):
                    raise _malformed(f"bundle element size cut off at byte {index}")
                (size,) = _INT32.unpack_from(element, index)
                index += 4
                if size <= 0 or size % 4 or index + size > len(element):
                    raise _malformed(f"bundle element of {size} bytes at byte {index - 4} "
                                     f"of a {len(element)}-byte bundle")
                pending.append((element[index:index + size], depth + 1))
                index += size
        else:
            raise _malformed("neither an OSC message nor a bundle" if depth else "not an OSC packet")
    return count

#: linux/sockios.h: struct timespec of the last datagram's arrival (CLOCK_REALTIME).
SIOCGSTAMPNS = 0x8907
#: A kernel stamp older than this is not the datagram being handled, ns.
_MAX_STAMP_AGE_NS = 1_000_000_000


def kernel_arrival_s(fd: int) -> float | None:
    """CLOCK_MONOTONIC seconds at which the kernel received the last datagram read from ``fd``.

    Args:
        fd: a UDP socket's file descriptor, just after a ``recvfrom``.

    Returns:
        The time, or ``None`` when the platform or socket has no stamp (the
        first call on a socket only switches stamping on), or the stamp is
        implausible (in the future, or more than 1 s old).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        sec, nsec = struct.unpack("qq", fcntl.ioctl(fd, SIOCGSTAMPNS, bytes(16)))
    except OSError:
        return None
    now_ns = time.monotonic_ns()
    age_ns = time.time_ns() - (sec * 1_000_000_000 + nsec)
    if not 0 <= age_ns < _MAX_STAMP_AGE_NS:
        return None
    return (now_ns - age_ns) / 1e9


#: linux/asm-generic/socket.h: SO_RCVBUF without the net.core.rmem_max cap (needs CAP_NET_ADMIN).
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33 if sys.platform.startswith("linux") else None)


def raise_recv_buffer(sock: Any, want_bytes: int) -> int:
    """Ask for a ``want_bytes`` receive buffer on ``sock``; return what the kernel reports.

    Tries ``SO_RCVBUFFORCE`` first (Linux, root or CAP_NET_ADMIN: past
    ``net.core.rmem_max``), then ``SO_RCVBUF`` (capped at ``rmem_max``).
    Linux reports twice the figure set (socket(7): the kernel keeps room for
    its bookkeeping).  ``want_bytes`` 0 leaves the system default.
    """
    if want_bytes > 0:
        forced = False
        if SO_RCVBUFFORCE is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, want_bytes)
                forced = True
            except OSError:
                pass
        if not forced:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, want_bytes)
            except OSError as exc:
                log.warning("cannot set the OSC socket's receive buffer to %d bytes: %s", want_bytes, exc)
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


def _rmem_max() -> str:
    try:
        with open("/proc/sys/net/core/rmem_max", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


class OscEndpoint(asyncio.DatagramProtocol):
    """Receives datagrams, checks and parses them and hands each message to ``on_message``.

    Args:
        on_message: ``on_message(address, params, sender, arrival_s, size_bytes)``
            for every message, ``arrival_s`` in CLOCK_MONOTONIC seconds: when
            the kernel received the datagram (see the module docstring), or
            when a future-dated bundle came due; ``size_bytes`` the message's
            share of its datagram (length / messages in it), the most an
            unregistered sender's reply may take.  Must not block.
        on_bad_packet: ``on_bad_packet(sender, refused)`` for a datagram
            refused whole (:class:`PacketRefused`: not OSC 1.0, too large,
            unsupported type tags, too many arguments, a bundle past a cap).
        limits: the ``[osc]`` section: ``max_args``, ``max_bundle_messages``,
            ``max_scheduled_messages``, ``max_schedule_ahead_s``, ``allow``,
            ``recv_buffer_bytes``.

    Attributes:
        scheduled_messages: messages waiting for their bundle's time.
        counters: datagrams by fate (see the module docstring).
        recv_buffer_bytes: the socket's receive buffer as the kernel reports it.
    """

    def __init__(self, on_message: MessageHandler, on_bad_packet: BadPacketHandler,
                 limits: OscSection = OscSection()) -> None:
        self.on_message = on_message
        self.on_bad_packet = on_bad_packet
        self.limits = limits
        self.allow = AllowList(limits.allow)
        self.counters: Counter[str] = Counter()
        self.recv_buffer_bytes = 0
        self._log = RateLimitedLog()
        self.transport: asyncio.DatagramTransport | None = None
        self._timers: dict[asyncio.TimerHandle, int] = {}
        self.scheduled_messages = 0
        self._fd: int | None = None
        #: Datagrams whose arrival time came from the kernel / from the clock.
        self.kernel_stamped = 0
        self.clock_stamped = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self._fd = sock.fileno()
            kernel_arrival_s(self._fd)  # switches the socket's receive stamps on
            want = self.limits.recv_buffer_bytes
            self.recv_buffer_bytes = raise_recv_buffer(sock, want)
            log.info("OSC receive buffer: asked %d bytes, kernel reports %d (Linux reports twice what "
                     "it grants; without CAP_NET_ADMIN capped at net.core.rmem_max = %s)",
                     want, self.recv_buffer_bytes, _rmem_max())

    def datagram_received(self, data: bytes, addr: Address) -> None:  # noqa: D102
        # asyncio calls this straight after its recvfrom(): the socket's last
        # stamp is this datagram's.
        arrival_s = kernel_arrival_s(self._fd) if self._fd is not None else None
        if arrival_s is None:
            arrival_s = time.monotonic()
            self.clock_stamped += 1
        else:
            self.kernel_stamped += 1
        sender = (addr[0], addr[1])
        self.counters["packets"] += 1
        if not self.allow.allows(sender[0]):
            self.counters["packets_denied"] += 1
            self._log.warning("denied", "datagram from %s:%d dropped: not in [osc] allow", sender[0], sender[1])
            return
        try:
            messages = self._parse(data)
        except PacketRefused as refused:
            self._refuse(sender, refused, len(data))
            return
        now_wall = time.time()
        later: dict[float, list[tuple[str, list[Any]]]] = {}
        for when, address, params in messages:
            if when - now_wall > _IMMEDIATE_S:
                later.setdefault(when, []).append((address, params))
        if later:
            try:
                self._check_schedule(max(later) - now_wall, sum(map(len, later.values())))
            except PacketRefused as refused:
                refused.messages = len(messages)
                self._refuse(sender, refused, len(data))
                return
        self.counters["packets_ok"] += 1
        share = len(data) // max(1, len(messages))
        for when, address, params in messages:
            if when - now_wall <= _IMMEDIATE_S:
                self.on_message(address, params, sender, arrival_s, share)
        for when, batch in later.items():
            self._schedule(when - time.time(), batch, sender, share)

    def _refuse(self, sender: Address, refused: PacketRefused, size_bytes: int) -> None:
        self.counters["packets_refused"] += 1
        refused.size_bytes = size_bytes
        self.on_bad_packet(sender, refused)

    def _parse(self, data: bytes) -> list[tuple[float, str, list[Any]]]:
        """``(wall-clock time due, address, params)`` of each message in ``data``, in time order.

        Raises:
            PacketRefused: see :func:`scan_packet`; ``malformed`` for what python-osc refuses.
        """
        if len(data) > MAX_DATAGRAM_BYTES:
            raise _malformed(f"datagram of {len(data)} bytes is too large")
        scan_packet(data, self.limits.max_args, self.limits.max_bundle_messages)
        try:
            return [(timed.time, timed.message.address, list(timed.message.params))
                    for timed in OscPacket(data).messages]
        except Exception as exc:  # noqa: BLE001 - python-osc raises several types on garbage
            raise _malformed(f"not an OSC packet: {exc}") from None

    def _check_schedule(self, ahead_s: float, later_count: int) -> None:
        """Raise ``busy`` when ``later_count`` more messages up to ``ahead_s`` ahead would pass a cap."""
        limits = self.limits
        if ahead_s > limits.max_schedule_ahead_s:
            raise PacketRefused("busy", f"bundle dated {ahead_s:.1f} s ahead, at most "
                                f"{limits.max_schedule_ahead_s:g} s ([osc] max_schedule_ahead_s)")
        if self.scheduled_messages + later_count > limits.max_scheduled_messages:
            raise PacketRefused("busy", f"{self.scheduled_messages} messages wait for their time already; "
                                f"{later_count} more would pass {limits.max_scheduled_messages} "
                                "([osc] max_scheduled_messages)")

    def _schedule(self, delay_s: float, batch: list[tuple[str, list[Any]]], sender: Address, share: int) -> None:
        """Dispatch ``batch`` (one time tag's messages, in order) after ``delay_s`` on one timer."""
        handle: asyncio.TimerHandle

        def fire() -> None:
            self.scheduled_messages -= self._timers.pop(handle, 0)
            due_s = time.monotonic()
            for address, params in batch:
                self.on_message(address, params, sender, due_s, share)

        handle = asyncio.get_running_loop().call_later(max(0.0, delay_s), fire)
        self._timers[handle] = len(batch)
        self.scheduled_messages += len(batch)

    @property
    def port(self) -> int:
        """The local UDP port it is bound to; 0 before the socket is made."""
        if self.transport is None:
            return 0
        return self.transport.get_extra_info("sockname")[1]

    def error_received(self, exc: Exception) -> None:  # noqa: D102
        # e.g. ICMP port unreachable from a client that went away: not our problem;
        # asyncio also reports a failed sendto (EMSGSIZE, ENOBUFS) here.
        self.counters["udp_errors"] += 1
        log.debug("UDP error: %s", exc)

    def sendto(self, data: bytes, addr: Address) -> None:
        """Send a datagram; failures are logged, never raised."""
        if self.transport is None or self.transport.is_closing():
            return
        try:
            self.transport.sendto(data, addr)
        except OSError as exc:
            self.counters["send_failed"] += 1
            self._log.warning("send", "sending %d bytes to %s:%d failed: %s", len(data), addr[0], addr[1], exc)

    def close(self) -> None:
        """Cancel pending bundle timers and close the socket."""
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self.scheduled_messages = 0
        if self.transport is not None:
            self.transport.close()
