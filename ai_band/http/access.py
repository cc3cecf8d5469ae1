"""Who may use the HTTP server: the peer's address against an allow-list, and a bearer token.

The rules are the OSC endpoint's (``[osc] allow``, a list of networks in CIDR
notation, and ``[osc] token``), read from the config when those keys exist:
one rule set for both ports.  Pure functions, no HTTP library.

* ``allow`` empty: every peer may connect (as OSC does without an allow-list);
  otherwise the peer's address must lie in one of the networks, on every route.
* ``token`` empty: no token; otherwise every route except :data:`TOKEN_FREE`
  needs ``Authorization: Bearer <token>`` (compared in constant time).
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from typing import Any, Iterable

from ai_band.osc.access import address_in

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Routes answered without a token (still subject to the allow-list): the
#: health probe for service managers, and the OSCQuery tree, which OSCQuery
#: browsers (ossia score, Chataigne, VDMX) fetch without credentials and which
#: holds nothing docs/osc-api.md does not publish.
TOKEN_FREE = ("health", "oscquery")


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: HTTP status, error code, message."""

    status: int
    code: str
    message: str


def parse_networks(items: Iterable[str | IpNetwork]) -> tuple[IpNetwork, ...]:
    """CIDR strings (``"192.168.1.0/24"``, ``"127.0.0.1"``) -> networks.

    Raises:
        ValueError: an item is not an address or network (the config schema
            validates ``[osc] allow`` before this sees it).
    """
    return tuple(item if isinstance(item, (ipaddress.IPv4Network, ipaddress.IPv6Network))
                 else ipaddress.ip_network(str(item).strip(), strict=False) for item in items)


def rules_from_config(config: Any) -> tuple[tuple[IpNetwork, ...], str]:
    """``([osc] allow, [osc] token)`` when the config has those keys, else ``((), "")``."""
    osc = getattr(config, "osc", None)
    allow = getattr(osc, "allow", ()) or ()
    token = getattr(osc, "token", "") or ""
    return parse_networks(allow), str(token)


def peer_allowed(peer: str | None, allow: tuple[IpNetwork, ...]) -> bool:
    """True when ``allow`` is empty or the peer address lies in one of its networks.

    An unknown or unparsable peer (``None``, a Unix socket) is refused when an allow-list is set.
    IPv4-mapped IPv6 peers (``::ffff:192.0.2.1``) are checked as IPv4.
    """
    if not allow:
        return True
    return bool(peer) and address_in(peer, allow)


def token_ok(authorization: str | None, token: str) -> bool:
    """True when no token is configured, or ``authorization`` is ``Bearer <token>``."""
    if not token:
        return True
    if not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))


def check(peer: str | None, authorization: str | None, route_kind: str,
          allow: tuple[IpNetwork, ...], token: str) -> Refusal | None:
    """The refusal for one request, or None to serve it.

    Args:
        peer: the client's IP address as the socket reports it.
        authorization: the ``Authorization`` header, or None.
        route_kind: ``"health"``, ``"oscquery"``, ``"api"``, ``"metrics"``, ``"files"``.
        allow: allowed networks; empty = all.
        token: the bearer token; empty = none needed.

    Returns:
        403 ``forbidden`` for a peer outside the allow-list, 401 ``unauthorized``
        for a missing or wrong token, else None.
    """
    if not peer_allowed(peer, allow):
        return Refusal(403, "forbidden", f"{peer} is not in the allow-list ([osc] allow)")
    if route_kind not in TOKEN_FREE and not token_ok(authorization, token):
        return Refusal(401, "unauthorized", "this route needs 'Authorization: Bearer <token>' ([osc] token)")
    return None
