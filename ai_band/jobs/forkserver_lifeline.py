"""Imported by multiprocessing's forkserver when it starts: the forkserver dies with the daemon.

Importing it elsewhere would tie the importing process to its parent: only
:func:`ai_band.jobs.lifeline.start_forkserver` names it, in the forkserver's
``preload`` list (the one hook CPython gives into the forkserver's start).
"""

from ai_band.jobs.lifeline import die_with_parent

die_with_parent()
