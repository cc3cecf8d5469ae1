"""``GET /files/{job_id}/{name}``: a job's file, streamed with sendfile.

Only a file the job lists (:attr:`ai_band.jobs.manager.Job.files`, by its
name) is served, and only when its real path (symlinks resolved) lies inside
``<output_dir>/<job_id>/``; anything else is 404 (unknown) or 403 (outside).
The response has ``Content-Length``, ``Accept-Ranges: bytes`` and ``Range``
support (aiohttp's :class:`~aiohttp.web.FileResponse`, which sends with
``sendfile``), a strong ``ETag`` that is the file's SHA-256 (hex, computed in
a thread and cached by path, size and mtime), ``If-None-Match`` (304),
``If-Match`` (412) and ``If-Range`` against that ETag, and the MIME type of
:data:`MIME_TYPES`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from aiohttp import hdrs, web

from ai_band.errors import HttpError, JobError

log = logging.getLogger(__name__)

#: File suffix -> MIME type (RFC 3003 audio/midi; audio/wav and audio/flac as browsers and curl expect them).
MIME_TYPES = {
    ".mid": "audio/midi",
    ".midi": "audio/midi",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".json": "application/json",
}

#: Bytes read per step while hashing.
HASH_CHUNK_BYTES = 1 << 20

#: Hashes kept (path, size, mtime_ns) -> sha256 hex; the oldest is dropped beyond this.
HASH_CACHE_SIZE = 4096

#: Seconds a finished job's file list (sizes, hashes) is served from memory before the files are looked at again.
DESCRIBE_TTL_S = 1.0

#: Finished jobs whose file lists are kept; the oldest is dropped beyond this.
DESCRIBE_CACHE_SIZE = 1024

#: The final job states (:data:`ai_band.jobs.manager.FINAL_STATES`): their files no longer change.
FINAL_STATES = frozenset({"done", "failed", "cancelled", "interrupted"})


def sha256_file(path: Path) -> str:
    """The file's SHA-256 as 64 hex digits (blocking: run it in a thread)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _etag_list(header: str | None) -> list[str] | None:
    """``If-None-Match``/``If-Match`` values without quotes and ``W/`` (None when absent)."""
    if header is None:
        return None
    return [tag.strip().removeprefix("W/").strip('"') for tag in header.split(",") if tag.strip()]


class _ShaFileResponse(web.FileResponse):
    """FileResponse whose ETag is the SHA-256 it is given, and which leaves the conditionals to :class:`FileServer`.

    aiohttp's FileResponse sets an ETag from mtime and size and checks
    ``If-Match``/``If-None-Match``/``If-Range`` against that one; those
    headers are answered before (against the SHA-256), so they are taken off
    the request this response sees.
    """

    def __init__(self, path: Path, sha256: str, drop_range: bool, turns: asyncio.Semaphore,
                 **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self._sha256 = sha256
        self._drop_range = drop_range
        self._turns = turns

    @property
    def etag(self) -> Any:  # type: ignore[override]
        return web.StreamResponse.etag.fget(self)  # type: ignore[attr-defined]

    @etag.setter
    def etag(self, value: Any) -> None:
        web.StreamResponse.etag.fset(self, self._sha256)  # type: ignore[attr-defined]

    async def prepare(self, request: web.BaseRequest) -> Any:
        drop = {hdrs.IF_MATCH, hdrs.IF_NONE_MATCH, hdrs.IF_RANGE, hdrs.IF_MODIFIED_SINCE,
                hdrs.IF_UNMODIFIED_SINCE}
        if self._drop_range:
            drop.add(hdrs.RANGE)
        headers = {k: v for k, v in request.headers.items() if k not in drop}
        async with self._turns:  # [http] max_downloads bodies at once
            return await super().prepare(request.clone(headers=headers))


class FileServer:
    """Serves the files of jobs.

    Args:
        get_job: job id -> job with ``files`` [(part, path)]; raises :class:`JobError` when unknown.
        output_dir: the folder holding one folder per job.
        max_downloads: file bodies sent at once (``[http] max_downloads``); a
            download beyond them waits its turn (its headers with it). Each
            body in flight takes event-loop turns; a few at a time keep small
            requests quick with the same throughput (bench.http_load).
    """

    def __init__(self, get_job: Callable[[str], Any], output_dir: Path, max_downloads: int = 4) -> None:
        if max_downloads < 1:
            raise ValueError(f"max_downloads must be >= 1, got {max_downloads}")
        self.get_job = get_job
        self.output_dir = Path(output_dir).expanduser()
        self._turns = asyncio.Semaphore(max_downloads)
        self._hashes: dict[tuple[str, int, int], str] = {}
        self._resolved_root: Path | None = None
        self._described: dict[str, tuple[Any, float, list[tuple[str, str, int | None, str | None]]]] = {}

    def locate(self, job_id: str, name: str) -> Path:
        """The real path of the job's file called ``name``.

        Raises:
            HttpError: 404 ``unknown_job`` / ``not_found`` for a job or name not
                listed, 403 ``forbidden`` for a path outside the job's folder
                (``..``, an absolute path, a symlink leading out).
        """
        try:
            job = self.get_job(job_id)
        except JobError as exc:
            raise HttpError(str(exc), 404, "unknown_job") from None
        root = self._root()
        folder = (self.output_dir / job_id).resolve()
        if not folder.is_relative_to(root) or folder == root:
            raise HttpError(f"job id {job_id[:80]!r} leads outside the output folder", 403, "forbidden")
        for _part, path in job.files:
            if Path(path).name == name:
                real = Path(path).resolve()
                if not real.is_relative_to(folder):
                    raise HttpError(f"{name!r} lies outside the job's folder", 403, "forbidden")
                return real
        raise HttpError(f"job {job_id} has no file {name[:80]!r}", 404, "not_found")

    async def sha256(self, path: Path) -> tuple[str, os.stat_result]:
        """The file's SHA-256 (cached by path, size and mtime; computed in a thread) and its stat."""
        st = await asyncio.to_thread(path.stat)
        key = (str(path), st.st_size, st.st_mtime_ns)
        digest = self._hashes.get(key)
        if digest is None:
            digest = await asyncio.to_thread(sha256_file, path)
            if len(self._hashes) >= HASH_CACHE_SIZE:
                self._hashes.pop(next(iter(self._hashes)))
            self._hashes[key] = digest
        return digest, st

    def _root(self) -> Path:
        """The output folder's real path (resolved once; the daemon never moves it)."""
        if self._resolved_root is None:
            self._resolved_root = self.output_dir.resolve()
        return self._resolved_root

    def _locate_stat(self, job_id: str, name: str) -> tuple[Path, os.stat_result]:
        """:meth:`locate` and the file's stat (blocking: run in a thread)."""
        real = self.locate(job_id, name)
        return real, real.stat()

    def _stat_files(self, job_id: str, files: list[tuple[str, str]]) -> list[tuple[str, str, Path | None, Any]]:
        """``(part, name, real path or None, stat or None)`` of each file (blocking: run in a thread)."""
        out = []
        for part, path in files:
            name = Path(path).name
            try:
                real = self.locate(job_id, name)
                out.append((part, name, real, real.stat()))
            except (HttpError, OSError):
                out.append((part, name, None, None))
        return out

    async def describe(self, job_id: str, base_url: str) -> list[dict[str, Any]]:
        """The job's files as ``[{part, name, url, size, sha256}]``.

        The files are looked up and stat'ed in one thread, hashed in a thread
        the first time (then cached by path, size and mtime); a finished
        job's answer is kept :data:`DESCRIBE_TTL_S` (a job polled thousands of
        times a second costs no thread hop per poll).  A listed file that is
        gone from disk or lies outside the job's folder has ``size`` and
        ``sha256`` null and no ``url``.

        Raises:
            HttpError: 404 ``unknown_job``.
        """
        try:
            job = self.get_job(job_id)
        except JobError as exc:
            raise HttpError(str(exc), 404, "unknown_job") from None
        files = list(job.files)
        key = (job.state, tuple(files))
        now_s = time.monotonic()
        cached = self._described.get(job_id)
        if cached is not None and cached[0] == key and now_s - cached[1] < DESCRIBE_TTL_S:
            described = cached[2]
        else:
            described = []
            for part, name, real, st in await asyncio.to_thread(self._stat_files, job_id, files):
                digest = None
                if real is not None:
                    digest = self._hashes.get((str(real), st.st_size, st.st_mtime_ns))
                    if digest is None:
                        try:
                            digest, st = await self.sha256(real)
                        except OSError:
                            real = st = None
                described.append((part, name, st.st_size if st is not None else None, digest))
            if job.state in FINAL_STATES:
                if len(self._described) >= DESCRIBE_CACHE_SIZE:
                    self._described.pop(next(iter(self._described)))
                self._described[job_id] = (key, now_s, described)
        return [{"part": part, "name": name,
                 "url": f"{base_url}/files/{job_id}/{name}" if digest is not None else None,
                 "size": size, "sha256": digest} for part, name, size, digest in described]

    async def respond(self, request: web.Request, job_id: str, name: str) -> web.StreamResponse:
        """The response for ``GET``/``HEAD /files/{job_id}/{name}``."""
        try:  # the lookup (symlinks resolved) and the stat in one thread: no file system call on the loop
            path, st = await asyncio.to_thread(self._locate_stat, job_id, name)
            digest = self._hashes.get((str(path), st.st_size, st.st_mtime_ns))
            if digest is None:
                digest, _st = await self.sha256(path)
        except FileNotFoundError:
            raise HttpError(f"{name!r} of job {job_id} is gone from disk", 404, "not_found") from None
        etag = f'"{digest}"'
        if (tags := _etag_list(request.headers.get(hdrs.IF_MATCH))) is not None:
            if "*" not in tags and digest not in tags:
                raise HttpError("If-Match: the file has changed", 412, "precondition_failed")
        if (tags := _etag_list(request.headers.get(hdrs.IF_NONE_MATCH))) is not None:
            if "*" in tags or digest in tags:
                return web.Response(status=304, headers={hdrs.ETAG: etag})
        if_range = request.headers.get(hdrs.IF_RANGE)
        drop_range = if_range is not None and if_range.strip() != etag
        content_type = MIME_TYPES.get(path.suffix.lower(), "application/octet-stream")
        return _ShaFileResponse(path, digest, drop_range, self._turns, headers={hdrs.CONTENT_TYPE: content_type})
