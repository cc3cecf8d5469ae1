"""Third-party loggers are rate-limited like the daemon's own warnings; the daemon's own lines are not touched."""

import logging
import time

import pytest

from ai_band.osc.logs import THIRD_PARTY_LOGGERS, RateLimitedLog, RateLimitFilter, limit_third_party_logs


class Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append((record.name, record.getMessage()))


@pytest.fixture
def capture():
    root = logging.getLogger()
    handler, level = Capture(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    saved = {name: list(logging.getLogger(name).filters) for name in THIRD_PARTY_LOGGERS}
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)
    for name, filters in saved.items():
        logging.getLogger(name).filters[:] = filters


def test_a_flood_from_python_osc_zeroconf_and_asyncio_is_one_line_per_call_site(capture):
    limit_third_party_logs()
    limit_third_party_logs()  # idempotent: one filter per logger
    assert all(sum(isinstance(f, RateLimitFilter) for f in logging.getLogger(n).filters) == 1
               for n in THIRD_PARTY_LOGGERS)
    for tag in "x" * 1000:
        logging.warning(f"Unhandled parameter type: {tag}")  # python-osc 1.10 logs on the root logger
        logging.getLogger("zeroconf").warning("Error with socket %d", 3)
        logging.getLogger("asyncio").error("Exception in callback %s", tag)
    for _ in range(5):
        logging.getLogger("ai_band.service").warning("the daemon's own line")  # propagates: not limited
    names = [name for name, _ in capture.lines]
    assert names.count("root") == names.count("zeroconf") == names.count("asyncio") == 1
    assert names.count("ai_band.service") == 5


def test_the_next_line_after_the_interval_says_how_many_were_suppressed(capture):
    limit = RateLimitFilter(interval_s=0.05)
    logger = logging.getLogger("pythonosc")
    logger.addFilter(limit)
    for i in range(11):
        if i == 10:
            time.sleep(0.06)
        logger.warning("Could not identify content type of dgram %r", bytes([i]))  # one call site
    assert [m for n, m in capture.lines if n == "pythonosc"] == [
        "Could not identify content type of dgram b'\\x00'",
        "Could not identify content type of dgram b'\\n' (+9 similar suppressed)",
    ]


def test_the_daemons_own_rate_limited_warnings(capture):
    own = RateLimitedLog(interval_s=60)
    for i in range(100):
        own.warning("malformed", "malformed packet %d", i)
    own.warning("busy", "busy packet")
    assert [m for n, m in capture.lines if n.startswith("ai_band")] == ["malformed packet 0", "busy packet"]
