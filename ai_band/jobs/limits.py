"""What a job may take: disk space before it writes, and which old jobs retention removes.

* :func:`check_room` / :class:`DiskFull`: a job writes only when its files
  (an upper-bound estimate: :func:`job_bytes_estimate` for the MIDI stage,
  :func:`ai_band.render.audio_job.estimate_render` for audio) fit on the file
  system with ``[jobs] min_free_mb`` to spare.
* :func:`write_failure`: a write that failed anyway is ``disk_full`` (with the
  free space and what was needed) or ``write_failed``, never ``render_failed``.
* :func:`select_for_removal`: retention (``[jobs] max_jobs``, ``max_disk_mb``,
  ``keep_days``) picks the oldest finished jobs first and never one that
  ``is_protected`` (playing).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ai_band.errors import JobError
from ai_band.model import Arrangement

#: Seconds in a day, for ``keep_days``.
DAY_S = 86400.0


class DiskFull(JobError):
    """Not enough free space for a job's files; the message gives the free space and what was needed."""

    code = "disk_full"


def mib(n: float) -> str:
    """``n`` bytes as ``"12.3 MiB"``."""
    return f"{n / 2**20:.1f} MiB"


def job_bytes_estimate(arrangement: Arrangement) -> int:
    """Upper bound of the bytes of a job's MIDI files, job.json and arrangement.json.

    Per note 2 MIDI events of at most 8 bytes (a 4-byte delta time, 3 data
    bytes, no running status) in its part's file and again in full.mid; 43
    bytes of base64 in arrangement.json (:mod:`ai_band.jobs.saved`); 4 KiB
    per file for headers and meta events; 256 bytes per bar of job.json
    (chords and sections).
    """
    notes = sum(len(part.notes) for part in arrangement.parts)
    files = len(arrangement.parts) + 3
    return notes * (2 * 2 * 8 + 43) + files * 4096 + arrangement.bars * 256


def disk_free(path: Path) -> int:
    """Bytes an unprivileged process may still write on the file system of ``path`` (or its nearest existing parent)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def check_room(job_dir: Path, need_bytes: int, min_free_bytes: int) -> None:
    """Raise :class:`DiskFull` unless ``need_bytes`` fit on ``job_dir``'s file system with ``min_free_bytes`` to spare.

    Raises:
        DiskFull: naming the free space, what the job needs and the reserve.
    """
    free = disk_free(job_dir)
    if free < need_bytes + min_free_bytes:
        reserve = f" and {mib(min_free_bytes)} must stay free ([jobs] min_free_mb)" if min_free_bytes else ""
        raise DiskFull(f"not enough free space in {Path(job_dir).parent}: {mib(free)} free, "
                       f"the job needs about {mib(need_bytes)}{reserve}")


def write_failure(exc: BaseException, job_dir: Path, need_bytes: int) -> tuple[str, str] | None:
    """``(code, message)`` for a failed write, or None when ``exc`` is no write failure.

    ``disk_full`` (``ENOSPC``/``EDQUOT`` in the exception's chain) says how much
    is free and what was needed; any other :class:`OSError` in the chain is
    ``write_failed`` (see :func:`ai_band.render.atomic.failure_code`).
    """
    from ai_band.render.atomic import failure_code

    code = failure_code(exc)
    if code == "disk_full":
        try:
            free = mib(disk_free(job_dir))
        except OSError:
            free = "unknown"
        return code, f"disk full writing to {job_dir}: {free} free, the job needed about {mib(need_bytes)} ({exc})"
    if code == "write_failed":
        return code, f"cannot write the job's files: {exc}"
    return None


@dataclass(frozen=True)
class Held:
    """What retention needs to know of one job.

    Attributes:
        job_id: the job's id.
        final: the job is finished (done, failed, cancelled, interrupted): only those can go.
        created_s: Unix time it was submitted (the order: oldest first).
        finished_s: Unix time it finished, or None.
        disk_bytes: bytes its files take.
    """

    job_id: str
    final: bool
    created_s: float
    finished_s: float | None
    disk_bytes: int


def select_for_removal(
    jobs: Iterable[Held],
    now_s: float,
    max_jobs: int = 0,
    max_disk_bytes: int = 0,
    keep_s: float = 0.0,
    is_protected: Callable[[str], bool] = lambda job_id: False,
    extra_bytes: int = 0,
) -> list[str]:
    """The jobs retention removes, in removal order: the oldest finished jobs first.

    A finished job goes when it finished more than ``keep_s`` seconds ago,
    then while more than ``max_jobs`` jobs remain, then while their files take
    more than ``max_disk_bytes`` (with ``extra_bytes`` more about to be
    written).  A job still queued or running, or ``is_protected`` (playing),
    is never chosen but still counts.  A limit of 0 is off.

    Args:
        jobs: every job the daemon knows, in any order.
        now_s: Unix time, seconds.
        max_jobs: most jobs kept (``[jobs] max_jobs``).
        max_disk_bytes: most bytes of job files kept (``[jobs] max_disk_mb``).
        keep_s: longest a finished job is kept, seconds (``[jobs] keep_days``).
        is_protected: True for a job that must stay (the one playing or armed).
        extra_bytes: bytes a job is about to write, made room for now.
    """
    ordered = sorted(jobs, key=lambda held: (held.created_s, held.job_id))
    count = len(ordered)
    total = sum(held.disk_bytes for held in ordered) + extra_bytes
    removable = [held for held in ordered if held.final and not is_protected(held.job_id)]
    chosen: list[str] = []
    for held in removable:
        expired = keep_s > 0 and (held.finished_s or held.created_s) < now_s - keep_s
        too_many = max_jobs > 0 and count > max_jobs
        too_big = max_disk_bytes > 0 and total > max_disk_bytes
        if expired or too_many or too_big:
            chosen.append(held.job_id)
            count -= 1
            total -= held.disk_bytes
    return chosen
