"""The OSC UDP endpoint on asyncio.

python-osc's ``AsyncIOOSCUDPServer`` calls handlers synchronously and, with
``strict_timing`` (its default), *sleeps inside the event loop* until a
future-dated bundle is due.  We use python-osc only to parse packets
(:class:`pythonosc.osc_packet.OscPacket`, OSC 1.0 messages and nested
bundles) and schedule future-dated messages with ``loop.call_at`` instead,
so the loop never blocks.
"""

from __future__ import annotations

import asyncio
import logging
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


class OscEndpoint(asyncio.DatagramProtocol):
    """Receives datagrams, parses them and hands each message to ``on_message``.

    Args:
        on_message: ``on_message(address, params, sender, arrival_s)`` for
            every message, ``arrival_s`` in CLOCK_MONOTONIC seconds taken as
            the datagram arrived.  Must not block.
        on_bad_packet: ``on_bad_packet(sender, reason)`` for a datagram that
            is not OSC 1.0 (random bytes, truncated, too large).
    """

    def __init__(self, on_message: MessageHandler, on_bad_packet: BadPacketHandler) -> None:
        self.on_message = on_message
        self.on_bad_packet = on_bad_packet
        self.transport: asyncio.DatagramTransport | None = None
        self._timers: set[asyncio.TimerHandle] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Address) -> None:  # noqa: D102
        arrival_s = time.monotonic()
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
