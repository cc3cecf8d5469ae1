"""``ai-band sync``: what a running daemon follows, and its own clock, from the command line.

``ai-band sync`` prints the sync state of ``/band/status``; ``ai-band sync
source jack`` switches the source (``/band/sync``); with the own clock
(``source internal``) or Link, ``start``, ``stop`` and ``tempo`` run the
transport (``/band/start``, ``/band/stop``, ``/band/tempo``); ``offset``
sets a latency offset (``/band/offset``).  docs/sync.md has the details.
"""

from __future__ import annotations

import argparse

from ai_band.cli.common import add_daemon_args
from ai_band.sync import SOURCES


def _float_in(lo: float, hi: float, what: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{what} must be in {lo:g}..{hi:g}, got {text}")
        return value
    return parse


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``sync`` and its actions."""
    sync = sub.add_parser("sync", help="show or change what a running daemon follows; run its own clock",
                          description="Without an action: print the daemon's sync state. Actions: source NAME "
                                      "(osc, jack, midi-clock, link, internal), start [PPQ], stop, tempo BPM "
                                      "(own clock or Link), offset PART|all MS (latency offset, -100..100 ms).")
    add_daemon_args(sync)
    actions = sync.add_subparsers(dest="action", metavar="ACTION",
                                  help="source, start, stop, tempo or offset (default: print the sync state)")
    source = actions.add_parser("source", help="follow another source (/band/sync)")
    source.add_argument("name", choices=SOURCES, help="the source: " + ", ".join(SOURCES))
    start = actions.add_parser("start", help="start the own clock or Link's transport (/band/start)")
    start.add_argument("ppq", nargs="?", type=_float_in(0, 1e7, "PPQ"),
                       help="position to start from, quarter notes (default: where it stopped)")
    actions.add_parser("stop", help="stop the own clock or Link's transport (/band/stop)",
                       description="Stop the own clock or Link's transport (/band/stop).")
    tempo = actions.add_parser("tempo", help="set the tempo of the own clock or Link session (/band/tempo)")
    tempo.add_argument("bpm", type=_float_in(20, 300, "BPM"))
    offset = actions.add_parser("offset", help="latency offset of one part or all (/band/offset)")
    offset.add_argument("part", help="a part (drums, bass, ...) or 'all'")
    offset.add_argument("ms", type=_float_in(-100, 100, "MS"), help="milliseconds, negative: earlier")
    sync.set_defaults(func=cmd_sync)


def format_sync(sync: dict) -> list[str]:
    """The ``sync`` object of ``/band/status`` as lines of text."""
    jitter = sync.get("jitter_ms")
    lines = [
        f"source: {sync.get('source')} ({'locked' if sync.get('locked') else 'not locked'}), "
        f"{'playing' if sync.get('playing') else 'stopped'}, {sync.get('bpm', 0):g} bpm, {sync.get('ts')}, "
        f"ppq {sync.get('ppq', 0):.2f}, jitter {'-' if jitter is None else f'{jitter:g} ms'}",
    ]
    counters = sync.get("counters") or {}
    if counters:
        lines.append("seen: " + ", ".join(f"{k} {v}" for k, v in sorted(counters.items())))
    clock_out = sync.get("clock_out")
    if clock_out:
        lines.append("clock out: " + ", ".join(f"{k} {v}" for k, v in clock_out.items()))
    return lines


def cmd_sync(args: argparse.Namespace) -> int:
    """``ai-band sync [ACTION ...]``: print the sync state, or send the action and print the daemon's ack."""
    from ai_band.cli.common import ask_daemon, print_json, tell_daemon

    if args.action is None:
        status = ask_daemon(args, "/band/status")
        sync = status.get("sync") or {}
        if args.json:
            print_json(sync)
        else:
            print("\n".join(format_sync(sync)))
        return 0
    request = {
        "source": ("/band/sync", [getattr(args, "name", "")]),
        "start": ("/band/start", [] if getattr(args, "ppq", None) is None else [float(args.ppq)]),
        "stop": ("/band/stop", []),
        "tempo": ("/band/tempo", [float(getattr(args, "bpm", 0.0))]),
        "offset": ("/band/offset", [getattr(args, "part", ""), float(getattr(args, "ms", 0.0))]),
    }[args.action]
    reply = tell_daemon(args, request[0], request[1], "/band/ack")
    if args.json:
        print_json(reply)
    else:
        print(" ".join(str(p) for p in reply))
    return 0
