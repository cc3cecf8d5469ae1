"""What every command shares: logging set-up."""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(level: str) -> None:
    """Log to stderr; without timestamps under journald (it adds its own)."""
    fmt = "%(levelname)-7s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=getattr(logging, level.upper()), format=fmt, stream=sys.stderr, force=True)


