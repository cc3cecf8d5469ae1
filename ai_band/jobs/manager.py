"""Generation jobs: queued on the event loop, generated and written in worker processes.

Generation is CPU-bound Python; in a thread it would hold the GIL and delay
the scheduler thread, so it runs in a :class:`~concurrent.futures.ProcessPoolExecutor`
(``forkserver`` start method: safe in a process that already has threads).
The worker writes the files itself (atomically, see
:mod:`ai_band.render.midi`) and returns the arrangement (pickled: see
:attr:`Job.arrangement`) and the paths.

Every job is also a row of the job store (:mod:`ai_band.jobs.store`, SQLite):
each state change is written through, by one writer thread, so the event
loop never waits on the disk.  At start the store is read back (before the
OSC endpoint listens): finished jobs are listed and playable again (their
arrangement is read from ``arrangement.json``, :mod:`ai_band.jobs.saved`),
jobs that were running are ``interrupted`` or run again (``[jobs]
on_restart``), and ``*.tmp`` files are swept.  Retention
(:func:`~ai_band.jobs.limits.select_for_removal`) removes the oldest finished
jobs and their folders, never the one playing.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import pickle
import shutil
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

from ai_band.config import JobsSection, RenderSection
from ai_band.errors import JobError, JobStateError, RequestError
from ai_band.jobs.lifeline import die_with_parent, end_processes, start_forkserver
from ai_band.jobs.limits import DAY_S, Held, disk_free, mib, select_for_removal
from ai_band.jobs.store import DB_NAME, JobRow, JobStore, recover, request_from_json, request_to_json
from ai_band.jobs.work import new_job_id, run_job
from ai_band.model import Arrangement
from ai_band.render.audio_job import (
    RenderEstimate, estimate_render, init_render_worker, music_seconds, run_render,
)
from ai_band.request import AUDIO_FORMATS, GenerationRequest
from ai_band.system.priority import demote_process, yield_cpu

log = logging.getLogger(__name__)

#: Job states in the order they happen; the last four are final.  ``interrupted``:
#: the daemon stopped (or died) while the job was queued or running.
STATES = ("queued", "generating", "rendering", "done", "failed", "cancelled", "interrupted")
FINAL_STATES = ("done", "failed", "cancelled", "interrupted")

#: Seconds between retention passes while nothing finishes (``keep_days`` expiry).
RETENTION_INTERVAL_S = 3600.0


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
        error: ``(code, message)`` once failed or interrupted.
        elapsed_ms: wall time of generation plus writing, milliseconds.
        client: the registered name of the client that asked, or "".
        resolved: the resolved request (job.json's ``request``) once generated.
        arrangement_file: path of the saved arrangement (``arrangement.json``),
            from which a job restored after a restart is played.
        sizes: bytes of each written file, by path (the saved arrangement's too).
        created_s, finished_s: Unix times of the submission and of the final state.
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
    client: str = ""
    resolved: dict | None = None
    arrangement_file: str | None = None
    sizes: dict[str, int] = field(default_factory=dict)
    finished_s: float | None = None
    _arrangement: Arrangement | None = field(default=None, repr=False, compare=False)
    _request_json: dict | None = field(default=None, repr=False, compare=False)

    @property
    def arrangement(self) -> Arrangement | None:
        """The generated parts (None until done), unpickled or read on first use and kept.

        They travel from the generation worker to the daemon, and on to a
        render worker, as one ``bytes`` object, so that the daemon does no
        per-note work for a job nobody plays: unpickled, an 8-part, 64-bar
        arrangement (8400 notes) is 15 ms of Python, and pickled again for
        the render worker 4 ms more, all of it on the daemon's CPU, next to
        jackd (see :meth:`Part.__reduce__ <ai_band.model.Part.__reduce__>`).
        A job restored from the job store has no pickle: its
        ``arrangement.json`` is read instead (:func:`ai_band.jobs.saved.load_arrangement`,
        about as long: the notes are built by the same kind of Python loop).

        Raises:
            JobError: the saved arrangement cannot be read.
        """
        if self._arrangement is None:
            if self.arrangement_pickle is not None:
                self._arrangement = pickle.loads(self.arrangement_pickle)
            elif self.arrangement_file is not None and self.state == "done":
                from ai_band.jobs.saved import load_arrangement

                self._arrangement = load_arrangement(Path(self.arrangement_file))
        return self._arrangement

    @property
    def disk_bytes(self) -> int:
        """Bytes the job's files take (as written)."""
        return sum(self.sizes.values())

    def row(self, now_s: float | None = None) -> JobRow:
        """The job as a job-store row (:class:`~ai_band.jobs.store.JobRow`)."""
        if self._request_json is None:
            self._request_json = request_to_json(self.request)
        return JobRow(
            job_id=self.job_id, request=self._request_json, state=self.state, created_s=self.created_s,
            resolved=self.resolved, progress=self.progress,
            files=tuple((part, path, self.sizes.get(path, 0)) for part, path in self.files),
            arrangement_file=self.arrangement_file,
            arrangement_size=self.sizes.get(self.arrangement_file, 0) if self.arrangement_file else 0,
            owner=self.reply_to, owner_client=self.client, error=self.error, audio=self.audio,
            elapsed_ms=self.elapsed_ms, updated_s=time.time() if now_s is None else now_s, finished_s=self.finished_s,
        )

    @classmethod
    def from_row(cls, row: JobRow) -> "Job":
        """A job restored from the job store (its files all announced already)."""
        try:
            request = request_from_json(row.request)
        except (TypeError, ValueError) as exc:
            log.warning("job %s: stored request unreadable (%s); listed with an empty one", row.job_id, exc)
            request = GenerationRequest(id=str(row.request.get("id", "")) if isinstance(row.request, dict) else "")
        sizes = {path: size for _, path, size in row.files}
        if row.arrangement_file:
            sizes[row.arrangement_file] = row.arrangement_size
        files = [(part, path) for part, path, _ in row.files]
        return cls(
            job_id=row.job_id, request=request, reply_to=row.owner, state=row.state, progress=row.progress,
            files=files, announced=len(files), audio=row.audio, error=row.error, elapsed_ms=row.elapsed_ms,
            created_s=row.created_s, client=row.owner_client, resolved=row.resolved,
            arrangement_file=row.arrangement_file, sizes=sizes, finished_s=row.finished_s,
        )

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
    """Queue, run, remember and store generation jobs.

    Args:
        output_dir: files go to ``output_dir / job_id``.
        workers: worker processes (>= 1).
        max_queued: jobs queued or generating beyond this are refused.
        listener: called on the event loop as ``listener(job, event)`` with
            event ``"state"`` on every state change.
        render: the ``[render]`` config section: the render workers' engine,
            count, priority, CPUs and memory cap, and the audio defaults.
        worker_cpus: the CPUs of generation and render workers, chosen by the
            daemon (:func:`~ai_band.system.priority.split_cpus`); empty: each
            worker chooses from ``render.cpus``.
        limits: the ``[jobs]`` config section: the store, ``on_restart``,
            retention and the free-space reserve.
        db_path: the job store's file; None: ``limits.db_path`` inside
            ``output_dir`` (``jobs.sqlite3`` when empty).
        is_protected: ``is_protected(job_id)`` is True for a job retention must
            keep: the one playing or armed (the daemon asks its scheduler).
    """

    def __init__(
        self,
        output_dir: Path,
        workers: int = 1,
        max_queued: int = 16,
        listener: Listener | None = None,
        render: RenderSection | None = None,
        worker_cpus: tuple[int, ...] = (),
        limits: JobsSection | None = None,
        db_path: Path | None = None,
        is_protected: Callable[[str], bool] | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.render = render or RenderSection()
        self.limits = limits or JobsSection()
        self.db_path = Path(db_path) if db_path is not None else \
            self.output_dir / Path(self.limits.db_path or DB_NAME).expanduser()
        self.is_protected = is_protected or (lambda job_id: False)
        self.worker_cpus = tuple(worker_cpus)
        self._render_executor: ProcessPoolExecutor | None = None
        self._progress_queue = None
        self._progress_thread: threading.Thread | None = None
        self.workers = workers
        self.max_queued = max_queued
        self.listener = listener
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self._tasks: dict[str, asyncio.Task] = {}
        self._executor: ProcessPoolExecutor | None = None
        self._store: JobStore | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._closing = False
        self._retention_lock = asyncio.Lock()
        #: Jobs generate ``workers`` at a time; the others stay ``queued`` meanwhile.
        self._generation_slots = asyncio.Semaphore(workers)
        self._retention_task: asyncio.Task | None = None
        self._pending_retention: asyncio.Task | None = None

    @property
    def min_free_bytes(self) -> int:
        """``[jobs] min_free_mb`` in bytes."""
        return self.limits.min_free_mb << 20

    async def start(self) -> None:
        """:meth:`open`, then :meth:`warm_up`."""
        self.open()
        await self.warm_up()

    def open(self) -> None:
        """Restore the stored jobs, create the worker pool (no process yet), queue the jobs to run again.

        Needs the running event loop.  Blocks it meanwhile: 62 ms for 200
        jobs of 12 files (every file is stat'ed; ``python -m bench.job_store``);
        the daemon calls it before its OSC endpoint listens, so every old job
        is listed from the first request.
        """
        self.output_dir.mkdir(parents=True, exist_ok=True)
        requeue = self._restore()
        self._executor = self._generation_pool()
        for job in requeue:
            log.info("job %s queued again after the restart", job.job_id)
            self._start(job)
        self._retention_task = asyncio.get_running_loop().create_task(self._retention_loop(), name="job-retention")

    async def warm_up(self) -> None:
        """Start the worker processes and wait until each has imported the generator.

        The daemon calls it after READY=1.  The processes are started from a
        thread (``submit`` forks them through the forkserver: tens of
        milliseconds), so the event loop answers meanwhile.
        """
        executor = self._executor
        futures = await asyncio.to_thread(lambda: [executor.submit(_warm_up) for _ in range(self.workers)])
        await asyncio.gather(*(asyncio.wrap_future(future) for future in futures))
        log.info("generation: %d worker process(es) ready; files in %s", self.workers, self.output_dir)

    def _generation_pool(self) -> ProcessPoolExecutor:
        """A new pool of generation workers (their processes start on first use)."""
        ctx = WorkerContext(self.render, self.worker_cpus)
        # Generation workers yield the CPU like render workers: live playback first.
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_init_generation_worker,
                                   initargs=(self.render.nice, self.render.cpus, self.worker_cpus))

    # -- the job store -----------------------------------------------------------
    def _restore(self) -> list[Job]:
        """Open the store, recover it (:func:`~ai_band.jobs.store.recover`) and list its jobs; returns the jobs to requeue.

        Without a usable store (unwritable folder) the daemon runs on,
        remembering jobs in memory only (logged as an error).
        """
        t0 = time.perf_counter()
        try:
            self._store = JobStore.open(self.db_path)
            report = recover(self._store, self.output_dir, self.limits.on_restart)
        except Exception as exc:  # noqa: BLE001 - StoreError, sqlite3.Error, OSError: the band plays on without a store
            log.error("job store %s unusable: %s; jobs will not survive a restart", self.db_path, exc)
            if self._store is not None:
                self._store.close()
            self._store = None
            return []
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="job-store")
        requeue = []
        for row in report.rows:
            job = Job.from_row(row)
            self.jobs[job.job_id] = job
            if job.job_id in report.requeue:
                job.announced = 0
                requeue.append(job)
        log.info("job store %s: %d job(s) restored (%d interrupted, %d queued again, %d with missing files, "
                 "%d dropped: folder gone); %d *.tmp file(s) swept (%s), %d unrecorded file(s) removed, in %.1f ms",
                 self.db_path, len(report.rows), len(report.interrupted), len(report.requeue), len(report.missing),
                 len(report.dropped), report.swept_tmp, mib(report.swept_bytes), report.stray_files,
                 (time.perf_counter() - t0) * 1000.0)
        return requeue

    def _db(self, method: Callable[..., Any], *args: Any) -> Future | None:
        """Run a store method on the writer thread (in call order); failures are logged, never raised."""
        if self._writer is None or self._store is None:
            return None
        future = self._writer.submit(method, *args)
        future.add_done_callback(_log_store_failure)
        return future

    def _persist(self, job: Job) -> None:
        """Write the job's row through to the store.

        The loop only snapshots the row (:meth:`Job.row`: median 18 us, p99
        0.16 ms); the transaction runs on the writer thread (median 0.12 ms,
        p99 0.44 ms, max 23 ms under a loaded disk: ``python -m bench.job_store``).
        """
        if self._store is not None:
            self._db(self._store.save, job.row())

    async def _close_store(self) -> None:
        writer, store = self._writer, self._store
        self._writer = self._store = None
        if writer is None or store is None:
            return
        writer.submit(store.close)
        await asyncio.get_running_loop().run_in_executor(None, writer.shutdown, True)

    # -- retention ----------------------------------------------------------------
    async def _retention_loop(self) -> None:
        """Retention now (after the restore), then every :data:`RETENTION_INTERVAL_S` (``keep_days`` expiry)."""
        while True:
            await self.apply_retention()
            await asyncio.sleep(RETENTION_INTERVAL_S)

    def _schedule_retention(self) -> None:
        if self._closing:
            return
        if self._pending_retention is None or self._pending_retention.done():
            self._pending_retention = asyncio.get_running_loop().create_task(self.apply_retention())

    async def apply_retention(self, extra_bytes: int = 0) -> list[str]:
        """Remove the jobs :func:`~ai_band.jobs.limits.select_for_removal` picks, folders and rows; return their ids.

        Args:
            extra_bytes: bytes a job is about to write (room is made for them
                under ``max_disk_mb``).

        Folders are removed in a thread (a big render's files take a while);
        a folder that cannot be removed keeps its job (and row), logged.
        """
        async with self._retention_lock:
            held = [Held(j.job_id, j.state in FINAL_STATES, j.created_s, j.finished_s, j.disk_bytes)
                    for j in self.jobs.values()]
            chosen = select_for_removal(
                held, time.time(), max_jobs=self.limits.max_jobs, max_disk_bytes=self.limits.max_disk_mb << 20,
                keep_s=self.limits.keep_days * DAY_S, is_protected=self._protected, extra_bytes=extra_bytes)
            removed = []
            for job_id in chosen:
                job = self.jobs.get(job_id)
                if job is None or self._protected(job_id):  # played meanwhile
                    continue
                error = await self._remove(job_id)
                if error:
                    log.warning("retention: cannot remove job %s's folder: %s", job_id, error)
                    continue
                removed.append(job_id)
            if removed:
                log.info("retention: removed %d job(s) and their files: %s", len(removed), ", ".join(removed))
            return removed

    async def _remove(self, job_id: str) -> str | None:
        """Remove a job's folder (in a thread), then its entry and store row; returns None or why the folder stays."""
        error = await asyncio.to_thread(_remove_folder, self.output_dir / job_id)
        if error:
            return error
        self.jobs.pop(job_id, None)
        if self._store is not None:
            self._db(self._store.delete, job_id)
        return None

    async def delete(self, job_id: str) -> None:
        """Delete a finished job: its folder with every file, its entry and its store row (as retention does).

        Raises:
            JobError: unknown job (``unknown_job``).
            JobStateError: the job is not finished (``job_running``: cancel it
                first), is playing or armed (``job_playing``, by
                :attr:`is_protected`), or its folder cannot be removed
                (``delete_failed``; the job is kept).
        """
        async with self._retention_lock:
            job = self.get(job_id)
            if job.state not in FINAL_STATES:
                raise JobStateError(f"job {job_id} is {job.state}; cancel it before deleting it", "job_running")
            if self._protected(job_id):
                raise JobStateError(f"job {job_id} is playing or armed; stop it before deleting it", "job_playing")
            error = await self._remove(job_id)
            if error:
                raise JobStateError(f"cannot delete job {job_id}: {error}", "delete_failed")
        log.info("deleted job %s and its files", job_id)

    def _protected(self, job_id: str) -> bool:
        try:
            return bool(self.is_protected(job_id))
        except Exception:  # noqa: BLE001 - when in doubt, keep the job
            log.exception("is_protected(%s) failed", job_id)
            return True

    # -- stopping -----------------------------------------------------------------
    async def close(self, grace_s: float = WORKER_GRACE_S) -> None:
        """Interrupt unfinished jobs, end the worker processes, remove what they left half-written, close the store.

        Running jobs end ``interrupted`` (stored so; ``[jobs] on_restart``
        decides at the next start whether they run again).  The workers are
        not waited for: they get SIGTERM, then SIGKILL after ``grace_s``
        seconds (:func:`~ai_band.jobs.lifeline.end_processes`), so that a
        render of minutes does not hold up a stop (it took 67 s).  Then each
        interrupted job's folder loses its ``*.tmp`` files and any audio file
        that is not among the job's finished files.  Never blocks the event
        loop for long.
        """
        self._closing = True
        unfinished = [job for job in self.jobs.values() if job.state not in FINAL_STATES]
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in (self._retention_task, self._pending_retention):
            if task is not None:
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
        for job in unfinished:  # a task cancelled before it ran was interrupted by _run_ended
            if job.state in ("cancelled", "interrupted"):
                self._remove_partial_files(job)
        for task in (self._retention_task, self._pending_retention):
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
        await self._close_store()
        if self._progress_queue is not None:
            self._progress_queue.put(None)
            if self._progress_thread is not None:
                await asyncio.get_running_loop().run_in_executor(None, self._progress_thread.join, 1.0)
            self._progress_queue = None

    def _interrupt(self, job: Job) -> None:
        """The daemon stops: the job ends ``interrupted`` (logged as cancelled by the stop)."""
        log.info("job %s cancelled by the daemon's stop: stored as interrupted", job.job_id)
        job.error = ("interrupted", f"the daemon stopped while the job was {job.state}")
        self._set(job, "interrupted", job.progress)

    def _remove_partial_files(self, job: Job) -> None:
        """Delete a stopped job's ``*.tmp`` files and audio files not among its finished files; never raises."""
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

    # -- workers ------------------------------------------------------------------
    def _render_pool(self) -> ProcessPoolExecutor:
        """The render workers, started on first use (loading a SoundFont takes a while)."""
        if self._render_executor is None:
            ctx = WorkerContext(self.render, self.worker_cpus)
            if self._progress_queue is not None:  # a pool that broke: end its pump
                self._progress_queue.put(None)
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

    # -- jobs ---------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        """Return the job; raises :class:`JobError` when unknown."""
        job = self.jobs.get(job_id)
        if job is None:
            raise JobError(f"unknown job {job_id!r}")
        return job

    def active_count(self) -> int:
        """Jobs queued or generating."""
        return sum(1 for j in self.jobs.values() if j.state not in FINAL_STATES)

    def render_estimate(self, request: GenerationRequest) -> RenderEstimate | None:
        """What rendering ``request``'s audio will take, from its resolved length; None without audio formats.

        Resolves the request (style defaults, bars from a duration or the
        chord sheet; cheap, the generator's own resolution).

        Raises:
            RequestError: as :func:`ai_band.generate.pipeline.resolve_request`.
        """
        formats = tuple(f for f in (request.render or ()) if f in AUDIO_FORMATS)
        if not formats:
            return None
        from ai_band.generate.pipeline import resolve_request

        resolved = resolve_request(request)
        assert resolved.bars is not None and resolved.ts is not None and resolved.bpm is not None
        music_s = music_seconds(resolved.bars, resolved.ts[0], resolved.ts[1], resolved.bpm)
        return estimate_render(music_s, len(resolved.parts or ()), formats, request.stems,
                               request.sample_rate or self.render.sample_rate,
                               request.bit_depth or self.render.bit_depth, self.render.tail_s)

    def check_limits(self, request: GenerationRequest) -> None:
        """Refuse, before anything starts, a job whose audio cannot fit the limits.

        Raises:
            RequestError: code ``too_large`` when the render's estimated memory
                does not fit ``[render] max_worker_mb`` beside a worker's own
                (:data:`~ai_band.render.audio_job.RENDER_WORKER_BYTES`), or its
                files alone exceed ``[jobs] max_disk_mb``; code ``disk_full``
                when they do not fit in the free space (with the reserve).
                Each message gives the estimate and the limit.
        """
        estimate = self.render_estimate(request)
        if estimate is None:
            return
        limit = self.render.max_worker_mb << 20
        if limit and estimate.worker_bytes() > limit:
            raise RequestError("render", f"the render needs about {mib(estimate.worker_bytes())} of memory "
                                         f"({estimate.frames} frames), over [render] max_worker_mb = "
                                         f"{self.render.max_worker_mb}; ask for fewer bars, parts or no stems",
                               "too_large")
        disk_limit = self.limits.max_disk_mb << 20
        if disk_limit and estimate.disk_bytes > disk_limit:
            raise RequestError("render", f"the job's audio files would take about {mib(estimate.disk_bytes)}, over "
                                         f"[jobs] max_disk_mb = {self.limits.max_disk_mb}", "too_large")
        free = disk_free(self.output_dir)
        if free < estimate.disk_bytes + self.min_free_bytes:
            raise RequestError("render", f"not enough free space in {self.output_dir}: {mib(free)} free, the job "
                                         f"needs about {mib(estimate.disk_bytes)} and {mib(self.min_free_bytes)} "
                                         "must stay free", "disk_full")

    def submit(self, request: GenerationRequest, reply_to: tuple[str, int] | None = None, client: str = "") -> Job:
        """Queue a job and start it; returns at once.

        Args:
            request: the validated request.
            reply_to: (ip, port) its replies go to (stored as the job's owner).
            client: the owner's registered client name, or "".

        Raises:
            RequestError: code ``busy`` when ``max_queued`` jobs are waiting;
                ``too_large`` or ``disk_full`` (:meth:`check_limits`).
        """
        if self._executor is None:
            raise JobError("the job manager is not running")
        if self.active_count() >= self.max_queued:
            raise RequestError("request", f"{self.max_queued} jobs are already queued; try later", "busy")
        self.check_limits(request)
        job = Job(job_id=new_job_id(), request=request, reply_to=reply_to, client=client)
        while job.job_id in self.jobs:
            job.job_id = new_job_id()
        self.jobs[job.job_id] = job
        self._persist(job)
        self._notify(job)
        self._start(job)
        return job

    def _start(self, job: Job) -> None:
        """Run ``job`` in a task of its own (:meth:`_run`)."""
        task = asyncio.get_running_loop().create_task(self._run(job))
        task.add_done_callback(partial(self._run_ended, job))
        self._tasks[job.job_id] = task

    def _run_ended(self, job: Job, task: asyncio.Task) -> None:
        """A job task cancelled before its first step never entered :meth:`_run`: it ends here.

        (A cancel that comes in the same turn of the loop as the request,
        before the task ran, throws into a coroutine that has not started.)
        """
        self._tasks.pop(job.job_id, None)
        if task.cancelled() and job.state not in FINAL_STATES:
            if self._closing:
                self._interrupt(job)
            else:
                log.info("job %s cancelled before it started", job.job_id)
                self._set(job, "cancelled", job.progress)

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

    def _notify(self, job: Job) -> None:
        if self.listener is not None:
            try:
                self.listener(job, "state")
            except Exception:  # noqa: BLE001 - a reply failing must not kill the job
                log.exception("job listener failed for %s", job.job_id)

    async def _fail(self, job: Job, error: tuple[str, str]) -> None:
        """The job failed; with ``disk_full`` its folder goes too (it leaves nothing behind)."""
        job.error = error
        log.warning("job %s failed: %s", job.job_id, error[1])
        if error[0] == "disk_full":
            problem = await asyncio.to_thread(_remove_folder, self.output_dir / job.job_id)
            if problem:
                log.warning("job %s: cannot remove its folder: %s", job.job_id, problem)
            job.files, job.sizes, job.announced = [], {}, 0
            job.arrangement_file = job.arrangement_pickle = job._arrangement = None
        self._set(job, "failed", 1.0)

    def _set(self, job: Job, state: str, progress: float) -> None:
        job.state, job.progress = state, progress
        if state in FINAL_STATES and job.finished_s is None:
            job.finished_s = time.time()
        self._persist(job)
        self._notify(job)
        if state in FINAL_STATES:
            self._schedule_retention()

    async def _run(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        try:
            job_dir = self.output_dir / job.job_id
            async with self._generation_slots:  # queued until a generation worker is free
                self._set(job, "generating", 0.1)
                status, payload = await loop.run_in_executor(self._executor, run_job, job.request, str(job_dir),
                                                             self.min_free_bytes)
            if status != "ok":
                return await self._fail(job, payload)  # type: ignore[arg-type]
            job.arrangement_pickle = payload["arrangement"]  # type: ignore[index]
            job.files = list(payload["files"])  # type: ignore[index]
            job.sizes = dict(payload["sizes"])  # type: ignore[index]
            job.arrangement_file = payload["arrangement_file"]  # type: ignore[index]
            job.resolved = payload["resolved"]  # type: ignore[index]
            job.elapsed_ms = payload["elapsed_ms"]  # type: ignore[index]
            audio_formats = tuple(f for f in (job.request.render or ()) if f in AUDIO_FORMATS)
            if audio_formats:
                req = job.request
                estimate = self._estimate_resolved(job, audio_formats)
                if estimate is not None and self.limits.max_disk_mb:
                    await self.apply_retention(extra_bytes=estimate.disk_bytes)
                self._set(job, "rendering", 0.5)
                status, payload = await loop.run_in_executor(
                    self._render_pool(), run_render, job.job_id, job.arrangement_pickle, str(job_dir), audio_formats,
                    req.stems, req.sample_rate, req.bit_depth, self.render, self.worker_cpus, self.min_free_bytes,
                )
                if status != "ok":
                    return await self._fail(job, payload)  # type: ignore[arg-type]
                files, job.audio = payload  # type: ignore[misc]
                job.files.extend(files)
                job.sizes.update(await asyncio.to_thread(_sizes, [path for _, path in files] + [
                    path for part, path in job.files if part == "job"]))
            log.info("job %s done: %s", job.job_id, ", ".join(f"{p}={Path(f).name}" for p, f in job.files))
            self._set(job, "done", 1.0)
        except asyncio.CancelledError:
            if self._closing:
                self._interrupt(job)
            else:
                log.info("job %s cancelled", job.job_id)
                self._set(job, "cancelled", job.progress)
        except BrokenProcessPool as exc:  # a worker died (killed, or crashed in C code): the next job gets a new pool
            if job.state == "rendering":
                self._render_executor = None
            elif not self._closing:
                self._executor = self._generation_pool()
            await self._fail(job, ("worker_died", f"the {job.state} worker process died: {exc}"))
        except Exception as exc:  # noqa: BLE001
            log.exception("job %s failed", job.job_id)
            await self._fail(job, ("generation_failed", f"{type(exc).__name__}: {exc}"))

    def _estimate_resolved(self, job: Job, formats: tuple[str, ...]) -> RenderEstimate | None:
        """The render estimate from the job's resolved request (None when it lacks the length)."""
        resolved = job.resolved or {}
        try:
            num, den = (int(x) for x in str(resolved["ts"]).split("/"))
            music_s = music_seconds(int(resolved["bars"]), num, den, float(resolved["bpm"]))
            parts = len(resolved["parts"])
        except (KeyError, TypeError, ValueError):
            return None
        req = job.request
        return estimate_render(music_s, parts, formats, req.stems, req.sample_rate or self.render.sample_rate,
                               req.bit_depth or self.render.bit_depth, self.render.tail_s)


def _sizes(paths: list[str]) -> dict[str, int]:
    """``{path: size in bytes}`` of the files that exist."""
    out = {}
    for path in paths:
        try:
            out[path] = Path(path).stat().st_size
        except OSError:
            pass
    return out


def _remove_folder(path: Path) -> str | None:
    """Remove a job folder and everything in it; returns None, or what went wrong (a missing folder is fine)."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{exc.filename or path}: {exc.strerror or exc}"
    return None


#: Seconds between two log lines about failed job-store writes (a full disk fails every write).
STORE_FAILURE_LOG_INTERVAL_S = 30.0

_store_failures = {"last_s": -STORE_FAILURE_LOG_INTERVAL_S, "since": 0}


def _log_store_failure(future: Future) -> None:
    """Done-callback of a store write (writer thread): log a failure, at most one line per interval."""
    exc = future.exception()
    if exc is None:
        return
    now = time.monotonic()
    _store_failures["since"] += 1
    if now - _store_failures["last_s"] >= STORE_FAILURE_LOG_INTERVAL_S:
        log.error("job store write failed (%d failure(s) since the last report): %s: %s",
                  _store_failures["since"], type(exc).__name__, exc)
        _store_failures.update(last_s=now, since=0)


def playing_jobs(scheduler_status: dict) -> set[str]:
    """Ids of the jobs a scheduler plays or has armed, from its ``status()`` (``current_job``, ``pending_job``).

    For the daemon's ``is_protected``: retention never removes those.
    """
    return {job_id for key in ("current_job", "pending_job") if (job_id := scheduler_status.get(key))}
