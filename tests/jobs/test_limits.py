"""Disk and memory limits: retention's choice, full disks for real (tmpfs), and jobs refused before they start.

A full disk is a real tmpfs mounted for the test (the tests run as root; where
``mount`` is not permitted they are skipped, saying so).
"""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from ai_band.config import JobsSection, RenderSection
from ai_band.errors import RenderError, RequestError
from ai_band.jobs.limits import Held, select_for_removal
from ai_band.jobs.manager import JobManager
from ai_band.jobs.store import JobStore
from ai_band.jobs.work import run_job
from ai_band.render.atomic import failure_code, write_atomic, write_temp
from ai_band.request import parse_request

#: The issue's job: 512 bars, 8 parts, WAV and FLAC with stems (1.64 GB written, a worker of 3.99 GB).
HUGE = {"chords": "| C | Am | F | G |", "style": "rock", "bpm": 120, "bars": 512, "seed": 5, "render": "wav,flac",
        "stems": 1, "parts": "drums,bass,keys,pad,melody,arp,guitar,strings"}


@pytest.fixture
def small_fs(tmp_path):
    """A 2 MiB tmpfs mounted at ``tmp_path / "fs"`` (unmounted afterwards)."""
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path, leave_bytes: int) -> None:
    """Write a file that leaves about ``leave_bytes`` free on ``folder``'s file system."""
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    (folder / "filler").write_bytes(b"\0" * max(0, free - leave_bytes))


# -- retention's choice ----------------------------------------------------------------

def _held(n: int, final=True, disk=100, finished=None) -> Held:
    return Held(f"j{n}", final, created_s=1000.0 + n, finished_s=finished, disk_bytes=disk)


@pytest.mark.parametrize(("jobs", "kwargs", "removed"), [
    ([_held(i) for i in range(5)], dict(max_jobs=3), ["j0", "j1"]),
    ([_held(i) for i in range(5)], dict(max_jobs=0), []),
    ([_held(i) for i in range(5)], dict(max_disk_bytes=250), ["j0", "j1", "j2"]),
    ([_held(i) for i in range(5)], dict(max_disk_bytes=500, extra_bytes=150), ["j0", "j1"]),
    # Running jobs count but never go; the oldest finished ones go instead.
    ([_held(0, final=False), _held(1, final=False), _held(2), _held(3)], dict(max_jobs=2), ["j2", "j3"]),
    # A protected (playing) job stays, the next oldest goes.
    ([_held(i) for i in range(4)], dict(max_jobs=3, is_protected=lambda j: j == "j0"), ["j1"]),
    # keep_days: finished before now - keep_s, whatever the other limits.
    ([_held(0, finished=100.0), _held(1, finished=5000.0), _held(2, finished=None)],
     dict(keep_s=1000.0), ["j0", "j2"]),
])
def test_retention_removes_the_oldest_finished_jobs_first(jobs, kwargs, removed):
    assert select_for_removal(list(reversed(jobs)), now_s=5500.0, **kwargs) == removed


# -- full disks ----------------------------------------------------------------------------

def test_a_wav_written_to_a_full_disk_fails_with_enospc_not_a_bare_assertion(small_fs):
    fill(small_fs, 64 * 1024)
    data = np.zeros((441000, 2), dtype=np.int16)
    temps: list[Path] = []
    with pytest.raises(OSError) as info:  # libsndfile's callback swallowed it: an empty AssertionError before
        write_temp(small_fs, lambda h: soundfile.write(h, data, 44100, subtype="PCM_16", format="WAV"), temps)
    assert info.value.errno == errno.ENOSPC and failure_code(info.value) == "disk_full"
    assert len(temps) == 1  # handed to the caller to remove
    temps[0].unlink()
    with pytest.raises(RenderError) as wrapped:
        write_atomic(small_fs / "big.bin", b"x" * 200_000)
    assert failure_code(wrapped.value) == "disk_full" and "No space left" in str(wrapped.value)
    assert not list(small_fs.glob("*.tmp")) and not (small_fs / "big.bin").exists()


def test_a_midi_job_without_room_is_disk_full_before_writing_anything(small_fs):
    fill(small_fs, 4 * 1024)
    status, (code, message) = run_job(parse_request({"bars": 8, "seed": 1}), str(small_fs / "job1"), 0)
    assert (status, code) == ("error", "disk_full")
    assert "MiB free" in message and "needs about" in message
    assert not (small_fs / "job1").exists()


def test_a_midi_write_that_hits_a_full_disk_is_disk_full_and_leaves_no_tmp(small_fs):
    fill(small_fs, 6 * 1024)
    request = parse_request({"bars": 64, "seed": 1, "parts": "drums,bass,keys,pad"})
    status, (code, message) = run_job(request, str(small_fs / "job2"), None)  # no check first: the write fails
    assert (status, code) == ("error", "disk_full"), message
    assert "free, the job needed about" in message and "No space left" in message
    assert not list(small_fs.rglob("*.tmp"))


def test_a_midi_write_failure_is_write_failed_not_render_failed(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    status, (code, message) = run_job(parse_request({"bars": 2, "seed": 1}), str(tmp_path / "file" / "job"), None)
    assert (status, code) == ("error", "write_failed"), message


def test_a_render_that_finds_the_disk_full_fails_disk_full_and_leaves_nothing(small_fs, tmp_path):
    """The disk fills up between the MIDI files and the audio: the job says so and its folder goes."""
    events = []

    def listener(job, event):
        events.append(job.state)
        if job.state == "rendering" and not (small_fs / "filler").exists():
            fill(small_fs, 16 * 1024)

    async def run():
        jobs = JobManager(small_fs, listener=listener, limits=JobsSection(min_free_mb=0, max_disk_mb=0),
                          db_path=tmp_path / "jobs.sqlite3", render=RenderSection(engine="numpy"))
        await jobs.start()
        try:
            job = jobs.submit(parse_request({"bars": 2, "seed": 1, "render": "wav", "parts": "bass"}))
            return await asyncio.wait_for(jobs.wait(job.job_id), 120)
        finally:
            await jobs.close()

    job = asyncio.run(run())
    assert "rendering" in events and job.state == "failed"
    code, message = job.error
    assert code == "disk_full" and "MiB free" in message and "needs about" in message, message
    assert sorted(p.name for p in small_fs.iterdir()) == ["filler"]  # no job folder, no *.tmp
    store = JobStore.open(tmp_path / "jobs.sqlite3")
    (row,) = store.load()
    assert (row.state, row.error[0], row.files, row.arrangement_file) == ("failed", "disk_full", (), None)
    store.close()


# -- too large -------------------------------------------------------------------------------

def test_the_issues_512_bar_job_is_refused_before_it_starts_with_the_estimate(tmp_path):
    jobs = JobManager(tmp_path)  # the shipped limits: [render] max_worker_mb = 4096
    with pytest.raises(RequestError) as info:
        jobs.check_limits(parse_request(HUGE))
    assert info.value.code == "too_large"
    message = str(info.value)
    assert "max_worker_mb = 4096" in message and "MiB of memory" in message
    estimate = jobs.render_estimate(parse_request(HUGE))
    assert estimate.frames == round((512 * 4 * 60 / 120 + 2.0) * 44100)
    assert estimate.worker_bytes() > 4096 << 20
    assert f"{estimate.worker_bytes() / 2**20:.1f} MiB" in message
    # The same job fits a worker allowed enough memory (and the MIDI-only job is no render at all).
    roomy = JobManager(tmp_path, render=RenderSection(max_worker_mb=estimate.worker_bytes() // 2**20 + 1),
                       limits=JobsSection(max_disk_mb=0))
    roomy.check_limits(parse_request(HUGE))
    jobs.check_limits(parse_request({**HUGE, "render": "mid"}))


def test_a_job_whose_files_alone_pass_max_disk_mb_is_too_large(tmp_path):
    jobs = JobManager(tmp_path, limits=JobsSection(max_disk_mb=100))
    with pytest.raises(RequestError) as info:
        jobs.check_limits(parse_request({**HUGE, "bars": 64}))
    assert info.value.code == "too_large" and "max_disk_mb = 100" in str(info.value)
