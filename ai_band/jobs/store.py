"""The job store: every job's request, state, files and owner in one SQLite file, so jobs survive restarts.

Cheat-sheet::

    from ai_band.jobs.store import JobStore, JobRow, recover

    store = JobStore.open(output_dir / "jobs.sqlite3")   # WAL mode; the schema is created when missing
    store.save(row)                                      # one small transaction (insert or update)
    store.delete(job_id)
    report = recover(store, output_dir, "interrupt")     # at start: sweep *.tmp, check files, mark interrupted
    report.rows                                          # what the daemon knows again, oldest first
    store.close()

One table, one row per job (:class:`JobRow`).  The standard :mod:`sqlite3`
in WAL mode with ``synchronous=NORMAL``: a commit is a write into the WAL
file, without ``fsync`` (the WAL is synced at checkpoints), so a row saved
before the daemon is SIGKILLed is there after a restart (the kernel holds
it); only a power cut can lose the last commits, never corrupt the file
(SQLite's "WAL mode ... synchronous=NORMAL" guarantee:
https://www.sqlite.org/pragma.html#pragma_synchronous).  The connection is
used from one thread at a time: :class:`~ai_band.jobs.manager.JobManager`
reads it at start, then hands every write to one writer thread, so the event
loop never waits on the disk.

:func:`recover` is what start-up does before anything new runs: remove
``*.tmp`` files under the output folder (a write the daemon never finished),
mark jobs that were queued or running ``interrupted`` (or hand them back
for requeueing), drop rows whose folder is gone and fail rows whose files
went missing, so that no row points at a missing file.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ai_band.request import GenerationRequest

log = logging.getLogger(__name__)

#: The store's file name in the output folder when ``[jobs] db_path`` is empty.
DB_NAME = "jobs.sqlite3"

#: ``PRAGMA user_version`` of the schema below; a file with a newer one is not touched.
SCHEMA_VERSION = 1

#: States of a job that is neither finished nor interrupted (see :data:`ai_band.jobs.manager.STATES`).
ACTIVE_STATES = ("queued", "generating", "rendering")

#: ``[jobs] on_restart`` values.
ON_RESTART = ("interrupt", "requeue")

#: Milliseconds SQLite waits for a lock before ``database is locked`` (a second daemon on the same file).
BUSY_TIMEOUT_MS = 2000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id               TEXT PRIMARY KEY,
    request          TEXT NOT NULL,      -- the request as received (JSON, request_to_json)
    resolved         TEXT,               -- the request with every default applied (JSON, as in job.json)
    state            TEXT NOT NULL,      -- queued generating rendering done failed cancelled interrupted
    progress         REAL NOT NULL,      -- 0..1
    files            TEXT NOT NULL,      -- JSON [[part, path, size in bytes], ...], in writing order
    arrangement_file TEXT,               -- the saved arrangement (ai_band.jobs.saved), for /band/play
    arrangement_size INTEGER,            -- its size in bytes
    owner_ip         TEXT,               -- who asked: reply_to address and client name
    owner_port       INTEGER,
    owner_client     TEXT NOT NULL DEFAULT '',
    error_code       TEXT,
    error_message    TEXT,
    audio            TEXT,               -- JSON, the audio section of job.json once rendered
    elapsed_ms       REAL,
    created_s        REAL NOT NULL,      -- Unix time, seconds
    updated_s        REAL NOT NULL,
    finished_s       REAL
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_s);
"""

_COLUMNS = ("id", "request", "resolved", "state", "progress", "files", "arrangement_file", "arrangement_size",
            "owner_ip", "owner_port", "owner_client", "error_code", "error_message", "audio", "elapsed_ms",
            "created_s", "updated_s", "finished_s")

_UPSERT = (f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)}) "
           "ON CONFLICT(id) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:]))


@dataclass(frozen=True)
class JobRow:
    """One job as stored.

    Attributes:
        job_id: the job's id (its folder's name).
        request: the request as received, :func:`request_to_json` form.
        resolved: the resolved request (job.json's ``request``), once generated; else None.
        state: the job's state (:data:`ai_band.jobs.manager.STATES`).
        progress: 0..1.
        files: ``(part, path, size in bytes)`` of every finished file, in writing order.
        arrangement_file: path of the saved arrangement (:mod:`ai_band.jobs.saved`), or None.
        arrangement_size: its size in bytes (0 when None).
        owner: ``(ip, port)`` the job's replies go to, or None (offline use).
        owner_client: the registered client name of the owner, or "".
        error: ``(code, message)`` once failed or interrupted, else None.
        audio: the audio section of job.json once rendered, else None.
        elapsed_ms: generation plus writing wall time, milliseconds, once generated.
        created_s, updated_s: Unix times, seconds.
        finished_s: Unix time the job reached a final state, or None.
    """

    job_id: str
    request: dict[str, Any]
    state: str
    created_s: float
    resolved: dict[str, Any] | None = None
    progress: float = 0.0
    files: tuple[tuple[str, str, int], ...] = ()
    arrangement_file: str | None = None
    arrangement_size: int = 0
    owner: tuple[str, int] | None = None
    owner_client: str = ""
    error: tuple[str, str] | None = None
    audio: dict[str, Any] | None = None
    elapsed_ms: float | None = None
    updated_s: float = field(default_factory=time.time)
    finished_s: float | None = None

    @property
    def disk_bytes(self) -> int:
        """Bytes the job's files take: its files and the saved arrangement."""
        return sum(size for _, _, size in self.files) + self.arrangement_size

    def paths(self) -> list[str]:
        """Every file the row points at."""
        return [path for _, path, _ in self.files] + ([self.arrangement_file] if self.arrangement_file else [])

    def _values(self) -> tuple:
        owner_ip, owner_port = self.owner if self.owner else (None, None)
        code, message = self.error if self.error else (None, None)
        return (self.job_id, _dumps(self.request), _dumps(self.resolved) if self.resolved is not None else None,
                self.state, float(self.progress), _dumps([list(f) for f in self.files]), self.arrangement_file,
                int(self.arrangement_size), owner_ip, owner_port, self.owner_client, code, message,
                _dumps(self.audio) if self.audio is not None else None, self.elapsed_ms, self.created_s,
                self.updated_s, self.finished_s)

    @classmethod
    def _from_values(cls, values: sqlite3.Row) -> "JobRow":
        files = tuple((str(p), str(f), int(s)) for p, f, s in json.loads(values["files"]))
        owner = (values["owner_ip"], int(values["owner_port"])) if values["owner_ip"] is not None else None
        error = (values["error_code"], values["error_message"] or "") if values["error_code"] is not None else None
        return cls(
            job_id=values["id"], request=json.loads(values["request"]), state=values["state"],
            created_s=values["created_s"], resolved=json.loads(values["resolved"]) if values["resolved"] else None,
            progress=values["progress"], files=files, arrangement_file=values["arrangement_file"],
            arrangement_size=values["arrangement_size"] or 0, owner=owner, owner_client=values["owner_client"] or "",
            error=error, audio=json.loads(values["audio"]) if values["audio"] else None,
            elapsed_ms=values["elapsed_ms"], updated_s=values["updated_s"], finished_s=values["finished_s"],
        )


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def request_to_json(request: GenerationRequest) -> dict[str, Any]:
    """The request's fields as plain JSON values (tuples as lists; channels 0-based, as the dataclass holds them).

    :func:`request_from_json` rebuilds the very same request from it.
    """
    return {f.name: _listed(getattr(request, f.name)) for f in dataclasses.fields(request)}


def _listed(value: Any) -> Any:
    return [_listed(v) for v in value] if isinstance(value, tuple) else value


def _tupled(value: Any) -> Any:
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


def request_from_json(data: dict[str, Any]) -> GenerationRequest:
    """Rebuild a :class:`GenerationRequest` stored with :func:`request_to_json`.

    Keys the dataclass does not have (a row from a later version) are ignored.

    Raises:
        TypeError: ``data`` is not a mapping of the request's fields.
    """
    if not isinstance(data, dict):
        raise TypeError(f"a stored request must be a JSON object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(GenerationRequest)}
    return GenerationRequest(**{k: _tupled(v) for k, v in data.items() if k in names})


class StoreError(Exception):
    """The job store file cannot be opened or used (raised by :meth:`JobStore.open` only)."""


class JobStore:
    """One SQLite file of :class:`JobRow` rows; use it from one thread at a time.

    Build it with :meth:`open`.  Every write is one transaction of one
    statement (``with connection``: commit, or roll back on error).
    """

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path

    @classmethod
    def open(cls, path: Path) -> "JobStore":
        """Open (creating when missing) the store at ``path``, in WAL mode.

        A file that is not a SQLite database, or holds a newer schema, is
        renamed aside (``<name>.bad-<unix time>``, logged) and a new store is
        created: the daemon starts either way, without the old rows.

        Raises:
            StoreError: the folder or file cannot be created or opened at all
                (e.g. a read-only file system).
        """
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return cls._open(path)
        except (sqlite3.DatabaseError, _NewerSchema) as exc:
            if not path.exists():
                raise StoreError(f"cannot create the job store {path}: {exc}") from exc
            aside = path.with_name(f"{path.name}.bad-{int(time.time())}")
            log.error("job store %s is unusable (%s): moved to %s; starting a new one", path, exc, aside)
            try:
                for suffix in ("", "-wal", "-shm"):
                    src = Path(f"{path}{suffix}")
                    if src.exists():
                        os.replace(src, f"{aside}{suffix}")
                return cls._open(path)
            except (OSError, sqlite3.Error) as again:
                raise StoreError(f"cannot open the job store {path}: {again}") from again
        except OSError as exc:
            raise StoreError(f"cannot open the job store {path}: {exc.strerror or exc}") from exc

    @classmethod
    def _open(cls, path: Path) -> "JobStore":
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000.0, isolation_level=None, check_same_thread=False)
        try:
            db.row_factory = sqlite3.Row
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("job store %s: journal mode %s, not WAL", path, mode)
            db.execute("PRAGMA synchronous=NORMAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise _NewerSchema(f"schema version {version}; this daemon knows {SCHEMA_VERSION}")
            with db:
                db.executescript("BEGIN;" + _SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};COMMIT;")
        except BaseException:
            db.close()
            raise
        return cls(db, path)

    def save(self, row: JobRow) -> None:
        """Insert or replace ``row`` (one transaction).

        Raises:
            sqlite3.Error: the write failed (disk full, I/O error).
        """
        with self._db:
            self._db.execute(_UPSERT, row._values())

    def save_many(self, rows: Iterable[JobRow]) -> None:
        """Insert or replace several rows in one transaction."""
        with self._db:
            self._db.executemany(_UPSERT, [row._values() for row in rows])

    def delete(self, job_id: str) -> None:
        """Remove a job's row (one transaction); a missing row is no error."""
        with self._db:
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def load(self) -> list[JobRow]:
        """Every row, oldest first; a row that cannot be decoded is logged and skipped."""
        rows = []
        for values in self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs ORDER BY created_s, id"):
            try:
                rows.append(JobRow._from_values(values))
            except (ValueError, TypeError, KeyError) as exc:
                log.warning("job store: row %s cannot be read (%s); skipped", values["id"], exc)
        return rows

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close; idempotent, never raises."""
        if self._db is None:
            return
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            log.debug("job store checkpoint: %s", exc)
        try:
            self._db.close()
        except sqlite3.Error:
            pass
        self._db = None  # type: ignore[assignment]


class _NewerSchema(Exception):
    pass


@dataclass
class Recovery:
    """What :func:`recover` found and did.

    Attributes:
        rows: the rows the daemon knows again, oldest first (updated as stored).
        requeue: ids among ``rows`` to run again (``on_restart = "requeue"``).
        swept_tmp: ``*.tmp`` files removed.
        swept_bytes: their total size, bytes.
        interrupted: ids of jobs that were queued or running, now ``interrupted``.
        dropped: ids of rows removed because their folder is gone.
        missing: ids of rows failed with ``files_missing``.
        stray_files: files removed from interrupted jobs' folders (written, never recorded).
    """

    rows: list[JobRow] = field(default_factory=list)
    requeue: list[str] = field(default_factory=list)
    swept_tmp: int = 0
    swept_bytes: int = 0
    interrupted: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    stray_files: int = 0


def sweep_tmp(output_dir: Path) -> tuple[int, int]:
    """Remove ``*.tmp`` files in ``output_dir`` and in its folders one level down (the job folders).

    Only the daemon writes ``*.tmp`` there (:func:`ai_band.render.atomic.write_temp`);
    at start none of them can still be written.  Returns ``(files removed, bytes)``;
    a file that cannot be removed is logged.
    """
    count = size = 0
    folders = [output_dir]
    try:
        with os.scandir(output_dir) as entries:
            folders += [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return 0, 0
    for folder in folders:
        try:
            with os.scandir(folder) as entries:
                temps = [e for e in entries if e.name.endswith(".tmp") and e.is_file(follow_symlinks=False)]
        except OSError:
            continue
        for entry in temps:
            try:
                bytes_ = entry.stat(follow_symlinks=False).st_size
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("cannot remove %s: %s", entry.path, exc)
                continue
            count += 1
            size += bytes_
    return count, size


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _remove_strays(job_dir: Path, keep: set[str]) -> int:
    """Delete every regular file in ``job_dir`` not named in ``keep``; remove the folder when empty. Returns the count."""
    removed = 0
    try:
        with os.scandir(job_dir) as entries:
            strays = [e.path for e in entries if e.is_file(follow_symlinks=False) and e.name not in keep]
    except OSError:
        return 0
    for path in strays:
        try:
            os.unlink(path)
            removed += 1
        except OSError as exc:
            log.warning("cannot remove %s: %s", path, exc)
    if not keep:
        try:
            job_dir.rmdir()
        except OSError:
            pass
    return removed


def recover(store: JobStore, output_dir: Path, on_restart: str = "interrupt", now_s: float | None = None) -> Recovery:
    """Bring the store and the output folder into agreement after a stop or a crash.

    In order:

    1. ``*.tmp`` files under ``output_dir`` are removed (:func:`sweep_tmp`).
    2. Jobs left ``queued``, ``generating`` or ``rendering`` (the daemon was
       killed) become ``interrupted`` with error ``interrupted``; files in the
       folder of an interrupted job that its row does not list (renamed into
       place just before the end, never recorded) are removed.  With ``on_restart = "requeue"`` they and
       jobs ``interrupted`` by a stop are listed in :attr:`Recovery.requeue`
       instead, their folders emptied, to run again from the start.
    3. A row whose job folder is gone is deleted; a row some of whose files
       are gone becomes ``failed`` with error ``files_missing`` (naming them)
       and lists only the files still there.  Sizes are refreshed from disk.

    Args:
        store: the open store.
        output_dir: the daemon's output folder (the job folders are in it).
        on_restart: ``"interrupt"`` or ``"requeue"`` (``[jobs] on_restart``).
        now_s: Unix time stamped on the rows changed; now when None.

    Returns:
        A :class:`Recovery`; every change is already saved (one transaction).
    """
    now_s = time.time() if now_s is None else now_s
    report = Recovery()
    report.swept_tmp, report.swept_bytes = sweep_tmp(output_dir)
    changed: list[JobRow] = []
    for row in store.load():
        job_dir = output_dir / row.job_id
        if row.state in ACTIVE_STATES or (on_restart == "requeue" and row.state == "interrupted"):
            if on_restart == "requeue":
                report.stray_files += _remove_strays(job_dir, set())
                row = dataclasses.replace(row, state="queued", progress=0.0, files=(), arrangement_file=None,
                                          arrangement_size=0, error=None, audio=None, resolved=None,
                                          elapsed_ms=None, finished_s=None, updated_s=now_s)
                report.requeue.append(row.job_id)
                changed.append(row)
                report.rows.append(row)
                continue
            was = row.state
            row = dataclasses.replace(row, state="interrupted", updated_s=now_s, finished_s=now_s,
                                      error=("interrupted", f"the daemon stopped while the job was {was}"))
            report.interrupted.append(row.job_id)
            changed.append(row)
        if row.state == "interrupted":  # files written but never recorded (renamed just before the end) go
            report.stray_files += _remove_strays(job_dir, {Path(p).name for p in row.paths()})
        if not job_dir.is_dir() and row.paths():
            store.delete(row.job_id)
            report.dropped.append(row.job_id)
            continue
        files, gone = [], []
        for part, path, size in row.files:
            actual = _size(path)
            if actual is None:
                gone.append(Path(path).name)
            else:
                files.append((part, path, actual))
        arrangement_size = _size(row.arrangement_file) if row.arrangement_file else 0
        if arrangement_size is None:
            gone.append(Path(row.arrangement_file).name)  # type: ignore[arg-type]
        updated = dataclasses.replace(row, files=tuple(files),
                                      arrangement_file=row.arrangement_file if arrangement_size is not None else None,
                                      arrangement_size=arrangement_size or 0)
        if gone:
            updated = dataclasses.replace(
                updated, state="failed", updated_s=now_s, finished_s=row.finished_s or now_s,
                error=("files_missing", f"{len(gone)} file(s) of this job were removed outside the daemon: "
                                        + ", ".join(gone[:20])))
            report.missing.append(row.job_id)
        if updated != row or gone:
            changed = [r for r in changed if r.job_id != row.job_id] + [updated]
        report.rows.append(updated)
    if changed:
        store.save_many(changed)
    return report

