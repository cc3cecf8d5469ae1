"""A render worker's memory is capped (RLIMIT_AS) and its estimate holds: a real render fits a cap set to the estimate.

Render workers here are real ``ProcessPoolExecutor`` processes started with
the daemon's own initializer (:func:`init_render_worker`), so the cap, the
malloc arena limit and the engine are exactly the daemon's.
"""

from __future__ import annotations

import math
import multiprocessing
import pickle
import resource
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from ai_band.config import RenderSection
from ai_band.generate.pipeline import generate
from ai_band.render.audio_job import (
    RENDER_WORKER_BYTES, address_space_bytes, estimate_render, init_render_worker, run_render,
)
from ai_band.request import parse_request

#: 8 parts, 16 bars at 120 bpm, WAV and FLAC with stems: the issue's job, 32 times shorter.
FIELDS = {"chords": "| C | Am | F | G |", "style": "rock", "bpm": 120, "bars": 16, "seed": 5,
          "parts": "drums,bass,keys,pad,melody,arp,guitar,strings"}
FORMATS = ("wav", "flac")


def _worker_facts() -> tuple[int | None, int, int]:
    """In a worker: its address space now, its RLIMIT_AS (soft), and its peak address space (VmPeak), bytes."""
    peak = 0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmPeak:"):
                peak = int(line.split()[1]) * 1024
    return address_space_bytes(), resource.getrlimit(resource.RLIMIT_AS)[0], peak


def _pool(render: RenderSection) -> ProcessPoolExecutor:
    ctx = multiprocessing.get_context("forkserver")
    return ProcessPoolExecutor(1, mp_context=ctx, initializer=init_render_worker, initargs=(render, (), None))


@pytest.fixture(scope="module")
def arrangement():
    return generate(parse_request(FIELDS))


@pytest.fixture(scope="module")
def worker_own_bytes() -> int:
    """The address space of a ready render worker (no cap), bytes."""
    with _pool(RenderSection(max_worker_mb=0)) as pool:
        own, limit, _ = pool.submit(_worker_facts).result(timeout=120)
    assert limit == resource.RLIM_INFINITY
    assert own is not None and own < RENDER_WORKER_BYTES  # the daemon's bound before a worker exists holds
    return own


def test_a_real_render_fits_a_cap_set_to_its_estimate(tmp_path, arrangement, worker_own_bytes):
    render = RenderSection()
    estimate = estimate_render(arrangement.length_ppq * 60 / arrangement.bpm, len(arrangement.parts), FORMATS, True,
                               render.sample_rate, render.bit_depth, render.tail_s)
    cap_mb = math.ceil((worker_own_bytes + estimate.memory_bytes) / 2**20) + 16  # +16 MiB: workers differ a little
    with _pool(RenderSection(max_worker_mb=cap_mb)) as pool:
        status, payload = pool.submit(run_render, "fit", pickle.dumps(arrangement), str(tmp_path), FORMATS, True,
                                      None, None, render, (), 0).result(timeout=600)
        own, limit, peak = pool.submit(_worker_facts).result(timeout=60)
    assert status == "ok", payload
    assert limit == cap_mb << 20
    print(f"cap {cap_mb} MiB: worker {own >> 20} MiB ready, peak {peak >> 20} MiB; "
          f"estimate {estimate.memory_bytes >> 20} MiB over the worker's own")
    files, _ = payload
    assert len(files) == 2 * (1 + len(arrangement.parts))
    written = sum(Path(path).stat().st_size for _, path in files)
    assert written <= estimate.disk_bytes  # the disk estimate is an upper bound
    assert written > estimate.disk_bytes / 3  # and not a wild one


def test_a_render_over_the_cap_is_refused_before_it_allocates(tmp_path, arrangement, worker_own_bytes):
    cap_mb = (worker_own_bytes >> 20) + 64
    with _pool(RenderSection(max_worker_mb=cap_mb)) as pool:
        status, (code, message) = pool.submit(run_render, "big", pickle.dumps(arrangement), str(tmp_path), FORMATS,
                                              True, None, None, RenderSection(), (), 0).result(timeout=300)
    assert (status, code) == ("error", "too_large")
    assert "needs about" in message and f"max_worker_mb = {cap_mb}" in message
    assert not list(tmp_path.iterdir())  # nothing written
