"""Generation jobs: queued, run in worker processes, stored, kept within limits (see docs/jobs.md).

Cheat-sheet::

    from ai_band.jobs.manager import JobManager
    jobs = JobManager(output_dir, limits=config.jobs, render=config.render,
                      is_protected=lambda job_id: job_id == playing)
    await jobs.start()            # restores the job store; *.tmp swept; running jobs -> interrupted
    job = jobs.submit(request)    # RequestError: busy, too_large, disk_full
    await jobs.wait(job.job_id); job.state, job.files, job.arrangement
    await jobs.close()            # running jobs -> interrupted; workers ended

Modules: :mod:`~ai_band.jobs.manager` (queue, workers, write-through,
retention), :mod:`~ai_band.jobs.work` (one job's work, in a worker),
:mod:`~ai_band.jobs.store` (the SQLite job store, restart recovery),
:mod:`~ai_band.jobs.saved` (``arrangement.json``), :mod:`~ai_band.jobs.limits`
(free space, write failures, retention's choice), :mod:`~ai_band.jobs.lifeline`
(workers die with the daemon).
"""
