"""The work of one job, offline or in a generation worker: generate, then write its files.

Kept apart from :mod:`ai_band.jobs.manager` (asyncio, worker pools) so that
``ai-band generate`` loads only what one job needs.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from pathlib import Path
from typing import Callable

from ai_band.errors import BandError
from ai_band.model import Arrangement
from ai_band.request import GenerationRequest


def new_job_id() -> str:
    """A sortable unique id: UTC time plus 4 random hex digits, e.g. ``20261121-141502-3fa2``."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{os.urandom(2).hex()}"  # secrets.token_hex(2) without importing hmac and OpenSSL


def produce(request: GenerationRequest, job_dir: Path) -> tuple[Arrangement, dict[str, str], float]:
    """Resolve, generate and write one job's files: the work of a job, offline or in a worker.

    Args:
        request: the validated request.
        job_dir: the job's folder (created); its name is the job id.

    Returns:
        ``(arrangement, {part | "full" | "job": path}, generation_ms)``.

    Raises:
        BandError: bad request content (style, chords, ...) or a failed write.
    """
    arrangement, _, files, generation_ms = _produce(request, job_dir)
    return arrangement, files, generation_ms


def _produce(request: GenerationRequest, job_dir: Path,
             before_write: Callable[[Arrangement], None] | None = None,
             ) -> tuple[Arrangement, GenerationRequest, dict[str, str], float]:
    """:func:`produce`, also returning the resolved request.

    Args:
        before_write: called with the arrangement once generated, before
            anything is written; what it raises ends the job unwritten.

    Raises:
        BandError: as :func:`produce`, or what ``before_write`` raised.
    """
    from ai_band.generate.pipeline import generate, resolve_request
    from ai_band.render.metadata import job_metadata, write_job_metadata
    from ai_band.render.midi import write_midi_files

    t0 = time.perf_counter()
    resolved = resolve_request(request)
    arrangement = generate(resolved)
    generation_ms = (time.perf_counter() - t0) * 1000.0
    if before_write is not None:
        before_write(arrangement)
    job_dir.mkdir(parents=True, exist_ok=True)
    files = {name: str(p) for name, p in write_midi_files(arrangement, job_dir).items()}
    meta = job_metadata(job_dir.name, request, resolved, arrangement, generation_ms)
    files["job"] = str(write_job_metadata(job_dir, meta))
    return arrangement, resolved, files, generation_ms


def run_job(request: GenerationRequest, job_dir: str, min_free_bytes: int | None = None) -> tuple[str, object]:
    """Worker entry point: :func:`produce`, plus ``arrangement.json`` (:mod:`ai_band.jobs.saved`); never raises.

    Args:
        request: the validated request.
        job_dir: the job's folder.
        min_free_bytes: the files are written only if the file system keeps
            this many bytes free after them (their size estimated by
            :func:`~ai_band.jobs.limits.job_bytes_estimate`); None: not checked.

    Returns:
        ``("ok", result)`` or ``("error", (code, message))``.  ``result`` is a
        dict: ``arrangement`` (pickled, ``bytes``: see :attr:`Job.arrangement`),
        ``files`` (``[(part, path)]``), ``sizes`` (``{path: bytes}``, with the
        saved arrangement's), ``arrangement_file`` (its path), ``resolved``
        (the resolved request as in job.json), ``elapsed_ms``.  A failed write
        is ``disk_full`` or ``write_failed`` (:func:`~ai_band.jobs.limits.write_failure`).
        Errors travel as plain tuples: exception subclasses with custom
        constructors do not always survive pickling.
    """
    import os
    import pickle

    from ai_band.jobs.limits import DiskFull, check_room, job_bytes_estimate, write_failure
    from ai_band.jobs.saved import save_arrangement

    t0 = time.perf_counter()
    folder = Path(job_dir)
    need = 0

    def before_write(arrangement: Arrangement) -> None:
        nonlocal need
        need = job_bytes_estimate(arrangement)
        if min_free_bytes is not None:
            check_room(folder, need, min_free_bytes)

    try:
        arrangement, resolved, files, _ = _produce(request, folder, before_write)
        saved = str(save_arrangement(arrangement, folder))
        pairs = list(files.items())
        sizes = {path: os.stat(path).st_size for path in [*files.values(), saved]}
    except Exception as exc:  # noqa: BLE001 - reported to the client, logged by the caller
        if need and not isinstance(exc, DiskFull) and (failure := write_failure(exc, folder, need)) is not None:
            return "error", failure
        if isinstance(exc, BandError):
            return "error", (exc.code, str(exc))
        return "error", ("generation_failed", f"{type(exc).__name__}: {exc}")
    return "ok", {
        "arrangement": pickle.dumps(arrangement, pickle.HIGHEST_PROTOCOL),
        "files": pairs,
        "sizes": sizes,
        "arrangement_file": saved,
        "resolved": resolved.to_dict(),
        "elapsed_ms": (time.perf_counter() - t0) * 1000.0,
    }
