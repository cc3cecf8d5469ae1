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

Memory and disk are bounded before a render starts.  :func:`estimate_render`
gives what a render will take: memory, from the frame count and the number
of parts (:data:`RENDER_FRAME_BYTES`, :data:`RENDER_PART_FRAME_BYTES`, measured
with ``bench/render_memory.py``), and disk, from the files it writes.  A
render worker's address space is capped at ``[render] max_worker_mb``
(``RLIMIT_AS``, setrlimit(2)), set once the worker has loaded its engine; a
render whose estimate does not fit under the cap beside what the worker
already maps is refused (``too_large``, with the estimate) before it
allocates anything, and one that fails to allocate anyway ends
``out_of_memory`` instead of taking the machine's memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import math
import pickle
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ai_band.errors import BandError, RenderError
from ai_band.model import Arrangement
from ai_band.render.atomic import exception_chain, write_atomic
from ai_band.render.metadata import JOB_FILE
from ai_band.system.priority import yield_cpu

if TYPE_CHECKING:
    from ai_band.config import RenderSection
    from ai_band.render.audio import AudioRenderer

log = logging.getLogger(__name__)

#: Bytes of memory per audio frame a render holds at its peak whatever the
#: number of parts: the raw and the normalised mix (float32 stereo, 8 bytes
#: each), the limiter's gain curve and the loudness stage's working arrays.
#: With :data:`RENDER_PART_FRAME_BYTES`, fitted to the peak RSS and address
#: space of renders of 16 and 48 bars, 2 and 8 parts, FluidSynth and numpy,
#: 44.1 and 48 kHz (``bench/render_memory.py``: 48.6 + 8.7 per part measured),
#: rounded up.
RENDER_FRAME_BYTES = 56

#: Bytes of memory per audio frame and part: the part's stem (float32 stereo, 8 bytes) and its share of the rest.
RENDER_PART_FRAME_BYTES = 10

#: Address space a render maps besides its frame buffers: render threads'
#: stacks and malloc arenas, FluidSynth's block buffers, libsndfile's
#: encoder (measured: 110-230 MiB; with margin).
RENDER_HEADROOM_BYTES = 384 << 20

#: Address space of a ready render worker (Python, numpy, scipy, FluidSynth
#: with a 142 MiB SoundFont loaded), at most: the daemon's estimate before a
#: worker exists.  A worker measures its own (``VmSize``) instead.
RENDER_WORKER_BYTES = 1024 << 20

#: Bytes per sample in the files, by bit depth.
_SAMPLE_BYTES = {16: 2, 24: 3}

#: ``mallopt(3)`` parameter: most malloc arenas (glibc's ``M_ARENA_MAX``).
_M_ARENA_MAX = -8

#: Malloc arenas a render worker may have: each thread would otherwise get one
#: of 64 MiB of address space (glibc, up to 8 per CPU), which counts against ``RLIMIT_AS``.
RENDER_MALLOC_ARENAS = 2


@dataclass(frozen=True)
class RenderEstimate:
    """What one render will take, computed before it starts.

    Attributes:
        frames: audio frames of every file (music plus tail).
        memory_bytes: address space the render adds to its worker's, bytes.
        disk_bytes: bytes of the audio files it writes (FLAC counted as large
            as WAV: its upper bound, verbatim frames), plus job.json's rewrite.
    """

    frames: int
    memory_bytes: int
    disk_bytes: int

    def worker_bytes(self, base_bytes: int = RENDER_WORKER_BYTES) -> int:
        """Address space of a worker of ``base_bytes`` doing this render, bytes."""
        return base_bytes + self.memory_bytes


def music_seconds(bars: int, ts_num: int, ts_den: int, bpm: float) -> float:
    """Length of ``bars`` bars of ``ts_num/ts_den`` at ``bpm`` quarter notes per minute, seconds."""
    return bars * ts_num * 4.0 / ts_den * 60.0 / bpm


def estimate_render(
    music_s: float,
    parts: int,
    formats: tuple[str, ...],
    stems: bool,
    sample_rate: int,
    bit_depth: int,
    tail_s: float,
) -> RenderEstimate:
    """Memory and disk one render needs (see :class:`RenderEstimate`).

    Args:
        music_s: the arrangement's length, seconds (:func:`music_seconds`).
        parts: parts rendered.
        formats: audio formats written, from :data:`AUDIO_FORMATS`.
        stems: one file per part besides the mix.
        sample_rate: Hz.
        bit_depth: 16 or 24.
        tail_s: ``[render] tail_s``, seconds after the music.
    """
    frames = round((music_s + tail_s) * sample_rate)
    memory = frames * (RENDER_FRAME_BYTES + RENDER_PART_FRAME_BYTES * max(1, parts)) + RENDER_HEADROOM_BYTES
    pcm = frames * 2 * _SAMPLE_BYTES.get(bit_depth, 4) + 4096
    files = 1 + (parts if stems else 0)
    per_format = {"wav": pcm, "flac": math.ceil(pcm * 1.01) + 8192}
    disk = files * sum(per_format.get(f, pcm) for f in set(formats)) + 65536
    return RenderEstimate(frames=frames, memory_bytes=memory, disk_bytes=disk)


def address_space_bytes() -> int | None:
    """This process's address space (``VmSize`` of ``/proc/self/status``), bytes; None where there is no /proc."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def limit_address_space(limit_bytes: int) -> bool:
    """Set this process's ``RLIMIT_AS`` (soft and hard) to ``limit_bytes``; True when set.

    Never raises: a refusal (a hard limit already lower) is logged.
    """
    try:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY and hard < limit_bytes:
            limit_bytes = hard
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
        return True
    except (ValueError, OSError) as exc:
        log.warning("cannot limit the render worker's memory to %d MiB: %s", limit_bytes >> 20, exc)
        return False


def _limit_malloc_arenas(count: int) -> None:
    """glibc: at most ``count`` malloc arenas in this process (``mallopt(M_ARENA_MAX)``); elsewhere nothing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_ARENA_MAX, count)
    except (OSError, AttributeError) as exc:
        log.debug("mallopt unavailable: %s", exc)


class _Worker:
    """The render worker's warm renderer, its progress channel and its memory cap."""

    renderer: Any = None
    progress_queue: Any = None
    #: ``RLIMIT_AS`` set on this worker, bytes; 0 = none.
    limit_bytes: int = 0


def init_render_worker(render: RenderSection, worker_cpus: tuple[int, ...], progress_queue: Any) -> None:
    """``ProcessPoolExecutor`` initializer: die with the forkserver, lower the priority, load the engine and import the loudness libraries once, then cap the address space.

    Args:
        render: the ``[render]`` config section (engine, SoundFont, ``nice``,
            ``cpus``, ``max_worker_mb``).
        worker_cpus: the workers' CPU numbers chosen by the daemon
            (:func:`ai_band.system.priority.split_cpus`); empty: chosen from ``render.cpus``.
        progress_queue: a multiprocessing queue for ``(job_id, fraction 0..1)``.

    The cap (``RLIMIT_AS`` = ``render.max_worker_mb``) comes last, so that
    loading the SoundFont never fails for it; malloc's arenas are limited
    first (:data:`RENDER_MALLOC_ARENAS`) so that the render threads' arenas do
    not eat the cap.
    """
    from ai_band.jobs.lifeline import die_with_parent
    from ai_band.render.audio import AudioRenderer
    from ai_band.render.loudness import import_libraries

    die_with_parent()  # a render must not outlive the daemon (see ai_band.jobs.lifeline)
    yield_cpu(render.nice, render.cpus, worker_cpus)
    _limit_malloc_arenas(RENDER_MALLOC_ARENAS)
    _Worker.progress_queue = progress_queue
    t0 = time.perf_counter()
    _Worker.renderer = AudioRenderer(render.engine, render.soundfont)
    try:
        import_libraries()
    except RenderError as exc:  # every render of this worker reports it; the pool stays usable
        log.error("%s", exc)
    own = address_space_bytes() or 0
    if render.max_worker_mb and limit_address_space(render.max_worker_mb << 20):
        _Worker.limit_bytes = render.max_worker_mb << 20
        if own >= _Worker.limit_bytes:
            log.error("[render] max_worker_mb = %d is below the %d MiB a ready render worker maps: every render "
                      "will be refused", render.max_worker_mb, own >> 20)
    log.info("render worker ready: engine %s (%s) in %.2f s; %d MiB mapped, limit %s", _Worker.renderer.engine,
             _Worker.renderer.soundfont or "built-in", time.perf_counter() - t0, own >> 20,
             f"{_Worker.limit_bytes >> 20} MiB" if _Worker.limit_bytes else "none")


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
    before_write: Callable[[], None] | None = None,
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
        before_write: called once the audio is rendered, before any file is
            written (a worker checks the free space again there: a render
            can take minutes); what it raises ends the job unwritten.

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
    if before_write is not None:
        before_write()
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
    min_free_bytes: int | None = None,
) -> tuple[str, object]:
    """Render worker entry point; never raises.

    ``arrangement`` may come pickled (``bytes``, as the daemon keeps it: see
    :attr:`ai_band.jobs.manager.Job.arrangement`); it is unpickled here, in the worker.

    Before rendering, the render's :func:`estimate_render` must fit: its
    memory beside what the worker maps under the worker's ``RLIMIT_AS``
    (else ``too_large``), its files on the disk with ``min_free_bytes`` to
    spare (else ``disk_full``; None: not checked), checked again once the
    audio is rendered, before anything is written.  Only an error while
    writing is ``disk_full`` or ``write_failed``; one while rendering keeps its code.

    Returns:
        ``("ok", (files, audio metadata))`` or ``("error", (code, message))``;
        codes besides the renderer's: ``too_large``, ``out_of_memory`` (an
        allocation failed under the cap), ``disk_full`` (with the free space
        and what was needed), ``write_failed``.
    """
    from ai_band.jobs.limits import DiskFull, check_room, mib, write_failure

    queue = _Worker.progress_queue

    def progress(fraction: float) -> None:
        if queue is not None:
            queue.put((job_id, float(fraction)))

    estimate = None
    writing = False

    def before_write() -> None:
        nonlocal writing
        if min_free_bytes is not None and estimate is not None:
            check_room(Path(job_dir), estimate.disk_bytes, min_free_bytes)
        writing = True

    try:
        if _Worker.renderer is None:
            init_render_worker(render, worker_cpus, queue)
        if isinstance(arrangement, bytes):
            arrangement = pickle.loads(arrangement)
        estimate = estimate_render(arrangement.length_ppq * 60.0 / arrangement.bpm, len(arrangement.parts), formats,
                                   stems, sample_rate or render.sample_rate, bit_depth or render.bit_depth,
                                   render.tail_s)
        if _Worker.limit_bytes:
            own = address_space_bytes() or RENDER_WORKER_BYTES
            if own + estimate.memory_bytes > _Worker.limit_bytes:
                return "error", ("too_large", f"the render needs about {mib(estimate.memory_bytes)} of memory beside "
                                              f"the worker's {mib(own)}, over [render] max_worker_mb = "
                                              f"{_Worker.limit_bytes >> 20}")
        if min_free_bytes is not None:
            check_room(Path(job_dir), estimate.disk_bytes, min_free_bytes)
        return "ok", render_audio(_Worker.renderer, arrangement, Path(job_dir), formats, stems, render,
                                  sample_rate, bit_depth, progress, before_write)
    except DiskFull as exc:
        return "error", (exc.code, str(exc))
    except Exception as exc:  # noqa: BLE001 - reported to the client, logged by the caller
        if _caused_by(exc, MemoryError):
            need = f" (estimated {mib(estimate.memory_bytes)})" if estimate is not None else ""
            return "error", ("out_of_memory", f"the render ran out of memory under the worker's limit of "
                                              f"{_Worker.limit_bytes >> 20} MiB{need}: {exc}")
        if writing and (failure := write_failure(exc, Path(job_dir), estimate.disk_bytes if estimate else 0)):
            return "error", failure
        if isinstance(exc, BandError):
            return "error", (exc.code, str(exc))
        return "error", ("render_failed", f"{type(exc).__name__}: {exc}")


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``exc`` or an exception in its ``__cause__``/``__context__`` chain is a ``kind``."""
    return any(isinstance(current, kind) for current in exception_chain(exc))
