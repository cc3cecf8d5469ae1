"""A JACK MIDI recorder timed from the server's own cycle times, written apart from the daemon's code.

Why (issue 15, item 11): the daemon's JACK client and the project's test
recorder (``ai_band/testing/recorder.py``) both estimate when a period began
from clock reads taken inside their own callbacks.  A recorder that shares
that estimate can share its error.  This one asks the server instead: in every
process callback it calls ``jack_get_cycle_times()`` (JACK API, ``jack.h``),
which returns the cycle's first frame, the server's time of that cycle's
wake-up, the predicted next wake-up and the period, all in JACK's clock
(microseconds).  The time of a MIDI event at frame ``f`` is then::

    jack_us(f) = current_usecs + (f - current_frames) * (next_usecs - current_usecs) / nframes

which is what ``jack_frames_to_time()`` answers inside that cycle, and how a
DAW recording from JACK places the event.  Not ``period_usecs / nframes``:
the loop's prediction of the next wake-up differs from the nominal period by
up to ~100 µs on a non-realtime server, and with the nominal slope the last
frames of a period would lie up to two frames away from where the next
cycle begins.

With JACK2 ``current_usecs`` is the output of the server's delay-locked
loop (``JackFrameTimer``): the previous cycle's ``next_usecs``, which the loop
computes from the driver's wake-up stamps.  When the driver overruns
(``JackEngineControl::NotifyXRun`` -> ``ResetFrameTime``) JACK2 1.9.21 resets
the current state to the wake-up and keeps ``next_usecs``; the loop carries
on from there and slews towards the driver's new schedule, lagging it by up
to a millisecond (seen: 15 ms) for seconds.  Later JACK2 re-anchors
``next_usecs`` too: a jump forward in the timeline, which
:func:`timeline_jumps` lists.  So the recorder also keeps, for every period,
the server's stamp of when its driver actually woke (``fCurrentCallback``,
from ``jack_frames_since_cycle_start``; :attr:`CycleEvent.wake_minus_start_us`):
the server's own record of how far its loop is from its driver.

JACK's clock is ``jack_get_time()``: CLOCK_MONOTONIC_RAW on Linux with JACK2,
which NTP's slew moves against CLOCK_MONOTONIC by up to 500 ppm.  A thread of
the recorder's process samples ``CLOCK_MONOTONIC - jack_get_time()`` every
:data:`OFFSET_SAMPLE_S` (the tightest of a few bracketed read pairs) and each
event's JACK time is mapped with the offset interpolated at that time: no
assumption about which clock JACK uses, and the slew is followed.

The reader's own pitfalls, handled from the frames alone:

* libjack's cycle times are the server's current ones, not the cycle's: a
  callback that starts after the server began the next cycle reads the next
  cycle's frames over the buffers of its own.  The next callback then reports
  the same ``current_frames``.  If the buffers differ, the first read was of
  the period before (moved back one period, timed from the cycle before's
  ``next_usecs``: ``late_reads``); if they are the same, it is dropped.
* A callback whose cycle frames changed while it read the ports (descheduled
  mid-read) is dropped and its period counts as missed (``torn_reads``).
* Periods no callback read are listed as frame ranges (``missed_frame_ranges``).

The recorder runs in a child process of its own (spawned; nothing else there
wants the interpreter lock), at nice -10, its JACK process thread
``SCHED_FIFO`` (:data:`RTPRIO`) unless libjack already made it realtime, as
a DAW's MIDI input runs.  Only JACK-Client (ports, buffers) and ctypes
(``jack_get_cycle_times``, ``jack_get_time``, which JACK-Client does not wrap)
are used: nothing from ``ai_band``.

Usage (the benchmark's): ``with CycleRecorderProcess(server, "ai-band", count=8) as rec: ...;
rec.events(); rec.stats()``.
"""

from __future__ import annotations

import bisect
import collections
import ctypes
import ctypes.util
import dataclasses
import multiprocessing
import os
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

#: How often (s) the recorder samples CLOCK_MONOTONIC - jack_get_time().
OFFSET_SAMPLE_S = 0.05

#: SCHED_FIFO priority of the recorder's JACK process thread when the server
#: did not make it realtime (a realtime server's clients already are).
RTPRIO = 20

#: Nice value of the recorder's process (best effort).
NICE = -10

#: A change of the server's timeline (µs) larger than this between two
#: cycles is listed by :func:`timeline_jumps` (the DLL's own corrections are
#: a few µs per cycle).
JUMP_MIN_US = 50.0

NOTE_ON = 0x90


class CycleRecorderError(RuntimeError):
    """The recorder could not load libjack, open its client or record."""


@dataclasses.dataclass(frozen=True, slots=True)
class CycleEvent:
    """One MIDI event recorded from a JACK MIDI output port.

    Attributes:
        time_s: CLOCK_MONOTONIC seconds (comparable with ``time.monotonic()``)
            of the event's frame, from the server's cycle times.
        jack_us: The same instant in JACK's clock (``jack_get_time()``), µs.
        frame: JACK frame of the event (wraps at 2**32).
        source_port: Full name of the port it came from, e.g. ``"ai-band:drums"``.
        data: The MIDI message, status byte first.
        late_read: Read by a callback that ran after the server began the next
            cycle (moved back one period, see the module docstring).
        wake_minus_start_us: When the driver actually woke for this period
            (the server's ``fCurrentCallback`` stamp) minus the period's start
            as the cycle times give it, µs; ``None`` for a late read.  Large
            after an overrun, while the server's loop slews to the new wake-ups.
    """

    time_s: float
    jack_us: float
    frame: int
    source_port: str
    data: bytes
    late_read: bool = False
    wake_minus_start_us: float | None = None

    @property
    def status(self) -> int:
        """Status byte without the channel for channel messages (e.g. 0x90), else as is."""
        return self.data[0] & 0xF0 if self.data[0] < 0xF0 else self.data[0]

    @property
    def is_note_on(self) -> bool:
        """Note-on with velocity 1..127."""
        return len(self.data) >= 3 and self.status == NOTE_ON and self.data[2] > 0

    @property
    def is_note_off(self) -> bool:
        """0x80 note-off, or note-on with velocity 0."""
        return len(self.data) >= 3 and (self.status == 0x80 or (self.status == NOTE_ON and self.data[2] == 0))


def load_libjack() -> ctypes.CDLL:
    """libjack with ``jack_get_cycle_times``, ``jack_get_time`` and ``jack_frames_to_time`` declared.

    Raises:
        CycleRecorderError: libjack cannot be loaded or lacks jack_get_cycle_times (JACK < 0.118).
    """
    name = ctypes.util.find_library("jack") or "libjack.so.0"
    try:
        lib = ctypes.CDLL(name)
        get_cycle_times = lib.jack_get_cycle_times
    except (OSError, AttributeError) as exc:
        raise CycleRecorderError(f"libjack ({name}) without jack_get_cycle_times: {exc}") from exc
    get_cycle_times.restype = ctypes.c_int
    get_cycle_times.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_uint64),
                                ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_float)]
    lib.jack_get_time.restype = ctypes.c_uint64
    lib.jack_get_time.argtypes = []
    lib.jack_frames_to_time.restype = ctypes.c_uint64
    lib.jack_frames_to_time.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    return lib


def monotonic_minus_jack_ns(jack_get_time: Any, pairs: int = 5) -> tuple[int, int]:
    """``(jack_get_time() in ns, CLOCK_MONOTONIC - JACK time in ns)`` from the tightest of ``pairs`` bracketed reads."""
    best = None
    for _ in range(pairs):
        before = time.monotonic_ns()
        jack_us = jack_get_time()
        after = time.monotonic_ns()
        if best is None or after - before < best[0]:
            best = (after - before, jack_us * 1000, (before + after) // 2 - jack_us * 1000)
    assert best is not None
    return best[1], best[2]


class OffsetTrack:
    """CLOCK_MONOTONIC - JACK time, sampled over a run, interpolated at a JACK time.

    Args:
        samples: ``(jack ns, monotonic - jack ns)`` in time order (at least one).
    """

    def __init__(self, samples: list[tuple[int, int]]) -> None:
        if not samples:
            raise ValueError("no clock offset samples")
        self._t = [s[0] for s in samples]
        self._off = [s[1] for s in samples]

    def at(self, jack_ns: float) -> float:
        """The offset (ns) at ``jack_ns``: linear between samples, the nearest one outside them."""
        t, off = self._t, self._off
        i = bisect.bisect_right(t, jack_ns)
        if i == 0:
            return off[0]
        if i == len(t):
            return off[-1]
        t0, t1 = t[i - 1], t[i]
        return off[i - 1] + (off[i] - off[i - 1]) * (jack_ns - t0) / (t1 - t0)

    def to_monotonic_s(self, jack_us: float) -> float:
        """CLOCK_MONOTONIC seconds of a JACK time in µs."""
        jack_ns = jack_us * 1000.0
        return (jack_ns + self.at(jack_ns)) / 1e9


# One callback: (current_frames, current_usecs, next_usecs, period_usecs,
# nframes, events [(port index, offset, data)], torn, the server's stamp of
# the driver's wake-up for the state read (fCurrentCallback, µs, from
# jack_frames_since_cycle_start; within a frame)).
Read = tuple[int, int, int, float, int, list, bool, float]


def frame_times(reads: list[Read]) -> tuple[list[tuple[int, float, float, bool] | None], dict[str, int]]:
    """Which period each callback read, and that period's start in JACK µs.

    A cycle's time is what the server stamped when the cycle began
    (``IncFrameTime``: the previous cycle's ``next_usecs``).  When the driver
    overruns, the server resets its timer (``ResetFrameTime``) right after it
    has started the cycle's graph (``JackTimedDriver::ProcessWait``), and a
    client reading the cycle times in that cycle usually reads the reset
    state: ``current_usecs`` is then the driver's wake-up stamp
    (``fCurrentCallback``).  In JACK2 1.9.21 (measured here) ``next_usecs``
    keeps its old value, below ``current_usecs``, and the next cycle carries
    on from it (the loop then slews towards the new wake-ups); later JACK2
    sets ``next_usecs = current_usecs + period_usecs``.  Either state
    (``current_usecs`` not the previous cycle's ``next_usecs``, equal to the
    wake-up stamp, and ``next_usecs`` below ``current_usecs`` + half a period
    or exactly a period after it) is timed from the previous cycle's
    ``next_usecs`` instead (``reanchored_reads``).

    Args:
        reads: callbacks in the order they ran.

    Returns:
        ``([(period's first frame, its start µs, µs per frame, late read), ...]`` aligned with
        ``reads`` (``None`` for a dropped read), ``{"late_reads", "torn_reads", "duplicate_reads",
        "reanchored_reads"}``).  Frames are unwrapped (monotonic) so that they can be compared.
    """
    counts = {"late_reads": 0, "torn_reads": 0, "duplicate_reads": 0, "reanchored_reads": 0}
    out: list[Any] = [None] * len(reads)
    unwrapped = []
    last = None
    acc = 0
    for r in reads:
        if last is None:
            acc = r[0]
        else:
            step = (r[0] - last) & 0xFFFFFFFF
            acc += step - 2**32 if step >= 2**31 else step
        last = r[0]
        unwrapped.append(acc)
    prev: tuple[int, int] | None = None  # (frame, next_usecs) of the last period timed from its own state
    for i, r in enumerate(reads):
        cf, cu, nu, pu, n, events, torn = r[:7]
        callback_us = r[7] if len(r) > 7 else None
        frame = unwrapped[i]
        if torn:
            counts["torn_reads"] += 1
            continue
        if i + 1 < len(reads) and unwrapped[i + 1] == frame and not reads[i + 1][6]:
            if events == reads[i + 1][5]:
                counts["duplicate_reads"] += 1  # the same buffers twice: the later read keeps them
                continue
            # Ran late, after the server began the next cycle: the period before's buffers.
            counts["late_reads"] += 1
            start = cu - pu
            if i > 0 and unwrapped[i - 1] == frame - 2 * n:
                start = reads[i - 1][2]  # that cycle's prediction of the next wake-up: the DLL's value
            out[i] = (frame - n, float(start), (cu - start) / n, True)
            prev = None
            continue
        frame_us = pu / n
        if (prev is not None and prev[0] == frame - n and cu != prev[1]
                and (nu - cu < pu / 2 or nu - cu == int(pu))
                and callback_us is not None and abs(callback_us - cu) <= 2 * frame_us):
            counts["reanchored_reads"] += 1
            # The next cycle begins at next_usecs: the old one (1.9.21) or the re-anchored one.
            slope = (nu - prev[1]) / n if nu - cu < pu / 2 else frame_us
            out[i] = (frame, float(prev[1]), slope, False)
            prev = (frame, nu)
            continue
        out[i] = (frame, float(cu), (nu - cu) / n, False)
        prev = (frame, nu)
    return out, counts


def timeline_jumps(reads: list[Read], min_us: float = JUMP_MIN_US) -> list[tuple[int, float, float]]:
    """Where the server's timeline moved: ``(frame, JACK µs the old timeline gave it, jump µs)``.

    Between two successive periods ``a`` and ``b`` as :func:`frame_times`
    times them, the old timeline puts ``b``'s first frame at ``a.start + (b.frame
    - a.frame) * a.us_per_frame``; ``b.start`` minus that is the jump.
    Positive: the server lost that much time (a driver overrun; no frames
    exist for it, and MIDI due in it can only go out late).
    """
    periods = sorted(p for p in frame_times(reads)[0] if p is not None)
    jumps = []
    for a, b in zip(periods, periods[1:]):
        if b[0] == a[0]:
            continue
        predicted = a[1] + (b[0] - a[0]) * a[2]
        jump = b[1] - predicted
        if abs(jump) > min_us:
            jumps.append((b[0] & 0xFFFFFFFF, predicted, jump))
    return jumps


class CycleRecorder:
    """A JACK client that records MIDI from output ports, every period timed by ``jack_get_cycle_times``.

    Args:
        servername: the JACK server's name.
        client_name: JACK client name.
        max_reads: callbacks kept (each period's cycle times are kept, with or without events).

    Raises:
        CycleRecorderError: no server, or libjack lacks what is needed.
    """

    def __init__(self, servername: str, client_name: str = "cycle-recorder", max_reads: int = 2_000_000) -> None:
        import jack

        self._jack = jack
        self.lib = load_libjack()
        try:
            self.client = jack.Client(client_name, no_start_server=True, servername=servername)
        except jack.JackError as exc:
            raise CycleRecorderError(f"cannot open JACK client on {servername!r}: {exc}") from exc
        self._ptr = ctypes.c_void_p(int(jack._ffi.cast("uintptr_t", self.client._ptr)))
        self._cf, self._cu, self._nu = ctypes.c_uint32(), ctypes.c_uint64(), ctypes.c_uint64()
        self._pu = ctypes.c_float()
        self._args = (self._ptr, ctypes.byref(self._cf), ctypes.byref(self._cu), ctypes.byref(self._nu),
                      ctypes.byref(self._pu))
        self.reads: collections.deque[Read] = collections.deque(maxlen=max_reads)
        self._rate = self.client.samplerate
        self.inputs: list[tuple[Any, str]] = []
        self.xruns = 0
        self.process_thread: str | None = None
        self.cycle_time_errors = 0
        self.offsets: list[tuple[int, int]] = [monotonic_minus_jack_ns(self.lib.jack_get_time)]
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample_offsets, name="jack-clock-offset", daemon=True)
        self.client.set_xrun_callback(self._on_xrun)
        self.client.set_process_callback(self._process)
        self.client.activate()
        self._sampler.start()

    def _sample_offsets(self) -> None:
        while not self._stop.wait(OFFSET_SAMPLE_S):
            self.offsets.append(monotonic_minus_jack_ns(self.lib.jack_get_time))

    def _on_xrun(self, delayed_usecs: float) -> None:
        self.xruns += 1

    def _process(self, frames: int) -> None:
        if self.process_thread is None:
            self.process_thread = _make_realtime()
        get = self.lib.jack_get_cycle_times
        if get(*self._args) != 0:
            self.cycle_time_errors += 1
            return
        cf, cu, nu, pu = self._cf.value, self._cu.value, self._nu.value, self._pu.value
        events = []
        for index, (port, _source) in enumerate(self.inputs):
            for offset, data in port.incoming_midi_events():
                events.append((index, offset, bytes(data)))
        get(*self._args)
        torn = self._cf.value != cf
        since = self.client.frames_since_cycle_start
        callback_us = self.lib.jack_get_time() - since * 1e6 / self._rate
        self.reads.append((cf, cu, nu, pu, frames, events, torn, callback_us))

    def connect(self, pattern: str, count: int, timeout_s: float) -> list[str]:
        """Record every MIDI output port whose name contains ``pattern``; wait for ``count`` of them.

        Raises:
            TimeoutError: fewer than ``count`` after ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            names = [p.name for p in self.client.get_ports(pattern, is_midi=True, is_output=True)
                     if not p.name.startswith(self.client.name + ":")]
            if len(names) >= count:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(names)} of {count} ports matching {pattern!r}: {names}")
            time.sleep(0.05)
        inputs = []
        for name in names:
            port = self.client.midi_inports.register(name.replace(":", "."))
            self.client.connect(name, port)
            inputs.append((port, name))
        self.inputs = inputs  # one assignment: the callback sees all or none
        return names

    def close(self) -> None:
        """Stop sampling, deactivate and close the client."""
        self._stop.set()
        self._sampler.join(1.0)
        self.offsets.append(monotonic_minus_jack_ns(self.lib.jack_get_time))
        self.client.deactivate()
        self.client.close()

    def result(self) -> dict[str, Any]:
        """Events, counters, missed periods and the server's timeline jumps (see :func:`analyse`)."""
        self.offsets.append(monotonic_minus_jack_ns(self.lib.jack_get_time))
        return analyse(list(self.reads), [s for _, s in self.inputs], list(self.offsets),
                       {"xruns": self.xruns, "process_thread": self.process_thread,
                        "cycle_time_errors": self.cycle_time_errors})


def analyse(reads: list[Read], sources: list[str], offsets: list[tuple[int, int]],
            extra: dict[str, Any]) -> dict[str, Any]:
    """Turn the callbacks' reads into timed events and the figures of a recording.

    Returns:
        ``{"events": [CycleEvent], "stats": {...}, "periods": [(frame, start
        CLOCK_MONOTONIC s, driver wake-up - start µs), ...]}``; ``stats`` holds ``xruns``,
        ``missed_periods``, ``missed_frame_ranges`` (wrapped frames ``(first,
        after)``), ``missed_spans_s`` (CLOCK_MONOTONIC), ``late_reads``,
        ``torn_reads``, ``duplicate_reads``, ``timeline_jumps`` (``(frame,
        CLOCK_MONOTONIC s of the old timeline's time for it, jump ms)``),
        ``jack_minus_monotonic_s`` (first sample) and its drift over the run (ms).
    """
    track = OffsetTrack(offsets)
    periods, counts = frame_times(reads)
    events = []
    seen: list[tuple[int, float, float]] = []  # (unwrapped frame, start µs, µs per frame) of each read period
    wakes: list[float] = []  # driver wake-up minus period start, µs
    timeline: list[tuple[int, float, float | None]] = []  # (frame, CLOCK_MONOTONIC s, wake - start µs) per period
    for r, p in zip(reads, periods):
        if p is None:
            continue
        frame0, start_us, per_frame, late = p
        seen.append((frame0, start_us, per_frame))
        wake_us = None if late or len(r) < 8 else round(r[7] - start_us, 1)
        timeline.append((frame0 & 0xFFFFFFFF, round(track.to_monotonic_s(start_us), 7), wake_us))
        if wake_us is not None:
            wakes.append(wake_us)
        for index, offset, data in r[5]:
            jack_us = start_us + offset * per_frame
            events.append(CycleEvent(track.to_monotonic_s(jack_us), jack_us, (frame0 + offset) & 0xFFFFFFFF,
                                     sources[index], data, late, wake_us))
    events.sort(key=lambda e: e.time_s)
    seen.sort()
    missed_ranges, missed_spans, missed = [], [], 0
    for (f0, s0, pf0), (f1, s1, _pf1) in zip(seen, seen[1:]):
        n = reads[0][4] if reads else 64
        if f1 - f0 > n:
            missed += (f1 - f0) // n - 1
            missed_ranges.append(((f0 + n) & 0xFFFFFFFF, f1 & 0xFFFFFFFF))
            missed_spans.append((track.to_monotonic_s(s0 + n * pf0), track.to_monotonic_s(s1)))
    jumps = [(frame, track.to_monotonic_s(predicted), round(jump / 1000.0, 3))
             for frame, predicted, jump in timeline_jumps(reads)]
    offs = [o for _, o in offsets]
    stats = dict(extra)
    stats.update(counts)
    stats.update({
        "reads": len(reads),
        "missed_periods": missed,
        "missed_frame_ranges": missed_ranges,
        "missed_spans_s": missed_spans,
        "partial_reads": 0,
        "timeline_jumps": jumps,
        "jack_minus_monotonic_s": round(-offs[0] / 1e9, 6),
        "clock_offset_drift_ms": round((offs[-1] - offs[0]) / 1e6, 3),
        "wake_minus_start_us_p1_p50_p99": ([round(sorted(wakes)[min(len(wakes) - 1, int(q * len(wakes)))], 1)
                                            for q in (0.01, 0.5, 0.99)] if wakes else None),
    })
    return {"events": events, "stats": stats, "periods": timeline}


def _make_realtime() -> str:
    """Make the calling thread SCHED_FIFO :data:`RTPRIO` unless it is realtime already; describe its policy."""
    policy = os.sched_getscheduler(0)
    if policy not in (os.SCHED_FIFO, os.SCHED_RR):
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RTPRIO))
        except OSError as exc:
            return f"SCHED_OTHER (SCHED_FIFO refused: {exc.strerror})"
        policy = os.SCHED_FIFO
    name = "SCHED_FIFO" if policy == os.SCHED_FIFO else "SCHED_RR"
    return f"{name} {os.sched_getparam(0).sched_priority}"


def _serve(conn: Connection, servername: str, pattern: str, count: int, timeout_s: float) -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, 0, NICE)
    except OSError:
        pass  # unprivileged: the default priority
    try:
        rec = CycleRecorder(servername)
        try:
            names = rec.connect(pattern, count, timeout_s)
            conn.send(("ready", names, rec.client.samplerate))
            while True:
                cmd = conn.recv()
                if cmd == "result":
                    conn.send(rec.result())
                elif cmd == "close":
                    conn.send(True)
                    return
        finally:
            rec.close()
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


class CycleRecorderProcess:
    """A :class:`CycleRecorder` in a spawned child process, recording ports matching ``pattern``.

    Args:
        servername: the JACK server's name.
        pattern: substring of the ports to record (e.g. ``"ai-band"``).
        count: wait until at least this many match.
        timeout_s: how long to wait for them.

    Raises:
        CycleRecorderError: the child could not start recording (its error in the message).
    """

    def __init__(self, servername: str, pattern: str = "ai-band", count: int = 1, timeout_s: float = 10.0) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, servername, pattern, count, timeout_s),
                                 name="cycle-recorder", daemon=True)
        self._proc.start()
        if not self._conn.poll(timeout_s + 20):
            self._proc.kill()
            raise CycleRecorderError("recorder process did not start")
        reply = self._conn.recv()
        if reply[0] != "ready":
            self._proc.join(5)
            raise CycleRecorderError(f"recorder process failed: {reply[1]}")
        self.ports: list[str] = reply[1]
        self.samplerate: int = reply[2]
        self._result: dict[str, Any] | None = None

    def result(self) -> dict[str, Any]:
        """Everything recorded so far: ``{"events": [...], "stats": {...}}`` (see :func:`analyse`)."""
        self._conn.send("result")
        self._result = self._conn.recv()
        return self._result

    def events(self) -> list[CycleEvent]:
        """Recorded events sorted by time (fetches a new :meth:`result`)."""
        return self.result()["events"]

    def stats(self) -> dict[str, Any]:
        """Counters of the last :meth:`result` (fetches one if none)."""
        return (self._result or self.result())["stats"]

    def periods(self) -> list[tuple[int, float, float | None]]:
        """Every period of the last :meth:`result`: ``(frame, start CLOCK_MONOTONIC s, wake-up - start µs)``."""
        return (self._result or self.result())["periods"]

    def close(self) -> None:
        """End the child; idempotent."""
        if self._proc.is_alive():
            try:
                self._conn.send("close")
                self._conn.recv()
            except (EOFError, OSError):
                pass
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.kill()

    def __enter__(self) -> CycleRecorderProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
