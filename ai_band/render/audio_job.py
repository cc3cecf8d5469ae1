"""Rendering a job's audio, in a render worker process or offline.

Render workers are separate from generation workers and run under Linux's
``SCHED_IDLE`` policy (``render.nice`` elsewhere), so a long render only ever
uses CPU that live MIDI playback and JACK leave idle.  Each worker keeps one :class:`~ai_band.render.audio.AudioRenderer`
warm: the SoundFont is loaded once, when the worker starts, not per job, and
the loudness stage's libraries (pyloudnorm, scipy) are imported then too.
That renderer is process-local state set by :func:`init_render_worker`
(the only way a ``ProcessPoolExecutor`` initializer can hand a worker an object).
Worker demotion itself is :func:`ai_band.system.priority.yield_cpu`.

Offline (``ai-band generate --render``), :func:`render_audio` runs in the
calling process with a renderer of one render thread per CPU, nothing demoted.

Settings come from the config's ``[render]`` section
(:class:`ai_band.config.RenderSection`) as it is; the daemon adds only the
worker CPUs it chose.
"""

from __future__ import annotations

import json
import logging
import pickle
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ai_band.errors import BandError, RenderError
from ai_band.model import Arrangement
from ai_band.render.atomic import write_atomic
from ai_band.render.metadata import JOB_FILE
from ai_band.request import RENDER_FORMATS
from ai_band.system.priority import yield_cpu

if TYPE_CHECKING:
    from ai_band.config import RenderSection
    from ai_band.render.audio import AudioRenderer

log = logging.getLogger(__name__)

#: Audio formats among a request's ``render`` formats (the others are MIDI).
AUDIO_FORMATS = tuple(f for f in RENDER_FORMATS if f != "mid")


class _Worker:
    """The render worker's warm renderer and its progress channel."""

    renderer: Any = None
    progress_queue: Any = None


def init_render_worker(render: RenderSection, worker_cpus: tuple[int, ...], progress_queue: Any) -> None:
    """``ProcessPoolExecutor`` initializer: die with the forkserver, lower the priority, load the engine and import the loudness libraries once.

    Args:
        render: the ``[render]`` config section (engine, SoundFont, ``nice``, ``cpus``).
        worker_cpus: the workers' CPU numbers chosen by the daemon
            (:func:`ai_band.system.priority.split_cpus`); empty: chosen from ``render.cpus``.
        progress_queue: a multiprocessing queue for ``(job_id, fraction 0..1)``.
    """
    from ai_band.jobs.lifeline import die_with_parent
    from ai_band.render.audio import AudioRenderer
    from ai_band.render.loudness import import_libraries

    die_with_parent()  # a render must not outlive the daemon (see ai_band.jobs.lifeline)
    yield_cpu(render.nice, render.cpus, worker_cpus)
    _Worker.progress_queue = progress_queue
    t0 = time.perf_counter()
    _Worker.renderer = AudioRenderer(render.engine, render.soundfont)
    try:
        import_libraries()
    except RenderError as exc:  # every render of this worker reports it; the pool stays usable
        log.error("%s", exc)
    log.info("render worker ready: engine %s (%s) in %.2f s", _Worker.renderer.engine,
             _Worker.renderer.soundfont or "built-in", time.perf_counter() - t0)


def render_audio(
    renderer: AudioRenderer,
    arrangement: Arrangement,
    job_dir: Path,
    formats: tuple[str, ...],
    stems: bool,
    render: RenderSection,
    sample_rate: int | None = None,
    bit_depth: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """Render, normalise and write a job's audio; add an ``audio`` section to job.json.

    Args:
        renderer: a warm :class:`~ai_band.render.audio.AudioRenderer`: a render
            worker's, or ``ai-band generate``'s (``threads=0``: the parts render
            on every CPU, nothing demoted).
        arrangement: the generated parts.
        job_dir: the job's folder (its job.json is updated when present).
        formats: audio formats to write, from :data:`AUDIO_FORMATS`.
        stems: also write one file per part.
        render: the ``[render]`` config section: loudness target, true-peak
            ceiling, tail, and the default sample rate and bit depth.
        sample_rate: Hz, 44100 or 48000; None: ``render.sample_rate``.
        bit_depth: 16 or 24; None: ``render.bit_depth``.
        progress: called with 0..1 as parts are rendered.

    Returns:
        ``([(part or "mix", path), ...], audio metadata)``.

    Raises:
        RenderError: rendering or writing failed (nothing half-written is left).
    """
    from ai_band.render.audio import AudioOptions, write_audio

    t0 = time.perf_counter()
    sample_rate = sample_rate or render.sample_rate
    bit_depth = bit_depth or render.bit_depth
    options = AudioOptions(sample_rate=sample_rate, bit_depth=bit_depth, target_lufs=render.target_lufs,
                           true_peak_dbtp=render.true_peak_dbtp, tail_s=render.tail_s)
    rendered = renderer.render(arrangement, options, progress)
    render_ms = (time.perf_counter() - t0) * 1000.0
    written = write_audio(rendered, job_dir, formats, stems, bit_depth)
    files = [(name, str(path)) for name, path in written]
    meta = {
        "engine": rendered.engine,
        "soundfont": rendered.soundfont,
        "sample_rate": rendered.sample_rate,
        "bit_depth": bit_depth,
        "formats": list(formats),
        "stems": stems,
        "loudness_lufs": round(float(rendered.loudness_lufs), 2),
        "true_peak_dbtp": round(float(rendered.true_peak_dbtp), 2),
        "gain_db": round(float(rendered.gain_db), 2),
        "limited": bool(rendered.limited),
        "music_s": round(rendered.music_s, 6),
        "duration_s": round(rendered.duration_s, 6),
        "render_ms": round(render_ms, 1),
        "realtime_ratio": round(rendered.music_s / (render_ms / 1000.0), 1) if render_ms > 0 else None,
        "settings": asdict(render),
        "files": [{"part": name, "path": path} for name, path in files],
    }
    job_file = job_dir / JOB_FILE
    if job_file.exists():
        data = json.loads(job_file.read_text())
        data["audio"] = meta
        write_atomic(job_file, json.dumps(data, indent=2).encode("utf-8") + b"\n")
    return files, meta


def run_render(
    job_id: str,
    arrangement: Arrangement | bytes,
    job_dir: str,
    formats: tuple[str, ...],
    stems: bool,
    sample_rate: int | None,
    bit_depth: int | None,
    render: RenderSection,
    worker_cpus: tuple[int, ...] = (),
) -> tuple[str, object]:
    """Render worker entry point; never raises.

    ``arrangement`` may come pickled (``bytes``, as the daemon keeps it: see
    :attr:`ai_band.jobs.manager.Job.arrangement`); it is unpickled here, in the worker.

    Returns:
        ``("ok", (files, audio metadata))`` or ``("error", (code, message))``.
    """
    queue = _Worker.progress_queue

    def progress(fraction: float) -> None:
        if queue is not None:
            queue.put((job_id, float(fraction)))

    try:
        if _Worker.renderer is None:
            init_render_worker(render, worker_cpus, queue)
        if isinstance(arrangement, bytes):
            arrangement = pickle.loads(arrangement)
        return "ok", render_audio(_Worker.renderer, arrangement, Path(job_dir), formats, stems, render,
                                  sample_rate, bit_depth, progress)
    except BandError as exc:
        return "error", (exc.code, str(exc))
    except Exception as exc:  # noqa: BLE001 - reported to the client, logged by the caller
        return "error", ("render_failed", f"{type(exc).__name__}: {exc}")
