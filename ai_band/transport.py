"""Model of the host's clock: CLOCK_MONOTONIC seconds <-> host ppq.

The plugin reports the host transport as JUCE's ``AudioPlayHead::PositionInfo``
does (``isPlaying``, ``getBpm``, ``getPpqPosition``, ``getPpqPositionOfLastBarStart``,
``getTimeSignature``): positions in quarter notes (ppq).  The messages arrive
with jitter (the plugin stamps the ppq of its audio block, then the message
waits in its message thread and the network), so we never anchor the clock
on a single message.

Model: since the last start or relocation (a *run*), the host timeline is a
chain of constant-tempo segments joined without a jump in ppq (a tempo change
keeps the position continuous).  With zero offset that chain maps a ppq to a
time ``T0(ppq)``; every message ``i`` arriving at ``a_i`` with position
``p_i`` is one sample of the run's only unknown, the offset
``phi_i = a_i - T0(p_i)``.  The estimate is the midrange of the samples in
the last ``window_s`` seconds after dropping outliers beyond Tukey's fences
(1.5 x IQR) and stragglers that stand apart from the other samples (a gap
test extended to clusters, :data:`GAP_LIMITS`): for bounded jitter the midrange converges as 1/N rather than
the mean's 1/sqrt(N) (see bench/README and docs/timing.md for the figures).

A message whose position disagrees with the prediction by more than
``relocate_threshold_s`` (or that starts playback, or follows a stop) starts
a new run at once, unless it is less than :data:`STRAGGLER_MAX_S` *behind*
the prediction: a message held up in the host looks just like a short jump
back, so such messages are held back until the next on-time message shows
they were stragglers, or for :data:`STRAGGLER_HOLD_S` of consistent
messages, after which the jump is real.  A tempo change starts a new segment
at once.

The chain is bounded: segments that ended more than ``window_s`` before the
newest one (in host time) are folded into the oldest segment still kept, and
at most ``max_segments`` are kept.  Nothing reads them any more: the samples
hold their offsets already, the snapshot reads only the newest segment, and a
new message is only converted when it is within ``relocate_threshold_s`` of
the prediction, far less than a window back (only a flood of more than
``max_segments`` tempo changes within that threshold reaches past the cap).
So long tempo automation costs the same per message in its first minute as
after an hour (bench/transport_cost.py).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, replace
from operator import itemgetter

from ai_band.model import TimeSignature

#: Smallest ppq step treated as "the same position" (1/100000 quarter note).
PPQ_EPSILON = 1e-5

#: Stragglers are cut where the top (or bottom) ``m`` gaps of the samples
#: together span more than GAP_LIMITS[m - 1] bulk spacings.  For n uniform
#: samples each gap is close to exponential with the mean spacing, so ``m``
#: gaps together are Gamma(m)-distributed; each limit is exceeded with
#: probability 3e-4 (for m = 1, Dixon's gap test at e**-8).  Testing spans as
#: well as single gaps catches a cluster of stragglers spread out just beyond
#: the jitter, whose gaps are each unremarkable.
STRAGGLER_P = 3e-4
#: The tests need this many samples inside the fences.
MIN_GAP_TEST_SAMPLES = 16
#: At least this many stragglers at either end can be dropped...
MAX_STRAGGLERS = 3
#: ... and up to one sample in this many (a host thread held up for a moment
#: delays several messages in a row: seen as 5 in 4 s under render load).
STRAGGLER_SHARE = 10


def _gamma_tail_limit(m: int, p: float) -> float:
    """The x with P(Gamma(m, 1) > x) = p (bisection on the Erlang tail sum)."""
    lo, hi = 0.0, 10.0 * m + 50.0
    for _ in range(80):
        x = (lo + hi) / 2.0
        term, tail = 1.0, 1.0
        for i in range(1, m):
            term *= x / i
            tail += term
        if math.exp(-x) * tail > p:
            lo = x
        else:
            hi = x
    return hi


GAP_LIMITS = tuple(_gamma_tail_limit(m, STRAGGLER_P) for m in range(1, 65))

#: A message up to this far (seconds) *behind* the prediction may be a
#: straggler (a host thread held up, then sending what it had) rather than a
#: relocation: it is held back, not used...
STRAGGLER_MAX_S = 0.25
#: ... until a message agrees with the current timeline again (it was a
#: straggler) or messages have kept to the new position for this long, in
#: seconds (a real jump back by less than STRAGGLER_MAX_S: it relocates then).
STRAGGLER_HOLD_S = 0.1

#: Keys of a segment ``(start_ppq, start_time_s, bpm)`` for bisection.
_SEGMENT_START_PPQ = itemgetter(0)
_SEGMENT_START_TIME_S = itemgetter(1)


@dataclass(frozen=True)
class TransportState:
    """What the host reported in one ``/band/transport`` message.

    Attributes:
        playing: the host transport runs.
        bpm: tempo, quarter notes per minute (> 0).
        ppq: position in quarter notes at the host block the message describes.
        bar_start_ppq: position of the start of the current bar, quarter notes.
        ts_num: time-signature numerator.
        ts_den: time-signature denominator.
    """

    playing: bool
    bpm: float
    ppq: float
    bar_start_ppq: float
    ts_num: int
    ts_den: int

    @property
    def bar_length_ppq(self) -> float:
        """Length of one bar in quarter notes (:attr:`TimeSignature.bar_length_ppq`)."""
        return TimeSignature(self.ts_num, self.ts_den).bar_length_ppq


@dataclass(frozen=True)
class TransportSnapshot:
    """An immutable linear map between monotonic time and host ppq.

    The scheduler thread reads the latest snapshot without locks; the event
    loop replaces it on every transport message.

    Attributes:
        playing: the host transport runs.
        bpm: current tempo, quarter notes per minute.
        anchor_time_s: CLOCK_MONOTONIC seconds at which the host is at ``anchor_ppq``.
        anchor_ppq: host position at ``anchor_time_s``, quarter notes.
        bar_start_ppq: a bar line (quarter notes); bars repeat every ``bar_length_ppq``.
        ts_num: time-signature numerator.
        ts_den: time-signature denominator.
        run: increments at every discontinuity (start, stop, relocation); a
            scheduler seeing a new ``run`` re-reads the position.
        run_start_ppq: the position at which the current run started, quarter notes.
        version: increments on every update.
    """

    playing: bool = False
    bpm: float = 120.0
    anchor_time_s: float = 0.0
    anchor_ppq: float = 0.0
    bar_start_ppq: float = 0.0
    ts_num: int = 4
    ts_den: int = 4
    run: int = 0
    run_start_ppq: float = 0.0
    version: int = 0

    @property
    def bar_length_ppq(self) -> float:
        """Length of one bar in quarter notes."""
        return TimeSignature(self.ts_num, self.ts_den).bar_length_ppq

    def ppq_at(self, time_s: float) -> float:
        """Host position in quarter notes at monotonic ``time_s`` (frozen when stopped)."""
        if not self.playing:
            return self.anchor_ppq
        return self.anchor_ppq + (time_s - self.anchor_time_s) * self.bpm / 60.0

    def time_at(self, ppq: float) -> float:
        """Monotonic seconds at which the host reaches ``ppq`` at the current tempo.

        Meaningful only while playing; when stopped it returns ``math.inf``.
        """
        if not self.playing:
            return math.inf
        return self.anchor_time_s + (ppq - self.anchor_ppq) * 60.0 / self.bpm

    def next_bar_ppq(self, ppq: float, tolerance_ppq: float = 0.0) -> float:
        """The first bar line at or after ``ppq - tolerance_ppq``, in quarter notes.

        Bar lines are ``bar_start_ppq + k * bar_length_ppq`` for integer k,
        as JUCE's ``getPpqPositionOfLastBarStart`` defines them.
        """
        bar = self.bar_length_ppq
        k = math.ceil((ppq - tolerance_ppq - self.bar_start_ppq) / bar - 1e-9)
        return self.bar_start_ppq + k * bar


class TransportModel:
    """Turns jittery ``/band/transport`` messages into :class:`TransportSnapshot` s.

    Args:
        window_s: how far back offset samples are kept, seconds.
        relocate_threshold_s: a reported position further than this (in
            seconds at the current tempo) from the prediction is a relocation.
        max_samples: cap on kept samples.
        max_segments: cap on kept constant-tempo segments of the current run
            (besides folding those older than ``window_s``); only a flood of
            tempo changes faster than ``max_segments`` per ``window_s`` reaches it.

    Raises:
        ValueError: ``max_segments`` is below 1.

    Not thread-safe: call :meth:`update` from one thread (the event loop).
    """

    def __init__(
        self,
        window_s: float = 6.0,
        relocate_threshold_s: float = 0.04,
        max_samples: int = 512,
        max_segments: int = 512,
    ) -> None:
        if max_segments < 1:
            raise ValueError(f"max_segments must be at least 1, not {max_segments}")
        self.window_s = window_s
        self.max_segments = max_segments
        self.relocate_threshold_s = relocate_threshold_s
        self._samples: deque[tuple[float, float]] = deque(maxlen=max_samples)
        # Segments of the current run with zero offset: (start_ppq, start_time_s, bpm),
        # the oldest ones folded away (_fold_segments).
        self._segments: list[tuple[float, float, float]] = []
        self._run_start_ppq = 0.0
        self.snapshot = TransportSnapshot()
        self.last_state: TransportState | None = None
        self.last_arrival_s: float | None = None
        # Messages behind the prediction, held back as possible stragglers: (arrival_s, state).
        self._held: list[tuple[float, TransportState]] = []
        self.counters = {"messages": 0, "relocations": 0, "tempo_changes": 0, "starts": 0, "stops": 0,
                         "stragglers": 0}

    # -- zero-offset chain of the current run -------------------------------
    @property
    def segment_count(self) -> int:
        """Constant-tempo segments kept for the current run (0 when stopped)."""
        return len(self._segments)

    @property
    def sample_count(self) -> int:
        """Offset samples (messages) kept for the current run."""
        return len(self._samples)

    @property
    def jitter_s(self) -> float | None:
        """Spread of the kept offset samples (the messages' arrival jitter), max - min, seconds; ``None`` below 2."""
        if len(self._samples) < 2:
            return None
        offsets = [phi for _, phi in self._samples]
        return max(offsets) - min(offsets)

    def _t0(self, ppq: float) -> float:
        i = max(0, bisect.bisect_right(self._segments, ppq, key=_SEGMENT_START_PPQ) - 1)
        start_ppq, start_time_s, bpm = self._segments[i]
        return start_time_s + (ppq - start_ppq) * 60.0 / bpm

    def _fold_segments(self) -> None:
        """Fold the segments that ended over ``window_s`` before the newest began into the oldest kept one.

        Also keeps at most ``max_segments``.  A position before the oldest
        kept segment converts at that segment's tempo; no message within the
        relocation threshold of the prediction reaches that far back.
        """
        cutoff_s = self._segments[-1][1] - self.window_s
        keep_from = bisect.bisect_right(self._segments, cutoff_s, key=_SEGMENT_START_TIME_S) - 1
        keep_from = max(keep_from, len(self._segments) - self.max_segments)
        if keep_from > 0:
            del self._segments[:keep_from]

    def _offset_estimate(self) -> float:
        values = sorted(phi for _, phi in self._samples)
        n = len(values)
        if n < 4:
            return (values[0] + values[-1]) / 2.0
        q1 = values[n // 4]
        q3 = values[(3 * n) // 4]
        fence = 1.5 * (q3 - q1)
        lo_i = bisect.bisect_left(values, q1 - fence)
        hi_i = bisect.bisect_right(values, q3 + fence) - 1
        # Stragglers inside the fences (messages held up a few ms) would still
        # move the midrange by half their delay for a whole window: drop up
        # to k_max samples at either end, the fewest after which the
        # remaining extreme is unremarkable (GAP_LIMITS).  The bulk spacing
        # comes from the samples inside those k_max, so stragglers cannot
        # inflate it.
        count = hi_i - lo_i + 1
        if count >= MIN_GAP_TEST_SAMPLES:
            k_max = min(len(GAP_LIMITS), max(MAX_STRAGGLERS, count // STRAGGLER_SHARE))
            spacing = (values[hi_i - k_max] - values[lo_i + k_max]) / (count - 1 - 2 * k_max)
            limits = [limit * spacing for limit in GAP_LIMITS[:k_max]]
            for j in range(k_max + 1):
                top = hi_i - j
                if all(values[top] - values[top - m] <= limits[m - 1] for m in range(1, k_max + 1)):
                    break
            hi_i = top
            for j in range(k_max + 1):
                bottom = lo_i + j
                if all(values[bottom + m] - values[bottom] <= limits[m - 1] for m in range(1, k_max + 1)):
                    break
            lo_i = bottom
        return (values[lo_i] + values[hi_i]) / 2.0

    def _new_run(self, arrival_s: float, state: TransportState) -> None:
        self._samples.clear()
        self._held.clear()
        self._segments = [(state.ppq, 0.0, state.bpm)]
        self._run_start_ppq = state.ppq

    def update(self, arrival_s: float, state: TransportState) -> tuple[TransportSnapshot, str]:
        """Feed one transport message; return the new snapshot and what happened.

        Args:
            arrival_s: CLOCK_MONOTONIC seconds at which the datagram arrived.
            state: the reported transport.

        Returns:
            ``(snapshot, kind)`` with kind one of ``"start"``, ``"stop"``,
            ``"relocate"``, ``"tempo"``, ``"update"``, ``"idle"`` (stopped and
            still stopped), ``"held"`` (behind the prediction: held back as a
            possible straggler, snapshot unchanged).
        """
        self.counters["messages"] += 1
        prev = self.snapshot
        kind = "update"
        if not state.playing:
            kind = "stop" if prev.playing else "idle"
            if prev.playing:
                self.counters["stops"] += 1
            self._samples.clear()
            self._held.clear()
            self._segments = []
            self.snapshot = TransportSnapshot(
                playing=False,
                bpm=state.bpm,
                anchor_time_s=arrival_s,
                anchor_ppq=state.ppq,
                bar_start_ppq=state.bar_start_ppq,
                ts_num=state.ts_num,
                ts_den=state.ts_den,
                run=prev.run + (1 if prev.playing or prev.anchor_ppq != state.ppq else 0),
                version=prev.version + 1,
            )
            self.last_state, self.last_arrival_s = state, arrival_s
            return self.snapshot, kind

        if not prev.playing or not self._segments:
            kind = "start"
            self.counters["starts"] += 1
            self._new_run(arrival_s, state)
        else:
            predicted_ppq = prev.ppq_at(arrival_s)
            ahead_s = (state.ppq - predicted_ppq) * 60.0 / prev.bpm
            if abs(ahead_s) > self.relocate_threshold_s:
                held: list[tuple[float, TransportState]] = []
                if -STRAGGLER_MAX_S <= ahead_s < 0.0:
                    self._held.append((arrival_s, state))
                    self.last_state, self.last_arrival_s = state, arrival_s
                    if arrival_s - self._held[0][0] < STRAGGLER_HOLD_S:
                        return self.snapshot, "held"
                    held = self._held[:-1]
                kind = "relocate"
                self.counters["relocations"] += 1
                self._new_run(arrival_s, state)
                for held_arrival_s, held_state in held:
                    # Messages held back that agree with the new position are samples of it.
                    phi = held_arrival_s - self._t0(held_state.ppq)
                    if held_state.bpm == state.bpm and abs(phi - arrival_s) <= self.relocate_threshold_s:
                        self._samples.append((held_arrival_s, phi))
            elif abs(state.bpm - prev.bpm) > 1e-6:
                kind = "tempo"
                self.counters["tempo_changes"] += 1
                # Continuity: the old segment reaches state.ppq at _t0(state.ppq),
                # the new tempo runs from there.  Samples of the run stay valid.
                start_ppq = state.ppq
                if start_ppq <= self._segments[-1][0]:
                    self._segments[-1] = (self._segments[-1][0], self._segments[-1][1], state.bpm)
                else:
                    self._segments.append((start_ppq, self._t0(start_ppq), state.bpm))
                    self._fold_segments()
        if self._held:
            # On time again: what was held back came late.
            self.counters["stragglers"] += len(self._held)
            self._held.clear()
        self._samples.append((arrival_s, arrival_s - self._t0(state.ppq)))
        while self._samples and self._samples[0][0] < arrival_s - self.window_s:
            self._samples.popleft()
        offset_s = self._offset_estimate()
        start_ppq, start_time_s, bpm = self._segments[-1]
        ts_changed = (state.ts_num, state.ts_den) != (prev.ts_num, prev.ts_den)
        self.snapshot = TransportSnapshot(
            playing=True,
            bpm=bpm,
            anchor_time_s=start_time_s + offset_s,
            anchor_ppq=start_ppq,
            bar_start_ppq=state.bar_start_ppq,
            ts_num=state.ts_num,
            ts_den=state.ts_den,
            run=prev.run + (1 if kind in ("start", "relocate") or ts_changed else 0),
            run_start_ppq=self._run_start_ppq,
            version=prev.version + 1,
        )
        self.last_state, self.last_arrival_s = state, arrival_s
        return self.snapshot, kind

    def expire(self, now_s: float, timeout_s: float) -> TransportSnapshot | None:
        """Stop the model when no message came for ``timeout_s`` while playing.

        Returns the new (stopped) snapshot, or None when nothing changed.
        A plugin that vanished (DAW crashed) must not leave the band playing.
        """
        if self.snapshot.playing and self.last_arrival_s is not None and now_s - self.last_arrival_s > timeout_s:
            snap = self.snapshot
            self.snapshot = replace(
                snap,
                playing=False,
                anchor_ppq=snap.ppq_at(now_s),
                anchor_time_s=now_s,
                run=snap.run + 1,
                version=snap.version + 1,
            )
            self._samples.clear()
            self._held.clear()
            self._segments = []
            self.counters["stops"] += 1
            return self.snapshot
        return None

    def as_dict(self, now_s: float) -> dict:
        """JSON-ready view for ``/band/status``: playing, bpm, ppq now, time signature."""
        snap = self.snapshot
        return {
            "playing": snap.playing,
            "bpm": snap.bpm,
            "ppq": round(snap.ppq_at(now_s), 6),
            "bar_start_ppq": snap.bar_start_ppq,
            "ts": f"{snap.ts_num}/{snap.ts_den}",
            "samples": len(self._samples),
            **self.counters,
        }
