"""``ai-band jobs``: the daemon's recent jobs (the ``jobs`` of ``/band/status``, the last 20)."""

from __future__ import annotations

import argparse
from ai_band.cli.common import add_daemon_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``jobs``."""
    jobs = sub.add_parser("jobs", help="list a running daemon's recent jobs (over OSC)",
                          description="Ask a running daemon (/band/status) for its last 20 jobs and list them, "
                                      "oldest first.")
    add_daemon_args(jobs)
    jobs.set_defaults(func=cmd_jobs)


def format_job(job: dict[str, object]) -> str:
    """One job of ``/band/status`` as a line: id, state, progress, request id, time, files or error."""
    line = f"{job.get('id')}  {job.get('state', '?'):<9} {100 * (job.get('progress') or 0):3.0f}%"
    if job.get("request_id"):
        line += f"  request {job['request_id']}"
    if job.get("elapsed_ms") is not None:
        line += f"  {job['elapsed_ms']:.0f} ms"
    if job.get("error"):
        line += f"  error: {' '.join(map(str, job['error']))}"
    elif job.get("files"):
        line += f"  {len(job['files'])} files"
    return line


def cmd_jobs(args: argparse.Namespace) -> int:
    """``ai-band jobs``: a line per job, or the raw JSON list with ``--json``."""
    from ai_band.cli.common import ask_daemon, print_json

    jobs = (ask_daemon(args, "/band/status") or {}).get("jobs") or []
    if args.json:
        print_json(jobs)
    elif not jobs:
        print("no jobs")
    else:
        print("\n".join(format_job(job) for job in jobs))
    return 0
