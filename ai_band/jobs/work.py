"""The work of one job, offline or in a generation worker: generate, then write its files.

Kept apart from :mod:`ai_band.jobs.manager` (asyncio, worker pools) so that
``ai-band generate`` loads only what one job needs.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from pathlib import Path

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
    from ai_band.generate.pipeline import generate, resolve_request
    from ai_band.render.metadata import job_metadata, write_job_metadata
    from ai_band.render.midi import write_midi_files

    t0 = time.perf_counter()
    resolved = resolve_request(request)
    arrangement = generate(resolved)
    generation_ms = (time.perf_counter() - t0) * 1000.0
    job_dir.mkdir(parents=True, exist_ok=True)
    files = {name: str(p) for name, p in write_midi_files(arrangement, job_dir).items()}
    meta = job_metadata(job_dir.name, request, resolved, arrangement, generation_ms)
    files["job"] = str(write_job_metadata(job_dir, meta))
    return arrangement, files, generation_ms


def run_job(request: GenerationRequest, job_dir: str) -> tuple[str, object]:
    """Worker entry point: :func:`produce`, never raising.

    Returns:
        ``("ok", (arrangement pickled, files, elapsed_ms))`` or ``("error", (code, message))``:
        the arrangement as ``bytes`` (see :attr:`Job.arrangement`).
        Errors travel as plain tuples: exception subclasses with custom
        constructors do not always survive pickling.
    """
    import pickle

    t0 = time.perf_counter()
    try:
        arrangement, files, _ = produce(request, Path(job_dir))
        files = list(files.items())
    except BandError as exc:
        return "error", (exc.code, str(exc))
    except Exception as exc:  # noqa: BLE001 - reported to the client, logged by the caller
        return "error", ("generation_failed", f"{type(exc).__name__}: {exc}")
    return "ok", (pickle.dumps(arrangement, pickle.HIGHEST_PROTOCOL), files, (time.perf_counter() - t0) * 1000.0)
