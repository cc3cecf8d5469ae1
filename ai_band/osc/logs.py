"""Rate-limited logging: what a flood of bad datagrams may cost in log lines.

One rule for the daemon's own warnings (:class:`RateLimitedLog`) and for the
third-party libraries that log per datagram or per event (:class:`RateLimitFilter`
on :data:`THIRD_PARTY_LOGGERS`): at most one line per kind per
:data:`LOG_INTERVAL_S`, the rest counted and reported with the next line of
that kind as ``(+N similar suppressed)``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any, Hashable

log = logging.getLogger("ai_band.osc.api")

#: At most one log line per kind per this many seconds.
LOG_INTERVAL_S = 1.0

#: Loggers of libraries that can log once per datagram or event, rate-limited by
#: :func:`limit_third_party_logs`.  ``""`` is the root logger: python-osc 1.10
#: logs through ``logging.warning`` (one line per unknown type tag, one per
#: unidentified bundle element).
THIRD_PARTY_LOGGERS: tuple[str, ...] = ("", "pythonosc", "zeroconf", "asyncio")


class RateLimit:
    """Admits one event per ``interval_s`` per kind and counts the others.

    Args:
        interval_s: the minimum time between two admitted events of one kind, seconds.
    """

    def __init__(self, interval_s: float = LOG_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._last: dict[Hashable, float] = {}
        self._suppressed: Counter[Hashable] = Counter()

    def admit(self, kind: Hashable) -> int | None:
        """``None`` when an event of ``kind`` must be dropped (and counts it), else the number dropped since the last."""
        now = time.monotonic()
        if now - self._last.get(kind, -1e9) < self.interval_s:
            self._suppressed[kind] += 1
            return None
        self._last[kind] = now
        return self._suppressed.pop(kind, 0)


def _suffix(suppressed: int) -> str:
    return f" (+{suppressed} similar suppressed)" if suppressed else ""


class RateLimitedLog:
    """The daemon's warnings about what clients send: at most one line per kind per interval."""

    def __init__(self, interval_s: float = LOG_INTERVAL_S) -> None:
        self._limit = RateLimit(interval_s)

    def warning(self, kind: str, fmt: str, *args: Any) -> None:
        """Log ``fmt % args`` as a warning unless a line of ``kind`` went out less than the interval ago."""
        self.log(logging.WARNING, kind, fmt, *args)

    def log(self, level: int, kind: str, fmt: str, *args: Any, exc_info: bool = False) -> None:
        """Log ``fmt % args`` at ``level`` (with the current traceback if ``exc_info``), rate-limited per ``kind``."""
        suppressed = self._limit.admit(kind)
        if suppressed is not None:
            log.log(level, fmt + _suffix(suppressed), *args, exc_info=exc_info)


class RateLimitFilter(logging.Filter):
    """A :class:`logging.Filter` passing one record per call site (logger, file, line) per interval.

    A library's message text often varies with its input (python-osc's
    ``f"Unhandled parameter type: {param}"``), its call site does not.
    """

    def __init__(self, interval_s: float = LOG_INTERVAL_S) -> None:
        super().__init__()
        self._limit = RateLimit(interval_s)

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102
        suppressed = self._limit.admit((record.name, record.pathname, record.lineno))
        if suppressed is None:
            return False
        if suppressed:
            record.msg = record.getMessage() + _suffix(suppressed)
            record.args = None
        return True


def limit_third_party_logs(interval_s: float = LOG_INTERVAL_S) -> None:
    """Attach one :class:`RateLimitFilter` to each of :data:`THIRD_PARTY_LOGGERS` (once; idempotent).

    A filter on a logger sees the records that logger creates, not those
    propagated from its children, so the daemon's own ``ai_band.*`` lines are
    not affected by the one on the root logger.
    """
    for name in THIRD_PARTY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RateLimitFilter) for f in logger.filters):
            logger.addFilter(RateLimitFilter(interval_s))
