"""DNS-SD advertisement of the OSC endpoint over mDNS (python-zeroconf).

Service type ``_osc._udp.local.`` (the registered DNS-SD type for Open Sound
Control), instance ``<name> on <hostname>``, TXT ``proto=ai-band/1``,
``version=<package version>``, ``osc=/band``.  With the HTTP server, the same
instance is also advertised as ``_oscjson._tcp.local.`` (the OSCQuery
proposal's service type) on the HTTP port (:meth:`Advertiser.add_oscquery`).
Following Mopidy's zeroconf module, a failure to advertise is logged and
never fatal.
"""

from __future__ import annotations

import asyncio
import importlib
import ipaddress
import logging
import socket

from ai_band import __version__

log = logging.getLogger(__name__)

SERVICE_TYPE = "_osc._udp.local."
#: OSCQuery's service type (github.com/Vidvox/OSCQueryProposal): the HTTP server serving the tree.
OSCQUERY_SERVICE_TYPE = "_oscjson._tcp.local."
PROTOCOL = "ai-band/1"
#: Probing plus announcing normally take ~1.7 s.
REGISTER_TIMEOUT_S = 10.0


def advertised_addresses(interfaces: tuple[str, ...], bind_host: str) -> list[str]:
    """IPv4 addresses to put in the A records.

    Args:
        interfaces: configured interface addresses; empty means all.
        bind_host: the OSC bind address; a specific one is advertised as is.

    Returns:
        Dotted-quad strings; loopback only if nothing else exists or was asked for.
    """
    if interfaces:
        return list(interfaces)
    if bind_host not in ("0.0.0.0", "::"):
        return [bind_host]
    import ifaddr

    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ipaddress.ip_address(ip.ip).is_loopback:
                found.append(ip.ip)
    return found or ["127.0.0.1"]


class Advertiser:
    """Registers and withdraws the ``_osc._udp`` service.

    Args:
        name: instance name; the service is ``"<name> on <hostname>"``.
        port: the OSC UDP port.
        interfaces: IPv4 addresses of the interfaces to use; empty = all.
        bind_host: the OSC bind address.
    """

    def __init__(self, name: str, port: int, interfaces: tuple[str, ...] = (), bind_host: str = "0.0.0.0") -> None:
        self.hostname = socket.gethostname().split(".")[0]
        self.instance = f"{name} on {self.hostname}"
        self.port = port
        self.interfaces = interfaces
        self.bind_host = bind_host
        self.registered_name: str | None = None
        self._zc = None
        self._info = None
        self._oscquery_info = None
        self._started = asyncio.Event()

    async def start(self) -> bool:
        """Advertise; returns False (and logs) on any failure instead of raising.

        Takes ~1.7 s (probing, then announcing): the daemon runs it as a
        background task and may cancel it; :meth:`stop` still says goodbye
        for a service that got as far as being announced.
        """
        try:
            # zeroconf takes ~0.1 s to import: in a thread, the loop keeps answering OSC.
            await asyncio.to_thread(importlib.import_module, "zeroconf.asyncio")
            from zeroconf import IPVersion
            from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

            addresses = advertised_addresses(self.interfaces, self.bind_host)
            kwargs = {"interfaces": list(self.interfaces)} if self.interfaces else {}
            self._zc = AsyncZeroconf(ip_version=IPVersion.V4Only, **kwargs)
            self._info = AsyncServiceInfo(
                SERVICE_TYPE,
                f"{self.instance}.{SERVICE_TYPE}",
                port=self.port,
                properties={"proto": PROTOCOL, "version": __version__, "osc": "/band"},
                parsed_addresses=addresses,
                server=f"{self.hostname}.local.",
            )
            async with asyncio.timeout(REGISTER_TIMEOUT_S):
                # Probing (RFC 6762 section 8.1); then the service is in the
                # registry, announcements may go out, and stop() says goodbye.
                announcing = await self._zc.async_register_service(self._info, allow_name_change=True)
                self.registered_name = self._info.name
                await announcing
            log.info("zeroconf: advertising %r on %s port %d", self._info.name, ", ".join(addresses), self.port)
            return True
        except Exception as exc:  # noqa: BLE001 - advertising is a convenience, never fatal
            log.warning("zeroconf: could not advertise the OSC service: %s", exc)
            await self.stop()
            return False
        finally:
            self._started.set()

    async def add_oscquery(self, http_port: int) -> bool:
        """Also advertise ``_oscjson._tcp`` on ``http_port``, once :meth:`start` has finished.

        Same instance name, host and addresses as the OSC service, TXT
        ``proto``, ``version``. Returns False (logged) when the OSC service
        could not be advertised or this registration fails; never raises.
        """
        await self._started.wait()
        zc, osc_info = self._zc, self._info
        if zc is None or osc_info is None:
            return False
        try:
            from zeroconf.asyncio import AsyncServiceInfo

            instance = osc_info.name[: -len(SERVICE_TYPE)].rstrip(".")
            info = AsyncServiceInfo(
                OSCQUERY_SERVICE_TYPE,
                f"{instance}.{OSCQUERY_SERVICE_TYPE}",
                port=http_port,
                properties={"proto": PROTOCOL, "version": __version__},
                parsed_addresses=osc_info.parsed_addresses(),
                server=osc_info.server,
            )
            async with asyncio.timeout(REGISTER_TIMEOUT_S):
                announcing = await zc.async_register_service(info, allow_name_change=True)
                self._oscquery_info = info
                await announcing
            log.info("zeroconf: advertising %r on port %d", info.name, http_port)
            return True
        except Exception as exc:  # noqa: BLE001 - advertising is a convenience, never fatal
            log.warning("zeroconf: could not advertise the OSCQuery service: %s", exc)
            return False

    async def stop(self) -> None:
        """Send the goodbye (unregister) and close; idempotent, never raises."""
        zc, info, oscquery = self._zc, self._info, self._oscquery_info
        self._zc = self._info = self._oscquery_info = None
        self._started.set()  # an add_oscquery() still waiting gives up
        if zc is None:
            return
        try:
            if oscquery is not None:
                await asyncio.wait_for(await zc.async_unregister_service(oscquery), timeout=3)
            if info is not None and self.registered_name:
                await asyncio.wait_for(await zc.async_unregister_service(info), timeout=3)
                log.info("zeroconf: goodbye sent for %r", self.registered_name)
        except Exception as exc:  # noqa: BLE001
            log.warning("zeroconf: unregister failed: %s", exc)
        finally:
            try:
                await asyncio.wait_for(zc.async_close(), timeout=3)
            except Exception as exc:  # noqa: BLE001
                log.debug("zeroconf: close failed: %s", exc)
