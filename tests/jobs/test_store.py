"""The job store on a real SQLite file: rows round-trip, WAL mode, and what recovery does to rows and folders."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from ai_band.jobs.store import JobRow, JobStore, StoreError, recover, request_from_json, request_to_json, sweep_tmp
from ai_band.request import parse_request


def _row(job_id: str, state: str = "done", files: tuple = (), **kw) -> JobRow:
    return JobRow(job_id=job_id, request=request_to_json(parse_request({"id": job_id, "bars": 4})), state=state,
                  created_s=kw.pop("created_s", time.time()), files=files, **kw)


def _job_files(root: Path, job_id: str, names: tuple[str, ...]) -> tuple[tuple[str, str, int], ...]:
    folder = root / job_id
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        path = folder / name
        path.write_bytes(b"x" * (10 + len(name)))
        out.append((Path(name).stem, str(path), 1))  # size deliberately wrong: recovery refreshes it
    return tuple(out)


def test_rows_round_trip_through_a_real_file_in_wal_mode(tmp_path):
    path = tmp_path / "out" / "jobs.sqlite3"
    store = JobStore.open(path)
    first = _row("a", files=(("bass", "/x/bass.mid", 120),), arrangement_file="/x/arrangement.json",
                 arrangement_size=77, owner=("127.0.0.2", 9001), owner_client="live", resolved={"bpm": 120.0},
                 audio={"engine": "numpy"}, elapsed_ms=12.5, finished_s=5.0, progress=1.0)
    second = _row("b", state="failed", error=("disk_full", "0.1 MiB free, the job needs about 3.0 MiB"),
                  created_s=first.created_s + 1)
    store.save(first)
    store.save(second)
    store.save(second)  # an update, not a second row
    # Another connection sees the rows while the store is open (the WAL is read too), and the mode is WAL.
    other = sqlite3.connect(path)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert other.execute("SELECT id, state FROM jobs ORDER BY created_s").fetchall() == [("a", "done"), ("b", "failed")]
    other.close()
    store.close()
    again = JobStore.open(path)
    assert again.load() == [first, second]
    again.delete("a")
    assert [r.job_id for r in again.load()] == ["b"]
    again.close()


def test_a_request_round_trips_exactly():
    request = parse_request({"id": "r1", "chords": "| C | Am |", "ts": "7/8", "parts": "bass,drums", "seed": 3,
                             "sections": '{"verse": "C G", "chorus": "F C"}', "structure": "verse chorus",
                             "programs": "bass=34", "channels": "bass=3", "render": "wav,flac", "stems": 1,
                             "sample_rate": 48000, "bit_depth": 24, "bpm": 97.5, "play": 1})
    stored = json.loads(json.dumps(request_to_json(request)))
    assert request_from_json(stored) == request
    assert request_from_json({**stored, "from_a_later_version": 1}) == request
    with pytest.raises(TypeError):
        request_from_json(["not", "a", "dict"])  # type: ignore[arg-type]


def test_recovery_interrupts_running_jobs_sweeps_tmp_and_never_points_at_a_missing_file(tmp_path):
    out = tmp_path / "out"
    store = JobStore.open(out / "jobs.sqlite3")
    t = time.time() - 100
    done = _row("done", files=_job_files(out, "done", ("bass.mid", "full.mid", "job.json")), created_s=t)
    partly = _row("partly", files=_job_files(out, "partly", ("bass.mid", "mix.wav")), created_s=t + 1)
    (out / "partly" / "mix.wav").unlink()  # removed by hand
    gone = _row("gone", files=_job_files(out, "gone", ("bass.mid",)), created_s=t + 2)
    for path in (out / "gone").iterdir():
        path.unlink()
    (out / "gone").rmdir()
    rendering = _row("rendering", state="rendering", files=_job_files(out, "rendering", ("bass.mid", "job.json")),
                     created_s=t + 3, progress=0.7)
    (out / "rendering" / "mix.wav").write_bytes(b"renamed into place, never recorded")
    (out / "rendering" / "tmpab12.tmp").write_bytes(b"t" * 1000)
    generating = _row("generating", state="generating", created_s=t + 4)
    queued = _row("queued", state="queued", created_s=t + 5)
    for row in (done, partly, gone, rendering, generating, queued):
        store.save(row)
    (out / "stray.tmp").write_bytes(b"t" * 24)
    (out / "generating").mkdir()
    (out / "generating" / "tmpzz.tmp").write_bytes(b"")

    report = recover(store, out, "interrupt")

    assert (report.swept_tmp, report.swept_bytes) == (3, 1024)
    assert not list(out.rglob("*.tmp"))
    assert report.dropped == ["gone"] and report.missing == ["partly"]
    assert sorted(report.interrupted) == ["generating", "queued", "rendering"]
    assert report.stray_files == 1 and not (out / "rendering" / "mix.wav").exists()
    assert not (out / "generating").exists()  # an empty folder of a job without files goes
    rows = {r.job_id: r for r in store.load()}
    assert rows.keys() == {"done", "partly", "rendering", "generating", "queued"}
    assert rows == {r.job_id: r for r in report.rows}
    assert rows["done"].state == "done" and [s for _, _, s in rows["done"].files] == [18, 18, 18]
    assert rows["partly"].state == "failed" and rows["partly"].error[0] == "files_missing"
    assert "mix.wav" in rows["partly"].error[1] and [Path(p).name for _, p, _ in rows["partly"].files] == ["bass.mid"]
    assert rows["rendering"].state == "interrupted" and rows["rendering"].progress == 0.7
    assert rows["rendering"].error == ("interrupted", "the daemon stopped while the job was rendering")
    assert (out / "rendering" / "bass.mid").exists()  # what the job finished stays
    for row in rows.values():  # no row points at a missing file
        assert all(Path(p).exists() for p in row.paths()), row
    store.close()


def test_requeue_empties_the_folders_and_queues_the_jobs_again(tmp_path):
    out = tmp_path / "out"
    store = JobStore.open(out / "jobs.sqlite3")
    store.save(_row("r", state="rendering", files=_job_files(out, "r", ("bass.mid",)), progress=0.6))
    store.save(_row("i", state="interrupted", error=("interrupted", "stopped")))
    store.save(_row("d", files=_job_files(out, "d", ("bass.mid",))))
    report = recover(store, out, "requeue")
    assert sorted(report.requeue) == ["i", "r"]
    rows = {r.job_id: r for r in store.load()}
    assert rows["r"].state == rows["i"].state == "queued"
    assert rows["r"].files == () and rows["r"].error is None and rows["r"].progress == 0.0
    assert not (out / "r").exists() and (out / "d" / "bass.mid").exists()
    store.close()


def test_sweep_tmp_looks_one_folder_deep_only(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    (tmp_path / "a" / "x.tmp").write_bytes(b"12")
    (tmp_path / "a" / "deep" / "kept.tmp").write_bytes(b"1")
    (tmp_path / "a" / "x.tmp.mid").write_bytes(b"1")
    assert sweep_tmp(tmp_path) == (1, 2)
    assert (tmp_path / "a" / "deep" / "kept.tmp").exists() and (tmp_path / "a" / "x.tmp.mid").exists()
    assert sweep_tmp(tmp_path / "missing") == (0, 0)


def test_a_corrupt_store_is_moved_aside_and_a_new_one_made(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    store = JobStore.open(path)
    store.save(_row("new"))
    assert [r.job_id for r in store.load()] == ["new"]
    store.close()
    aside = [p.name for p in tmp_path.iterdir() if p.name.startswith("jobs.sqlite3.bad-")]
    assert len(aside) == 1


def test_a_store_that_cannot_be_created_is_a_store_error(tmp_path):
    (tmp_path / "file").write_text("a file where a folder should be")
    with pytest.raises(StoreError, match="cannot"):
        JobStore.open(tmp_path / "file" / "jobs.sqlite3")
