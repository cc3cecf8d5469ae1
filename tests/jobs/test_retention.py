"""Retention with real workers and a real store: the oldest finished jobs and their folders go, never the playing one."""

from __future__ import annotations

import asyncio
import time

import pytest

from ai_band.config import JobsSection
from ai_band.errors import JobError, JobStateError
from ai_band.jobs.manager import JobManager
from ai_band.jobs.store import JobRow, JobStore, request_to_json
from ai_band.request import parse_request

DAY_S = 86400.0


def _old_job(out, job_id: str, days_ago: float) -> JobRow:
    folder = out / job_id
    folder.mkdir(parents=True)
    (folder / "bass.mid").write_bytes(b"MThd")
    then = time.time() - days_ago * DAY_S
    return JobRow(job_id=job_id, request=request_to_json(parse_request({"id": job_id})), state="done",
                  created_s=then, finished_s=then, files=(("bass", str(folder / "bass.mid"), 4),))


def test_old_jobs_go_at_start_and_the_oldest_go_past_max_jobs_but_never_a_playing_one(tmp_path):
    out = tmp_path / "out"
    store = JobStore.open(out / "jobs.sqlite3")
    for row in (_old_job(out, "old-1", 40), _old_job(out, "old-playing", 41), _old_job(out, "recent", 2)):
        store.save(row)
    store.close()
    playing = {"old-playing"}

    async def run():
        jobs = JobManager(out, limits=JobsSection(keep_days=30, max_jobs=3, max_disk_mb=0),
                          is_protected=lambda job_id: job_id in playing)
        await jobs.start()
        try:
            await asyncio.sleep(0.2)  # the retention pass after the restore
            after_start = list(jobs.jobs)
            new = []
            for seed in range(3):
                job = jobs.submit(parse_request({"bars": 2, "seed": seed}))
                await asyncio.wait_for(jobs.wait(job.job_id), 60)
                assert job.state == "done", job.error
                new.append(job.job_id)
            await asyncio.sleep(0.2)
            return after_start, new, list(jobs.jobs)
        finally:
            await jobs.close()

    after_start, new, kept = asyncio.run(run())
    assert after_start == ["old-playing", "recent"]  # 40 days old: gone; 41 days but playing: kept
    assert not (out / "old-1").exists()
    # max_jobs = 3: "recent" then the first new job went, oldest first; the playing one stays.
    assert kept == ["old-playing", new[1], new[2]]
    assert not (out / "recent").exists() and not (out / new[0]).exists()
    assert (out / new[1] / "full.mid").exists()
    store = JobStore.open(out / "jobs.sqlite3")
    assert [row.job_id for row in store.load()] == kept
    store.close()


def test_delete_removes_folder_and_row_but_refuses_a_playing_or_unfinished_job(tmp_path):
    out = tmp_path / "out"
    store = JobStore.open(out / "jobs.sqlite3")
    for row in (_old_job(out, "finished", 1), _old_job(out, "playing", 1)):
        store.save(row)
    store.close()

    async def run():
        jobs = JobManager(out, is_protected=lambda job_id: job_id == "playing")
        await jobs.start()
        try:
            await jobs.delete("finished")
            with pytest.raises(JobStateError) as playing:
                await jobs.delete("playing")
            with pytest.raises(JobError) as unknown:
                await jobs.delete("finished")
            running = jobs.submit(parse_request({"bars": 2, "seed": 1}))
            with pytest.raises(JobStateError) as unfinished:
                await jobs.delete(running.job_id)
            await asyncio.wait_for(jobs.wait(running.job_id), 60)
            return playing.value.code, unknown.value.code, unfinished.value.code
        finally:
            await jobs.close()

    assert asyncio.run(run()) == ("job_playing", "unknown_job", "job_running")
    assert not (out / "finished").exists() and (out / "playing" / "bass.mid").exists()
    store = JobStore.open(out / "jobs.sqlite3")
    assert "finished" not in [row.job_id for row in store.load()]
    assert "playing" in [row.job_id for row in store.load()]
    store.close()
