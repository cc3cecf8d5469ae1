"""A :class:`~ai_band.testing.recorder.MidiRecorder` in a child process of its own.

The recorder's JACK process callback needs the Python interpreter lock once
per period (1.33 ms at 48 kHz / 64 frames).  In a process where another
thread is busy (a simulated host spinning before its sends) the callback
misses periods and their MIDI events are lost to it.  In a child process
nothing competes with it.  Times stay comparable: ``time.monotonic()`` is
CLOCK_MONOTONIC, one clock for every process on the machine.

The child also asks for nice -10 (best effort; root or ``CAP_SYS_NICE``), the
priority :class:`~ai_band.testing.jackserver.JackServer` gives jackd: the
recorder stands in for a DAW, whose MIDI input runs at realtime priority, and
its period timing is what every recorded time is derived from.  At nice 0 a
render on the other core could delay its callbacks, which a measurement must
not blame on the daemon.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.connection import Connection
from typing import Any

from ai_band.testing.recorder import MidiRecorder, RecordedEvent
from ai_band.system.priority import raise_priority

#: Nice value the recorder process asks for (the same as jackd's under JackServer).
RECORDER_NICE = -10


def _serve(conn: Connection, servername: str, pattern: str, count: int, timeout_s: float) -> None:
    # Before the JACK client exists: its threads inherit this thread's nice value.
    raise_priority(RECORDER_NICE)  # not privileged: records at the default priority
    try:
        with MidiRecorder(servername=servername) as rec:
            ports = rec.wait_for_ports(pattern, count=count, timeout_s=timeout_s)
            rec.connect(pattern)
            conn.send(("ready", ports, rec.samplerate))
            while True:
                cmd = conn.recv()
                if cmd == "events":
                    conn.send(rec.events())
                elif cmd == "count":
                    conn.send(rec.count())
                elif cmd == "hanging":
                    conn.send(rec.hanging_notes())
                elif cmd == "clear":
                    rec.clear()
                    conn.send(True)
                elif cmd == "stats":
                    conn.send({"xruns": rec.xruns, "missed_periods": rec.missed_periods, "late_reads": rec.late_reads, "torn_reads": rec.torn_reads,
                               "partial_reads": rec.partial_reads,
                               "missed_spans_s": rec.missed_spans_s(),
                               "missed_frame_ranges": rec.missed_frame_ranges()})
                elif cmd == "close":
                    conn.send(True)
                    return
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


class RecorderProcess:
    """Record the JACK MIDI output ports matching ``pattern`` from a child process.

    Args:
        servername: the JACK server's name.
        pattern: substring or regex of the ports to record (e.g. ``"ai-band"``).
        count: wait until at least this many matching ports exist.
        timeout_s: how long to wait for them.

    Raises:
        RuntimeError: the child could not start recording (its error in the message).
    """

    def __init__(self, servername: str, pattern: str = "ai-band", count: int = 1, timeout_s: float = 10.0) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, servername, pattern, count, timeout_s),
                                 name="midi-recorder", daemon=True)
        self._proc.start()
        if not self._conn.poll(timeout_s + 20):
            self._proc.kill()
            raise RuntimeError("recorder process did not start")
        reply = self._conn.recv()
        if reply[0] != "ready":
            self._proc.join(5)
            raise RuntimeError(f"recorder process failed: {reply[1]}")
        self.ports: list[str] = reply[1]
        #: The JACK server's sample rate (frames per second).
        self.samplerate: int = reply[2]

    def _ask(self, cmd: str) -> Any:
        self._conn.send(cmd)
        return self._conn.recv()

    def events(self) -> list[RecordedEvent]:
        """Every recorded event so far, sorted by time (CLOCK_MONOTONIC seconds)."""
        return self._ask("events")

    def count(self) -> int:
        """How many events were recorded so far (cheap: the child computes no times, unlike :meth:`events`)."""
        return self._ask("count")

    def hanging_notes(self) -> list[tuple[str, int, int]]:
        """(port, channel, pitch) of note-ons without a note-off (see MidiRecorder.hanging_notes)."""
        return self._ask("hanging")

    def clear(self) -> None:
        """Forget the events recorded so far."""
        self._ask("clear")

    def stats(self) -> dict[str, Any]:
        """``{"xruns": n, "missed_periods": n, "late_reads": n, "torn_reads": n, "partial_reads": n, "missed_spans_s": [(start_s, end_s), ...],
        "missed_frame_ranges": [(first, after), ...]}``
        as the recorder counted them (see :meth:`MidiRecorder.missed_spans_s`)."""
        return self._ask("stats")

    @property
    def missed_periods(self) -> int:
        """Periods the recorder's callback missed so far (see MidiRecorder.missed_periods)."""
        return self.stats()["missed_periods"]

    @property
    def xruns(self) -> int:
        """xruns JACK reported to the recorder so far."""
        return self.stats()["xruns"]

    def missed_frame_ranges(self) -> list[tuple[int, int]]:
        """The missed periods as JACK frame ranges ``(first frame, first frame read after)`` (see MidiRecorder)."""
        return self.stats()["missed_frame_ranges"]

    def close(self) -> None:
        """Stop recording and end the child; idempotent."""
        if self._proc.is_alive():
            try:
                self._ask("close")
            except (EOFError, OSError):
                pass
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.kill()

    def __enter__(self) -> "RecorderProcess":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
