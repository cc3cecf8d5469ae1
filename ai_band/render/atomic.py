"""Atomic file writing: write a temporary file beside the target, fsync, rename.

A reader (the DAW importing a .mid, a script reading job.json) never sees a
half-written file: either the old file, no file, or the complete new one.
"""

from __future__ import annotations

import logging
import os
import pathlib
import tempfile
from typing import BinaryIO, Callable

from ai_band.errors import RenderError

logger = logging.getLogger(__name__)


def write_temp(directory: pathlib.Path, write: Callable[[BinaryIO], None], temps: list[pathlib.Path]) -> pathlib.Path:
    """Write a complete ``*.tmp`` file in ``directory`` (flushed and fsynced); return its path.

    Args:
        directory: where the final file will live (same file system for the rename).
        write: called with the open binary handle; writes the whole content.
        temps: the new path is appended here at once, so the caller can remove it on failure.
    """
    with tempfile.NamedTemporaryFile(dir=directory, delete=False, suffix=".tmp") as handle:
        temp = pathlib.Path(handle.name)
        temps.append(temp)
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    return temp


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
    except Exception as exc:
        remove_temps(temps)
        raise RenderError(f"writing {path} failed: {exc}") from exc
    return path
