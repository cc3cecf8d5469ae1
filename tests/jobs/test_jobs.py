"""JobManager with real worker processes: what a done job keeps, and what it costs the daemon."""

import asyncio

from ai_band.generate.pipeline import generate
from ai_band.request import parse_request
from ai_band.jobs.manager import JobManager


def test_a_done_job_keeps_its_arrangement_pickled_until_it_is_asked_for(tmp_path):
    fields = {"chords": "| C | Am | F | G |", "style": "rock", "bars": 8, "seed": 7}

    async def run():
        jobs = JobManager(tmp_path, workers=1)
        await jobs.start()
        try:
            job = jobs.submit(parse_request(fields))
            for _ in range(600):
                if job.state in ("done", "failed"):
                    break
                await asyncio.sleep(0.05)
            return job
        finally:
            await jobs.close()

    job = asyncio.run(run())
    assert job.state == "done", job.error
    assert isinstance(job.arrangement_pickle, bytes)
    assert job._arrangement is None  # nothing unpickled in the daemon for a job nobody played
    assert job.arrangement == generate(parse_request(fields))
    assert job.arrangement is job.arrangement  # unpickled once, then kept


def test_a_job_cancelled_before_its_task_ran_ends_cancelled_and_is_announced(tmp_path):
    # The cancel comes in the same turn of the event loop as the request (two datagrams read
    # together): the job's task has not taken its first step, so its coroutine never runs.
    fields = {"chords": "| C | Am | F | G |", "style": "rock", "bars": 8, "seed": 7}
    announced = []

    async def run():
        jobs = JobManager(tmp_path, workers=1)
        jobs.listener = lambda job, what: announced.append(job.state)
        await jobs.start()
        try:
            job = jobs.submit(parse_request(fields))
            jobs.cancel(job.job_id)
            return await asyncio.wait_for(jobs.wait(job.job_id), 10)
        finally:
            await jobs.close()

    job = asyncio.run(run())
    assert job.state == "cancelled"
    assert announced[-1] == "cancelled"
