"""Recording of JACK audio output ports, with the CLOCK_MONOTONIC time of every period.

:class:`AudioRecorder` is a JACK client with ``channels`` audio inputs
(``in_1``, ``in_2``, ...). Its process callback copies each period's input
into a float32 block and stores it with ``last_frame_time`` and
``time.monotonic_ns()`` read at the start of the callback; it takes no lock.

Times come from observation, as in :mod:`ai_band.testing.recorder` (whose
module docstring explains why: JACK's clock is CLOCK_MONOTONIC_RAW, its
delay-locked loop wanders after xruns of a ``--no-realtime`` dummy server):
the start of period ``n`` is ``min over the next ENVELOPE_PERIODS observed
periods j of (callback_time_j - (frame_j - frame_n) / rate)``. A sample's time
is its period's start plus its offset in the period at the nominal rate.
Against a JACK-Client source that notes ``time.monotonic()`` at the start of
its callback in the same period, the recorded time of its first sample was
-0.04..+0.03 ms away (30 runs, 48 kHz / 64 frames).

What a recorded time means: a JACK client's output written in period ``n``
reaches this recorder's input in the same period, so a sample's time here is
when its period started, *before* the output latency of the playback ports
(``system:playback_*``); PortAudio's ``outputBufferDacTime`` includes that
latency (2 periods on the dummy server).

Port names: PortAudio's JACK client is ``PortAudio`` by default and
``ai-band-preview`` for :class:`ai_band.preview.player.Previewer`, with
ports ``out_0``, ``out_1`` (``connect("ai-band-preview:")``).

Limitations, as for the MIDI recorder: the callback is Python and needs the
GIL once per period; periods it misses are counted in :attr:`missed_periods`
and recorded as silence in :meth:`AudioRecorder.audio`. Frame times wrap at
2**32 (24.8 h at 48 kHz); a recording must not span it. A process talks to
one JACK server at a time (see :mod:`ai_band.testing.jackserver`).
"""

from __future__ import annotations

import collections
import logging
import math
import os
import re
import threading
import time

import jack
import numpy as np

from ai_band.testing.recorder import ENVELOPE_PERIODS
from ai_band.system.jackclient import JackClientOwner

logger = logging.getLogger(__name__)

# One recorded period: (period start frame, time.monotonic_ns() at the callback,
# float32 (frames, channels)).
_Block = tuple[int, int, np.ndarray]


class AudioRecorderError(RuntimeError):
    """The audio recorder could not open or connect."""


class AudioRecorder(JackClientOwner):
    """Records JACK audio output ports with CLOCK_MONOTONIC times.

    Args:
        servername: JACK server name (``JackServer.name``); ``None`` uses
            ``$JACK_DEFAULT_SERVER`` or the default server. Never starts a server.
        client_name: JACK client name; JACK appends ``-01`` etc. if it is taken.
        channels: number of audio inputs (``in_1`` .. ``in_<channels>``), >= 1.
        max_seconds: only the last this many seconds are kept (bounded memory).
        nice: nice value for the JACK process thread (best effort: needs the
            privilege to raise priority; ``None`` leaves it alone).

    Raises:
        ValueError: ``channels`` < 1 or ``max_seconds`` <= 0.
        AudioRecorderError: the server is not reachable.

    Records from construction on (silence until ports are connected); use
    :meth:`clear` to start afresh.
    """

    def __init__(
        self,
        servername: str | None = None,
        client_name: str = "aiband-audio-rec",
        channels: int = 2,
        max_seconds: float = 60.0,
        nice: int | None = -10,
    ) -> None:
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        if not max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0, got {max_seconds}")
        self._open(client_name, servername, AudioRecorderError)
        self._rate: int = self._client.samplerate
        self._blocksize: int = self._client.blocksize
        self._window_frames = ENVELOPE_PERIODS * self._blocksize
        self._channels = channels
        maxlen = max(ENVELOPE_PERIODS * 2, math.ceil(max_seconds * self._rate / self._blocksize))
        self._blocks: collections.deque[_Block] = collections.deque(maxlen=maxlen)
        self._inports = [self._client.inports.register(f"in_{i + 1}") for i in range(channels)]
        self._sources: list[tuple[str, str]] = []  # (source port, own input port)
        self._ports_lock = threading.Lock()
        self._last_base = -1
        self._missed_periods = 0
        self._nice = nice
        self._thread_tuned = False
        self._activate(self._process)

    # ------------------------------------------------------ JACK callbacks (RT)

    def _process(self, frames: int) -> None:
        if not self._thread_tuned:
            self._tune_thread()
        base = self._client.last_frame_time
        now_ns = time.monotonic_ns()  # after the frame time: an upper bound of the block's start
        last = self._last_base
        if base == last:  # a late thread catching up: this period's buffers are already read
            return
        if last >= 0 and base - last > frames:
            self._missed_periods += (base - last) // frames - 1
        self._last_base = base
        block = np.empty((frames, self._channels), np.float32)
        for i, port in enumerate(self._inports):
            block[:, i] = port.get_array()
        self._blocks.append((base, now_ns, block))

    def _tune_thread(self) -> None:
        """Raise this (JACK process) thread's nice priority where allowed; best effort, once.

        On Linux nice is per thread, so only the callback's thread gains:
        on a shared machine it then loses fewer periods to other processes,
        as jackd does with the same setting (see ``JackServer``).
        """
        self._thread_tuned = True
        if self._nice is None:
            return
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._nice)
        except OSError:  # not permitted: keep the default
            pass

    # ------------------------------------------------------------------ ports

    @property
    def samplerate(self) -> int:
        """The JACK server's sample rate, Hz."""
        return self._rate

    @property
    def channels(self) -> int:
        """Number of recorded channels (columns of :meth:`audio`)."""
        return self._channels

    @property
    def sources(self) -> list[tuple[str, str]]:
        """Connections made by :meth:`connect`: ``(source port, recorder input port)``."""
        return list(self._sources)

    @property
    def missed_periods(self) -> int:
        """Periods whose process callback never ran (recorded as silence)."""
        return self._missed_periods

    def connect(self, pattern: str) -> list[str]:
        """Record the JACK audio output ports whose full names match ``pattern``.

        ``pattern`` matches as a substring or a regular expression searched in
        the full port name. Matching ports, sorted by name, go to the inputs in
        turn: the k-th to ``in_<k % channels + 1>`` (``"ai-band-preview:"``
        sends ``out_0`` to ``in_1`` and ``out_1`` to ``in_2``). Ports already
        connected are skipped.

        Returns:
            Full names of the source ports connected by this call (possibly empty).

        Raises:
            AudioRecorderError: the recorder is closed or JACK refused a connection.
        """
        if self._closed:
            raise AudioRecorderError("recorder is closed")
        try:
            regex: re.Pattern[str] | None = re.compile(pattern)
        except re.error:
            regex = None
        own = self._client.name + ":"
        names = sorted(
            port.name for port in self._client.get_ports(is_audio=True, is_output=True)
            if not port.name.startswith(own)
            and (pattern in port.name or (regex is not None and regex.search(port.name)))
        )
        connected = []
        with self._ports_lock:
            for k, source in enumerate(names):
                inport = self._inports[k % self._channels]
                if inport.is_connected_to(source):
                    continue
                try:
                    self._client.connect(source, inport)
                except jack.JackError as exc:
                    raise AudioRecorderError(f"cannot record {source!r}: {exc}") from exc
                self._sources.append((source, inport.name))
                connected.append(source)
                logger.debug("Recording %s on %s", source, inport.name)
        return connected

    # ------------------------------------------------------------------ audio

    def _period_start_ns(self, blocks: list[_Block], index: int) -> float:
        """Estimated CLOCK_MONOTONIC ns at which ``blocks[index]``'s period started."""
        start = blocks[index][0]
        limit = start + self._window_frames
        per_frame_ns = 1e9 / self._rate
        best = math.inf
        for j in range(index, len(blocks)):
            frame, t_ns, _ = blocks[j]
            if frame > limit:
                break
            best = min(best, t_ns - (frame - start) * per_frame_ns)
        return best

    def _snapshot(self) -> list[_Block]:
        return list(self._blocks)

    def audio(self) -> tuple[np.ndarray, float]:
        """Return everything recorded since the start (or :meth:`clear`) and its start time.

        Returns:
            ``(samples, start_time_s)``: float32 array (frames, channels), one
            row per JACK frame from the first recorded period to the last,
            missed periods filled with zeros; and the CLOCK_MONOTONIC seconds
            of its first frame (NaN when nothing is recorded yet). Later
            frames are at about ``start_time_s + index / samplerate``: JACK's
            dummy driver re-anchors after xruns, so use
            :meth:`first_sound_time` for times of individual sounds.
        """
        blocks = self._snapshot()
        if not blocks:
            return np.zeros((0, self._channels), np.float32), math.nan
        first = blocks[0][0]
        total = blocks[-1][0] + len(blocks[-1][2]) - first
        out = np.zeros((total, self._channels), np.float32)
        for base, _, block in blocks:
            out[base - first:base - first + len(block)] = block
        return out, self._period_start_ns(blocks, 0) / 1e9

    def _sound_time(self, threshold: float, last: bool) -> float | None:
        blocks = self._snapshot()
        order = range(len(blocks) - 1, -1, -1) if last else range(len(blocks))
        for index in order:
            loud = np.flatnonzero((np.abs(blocks[index][2]) > threshold).any(axis=1))
            if loud.size:
                offset = int(loud[-1] if last else loud[0])
                return (self._period_start_ns(blocks, index) + offset * 1e9 / self._rate) / 1e9
        return None

    def first_sound_time(self, threshold: float = 1e-3) -> float | None:
        """CLOCK_MONOTONIC seconds of the first sample (any channel) with ``|x| > threshold``.

        ``None`` when no recorded sample exceeds it.
        """
        return self._sound_time(threshold, last=False)

    def last_sound_time(self, threshold: float = 1e-3) -> float | None:
        """CLOCK_MONOTONIC seconds of the last sample (any channel) with ``|x| > threshold``.

        ``None`` when no recorded sample exceeds it.
        """
        return self._sound_time(threshold, last=True)

    def wait_until(self, time_s: float, timeout_s: float = 5.0) -> bool:
        """Wait until a period starting at or after CLOCK_MONOTONIC ``time_s`` is recorded.

        Returns:
            True when it is, False after ``timeout_s`` seconds or when JACK
            dropped the client.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            blocks = self._blocks
            if blocks and blocks[-1][1] / 1e9 >= time_s:
                return True
            now = time.monotonic()
            if now >= deadline or self._shutdown_reason is not None:
                return False
            # Sleep towards the target; the last period arrives at most one period later.
            time.sleep(min(max(time_s - now, 0.0) + self._blocksize / self._rate, deadline - now))

    def clear(self) -> None:
        """Forget everything recorded (ports stay connected)."""
        self._blocks.clear()

