"""The OSC UDP endpoint on asyncio.

python-osc's ``AsyncIOOSCUDPServer`` calls handlers synchronously and, with
``strict_timing`` (its default), *sleeps inside the event loop* until a
future-dated bundle is due.  We use python-osc only to parse packets
(:class:`pythonosc.osc_packet.OscPacket`, OSC 1.0 messages and nested
bundles) and schedule future-dated messages with ``loop.call_at`` instead,
so the loop never blocks.

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
import struct
import sys
import time
from typing import Any, Callable

from pythonosc.osc_packet import OscPacket

log = logging.getLogger(__name__)

#: Largest datagram accepted (bytes); bigger ones are counted as malformed.
MAX_DATAGRAM_BYTES = 65507
#: How far in the future a bundle may be dated, seconds.
MAX_BUNDLE_DELAY_S = 60.0

Address = tuple[str, int]
MessageHandler = Callable[[str, list[Any], Address, float], None]
BadPacketHandler = Callable[[Address, str], None]

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


class OscEndpoint(asyncio.DatagramProtocol):
    """Receives datagrams, parses them and hands each message to ``on_message``.

    Args:
        on_message: ``on_message(address, params, sender, arrival_s)`` for
            every message, ``arrival_s`` in CLOCK_MONOTONIC seconds: when the
            kernel received the datagram (see the module docstring).  Must
            not block.
        on_bad_packet: ``on_bad_packet(sender, reason)`` for a datagram that
            is not OSC 1.0 (random bytes, truncated, too large).
    """

    def __init__(self, on_message: MessageHandler, on_bad_packet: BadPacketHandler) -> None:
        self.on_message = on_message
        self.on_bad_packet = on_bad_packet
        self.transport: asyncio.DatagramTransport | None = None
        self._timers: set[asyncio.TimerHandle] = set()
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
        if len(data) > MAX_DATAGRAM_BYTES:
            self.on_bad_packet(sender, f"datagram of {len(data)} bytes is too large")
            return
        try:
            packet = OscPacket(data)
            messages = packet.messages
        except Exception as exc:  # noqa: BLE001 - python-osc raises several types on garbage
            self.on_bad_packet(sender, f"not an OSC packet: {exc}"[:200])
            return
        now_wall = time.time()
        loop = asyncio.get_running_loop()
        for timed in messages:
            msg = timed.message
            try:
                params = list(msg.params)
                address = msg.address
            except Exception as exc:  # noqa: BLE001
                self.on_bad_packet(sender, f"undecodable message: {exc}"[:200])
                continue
            delay = timed.time - now_wall
            if delay > 0.0005:
                if delay > MAX_BUNDLE_DELAY_S:
                    self.on_bad_packet(sender, f"bundle dated {delay:.0f} s ahead (max {MAX_BUNDLE_DELAY_S:.0f} s)")
                    continue
                handle: asyncio.TimerHandle

                def fire(a=address, p=params) -> None:
                    self._timers.discard(handle)
                    self.on_message(a, p, sender, time.monotonic())

                handle = loop.call_later(delay, fire)
                self._timers.add(handle)
            else:
                self.on_message(address, params, sender, arrival_s)

    @property
    def port(self) -> int:
        """The local UDP port it is bound to; 0 before the socket is made."""
        if self.transport is None:
            return 0
        return self.transport.get_extra_info("sockname")[1]

    def error_received(self, exc: Exception) -> None:  # noqa: D102
        # e.g. ICMP port unreachable from a client that went away: not our problem.
        log.debug("UDP error: %s", exc)

    def sendto(self, data: bytes, addr: Address) -> None:
        """Send a datagram; failures are logged, never raised."""
        if self.transport is None or self.transport.is_closing():
            return
        try:
            self.transport.sendto(data, addr)
        except OSError as exc:
            log.debug("sending to %s:%d failed: %s", addr[0], addr[1], exc)

    def close(self) -> None:
        """Cancel pending bundle timers and close the socket."""
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        if self.transport is not None:
            self.transport.close()
