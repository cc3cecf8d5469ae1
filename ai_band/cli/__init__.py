"""Command line: ``ai-band run``, ``ai-band generate``; one module per command.

Flags of ``run`` override the TOML config (``config/ai-band.toml`` documents
every key).  ``generate`` takes the same keys as ``/band/generate``.
Exit codes: 0 ok, 1 runtime failure, 2 bad usage or configuration.

Each command module has ``add_parser(sub)`` and imports what its command
needs only when the command runs, so ``ai-band --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ai_band import __version__
from ai_band.cli import generate, host, run
from ai_band.errors import BandError, ConfigError

COMMANDS = (run, generate, host)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subcommand per module in :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(prog="ai-band", description="A band that plays along with your DAW.")
    parser.add_argument("--version", action="version", version=f"ai-band {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ai-band`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"ai-band: {exc}", file=sys.stderr)
        return 2
    except BandError as exc:
        print(f"ai-band: error [{exc.code}]: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
