"""Frame-accurate recording of JACK MIDI output ports, timed on CLOCK_MONOTONIC.

:class:`MidiRecorder` is a JACK client with one MIDI input per recorded source
port. Its process callback stores, for each event, its JACK frame
(``last_frame_time`` + the event's offset in the period), and for each period
around events, ``(last_frame_time, time.monotonic_ns())`` read at the start of
the callback. It allocates little (a list of the period's events) and takes no lock.

How a frame becomes a CLOCK_MONOTONIC time, and why (measured with JACK2 1.9.21,
dummy driver, ``--no-realtime``, on Linux):

* libjack's clock is **CLOCK_MONOTONIC_RAW**, not CLOCK_MONOTONIC:
  ``jack_get_time()`` agrees with ``clock_gettime(CLOCK_MONOTONIC_RAW)`` within
  3 µs, and differed from ``time.monotonic()`` by 249 ms on the machine where
  this was written. The difference is NTP's slew and changes by up to 500 ppm
  (milliseconds per minute), so no constant offset maps one onto the other.
* ``jack_frames_to_time()`` (JACK-Client 0.5 does not wrap it) answers from
  JACK's delay-locked loop, not from measured wake-ups. With the dummy driver
  the loop wanders after every xrun: it was up to 11 ms away from the real
  period starts for seconds at a time, while xruns are routine without realtime
  scheduling. Its per-period slope also wobbles by ~0.5 %.
* So the recorder times a period by observation: the start of period ``n`` is
  estimated as ``min over the next K = 40 observed periods j of
  (callback_time_j - (frame_j - frame_n) / rate)``. Each callback time is an
  upper bound of its period's start (it runs a little after the driver wakes);
  projecting later periods back gives more upper bounds, and the smallest one
  removes most of the wake-up delay. Only later periods are used because after
  an xrun the dummy driver re-anchors later (time jumps forward), which makes
  later periods project too late (harmless for a minimum) and earlier periods
  too early (harmful). Against python-rtmidi sends this gave
  ``recorded - sent`` of median 0.6 ms, 5th..95th percentile 0.0..1.2 ms (one
  64-frame period is 1.33 ms), where ``jack_frames_to_time()`` gave -2.4..1.0 ms.

:meth:`MidiRecorder.jack_frames_to_monotonic` still offers JACK's own answer
(mapped from CLOCK_MONOTONIC_RAW with a freshly sampled offset) for comparison.

Limitations: the process callback is Python, so it needs the GIL.

* In the recorder's process, anything that holds the GIL while libjack waits
  for the server stalls the whole JACK graph until JACK's client timeout
  (~0.5-1 s, with xruns): python-rtmidi does this when it opens or deletes a
  JACK port. Open in-process rtmidi ports before the recorder, delete them after.
* A CPU-bound Python thread in the same process starves the callback: periods
  are missed and their MIDI is lost (measured: 8 of 1500 notes survived a
  busy-loop thread; 1500 of 1500 without it). Run the daemon in another
  process, and check :attr:`MidiRecorder.missed_periods` (and ``xruns``).
* ``jack_last_frame_time()`` is the server's current frame time, not the
  cycle's: a callback that starts late, after JACK began the next cycle, reads
  the next cycle's frame time over the buffers of its own. When the following
  callback then reads the same frame time but different buffers, the first
  read is moved back one period (:attr:`MidiRecorder.late_reads` counts them).
  A late read that no second callback exposes stays one period late.  If
  everything the first read found is in the second read too, at the same
  frames, the first read was of this period's buffers while a writer was
  still writing them (seen: 2 of a group's 6 note-ons, then all 6 at the same
  frames): the part is dropped (:attr:`MidiRecorder.partial_reads`).
* A callback descheduled while it reads the ports can read some of them
  before the writers' next cycle and some after (measured: a note group
  recorded twice, 4 ms apart, its drum note only once). When the frame time has moved
  on by the end of its reading, the read is dropped and its periods count as
  missed (:attr:`MidiRecorder.torn_reads`).
* Frame times wrap at 2**32 (24.8 h at 48 kHz); a recording must not span it.

Port names: the daemon's JACK client holds every port (``ai-band:drums``,
``ai-band:bass``, ...); python-rtmidi test ports each get a client of their own
(``ai-band:drums``, ``ai-band-01:keys``). ``connect("ai-band")`` records all of them.
"""

from __future__ import annotations

import bisect
import collections
import ctypes
import ctypes.util
import dataclasses
import errno
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Literal

import jack

from ai_band.system.jackclient import JackClientOwner

logger = logging.getLogger(__name__)

NOTE_OFF = 0x80
NOTE_ON = 0x90
CONTROL_CHANGE = 0xB0
CC_ALL_SOUND_OFF = 120
CC_ALL_NOTES_OFF = 123

ClockKind = Literal["CLOCK_MONOTONIC", "CLOCK_MONOTONIC_RAW", "offset"]

# Appended by the process callback. Event: (frame, period_start_frame, source, data);
# period: (period_start_frame, time.monotonic_ns() at the callback's start).
_RawEvent = tuple[int, int, str, bytes]
_Period = tuple[int, int]

#: Periods after an event's period whose callback times bound its start (see module doc).
ENVELOPE_PERIODS = 40


class RecorderError(RuntimeError):
    """The recorder could not open, connect or convert JACK time."""


@dataclasses.dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One MIDI event received from a JACK MIDI output port.

    Attributes:
        time_s: When the event happened, in seconds on CLOCK_MONOTONIC
            (comparable with ``time.monotonic()``), frame-accurate.
        frame: JACK frame time of the event (``last_frame_time`` + offset in the
            period; wraps at 2**32 frames, about 24.8 h at 48 kHz).
        source_port: Full JACK name of the port it came from, e.g. ``"ai-band:drums"``.
        data: The complete MIDI message (status byte first; JACK MIDI has no
            running status), data bytes 0..127.
    """

    time_s: float
    frame: int
    source_port: str
    data: bytes

    @property
    def status(self) -> int:
        """Status byte with the channel removed for channel messages (e.g. 0x90), else as is."""
        return self.data[0] & 0xF0 if self.data[0] < 0xF0 else self.data[0]

    @property
    def channel(self) -> int | None:
        """MIDI channel 0..15 of a channel message, else ``None``."""
        return self.data[0] & 0x0F if self.data[0] < 0xF0 else None

    @property
    def is_note_on(self) -> bool:
        """True for a note-on with velocity 1..127 (velocity 0 is a note-off)."""
        return self.status == NOTE_ON and len(self.data) >= 3 and self.data[2] > 0

    @property
    def is_note_off(self) -> bool:
        """True for 0x80 note-off, or 0x90 note-on with velocity 0."""
        return len(self.data) >= 3 and (
            self.status == NOTE_OFF or (self.status == NOTE_ON and self.data[2] == 0)
        )


def _load_libjack() -> ctypes.CDLL:
    """Open libjack through ctypes (the library JACK-Client has already loaded)."""
    name = ctypes.util.find_library("jack") or "libjack.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise RecorderError(f"cannot load libjack ({name}): {exc}") from exc
    lib.jack_frames_to_time.restype = ctypes.c_uint64
    lib.jack_frames_to_time.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.jack_get_time.restype = ctypes.c_uint64
    lib.jack_get_time.argtypes = []
    return lib


def _raw_minus_jack_ns(get_time_us: Callable[[], int], clock_ns: Callable[[], int]) -> int:
    """Return ``clock - jack_get_time()`` in ns from the tightest of a few bracketed samples."""
    best: tuple[int, int] | None = None
    for _ in range(20):
        before = clock_ns()
        jack_us = get_time_us()
        after = clock_ns()
        width = after - before
        if best is None or width < best[0]:
            best = (width, (before + after) // 2 - jack_us * 1000)
    assert best is not None
    return best[1]


def _monotonic_minus_raw_ns() -> int:
    """Sample CLOCK_MONOTONIC - CLOCK_MONOTONIC_RAW in ns (two back-to-back reads, ~100 ns)."""
    raw0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW)
    mono = time.monotonic_ns()
    raw1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW)
    return mono - (raw0 + raw1) // 2


def sounding_notes(events: Iterable[RecordedEvent]) -> dict[tuple[str, int, int], float]:
    """Notes still sounding after ``events`` (in time order), with the time of their last note-on.

    Returns:
        ``{(source_port, channel 0..15, pitch 0..127): note-on time_s}``.

    A note-on (velocity > 0) starts a note; a note-off (0x80, or 0x90 with
    velocity 0) on the same port, channel and pitch ends it; All Sound Off
    (CC 120) and All Notes Off (CC 123) end every note of that port and channel.
    Repeated note-ons of a sounding pitch count as one note (one note-off ends it).
    """
    sounding: dict[tuple[str, int, int], float] = {}
    for event in events:
        data = event.data
        if len(data) < 3 or data[0] >= 0xF0:
            continue
        key = (event.source_port, data[0] & 0x0F, data[1])
        if event.is_note_on:
            sounding[key] = event.time_s
        elif event.is_note_off:
            sounding.pop(key, None)
        elif event.status == CONTROL_CHANGE and data[1] in (CC_ALL_SOUND_OFF, CC_ALL_NOTES_OFF):
            sounding = {k: t for k, t in sounding.items() if k[:2] != key[:2]}
    return sounding


class MidiRecorder(JackClientOwner):
    """Records MIDI from JACK output ports with frame-accurate CLOCK_MONOTONIC times.

    Args:
        servername: JACK server name (``JackServer.name``); ``None`` uses
            ``$JACK_DEFAULT_SERVER`` or the default server. Never starts a server.
            libjack serves one server per process: while another JACK client of
            this process is open, the recorder joins that client's server.
        client_name: JACK client name; JACK appends ``-01`` etc. if it is taken.
        max_events: Oldest events are dropped beyond this many (bounded memory);
            period timings are kept for 4x as many periods.

    Raises:
        RecorderError: The server is not reachable or libjack cannot be loaded.

    The process callback only appends tuples to ``collections.deque``s (atomic
    under the GIL, no lock; each period first collects its events in a small
    list) and sets a ``threading.Event`` for waiters. See the
    module docstring for how frames become times, and for the limitations.
    """

    def __init__(
        self,
        servername: str | None = None,
        client_name: str = "aiband-recorder",
        max_events: int = 1_000_000,
    ) -> None:
        self._open(client_name, servername, RecorderError)
        self._lib = _load_libjack()
        # JACK-Client exposes the jack_client_t* only as the private cffi pointer.
        self._client_addr: int = int(jack._ffi.cast("uintptr_t", self._client._ptr))
        self._rate: int = self._client.samplerate
        self._window_frames = ENVELOPE_PERIODS * self._client.blocksize
        self._raw: collections.deque[_RawEvent] = collections.deque(maxlen=max_events)
        # Periods from each event's period to ENVELOPE_PERIODS later; the recent
        # ones always (for frames_to_monotonic()).
        self._periods: collections.deque[_Period] = collections.deque(maxlen=4 * max_events)
        self._recent: collections.deque[_Period] = collections.deque(maxlen=ENVELOPE_PERIODS + 1)
        self._track_until = -1
        self._last_base = -1
        # (callback time in CLOCK_MONOTONIC ns, events it read) of the last callback.
        self._last_read: tuple[int, list[_RawEvent]] = (0, [])
        #: Callbacks found, by the next one, to have read the period before
        #: under a later frame time (their events were moved back one period).
        self.late_reads = 0
        #: Callbacks whose reading spanned a new cycle of the server, ignored
        #: (their periods count as missed).
        self.torn_reads = 0
        #: Late callbacks that read part of what a writer was still writing
        #: in the current period, exposed by the next callback's full read of
        #: the same frame time (the part was dropped, the full read kept).
        self.partial_reads = 0
        self._missed_periods = 0
        # Each gap: (time of the callback after it, of the callback before it
        # (0 if unknown), both CLOCK_MONOTONIC ns; its JACK frames [first
        # missed, first read after)), capped.
        self._gaps: collections.deque[tuple[int, int, int, int]] = collections.deque(maxlen=10000)
        self._envelope_cache: dict[int, int] = {}
        self._inputs: tuple[tuple[jack.OwnMidiPort, str], ...] = ()
        self._ports_lock = threading.Lock()  # serialises connect(); never taken in the callback
        self._arrived = threading.Event()
        self._ports_changed = threading.Condition()
        self._ports_generation = 0  # bumped by every JACK port (un)registration
        self.jack_clock: ClockKind
        self.jack_clock, self._fixed_offset_ns = self._detect_clock()
        logger.debug("JACK time is %s (fixed offset %d ns)", self.jack_clock, self._fixed_offset_ns)

        self._client.set_port_registration_callback(self._on_port_registration)
        self._activate(self._process)

    # ----------------------------------------------------------------- clocks

    def _detect_clock(self) -> tuple[ClockKind, int]:
        get_time = self._lib.jack_get_time
        raw = _raw_minus_jack_ns(get_time, lambda: time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW))
        if abs(raw) < 100_000:
            return "CLOCK_MONOTONIC_RAW", 0
        mono = _raw_minus_jack_ns(get_time, time.monotonic_ns)
        if abs(mono) < 100_000:
            return "CLOCK_MONOTONIC", 0
        logger.warning(
            "JACK time is neither CLOCK_MONOTONIC nor CLOCK_MONOTONIC_RAW (off by %.3f s); "
            "using one offset measured now, drift is not compensated", mono / 1e9,
        )
        return "offset", mono

    def _jack_offset_now_ns(self) -> int:
        """CLOCK_MONOTONIC minus JACK time, in ns, now."""
        if self.jack_clock == "CLOCK_MONOTONIC_RAW":
            return _monotonic_minus_raw_ns()
        return self._fixed_offset_ns

    def _period_start_ns(self, start: int, periods: list[_Period], index: int) -> int | None:
        """Estimated CLOCK_MONOTONIC ns of the period starting at frame ``start``.

        ``periods`` is sorted by frame, ``index`` its first entry at or after
        ``start``. None if no observed period lies within the window.
        """
        best: float | None = None
        limit = start + self._window_frames
        per_frame_ns = 1e9 / self._rate
        for j in range(index, len(periods)):
            frame, t_ns = periods[j]
            if frame > limit:
                break
            candidate = t_ns - (frame - start) * per_frame_ns
            if best is None or candidate < best:
                best = candidate
        return None if best is None else round(best)

    def frames_to_monotonic(self, frame: int) -> float:
        """Convert a JACK frame time to CLOCK_MONOTONIC seconds, as recorded events are.

        Uses the observed periods (see the module docstring) from the period
        holding ``frame`` on: exact for recorded and recent frames; a frame
        newer than the last observed period is extrapolated at the nominal
        sample rate. Falls back to :meth:`jack_frames_to_monotonic` before the
        first period has been observed.

        Raises:
            RecorderError: The recorder is closed.
        """
        if self._closed:
            raise RecorderError("recorder is closed")
        periods = sorted(set(self._periods) | set(self._recent))
        if not periods:
            return self.jack_frames_to_monotonic(frame)
        frames = [p[0] for p in periods]
        index = bisect.bisect_right(frames, frame) - 1
        if index < 0:
            index = 0
        start = min(frames[index], frame)
        start_ns = self._period_start_ns(start, periods, index)
        if start_ns is None:  # frame far beyond the observations
            start, start_ns = periods[-1]
        return (start_ns + (frame - start) * 1e9 / self._rate) / 1e9

    def jack_frames_to_monotonic(self, frame: int) -> float:
        """JACK's own conversion: ``jack_frames_to_time()`` mapped to CLOCK_MONOTONIC seconds.

        Comes from JACK's delay-locked loop and the current period, so it
        extrapolates for frames away from now, and with the dummy driver it can
        be milliseconds off after xruns (see the module docstring). For
        comparison and diagnostics.

        Raises:
            RecorderError: The recorder is closed.
        """
        if self._closed:
            raise RecorderError("recorder is closed")
        jack_us = self._lib.jack_frames_to_time(self._client_addr, frame & 0xFFFFFFFF)
        return (jack_us * 1000 + self._jack_offset_now_ns()) / 1e9

    @property
    def frame_time(self) -> int:
        """JACK's estimate of the current frame time (for use outside the process callback)."""
        return self._client.frame_time

    @property
    def samplerate(self) -> int:
        """The JACK server's sample rate, Hz."""
        return self._rate

    def jack_time_minus_monotonic_s(self) -> float:
        """Return ``jack_get_time()`` minus ``time.monotonic()`` now, in seconds (diagnostics)."""
        return -_raw_minus_jack_ns(self._lib.jack_get_time, time.monotonic_ns) / 1e9

    # ------------------------------------------------------ JACK callbacks (RT)

    def _process(self, frames: int) -> None:
        # Frame time first, clock second, so that ``now_ns`` bounds the
        # period's start from above even if the thread is descheduled between
        # the two reads (the other order gave bounds too early by the wait,
        # and every event of the 40 periods before was timed that much early).
        base = self._client.last_frame_time
        now_ns = time.monotonic_ns()
        new: list[_RawEvent] = []
        for port, source in self._inputs:
            for offset, data in port.incoming_midi_events():
                new.append(((base + offset) & 0xFFFFFFFF, base, source, bytes(data)))
        if self._client.last_frame_time != base:
            # Descheduled while reading: the writers may have run a later cycle
            # meanwhile, so some ports were read before it and some after (a
            # torn read). Forget it: the periods count as missed, and the next
            # callback reads what the buffers hold then.
            self.torn_reads += 1
            return
        self._on_period(frames, now_ns, base, new)

    def _on_period(self, frames: int, now_ns: int, base: int, new: list[_RawEvent]) -> None:
        # What one callback read: the period of ``frames`` at frame time
        # ``base``, called at ``now_ns``, its events ``new``.
        last = self._last_base
        if base == last:
            self._repeated_frame(base, frames, new)
            return
        if last >= 0 and base - last > frames:
            missed = (base - last) // frames - 1
            self._missed_periods += missed
            self._gaps.append((now_ns, self._last_read[0], last + frames, base))
        self._last_base = base
        self._last_read = (now_ns, new)
        period = (base, now_ns)
        self._recent.append(period)
        if new:
            self._track_until = base + self._window_frames
        if base <= self._track_until:
            self._periods.append(period)  # before the events: events() relies on it
        if new:
            self._store(new)

    def _repeated_frame(self, base: int, frames: int, new: list[_RawEvent]) -> None:
        # Two callbacks read one frame time: the first ran late, for the period
        # before, and started after JACK had moved the frame time on
        # (jack_last_frame_time is the server's, not the cycle's). If the
        # buffers still hold what it read, nothing is new. If they changed, the
        # writers have run for this period since: what the first read was the
        # period before's, one period earlier than its frame time says, and
        # that period was not missed.
        then_ns, first = self._last_read
        if new == first:
            return
        if first and set(first) <= set(new):
            # Everything the first read found is here again, at the same
            # frames: it read this period's buffers while the writer was
            # still writing them (it ran late, for an earlier cycle), not the
            # period before's.  Keep the full read only.
            self.partial_reads += 1
            for _ in first:
                self._raw.pop()
            self._last_read = (then_ns, new)
            self._track_until = base + self._window_frames
            self._store(new)
            return
        self.late_reads += 1
        if first:
            for _ in first:
                self._raw.pop()
            self._raw.extend(((frame - frames) & 0xFFFFFFFF, start - frames, source, data)
                             for frame, start, source, data in first)
        if self._gaps and self._gaps[-1][0] == then_ns:
            _, before_ns, first_frame, after_frame = self._gaps.pop()
            self._missed_periods -= 1
            if after_frame - frames > first_frame:
                self._gaps.append((then_ns, before_ns, first_frame, after_frame - frames))
        self._last_read = (then_ns, new)
        if new:
            self._track_until = base + self._window_frames
            self._store(new)

    def _store(self, new: list[_RawEvent]) -> None:
        self._raw.extend(new)
        if not self._arrived.is_set():
            self._arrived.set()

    def _on_shutdown(self, status: jack.Status, reason: str) -> None:
        super()._on_shutdown(status, reason)
        self._arrived.set()

    def _on_port_registration(self, port: jack.Port, register: bool) -> None:
        with self._ports_changed:
            self._ports_generation += 1
            self._ports_changed.notify_all()

    # ------------------------------------------------------------------ ports

    @property
    def sources(self) -> list[str]:
        """Full names of the source ports being recorded, in the order they were added."""
        return [source for _, source in self._inputs]

    @property
    def missed_periods(self) -> int:
        """Periods whose process callback never ran (their MIDI input, if any, is lost).

        Non-zero when this process starves the callback of the GIL or CPU; a
        recording meant to be complete should check that it stays 0.
        """
        return self._missed_periods

    def missed_spans_s(self) -> list[tuple[float, float]]:
        """CLOCK_MONOTONIC intervals (start_s, end_s) that held the missed periods.

        The missed cycles ran after the cycle of the callback before the gap
        began and before the callback after it: each span ends at the callback
        that followed the gap and starts at the callback that preceded it, or
        the missed periods plus one before its end if that is earlier.  Not
        just the latter: the callback after a gap often runs late itself (the
        stall that made the gap), so the missed periods may lie well before
        it.  MIDI written inside a span may be lost to this recorder.
        """
        frames = self._client.blocksize
        period_s = frames / self._rate
        spans = []
        for now_ns, before_ns, first_frame, after_frame in list(self._gaps):
            end_s = now_ns / 1e9
            start_s = end_s - ((after_frame - first_frame) // frames + 1) * period_s
            if before_ns > 0:
                start_s = min(start_s, before_ns / 1e9)
            spans.append((start_s, end_s))
        return spans

    def missed_frame_ranges(self) -> list[tuple[int, int]]:
        """The missed periods as JACK frame ranges ``(first frame, first frame read after)``, oldest first.

        Exact, unlike :meth:`missed_spans_s`: MIDI written at a frame inside
        one of them was never read by this recorder.  Frames wrap at 2**32.
        """
        return [(first_frame, after_frame) for _, _, first_frame, after_frame in list(self._gaps)]

    def _matching_outputs(self, pattern: str) -> list[str]:
        try:
            regex: re.Pattern[str] | None = re.compile(pattern)
        except re.error:
            regex = None
        own = self._client.name + ":"
        names = []
        for port in self._client.get_ports(is_midi=True, is_output=True):
            name = port.name
            if name.startswith(own):
                continue
            if pattern in name or (regex is not None and regex.search(name)):
                names.append(name)
        return names

    def connect(self, pattern: str) -> list[str]:
        """Record every existing JACK MIDI output port whose name matches ``pattern``.

        ``pattern`` matches as a substring or as a regular expression searched
        anywhere in the full port name (``"ai-band"`` matches ``ai-band:drums``
        and ``ai-band-01:bass``). Call it again for ports that appear later; it
        also reconnects a known source that was unregistered and came back.

        Returns:
            Full names of the source ports connected by this call (possibly empty).

        Raises:
            RecorderError: The recorder is closed or JACK refused a connection.
        """
        if self._closed:
            raise RecorderError("recorder is closed")
        connected = []
        with self._ports_lock:
            known = dict((source, port) for port, source in self._inputs)
            for source in self._matching_outputs(pattern):
                port = known.get(source)
                try:
                    if port is None:
                        port = self._client.midi_inports.register(source.replace(":", "."))
                        self._client.connect(source, port)
                        known[source] = port
                        self._inputs = self._inputs + ((port, source),)
                    elif not port.is_connected_to(source):
                        self._client.connect(source, port)
                    else:
                        continue
                except jack.JackErrorCode as exc:
                    if exc.code != errno.EEXIST or source not in known:
                        raise RecorderError(f"cannot record {source!r}: {exc}") from exc
                    # Connected already: JACK2 tells clients of a new
                    # connection asynchronously, so is_connected_to() can
                    # still say no right after connect() (seen in make demo).
                    continue
                except jack.JackError as exc:
                    raise RecorderError(f"cannot record {source!r}: {exc}") from exc
                logger.debug("Recording %s", source)
                connected.append(source)
        return connected

    def wait_for_ports(self, pattern: str, count: int = 1, timeout_s: float = 5.0) -> list[str]:
        """Wait until at least ``count`` ports match ``pattern``, connect them, return all recorded.

        Wakes on JACK port registrations (no fixed-interval polling).

        Returns:
            Full names of all recorded sources matching ``pattern``.

        Raises:
            TimeoutError: Fewer than ``count`` matching ports after ``timeout_s`` seconds.
            RecorderError: See :meth:`connect`.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            with self._ports_changed:
                generation = self._ports_generation
            # JACK calls are made without the lock: the registration callback needs it.
            self.connect(pattern)
            matching = [s for s in self.sources if s in self._matching_outputs(pattern)]
            if len(matching) >= count:
                return matching
            with self._ports_changed:
                while self._ports_generation == generation:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(
                            f"{len(matching)} of {count} JACK MIDI ports matching {pattern!r} "
                            f"after {timeout_s:g} s: {matching}"
                        )
                    self._ports_changed.wait(remaining)

    # ----------------------------------------------------------------- events

    def events(self) -> list[RecordedEvent]:
        """Return a copy of the recorded events, sorted by time (arrival order on ties).

        Times of events from the last ``ENVELOPE_PERIODS`` periods (~53 ms at
        48 kHz / 64 frames) can still move earlier by a fraction of a period as
        later periods are observed; older ones are final.
        """
        raw = list(self._raw)
        periods = list(self._periods)  # appended in frame order
        frames = [p[0] for p in periods]
        complete_below = (frames[-1] - self._window_frames) if frames else -1
        cache = self._envelope_cache
        out = []
        for frame, start, source, data in raw:
            start_ns = cache.get(start)
            if start_ns is None:
                start_ns = self._period_start_ns(start, periods, bisect.bisect_left(frames, start))
                if start_ns is None:  # cannot happen: the event's period is tracked
                    start_ns = round(self.jack_frames_to_monotonic(start) * 1e9)
                elif start <= complete_below:
                    cache[start] = start_ns
            out.append(RecordedEvent(
                (start_ns + (frame - start) * 1e9 / self._rate) / 1e9, frame, source, data,
            ))
        out.sort(key=lambda event: event.time_s)
        return out

    def clear(self) -> None:
        """Forget all recorded events (ports stay connected)."""
        self._raw.clear()
        self._last_read = (0, [])
        self._periods.clear()
        self._envelope_cache.clear()
        self._arrived.clear()

    def count(self) -> int:
        """Number of events recorded so far."""
        return len(self._raw)

    def wait_for_events(self, count: int, timeout_s: float = 2.0) -> bool:
        """Wait until at least ``count`` events are recorded.

        Returns:
            True if they arrived within ``timeout_s`` seconds, False otherwise.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            self._arrived.clear()
            if len(self._raw) >= count:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._shutdown_reason is not None:
                return False
            self._arrived.wait(remaining)

    def note_ons(self, port_substring: str | None = None) -> list[RecordedEvent]:
        """Return note-ons with velocity 1..127, sorted by time.

        Args:
            port_substring: Only events whose source port name contains it.
        """
        return [
            event for event in self.events()
            if event.is_note_on and (port_substring is None or port_substring in event.source_port)
        ]

    def hanging_notes(self) -> list[tuple[str, int, int]]:
        """Return notes left sounding: ``(source_port, channel 0..15, pitch 0..127)``, sorted.

        See :func:`sounding_notes` for what starts and ends a note.
        """
        return sorted(sounding_notes(self.events()))

