"""Who may talk to the daemon, and how much: allow-list, registrations, rate limits.

The threat model and what each ``[osc]`` key protects are in docs/security.md;
the handshake is in docs/osc-api.md.  In short:

* :class:`AllowList`: datagrams from outside ``[osc] allow`` (CIDR networks,
  stdlib :mod:`ipaddress`) are dropped unanswered.
* :class:`ClientTable`: ``/band/hello`` registers a client only after a
  return-routability check, as QUIC's address validation (RFC 9000 section 8)
  does: the daemon answers the *sender* with a nonce (:mod:`secrets`), and the
  registration of ``(sender ip, reply_port)`` takes effect when the nonce comes
  back from the same IP.  A forged source address therefore cannot register
  someone else's port.  Registrations lapse after ``[osc] client_timeout_s``
  without a message; a full table refuses newcomers (``too_many_clients``) but
  never a returning client (same ip and reply port, or same ip and name).
* :class:`TokenBucket`: per-client message, generation and render budgets.

Everything here is plain bookkeeping on the event loop: no I/O, no clock of its
own (callers pass CLOCK_MONOTONIC seconds), bounded in memory.
"""

from __future__ import annotations

import functools
import ipaddress
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable

from ai_band.errors import ProtocolError

Address = tuple[str, int]

#: Nonce length in bytes of randomness (``secrets.token_urlsafe``: 16 characters).
NONCE_BYTES = 12
#: A challenge not answered within this many seconds is forgotten.
PENDING_TIMEOUT_S = 10.0
#: Challenges outstanding at once, per allowed registration.
PENDING_PER_CLIENT = 4
#: Unregistered senders (IPs) whose rate buckets are kept; the least recent go first.
MAX_UNREGISTERED_BUCKETS = 1024
#: IP verdicts cached by :class:`AllowList`.
_ALLOW_CACHE = 4096


class AccessError(ProtocolError):
    """A message refused for who sent it or how often, not for what it says.

    Args:
        code: the ``/band/error`` code: ``unauthorized`` (control without the
            token), ``register_first`` (an answer or command that needs a
            verified ``/band/hello``), ``too_many_clients``, ``bad_nonce`` or
            ``rate_limited``.
        message: what to do about it.
        retry_s: for ``rate_limited``, seconds until the budget allows it.
    """

    def __init__(self, code: str, message: str, retry_s: float = 0.0) -> None:
        super().__init__(message)
        self.code = code
        self.retry_s = retry_s


@functools.lru_cache(maxsize=4096)
def _client_address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``ip`` as a socket reports it, parsed (a ``%zone`` dropped, IPv4-mapped IPv6 as IPv4); ``None`` if bad.

    Cached: every datagram and HTTP request is checked, and parsing is most of the check's cost.
    """
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def address_in(ip: str, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Whether the address ``ip`` (as a socket reports it; a ``%zone`` is ignored) lies in one of ``networks``.

    IPv4-mapped IPv6 addresses (``::ffff:192.0.2.1``) are checked as IPv4;
    an address that does not parse is in none.
    """
    addr = _client_address(ip)
    if addr is None:
        return False
    return any(addr.version == net.version and addr in net for net in networks)


class AllowList:
    """The client networks whose datagrams are read.

    Args:
        networks: CIDR strings such as ``"127.0.0.0/8"`` (host bits allowed).
            IPv4 clients of a socket bound to ``::`` arrive as IPv4-mapped
            IPv6 addresses (``::ffff:192.0.2.1``) and are matched as IPv4.

    Raises:
        ValueError: a network that does not parse (the config checks first).
    """

    def __init__(self, networks: Iterable[str]) -> None:
        self.networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        self._cache: dict[str, bool] = {}

    def allows(self, ip: str) -> bool:
        """Whether datagrams from ``ip`` (as the socket reports it) may be read."""
        verdict = self._cache.get(ip)
        if verdict is None:
            verdict = address_in(ip, self.networks)
            if len(self._cache) >= _ALLOW_CACHE:
                self._cache.clear()
            self._cache[ip] = verdict
        return verdict


class TokenBucket:
    """A token bucket: ``rate_per_s`` tokens a second, at most ``capacity`` saved.

    Starts full.  Times are CLOCK_MONOTONIC seconds given by the caller.
    """

    __slots__ = ("rate_per_s", "capacity", "tokens", "stamp_s")

    def __init__(self, rate_per_s: float, capacity: float, now_s: float) -> None:
        self.rate_per_s = rate_per_s
        self.capacity = max(1.0, capacity)
        self.tokens = self.capacity
        self.stamp_s = now_s

    def take(self, now_s: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens if there are; return 0.0, else the seconds until there will be."""
        self.tokens = min(self.capacity, self.tokens + (now_s - self.stamp_s) * self.rate_per_s)
        self.stamp_s = now_s
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate_per_s


@dataclass(frozen=True)
class Rates:
    """The ``[osc]`` rate figures.

    Attributes:
        messages_per_s: messages a second per client (``rate_messages_per_s``).
        burst_messages: messages a client may send at once (``burst_messages``).
        generations_per_min: ``/band/generate`` jobs a minute (``rate_generations_per_min``).
        renders_per_min: of those, jobs that render audio (``rate_renders_per_min``).
    """

    messages_per_s: float = 200.0
    burst_messages: int = 400
    generations_per_min: float = 60.0
    renders_per_min: float = 20.0


class Budget:
    """One client's buckets: messages, transport messages, generations, renders.

    ``/band/transport`` draws from its own bucket so that a client's other
    traffic (a burst of pings, a status poll) never starves its transport stream.
    """

    __slots__ = ("messages", "transport", "generations", "renders", "last_refusal_s")

    def __init__(self, rates: Rates, now_s: float) -> None:
        self.messages = TokenBucket(rates.messages_per_s, rates.burst_messages, now_s)
        self.transport = TokenBucket(rates.messages_per_s, rates.burst_messages, now_s)
        self.generations = TokenBucket(rates.generations_per_min / 60.0, rates.generations_per_min, now_s)
        self.renders = TokenBucket(rates.renders_per_min / 60.0, rates.renders_per_min, now_s)
        #: When this client was last told ``rate_limited`` (the answer is rate-limited too).
        self.last_refusal_s = -1e9


@dataclass
class Registration:
    """A verified client.

    Attributes:
        name: the client name it gave.
        ip: its IP (the sender's, verified).
        reply_port: where it wants replies (may differ from the port it sends from).
        control: it may send control messages (gave the token, or none is configured).
        last_seen_s: CLOCK_MONOTONIC seconds of its last message.
        sources: the ``(ip, port)`` addresses it sends from (its reply address,
            and the one that echoed the nonce).
        budget: its rate buckets.
    """

    name: str
    ip: str
    reply_port: int
    control: bool
    last_seen_s: float
    budget: Budget
    sources: set[Address] = field(default_factory=set)

    @property
    def reply_addr(self) -> Address:
        """``(ip, reply_port)``."""
        return (self.ip, self.reply_port)


@dataclass
class _Pending:
    name: str
    ip: str
    reply_port: int
    created_s: float


class ClientTable:
    """Registrations, challenges and the rate buckets of unregistered senders.

    Args:
        max_clients: registrations held at once (``[osc] max_clients``).
        timeout_s: a registration lapses this long after its last message
            (``[osc] client_timeout_s``).
        token: the shared secret (``[osc] token``); empty: every verified client may control.
        rates: the rate figures.
    """

    def __init__(self, max_clients: int = 32, timeout_s: float = 30.0, token: str = "",
                 rates: Rates = Rates()) -> None:
        self.max_clients = max_clients
        self.timeout_s = timeout_s
        self._token = token.encode()
        self.rates = rates
        self.clients: dict[Address, Registration] = {}
        self._by_source: dict[Address, Address] = {}
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._anonymous: OrderedDict[str, Budget] = OrderedDict()

    @property
    def token_required(self) -> bool:
        """Whether a token is configured."""
        return bool(self._token)

    # -- lookups ---------------------------------------------------------------
    def lookup(self, sender: Address, now_s: float) -> Registration | None:
        """The live registration ``sender`` belongs to, refreshed; None if none (or it lapsed)."""
        key = self._by_source.get(sender)
        if key is None:
            return None
        reg = self.clients.get(key)
        if reg is None or now_s - reg.last_seen_s > self.timeout_s:
            self._drop(key)
            return None
        reg.last_seen_s = now_s
        return reg

    def peek(self, addr: Address, now_s: float) -> Registration | None:
        """As :meth:`lookup`, without refreshing (for routing replies)."""
        key = self._by_source.get(addr)
        reg = self.clients.get(key) if key is not None else None
        if reg is None or now_s - reg.last_seen_s > self.timeout_s:
            return None
        return reg

    def budget(self, sender: Address, reg: Registration | None, now_s: float) -> Budget:
        """The rate buckets charged for a message from ``sender``: its registration's, else its IP's."""
        if reg is not None:
            return reg.budget
        budget = self._anonymous.get(sender[0])
        if budget is None:
            if len(self._anonymous) >= MAX_UNREGISTERED_BUCKETS:
                self._anonymous.popitem(last=False)
            budget = self._anonymous[sender[0]] = Budget(self.rates, now_s)
        else:
            self._anonymous.move_to_end(sender[0])
        return budget

    # -- the handshake ---------------------------------------------------------
    def challenge(self, name: str, sender: Address, reply_port: int, now_s: float) -> str:
        """Step 1 of ``/band/hello``: a nonce for ``sender`` to echo from its IP.

        Raises:
            AccessError: ``too_many_clients`` when the table is full of live
                registrations and this is not a returning client.
        """
        self._check_room(name, sender[0], reply_port, now_s)
        self._expire_pending(now_s)
        while len(self._pending) >= PENDING_PER_CLIENT * self.max_clients:
            self._pending.popitem(last=False)
        nonce = secrets.token_urlsafe(NONCE_BYTES)
        self._pending[nonce] = _Pending(name, sender[0], reply_port, now_s)
        return nonce

    def verify(self, name: str, sender: Address, reply_port: int, token: str, nonce: str,
               now_s: float) -> Registration:
        """Step 2 of ``/band/hello``: the nonce came back; register ``(sender ip, reply_port)``.

        Args:
            token: the token the client gave ("" for none).

        Raises:
            AccessError: ``bad_nonce`` (unknown, expired, or issued to another
                IP, reply port or name), ``unauthorized`` (a wrong token),
                ``too_many_clients`` (see :meth:`challenge`).
        """
        self._expire_pending(now_s)
        pending = self._pending.get(nonce)
        if pending is None or (pending.ip, pending.reply_port, pending.name) != (sender[0], reply_port, name):
            raise AccessError("bad_nonce", "no such challenge for this address: send /band/hello again "
                              "without a nonce, then echo the nonce of its /band/welcome")
        control = True
        if self._token:
            if token and not secrets.compare_digest(token.encode(), self._token):
                raise AccessError("unauthorized", "wrong token")
            control = bool(token)
        self._check_room(name, sender[0], reply_port, now_s)
        del self._pending[nonce]
        key = (sender[0], reply_port)
        for old_key in [k for k, r in self.clients.items() if k == key or (r.ip, r.name) == (sender[0], name)]:
            self._drop(old_key)
        reg = Registration(name, sender[0], reply_port, control, now_s, Budget(self.rates, now_s))
        reg.sources.update({key, sender})
        self.clients[key] = reg
        for source in reg.sources:
            self._by_source[source] = key
        return reg

    def remove(self, ip: str, name: str) -> list[Registration]:
        """Drop every registration of ``name`` at ``ip``; return them."""
        gone = [reg for reg in self.clients.values() if reg.ip == ip and reg.name == name]
        for reg in gone:
            self._drop(reg.reply_addr)
        return gone

    def expire(self, now_s: float) -> int:
        """Drop lapsed registrations and challenges; return how many registrations went."""
        lapsed = [k for k, r in self.clients.items() if now_s - r.last_seen_s > self.timeout_s]
        for key in lapsed:
            self._drop(key)
        self._expire_pending(now_s)
        return len(lapsed)

    # -- internals -------------------------------------------------------------
    def _check_room(self, name: str, ip: str, reply_port: int, now_s: float) -> None:
        returning = (ip, reply_port) in self.clients or any(
            (r.ip, r.name) == (ip, name) for r in self.clients.values())
        if returning or len(self.clients) < self.max_clients:
            return
        self.expire(now_s)
        if len(self.clients) >= self.max_clients:
            raise AccessError("too_many_clients", f"{self.max_clients} clients are registered already "
                              "([osc] max_clients); try again later")

    def _expire_pending(self, now_s: float) -> None:
        while self._pending:
            nonce, pending = next(iter(self._pending.items()))
            if now_s - pending.created_s <= PENDING_TIMEOUT_S:
                break
            del self._pending[nonce]

    def _drop(self, key: Address) -> None:
        reg = self.clients.pop(key, None)
        sources = reg.sources if reg is not None else {key}
        for source in sources:
            if self._by_source.get(source) == key:
                del self._by_source[source]
