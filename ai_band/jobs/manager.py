"""Generation jobs: queued on the event loop, generated and written in worker processes.

Generation is CPU-bound Python; in a thread it would hold the GIL and delay
the scheduler thread, so it runs in a :class:`~concurrent.futures.ProcessPoolExecutor`
(``forkserver`` start method: safe in a process that already has threads).
The worker writes the files itself (atomically, see
:mod:`ai_band.render.midi`) and returns the arrangement (pickled: see
:attr:`Job.arrangement`) and the paths.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import pickle
import threading
import time
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ai_band.config import RenderSection
from ai_band.errors import JobError, RequestError
from ai_band.jobs.lifeline import die_with_parent, end_processes, start_forkserver
from ai_band.jobs.work import new_job_id, run_job
from ai_band.model import Arrangement
from ai_band.render.audio_job import AUDIO_FORMATS, init_render_worker, run_render
from ai_band.request import GenerationRequest
from ai_band.system.priority import demote_process, yield_cpu

log = logging.getLogger(__name__)

#: Job states in the order they happen; the last three are final.
STATES = ("queued", "generating", "rendering", "done", "failed", "cancelled")
FINAL_STATES = ("done", "failed", "cancelled")


@dataclass
class Job:
    """One generation request and its outcome.

    Attributes:
        job_id: unique id, also the name of the job's output folder.
        request: the validated request.
        reply_to: (ip, port) of the requester, or None (offline use).
        state: one of :data:`STATES`.
        progress: 0..1.
        arrangement_pickle: the generated parts once done, pickled by the
            worker; :attr:`arrangement` unpickles them when first asked.
        files: ``(part, path)`` of every file written, in writing order: each
            part's .mid, ``full`` (full.mid), ``job`` (job.json), then with
            audio ``mix`` (mix.wav / mix.flac) and the stems (``<part>.wav``).
        announced: how many of ``files`` have been announced with ``/band/file``.
        audio: the audio section of job.json once rendered.
        error: ``(code, message)`` once failed.
        elapsed_ms: wall time of generation plus writing, milliseconds.
    """

    job_id: str
    request: GenerationRequest
    reply_to: tuple[str, int] | None = None
    state: str = "queued"
    progress: float = 0.0
    arrangement_pickle: bytes | None = None
    files: list[tuple[str, str]] = field(default_factory=list)
    announced: int = 0
    audio: dict | None = None
    error: tuple[str, str] | None = None
    elapsed_ms: float | None = None
    created_s: float = field(default_factory=time.time)
    _arrangement: Arrangement | None = field(default=None, repr=False, compare=False)

    @property
    def arrangement(self) -> Arrangement | None:
        """The generated parts (None until done), unpickled on first use and kept.

        They travel from the generation worker to the daemon, and on to a
        render worker, as one ``bytes`` object, so that the daemon does no
        per-note work for a job nobody plays: unpickled, an 8-part, 64-bar
        arrangement (8400 notes) is 15 ms of Python, and pickled again for
        the render worker 4 ms more, all of it on the daemon's CPU, next to
        jackd (see :meth:`Part.__reduce__ <ai_band.model.Part.__reduce__>`).
        """
        if self._arrangement is None and self.arrangement_pickle is not None:
            self._arrangement = pickle.loads(self.arrangement_pickle)
        return self._arrangement

    def as_dict(self) -> dict:
        """JSON-ready summary for ``/band/status``."""
        return {
            "id": self.job_id,
            "request_id": self.request.id,
            "state": self.state,
            "progress": self.progress,
            "files": [list(f) for f in self.files],
            "audio": {k: self.audio[k] for k in ("engine", "loudness_lufs", "true_peak_dbtp", "realtime_ratio")}
            if self.audio else None,
            "error": list(self.error) if self.error else None,
            "elapsed_ms": self.elapsed_ms,
        }


#: Seconds a worker gets between SIGTERM and SIGKILL when the daemon stops.
WORKER_GRACE_S = 0.5


def _init_generation_worker(nice: int, cpus: int, worker_cpus: tuple[int, ...]) -> None:
    """Generation pool initializer: die with the forkserver (:mod:`ai_band.jobs.lifeline`), then yield the CPU."""
    die_with_parent()
    yield_cpu(nice, cpus, worker_cpus)


def _warm_up() -> bool:
    import ai_band.generate.pipeline  # noqa: F401 - import cost paid at start-up, not on the first job
    import ai_band.render.metadata  # noqa: F401
    import ai_band.render.midi  # noqa: F401

    return True


class _WorkerProcess(multiprocessing.context.ForkServerProcess):
    """A forkserver process that its parent demotes the moment it has a pid (see :class:`WorkerContext`)."""

    #: ``(nice, cpus, worker_cpus)`` for :func:`~ai_band.system.priority.demote_process`.
    demotion: tuple[int, int, tuple[int, ...]] = (10, 0, ())

    def start(self) -> None:
        """Start the process, then move it to the workers' CPUs, ``SCHED_IDLE`` and idle I/O."""
        super().start()
        demote_process(self.pid, *self.demotion)


class WorkerContext:
    """The ``forkserver`` multiprocessing context, for worker pools whose processes start demoted.

    Pass it as ``mp_context`` to :class:`~concurrent.futures.ProcessPoolExecutor`:
    every process the pool starts is moved to the workers' CPUs, to
    ``SCHED_IDLE`` and to idle I/O by the daemon as soon as it exists, not
    only by the pool's initializer, which runs after the worker has imported
    numpy, FluidSynth and the loudness code.  Until then a worker kept what it
    inherited from the forkserver the daemon had started: the daemon's CPU
    (:func:`~ai_band.system.priority.pin_threads`) and nice -10.  Traced with ftrace
    under ``bench/tempo_lock.py --render-load``: a new render worker ran
    1.4 s on the daemon's CPU in its first seconds, at jackd's priority.

    Args:
        render: the ``[render]`` config section (``nice``, ``cpus``).
        worker_cpus: the workers' CPU numbers, chosen by the daemon before it
            pinned itself (:func:`~ai_band.system.priority.split_cpus`); empty:
            chosen from ``render.cpus``.

    Everything else is the plain ``forkserver`` context's; the forkserver is
    started by :func:`~ai_band.jobs.lifeline.start_forkserver` if not yet running.
    """

    def __init__(self, render: RenderSection, worker_cpus: tuple[int, ...] = ()) -> None:
        start_forkserver()  # one that dies with this process (see ai_band.jobs.lifeline)
        self._base = multiprocessing.get_context("forkserver")
        self._demotion = (render.nice, render.cpus, tuple(worker_cpus))

    def Process(self, *args: object, **kwargs: object) -> _WorkerProcess:  # noqa: N802 - multiprocessing's name
        """A worker process (``multiprocessing.Process`` arguments), demoted when started."""
        process = _WorkerProcess(*args, **kwargs)
        process.demotion = self._demotion
        return process

    def __getattr__(self, name: str) -> object:
        return getattr(self._base, name)


Listener = Callable[[Job, str], None]


class JobManager:
    """Queue, run and remember generation jobs.

    Args:
        output_dir: files go to ``output_dir / job_id``.
        workers: worker processes (>= 1).
        max_queued: jobs queued or generating beyond this are refused.
        listener: called on the event loop as ``listener(job, event)`` with
            event ``"state"`` on every state change.
        keep: how many finished jobs are remembered for ``/band/play``.
        render: the ``[render]`` config section: the render workers' engine,
            count, priority and CPUs, and the audio defaults.
        worker_cpus: the CPUs of generation and render workers, chosen by the
            daemon (:func:`~ai_band.system.priority.split_cpus`); empty: each
            worker chooses from ``render.cpus``.
    """

    def __init__(
        self,
        output_dir: Path,
        workers: int = 1,
        max_queued: int = 16,
        listener: Listener | None = None,
        keep: int = 200,
        render: RenderSection | None = None,
        worker_cpus: tuple[int, ...] = (),
    ) -> None:
        self.output_dir = output_dir
        self.render = render or RenderSection()
        self.worker_cpus = tuple(worker_cpus)
        self._render_executor: ProcessPoolExecutor | None = None
        self._progress_queue = None
        self._progress_thread: threading.Thread | None = None
        self.workers = workers
        self.max_queued = max_queued
        self.listener = listener
        self.keep = keep
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self._tasks: dict[str, asyncio.Task] = {}
        self._executor: ProcessPoolExecutor | None = None

    async def start(self) -> None:
        """Create the output folder and start (and warm up) the worker processes."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        ctx = WorkerContext(self.render, self.worker_cpus)
        # Generation workers yield the CPU like render workers: live playback first.
        self._executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_init_generation_worker,
                                             initargs=(self.render.nice, self.render.cpus, self.worker_cpus))
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._executor, _warm_up) for _ in range(self.workers)))
        log.info("generation: %d worker process(es) ready; files in %s", self.workers, self.output_dir)

    async def close(self, grace_s: float = WORKER_GRACE_S) -> None:
        """Cancel unfinished jobs, end the worker processes and remove what the cancelled jobs left half-written.

        Running jobs end ``cancelled``.  The workers are not waited for: they
        get SIGTERM, then SIGKILL after ``grace_s`` seconds
        (:func:`~ai_band.jobs.lifeline.end_processes`), so that a render of
        minutes does not hold up a stop (it took 67 s).  Then each cancelled
        job's folder loses its ``*.tmp`` files and any audio file that is not
        among the job's finished files.  Never blocks the event loop for long.
        """
        unfinished = [job for job in self.jobs.values() if job.state not in FINAL_STATES]
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        pools = [pool for pool in (self._executor, self._render_executor) if pool is not None]
        self._executor = self._render_executor = None
        # The pool's own processes: ProcessPoolExecutor has no public way to end them before Python 3.14.
        pids = [proc.pid for pool in pools for proc in list((pool._processes or {}).values())]
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)
        killed = await end_processes(pids, grace_s)
        if pids:
            log.info("generation: %d worker process(es) ended (%d killed)", len(pids), len(killed))
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for job in unfinished:
            if job.state == "cancelled":
                self._remove_partial_files(job)
        if self._progress_queue is not None:
            self._progress_queue.put(None)
            if self._progress_thread is not None:
                await asyncio.get_running_loop().run_in_executor(None, self._progress_thread.join, 1.0)
            self._progress_queue = None

    def _remove_partial_files(self, job: Job) -> None:
        """Delete a cancelled job's ``*.tmp`` files and audio files not among its finished files; never raises."""
        job_dir = self.output_dir / job.job_id
        finished = {Path(path).name for _, path in job.files}
        suffixes = tuple(f".{fmt}" for fmt in AUDIO_FORMATS)
        try:
            debris = [p for p in job_dir.iterdir()
                      if p.suffix == ".tmp" or (p.suffix in suffixes and p.name not in finished)]
        except OSError:  # no folder yet
            return
        for path in debris:
            try:
                path.unlink()
            except OSError as exc:
                log.warning("job %s: cannot remove %s: %s", job.job_id, path, exc)
        if debris:
            log.info("job %s: removed %d unfinished file(s)", job.job_id, len(debris))

    def _render_pool(self) -> ProcessPoolExecutor:
        """The render workers, started on first use (loading a SoundFont takes a while)."""
        if self._render_executor is None:
            ctx = WorkerContext(self.render, self.worker_cpus)
            self._progress_queue = ctx.Queue()
            self._render_executor = ProcessPoolExecutor(
                max_workers=self.render.workers, mp_context=ctx,
                initializer=init_render_worker, initargs=(self.render, self.worker_cpus, self._progress_queue),
            )
            loop = asyncio.get_running_loop()
            queue = self._progress_queue

            def pump() -> None:
                while True:
                    item = queue.get()
                    if item is None:
                        return
                    try:
                        loop.call_soon_threadsafe(self._on_progress, *item)
                    except RuntimeError:  # the loop is closed
                        return

            self._progress_thread = threading.Thread(target=pump, name="render-progress", daemon=True)
            self._progress_thread.start()
        return self._render_executor

    def _on_progress(self, job_id: str, fraction: float) -> None:
        job = self.jobs.get(job_id)
        if job is not None and job.state == "rendering":
            self._set(job, "rendering", round(0.5 + 0.45 * fraction, 3))

    def get(self, job_id: str) -> Job:
        """Return the job; raises :class:`JobError` when unknown."""
        job = self.jobs.get(job_id)
        if job is None:
            raise JobError(f"unknown job {job_id!r}")
        return job

    def active_count(self) -> int:
        """Jobs queued or generating."""
        return sum(1 for j in self.jobs.values() if j.state not in FINAL_STATES)

    def submit(self, request: GenerationRequest, reply_to: tuple[str, int] | None = None) -> Job:
        """Queue a job and start it; returns at once.

        Raises:
            RequestError: code ``busy`` when ``max_queued`` jobs are waiting.
        """
        if self._executor is None:
            raise JobError("the job manager is not running")
        if self.active_count() >= self.max_queued:
            raise RequestError("request", f"{self.max_queued} jobs are already queued; try later", "busy")
        job = Job(job_id=new_job_id(), request=request, reply_to=reply_to)
        while job.job_id in self.jobs:
            job.job_id = new_job_id()
        self.jobs[job.job_id] = job
        self._trim()
        self._notify(job)
        self._tasks[job.job_id] = asyncio.get_running_loop().create_task(self._run(job))
        return job

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued or generating job.

        Raises:
            JobError: unknown job, or already finished.
        """
        job = self.get(job_id)
        task = self._tasks.get(job_id)
        if job.state in FINAL_STATES or task is None:
            raise JobError(f"job {job_id} is already {job.state}")
        task.cancel()
        return job

    async def wait(self, job_id: str) -> Job:
        """Wait until the job is final; return it."""
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        return self.get(job_id)

    def _trim(self) -> None:
        while len(self.jobs) > self.keep:
            oldest_id, oldest = next(iter(self.jobs.items()))
            if oldest.state not in FINAL_STATES:
                break
            del self.jobs[oldest_id]

    def _notify(self, job: Job) -> None:
        if self.listener is not None:
            try:
                self.listener(job, "state")
            except Exception:  # noqa: BLE001 - a reply failing must not kill the job
                log.exception("job listener failed for %s", job.job_id)

    def _fail(self, job: Job, error: tuple[str, str]) -> None:
        job.error = error
        log.warning("job %s failed: %s", job.job_id, error[1])
        self._set(job, "failed", 1.0)

    def _set(self, job: Job, state: str, progress: float) -> None:
        job.state, job.progress = state, progress
        self._notify(job)

    async def _run(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._set(job, "generating", 0.1)
            job_dir = self.output_dir / job.job_id
            status, payload = await loop.run_in_executor(self._executor, run_job, job.request, str(job_dir))
            if status != "ok":
                return self._fail(job, payload)  # type: ignore[arg-type]
            job.arrangement_pickle, job.files, job.elapsed_ms = payload  # type: ignore[misc]
            audio_formats = tuple(f for f in (job.request.render or ()) if f in AUDIO_FORMATS)
            if audio_formats:
                self._set(job, "rendering", 0.5)
                req = job.request
                status, payload = await loop.run_in_executor(
                    self._render_pool(), run_render, job.job_id, job.arrangement_pickle, str(job_dir), audio_formats,
                    req.stems, req.sample_rate, req.bit_depth, self.render, self.worker_cpus,
                )
                if status != "ok":
                    return self._fail(job, payload)  # type: ignore[arg-type]
                files, job.audio = payload  # type: ignore[misc]
                job.files.extend(files)
            log.info("job %s done: %s", job.job_id, ", ".join(f"{p}={Path(f).name}" for p, f in job.files))
            self._set(job, "done", 1.0)
        except asyncio.CancelledError:
            log.info("job %s cancelled", job.job_id)
            self._set(job, "cancelled", job.progress)
        except Exception as exc:  # noqa: BLE001 - e.g. a worker process died
            job.error = ("generation_failed", f"{type(exc).__name__}: {exc}")
            log.exception("job %s failed", job.job_id)
            self._set(job, "failed", 1.0)
        finally:
            self._tasks.pop(job.job_id, None)
