"""Output files of a job.

Cheat-sheet::

    from ai_band.render import write_midi_files

    paths = write_midi_files(arrangement, pathlib.Path("/var/lib/ai-band/jobs/42"))
    paths["bass"]   # .../bass.mid  (type 1: conductor track + bass track)
    paths["full"]   # .../full.mid  (conductor track + one track per part)

Files are written atomically (temp file, fsync, rename); failures raise
:class:`~ai_band.errors.RenderError` and leave no temporary file behind.
"""

from ai_band.render.midi import FULL, TICKS_PER_BEAT, write_midi_files

__all__ = ["FULL", "TICKS_PER_BEAT", "write_midi_files"]
