"""The OSC endpoint's arrival times: taken by the kernel, not when the event loop gets round to it."""

import asyncio
import socket
import sys
import time

import pytest

from ai_band.osc.server import OscEndpoint

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIOCGSTAMPNS is Linux")


def _osc_ping() -> bytes:
    return b"/band/ping\x00\x00,\x00\x00\x00"


def test_arrival_time_is_when_the_datagram_arrived_not_when_the_loop_read_it():
    async def scenario():
        seen = []
        loop = asyncio.get_running_loop()
        transport, endpoint = await loop.create_datagram_endpoint(
            lambda: OscEndpoint(lambda address, params, sender, arrival_s, size_bytes: seen.append((address, arrival_s, time.monotonic())),
                                lambda sender, refused: None),
            local_addr=("127.0.0.1", 0),
        )
        target = transport.get_extra_info("sockname")
        # The endpoint switched stamping on; the kernel enables it for the
        # system from a work queue (net_enable_timestamp), so a datagram sent
        # at once may still arrive unstamped.
        await asyncio.sleep(0.2)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for _ in range(3):
                sent_s = time.monotonic()
                tx.sendto(_osc_ping(), target)
                time.sleep(0.08)  # the loop is busy: it reads the datagram 80 ms late
                await asyncio.sleep(0.01)
                address, arrival_s, handled_s = seen[-1]
                assert address == "/band/ping"
                assert handled_s - sent_s >= 0.08
                # Kernel stamp: within a few ms of the send, not 80 ms later.
                assert -0.001 <= arrival_s - sent_s < 0.02, (arrival_s - sent_s, handled_s - sent_s)
        transport.close()
        return endpoint

    endpoint = asyncio.run(scenario())
    assert endpoint.kernel_stamped == 3 and endpoint.clock_stamped == 0
