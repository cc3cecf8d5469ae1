"""``ai-band status``: ask a running daemon for ``/band/status`` and print it readably."""

from __future__ import annotations

import argparse
from ai_band.cli.common import add_daemon_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``status``."""
    status = sub.add_parser("status", help="ask a running daemon for its status (over OSC)",
                            description="Send /band/status to a running daemon and print its answer.")
    add_daemon_args(status)
    status.set_defaults(func=cmd_status)


def _on_off(value: object) -> str:
    return "yes" if value else "no"


def format_status(status: dict[str, object]) -> list[str]:
    """The ``/band/status`` JSON (docs/osc-api.md) as lines of text."""
    transport = status.get("transport") or {}
    playback = status.get("playback") or {}
    lines = [
        f"{status.get('name')} (ai-band {status.get('version')}), up {status.get('uptime_s', 0):.0f} s, "
        f"OSC port {status.get('osc_port')}",
        f"transport: {'playing' if transport.get('playing') else 'stopped'}, {transport.get('bpm', 0):g} bpm, "
        f"{transport.get('ts')}, ppq {transport.get('ppq', 0):.2f}",
        f"playing job: {playback.get('current_job') or 'none'}"
        + (f", next: {playback['pending_job']}" if playback.get("pending_job") else ""),
        f"muted: {', '.join(playback.get('muted') or []) or 'none'}",
        f"late: {playback.get('late_dropped', 0)} note-ons dropped, max {playback.get('max_late_ms', 0):g} ms, "
        f"median {playback.get('median_late_ms') if playback.get('median_late_ms') is not None else '-'} ms",
        f"preview playing: {_on_off((status.get('preview') or {}).get('playing'))}",
    ]
    clients = status.get("clients") or []
    names = [f"{c.get('name')} ({c.get('host')}:{c.get('port')})" for c in clients]
    lines.append(f"clients: {', '.join(names) or 'none'}")
    ports = status.get("ports") or {}
    lines.append(f"ports: {', '.join(ports.values()) or 'none'}")
    jobs = status.get("jobs") or []
    lines.append(f"jobs: {len(jobs)} recent (ai-band jobs lists them)")
    return lines


def cmd_status(args: argparse.Namespace) -> int:
    """``ai-band status``: readable text, or the raw JSON with ``--json``."""
    from ai_band.cli.common import ask_daemon, print_json

    status = ask_daemon(args, "/band/status")
    if args.json:
        print_json(status)
    else:
        print("\n".join(format_status(status)))
    return 0
