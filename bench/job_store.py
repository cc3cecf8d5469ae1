#!/usr/bin/env python3
"""Job store costs: what the event loop pays per state change, a write on the writer thread, a restart's restore.

Measured with the real :class:`~ai_band.jobs.store.JobStore` (SQLite, WAL,
``synchronous=NORMAL``) on a file in ``--dir`` (default: a temporary folder
under the current directory, so the disk is the one the daemon would use):

* ``snapshot``: :meth:`Job.row <ai_band.jobs.manager.Job.row>` for a done
  8-part job, the only store work done on the event loop per state change
  (the row is then handed to the writer thread);
* ``save``: one :meth:`JobStore.save` (one transaction), as the writer thread
  runs it: its wall time, which the loop never waits for;
* ``restore``: :func:`~ai_band.jobs.store.recover` of ``--jobs`` done jobs of
  12 files each (open, sweep, stat every file), which the daemon's start runs
  on the loop before OSC listens;
* ``load``: reading a restored 8-part, 64-bar job's ``arrangement.json`` on
  the first ``/band/play`` after a restart (on the loop), next to unpickling
  the same arrangement (what a job of this run costs).

Usage: python -m bench.job_store [--writes 2000] [--jobs 200] [--dir PATH]
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import tempfile
import time
from pathlib import Path

from bench.machine import machine_name


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return f"median {statistics.median(values) * 1000:.3f} ms, p99 {p99 * 1000:.3f} ms, max {values[-1] * 1000:.3f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args(argv)

    from ai_band.generate.pipeline import generate
    from ai_band.jobs.manager import Job
    from ai_band.jobs.saved import load_arrangement, save_arrangement
    from ai_band.jobs.store import JobStore, recover
    from ai_band.request import parse_request

    print(machine_name())
    request = parse_request({"chords": "| C | Am | F | G |", "style": "rock", "bars": 64, "seed": 5,
                             "parts": "drums,bass,keys,pad,melody,arp,guitar,strings", "render": "wav,flac", "stems": 1})
    arrangement = generate(request)
    with tempfile.TemporaryDirectory(dir=args.dir or Path.cwd()) as tmp:
        out = Path(tmp)
        store = JobStore.open(out / "jobs.sqlite3")
        job = Job(job_id="20261202-000000-0000", request=request, reply_to=("127.0.0.1", 9000), state="done",
                  progress=1.0, files=[(p.name, str(out / f"{p.name}.mid")) for p in arrangement.parts]
                  + [("full", str(out / "full.mid")), ("job", str(out / "job.json"))],
                  sizes={str(out / f"{p.name}.mid"): 10_000 for p in arrangement.parts}, resolved=request.to_dict(),
                  audio={"engine": "fluidsynth", "loudness_lufs": -14.0})
        snapshots, saves = [], []
        for i in range(args.writes):
            job.progress = i / args.writes
            t0 = time.perf_counter()
            row = job.row()
            t1 = time.perf_counter()
            store.save(row)
            t2 = time.perf_counter()
            snapshots.append(t1 - t0)
            saves.append(t2 - t1)
        print(f"snapshot on the loop ({args.writes}x): {_ms(snapshots)}")
        print(f"save on the writer thread ({args.writes}x, one transaction each): {_ms(saves)}")
        store.close()

        store = JobStore.open(out / "jobs2.sqlite3")
        for n in range(args.jobs):
            folder = out / f"job{n:04d}"
            folder.mkdir()
            files = []
            for k in range(12):
                path = folder / f"f{k}.mid"
                path.write_bytes(b"x" * 100)
                files.append((f"f{k}", str(path), 100))
            store.save(Job(job_id=folder.name, request=request, state="done", files=[(p, f) for p, f, _ in files],
                           sizes={f: s for _, f, s in files}, created_s=1e9 + n).row())
        store.close()
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            store = JobStore.open(out / "jobs2.sqlite3")
            report = recover(store, out, "interrupt")
            times.append(time.perf_counter() - t0)
            store.close()
        assert len(report.rows) == args.jobs
        print(f"restore of {args.jobs} done jobs of 12 files (open, sweep, stat, load; 5x): {_ms(times)}")

        path = save_arrangement(arrangement, out)
        blob = pickle.dumps(arrangement, pickle.HIGHEST_PROTOCOL)
        loads, unpickles = [], []
        for _ in range(20):
            t0 = time.perf_counter()
            load_arrangement(path)
            t1 = time.perf_counter()
            pickle.loads(blob)
            t2 = time.perf_counter()
            loads.append(t1 - t0)
            unpickles.append(t2 - t1)
        notes = sum(len(p.notes) for p in arrangement.parts)
        print(f"arrangement.json of 8 parts, 64 bars ({notes} notes, {path.stat().st_size / 1024:.0f} KiB) "
              f"read on first play: {_ms(loads)}; unpickling the same: {_ms(unpickles)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
