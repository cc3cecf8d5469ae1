"""Rendering a job's audio, in a render worker process or offline.

Render workers are separate from generation workers and run under Linux's
``SCHED_IDLE`` policy (``render.nice`` elsewhere), so a long render only ever
uses CPU that live MIDI playback and JACK leave idle.  Each worker keeps one :class:`~ai_band.render.audio.AudioRenderer`
warm: the SoundFont is loaded once, when the worker starts, not per job.
That renderer is process-local state set by :func:`init_render_worker`
(the only way a ``ProcessPoolExecutor`` initializer can hand a worker an object).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from ai_band.errors import BandError
from ai_band.model import Arrangement
from ai_band.render.atomic import write_atomic
from ai_band.render.metadata import JOB_FILE

log = logging.getLogger(__name__)

#: Audio formats among a request's ``render`` formats.
AUDIO_FORMATS = ("wav", "flac")


@dataclass(frozen=True)
class RenderSettings:
    """Engine and defaults from the ``[render]`` config section.

    Attributes:
        engine: ``auto``, ``fluidsynth`` or ``numpy``.
        soundfont: path of a General MIDI .sf2, or "" to search the usual places.
        sample_rate: default sample rate, Hz (44100 or 48000).
        bit_depth: default sample size, bits (16 or 24).
        target_lufs: integrated loudness target of the mix, LUFS.
        true_peak_dbtp: true-peak ceiling, dBTP.
        tail_s: audio after the last bar, seconds.
        nice: CPU nice level of render workers (0..19), where SCHED_IDLE is unavailable.
        cpus: CPUs a render worker may use; 0 = all but one (at least one),
            so one CPU is always left to JACK and live playback.
        worker_cpus: the CPU numbers themselves, when the daemon has already
            chosen them (:func:`ai_band.system.priority.split_cpus`); workers started
            by a daemon pinned elsewhere must not take their set from their
            inherited affinity.  Empty: chosen from ``cpus``.
    """

    engine: str = "auto"
    soundfont: str = ""
    sample_rate: int = 44100
    bit_depth: int = 16
    target_lufs: float = -14.0
    true_peak_dbtp: float = -1.0
    tail_s: float = 2.0
    nice: int = 10
    cpus: int = 0
    worker_cpus: tuple[int, ...] = ()


class _Worker:
    """The render worker's warm renderer and its progress channel."""

    renderer: Any = None
    progress_queue: Any = None


def _idle_io(pid: int = 0) -> None:
    """Linux: put process ``pid``'s disk I/O (0: this thread's) in the idle class (``ionice -c3``); best effort.

    A render writes and fsyncs hundreds of MB (mix and stems); in the idle
    class that writeback yields to everything else.  ``ioprio_set(2)`` has no
    Python binding, so it is called through libc.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import platform

        syscall = {"x86_64": 251, "aarch64": 30}.get(platform.machine())
        if syscall is None:
            return
        ioprio_class_idle, ioprio_who_process = 3, 1
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syscall(syscall, ioprio_who_process, pid, ioprio_class_idle << 13) != 0:
            log.debug("ioprio_set failed: errno %d", ctypes.get_errno())
    except OSError as exc:
        log.debug("ioprio_set unavailable: %s", exc)


def yield_cpu(nice: int, cpus: int = 0, worker_cpus: tuple[int, ...] = ()) -> None:
    """Public name of :func:`_yield_cpu` for the generation workers' initializer."""
    _yield_cpu(nice, cpus, worker_cpus)


def demote_process(pid: int, nice: int, cpus: int = 0, worker_cpus: tuple[int, ...] = ()) -> None:
    """Give process ``pid`` (0: the calling thread) a worker's place: the workers' CPUs, ``SCHED_IDLE``, idle I/O.

    Args:
        pid: a process id (for a process with one thread, as a worker just
            started is) or 0 for the calling thread; threads it creates
            afterwards inherit all three.
        nice: the nice value (0..19) used where ``SCHED_IDLE`` is refused.
        cpus: how many CPUs the workers get (``[render] cpus``; 0 = all but one).
        worker_cpus: the workers' CPU numbers, if already chosen (they must be
            chosen before the daemon pins itself, see :class:`RenderSettings`).

    Best effort: what the system refuses is logged at debug level and left.
    See :func:`_yield_cpu` for why.
    """
    from ai_band.system.priority import split_cpus

    if hasattr(os, "sched_setaffinity"):
        chosen = set(worker_cpus) if worker_cpus else set(split_cpus(cpus)[1])
        try:
            os.sched_setaffinity(pid, chosen)
        except OSError as exc:
            log.debug("could not restrict the worker's CPUs: %s", exc)
    _idle_io(pid)
    try:
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
        return
    except (AttributeError, OSError) as exc:
        log.debug("SCHED_IDLE unavailable (%s); using nice %d", exc, nice)
    try:
        # Absolute, not os.nice()'s increment: the worker may have inherited the daemon's -10.
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError:
        pass


def _yield_cpu(nice: int, cpus: int = 0, worker_cpus: tuple[int, ...] = ()) -> None:
    """Make this worker (and the threads it starts later) run only on CPU nobody else wants.

    Two measures, both measured with the tempo-lock benchmark on 2 cores:
    the worker keeps ``cpus`` CPUs (0 = all but one), so one CPU always stays
    free for JACK and the MIDI scheduler; and Linux ``SCHED_IDLE``: the worker
    runs only when no other task wants a CPU and is preempted at once when
    JACK's or the scheduler's threads wake up.  Elsewhere (or if refused) fall
    back to ``nice``.  Threads created afterwards inherit both.  ``worker_cpus``,
    if given, are the CPUs to use (see :class:`RenderSettings`).  And numpy
    stops marking the worker's arrays for huge pages, which kept the kernel's
    khugepaged busy on the daemon's CPU
    (:func:`ai_band.system.priority.refuse_numpy_hugepages`).

    The daemon has already done the first three from outside the moment the
    worker started (:class:`ai_band.jobs.manager.WorkerContext`); this repeats them
    for workers started some other way.
    """
    from ai_band.system.priority import refuse_numpy_hugepages

    refuse_numpy_hugepages()
    demote_process(0, nice, cpus, worker_cpus)


def init_render_worker(settings: RenderSettings, progress_queue: Any) -> None:
    """``ProcessPoolExecutor`` initializer: lower the priority, load the engine once.

    Args:
        settings: the ``[render]`` settings.
        progress_queue: a multiprocessing queue for ``(job_id, fraction 0..1)``.
    """
    from ai_band.render.audio import AudioRenderer

    _yield_cpu(settings.nice, settings.cpus, settings.worker_cpus)
    _Worker.progress_queue = progress_queue
    t0 = time.perf_counter()
    _Worker.renderer = AudioRenderer(settings.engine, settings.soundfont)
    log.info("render worker ready: engine %s (%s) in %.2f s", _Worker.renderer.engine,
             _Worker.renderer.soundfont or "built-in", time.perf_counter() - t0)


def render_audio(
    renderer: Any,
    arrangement: Arrangement,
    job_dir: Path,
    formats: tuple[str, ...],
    stems: bool,
    sample_rate: int,
    bit_depth: int,
    settings: RenderSettings,
    progress: Callable[[float], None] | None = None,
) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """Render, normalise and write a job's audio; add an ``audio`` section to job.json.

    Args:
        renderer: a warm :class:`~ai_band.render.audio.AudioRenderer`.
        arrangement: the generated parts.
        job_dir: the job's folder (its job.json is updated when present).
        formats: audio formats to write, from :data:`AUDIO_FORMATS`.
        stems: also write one file per part.
        sample_rate: Hz, 44100 or 48000.
        bit_depth: 16 or 24.
        settings: loudness target, true-peak ceiling and tail.
        progress: called with 0..1 as parts are rendered.

    Returns:
        ``([(part or "mix", path), ...], audio metadata)``.

    Raises:
        RenderError: rendering or writing failed (nothing half-written is left).
    """
    from ai_band.render.audio import AudioOptions, write_audio

    t0 = time.perf_counter()
    options = AudioOptions(sample_rate=sample_rate, bit_depth=bit_depth, target_lufs=settings.target_lufs,
                           true_peak_dbtp=settings.true_peak_dbtp, tail_s=settings.tail_s)
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
        "settings": asdict(settings),
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
    sample_rate: int,
    bit_depth: int,
    settings: RenderSettings,
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
            init_render_worker(settings, queue)
        if isinstance(arrangement, bytes):
            arrangement = pickle.loads(arrangement)
        return "ok", render_audio(_Worker.renderer, arrangement, Path(job_dir), formats, stems,
                                  sample_rate, bit_depth, settings, progress)
    except BandError as exc:
        return "error", (exc.code, str(exc))
    except Exception as exc:  # noqa: BLE001 - reported to the client, logged by the caller
        return "error", ("render_failed", f"{type(exc).__name__}: {exc}")
