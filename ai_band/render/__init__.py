"""Output files of a job.

Cheat-sheet::

    from ai_band.render import write_midi_files

    paths = write_midi_files(arrangement, pathlib.Path("/var/lib/ai-band/jobs/42"))
    paths["bass"]   # .../bass.mid  (type 1: conductor track + bass track)
    paths["full"]   # .../full.mid  (conductor track + one track per part)

Files are written atomically (temp file, fsync, rename); failures raise
:class:`~ai_band.errors.RenderError` and leave no temporary file behind.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FULL", "TICKS_PER_BEAT", "write_midi_files"]


def __getattr__(name: str) -> Any:
    """The names above, from :mod:`ai_band.render.midi` on first use (PEP 562).

    Importing a module of this package (the daemon's job manager imports
    ``render.audio_job`` and ``render.atomic``) then does not load mido,
    which only the job workers need: ~45 ms of the daemon's start.
    """
    if name in __all__:
        from ai_band.render import midi

        return getattr(midi, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
