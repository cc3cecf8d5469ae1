"""Atomic file writing: write a temporary file beside the target, fsync, rename.

A reader (the DAW importing a .mid, a script reading job.json) never sees a
half-written file: either the old file, no file, or the complete new one.

A failed write names its cause: :func:`write_temp` re-raises the
:class:`OSError` of the first failed ``write()`` even when the writer swallowed
it (libsndfile's Python callbacks do: a WAV written to a full disk ended in a
bare ``AssertionError``), and :func:`failure_code` tells ``disk_full``
(``ENOSPC``, ``EDQUOT``) from any other ``write_failed``.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import pathlib
import tempfile
from typing import Any, BinaryIO, Callable, Iterator

from ai_band.errors import RenderError

logger = logging.getLogger(__name__)


@functools.cache
def file_mode() -> int:
    """Permission bits of a new file under the process umask: ``0o666 & ~umask`` (0o644 under umask 022).

    Read once, from ``/proc/self/status`` on Linux (without changing the umask),
    elsewhere by setting and restoring it.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            umask = next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


#: ``errno`` values that mean "no room left": the file system is full, or the user's quota is.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class _GuardedHandle:
    """A binary file handle whose ``write()`` keeps the first :class:`OSError` and reports 0 bytes written.

    Writers that call ``write()`` from C callbacks (soundfile's virtual I/O)
    would print the exception as an "ignored" traceback, once per call, and
    drop it; a short write makes libsndfile stop instead, and
    :func:`write_temp` raises what this kept.  Every other attribute is the
    wrapped handle's.
    """

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        if self.error is not None:
            return 0
        try:
            return self._handle.write(data)
        except OSError as exc:
            self.error = exc
            return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


def write_temp(directory: pathlib.Path, write: Callable[[BinaryIO], None], temps: list[pathlib.Path]) -> pathlib.Path:
    """Write a complete ``*.tmp`` file in ``directory`` (flushed and fsynced); return its path.

    Args:
        directory: where the final file will live (same file system for the rename).
        write: called with the open binary handle; writes the whole content.
        temps: the new path is appended here at once, so the caller can remove it on failure.

    Raises:
        OSError: creating, writing, flushing or syncing the file failed; a
            failed ``write()`` of the handle is raised after ``write`` returns
            or raises (chained to what it raised then, if anything).
        Exception: whatever ``write`` raised otherwise.

    The file gets the mode a plain ``open()`` would give it (:func:`file_mode`),
    not ``mkstemp``'s 0600, so other users of a service can read the results.
    """
    with tempfile.NamedTemporaryFile(dir=directory, delete=False, suffix=".tmp") as handle:
        temp = pathlib.Path(handle.name)
        temps.append(temp)
        os.fchmod(handle.fileno(), file_mode())
        guarded = _GuardedHandle(handle)
        try:
            write(guarded)  # type: ignore[arg-type]
        except Exception as exc:
            if guarded.error is not None and guarded.error is not exc:
                raise guarded.error from exc
            raise
        if guarded.error is not None:  # swallowed by the writer: the file is incomplete
            raise guarded.error
        handle.flush()
        os.fsync(handle.fileno())
    return temp


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it was raised from or during (``__cause__``, ``__context__``), each once."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [current.__cause__, current.__context__]


def failure_code(exc: BaseException) -> str | None:
    """``"disk_full"`` or ``"write_failed"`` when ``exc`` or an exception it was raised from is an :class:`OSError`.

    Follows ``__cause__`` and ``__context__`` (``raise ... from exc`` and
    implicit chaining); ``ENOSPC`` or ``EDQUOT`` anywhere makes it ``disk_full``.
    Returns None when no :class:`OSError` is in the chain (not a write failure).
    """
    found = None
    for current in exception_chain(exc):
        if isinstance(current, OSError):
            if current.errno in NO_SPACE_ERRNOS:
                return "disk_full"
            found = "write_failed"
    return found


def remove_temps(temps: list[pathlib.Path]) -> None:
    """Delete left-over temporary files (best effort, logged)."""
    for temp in temps:
        try:
            temp.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            logger.warning("could not remove temporary file %s", temp)


def fsync_dir(path: pathlib.Path) -> None:
    """Make renames in ``path`` durable (best effort; not every platform can open a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: pathlib.Path, data: bytes) -> pathlib.Path:
    """Write ``data`` to ``path`` atomically (temp file, fsync, ``os.replace``).

    Raises:
        RenderError: the directory cannot be created or written; no ``*.tmp`` is left.
    """
    path = pathlib.Path(path)
    temps: list[pathlib.Path] = []
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = write_temp(path.parent, lambda handle: handle.write(data), temps)
        os.replace(temp, path)
        temps.remove(temp)
        fsync_dir(path.parent)
    except OSError as exc:
        remove_temps(temps)
        raise RenderError(f"cannot write {exc.filename or path}: {exc.strerror or exc}") from exc
    except Exception as exc:
        remove_temps(temps)
        raise RenderError(f"writing {path} failed: {exc}") from exc
    return path
