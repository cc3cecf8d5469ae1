"""A model of MIDI clock timing: tick times in, tempo and phase out (no JACK, no I/O).

MIDI clock (Timing Clock ``0xF8``) runs at 24 ticks per quarter note (MIDI
1.0 Detailed Specification, "System Real Time Messages").  The times at which
ticks arrive carry the sender's and the transport's jitter (a DAW's MIDI
output thread, a USB interface: typically up to a millisecond), so no single
tick is taken as the beat.  :class:`ClockModel` fits a straight line
``t(n) = a + period * n`` by least squares to the last ``window_ticks``
accepted ticks (72: three quarter notes), which gives the tempo
(``60 / (24 * period)`` quarter notes per minute) and the time of any tick
``n`` with the jitter averaged out: for uniform +/-1 ms jitter the fitted time
of the newest tick of a full window is off by about 0.14 ms (standard
deviation; prediction error of a linear fit, ``sigma * sqrt(4 / N)``).

A real change must be followed quickly.  Each new tick is compared with the
fit's prediction; a tick further from it than the prediction interval
(:data:`K_SIGMA` standard deviations of a new observation, with the jitter's
standard deviation estimated from the second differences of the fitted ticks,
which a ramp hardly touches, but never below that of uniform jitter of
``jitter_floor_s``) is *held*, not fitted.  When the next
tick agrees with the fit again, the held one was an outlier (dropped,
``outliers``); when ``change_ticks`` ticks in a row fall off on the same side,
or two in a row whose distance from the prediction grows by more than
:data:`JUMP_THRESHOLDS` intervals (a jump: the interval between them is off, not just their times, as
after a stall), the tempo changed: the window starts again from the last tick
that agreed and those after it (``restarts``), and the fit of the new tempo
sharpens with every tick after.  ``change_ticks`` ticks off by the same amount
(within the interval, and by more than :data:`STEP_MIN_THRESHOLDS` intervals:
a ramp's ticks leave the line more gently), not growing, are a step of the timing, not of the
tempo (a MIDI interface's latency changing, a JACK server's timeline moving
after an overrun): the window is moved by that step and keeps its tempo
(``phase_steps``).  A jump from 120 to 140 bpm is followed from
its second tick.

A tempo ramp (DAW tempo automation) bends the ticks' times into a curve:
when the window's curvature (the quadratic term of the least-squares fit,
made orthogonal to the line) is :data:`K_CURVE` standard errors from zero,
the fit is that parabola and the period is its slope at the newest tick, so
the band follows the ramp instead of lagging it.  Two checks cut the curve
off where the ramp begins or ends: six prediction errors in a row on one side
whose mean is :data:`K_TREND` standard errors from zero restart the window
from them (a bend within the prediction interval), and a curved window whose
newest half is straight restarts from that half (:data:`K_KINK`: a parabola
through a ramp and the steady tempo after it would overshoot).  Simulated
with the benchmark's +/-1 ms jitter (ten runs, a ramp from 120 to 140 bpm
over one bar, from its second beat on), the fitted time of the next tick is
off by 0.71 ms on average (p90 1.37 ms), against 1.05 ms (p90 2.28 ms) with
a straight line restarted each time the lag left the prediction interval;
on a steady clock the checks restart the window about once in 2,000 ticks.

Bad timing that is not followed (MIDI 1.0 has no tempo range; these are the
model's limits, ``min_bpm`` .. ``max_bpm``):

* ticks much too fast: the median of the last 3 intervals shorter than
  ``60 / (24 * max_bpm) / 1.5`` (a clock at 10 times the tempo) is
  ``out_of_range`` and not fitted;
* a fitted tempo outside ``min_bpm`` .. ``max_bpm``: :attr:`ClockModel.in_range` is False;
* ticks that never came (a period a client or the server skipped): when two
  ticks in a row are late by the same whole number of periods, the ticks in
  between are counted as if they had come (``missed_ticks``), so the position
  stays on the sender's grid;
* an interval longer than ``1.5 * 60 / (24 * min_bpm)``: a *gap* (the clock
  paused); the window starts again from that tick (the last period is kept as
  a first guess).  Two such intervals in a row are a clock slower than
  ``min_bpm``: ``out_of_range``.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["CLOCKS_PER_QUARTER", "CONTINUE", "SONG_POSITION", "START", "STOP", "TIMING_CLOCK", "ClockModel"]

#: Timing Clock messages per quarter note (MIDI 1.0).
CLOCKS_PER_QUARTER = 24

# Status bytes of the clock and position messages (MIDI 1.0: System Real Time and System Common).
TIMING_CLOCK = 0xF8
START = 0xFA
CONTINUE = 0xFB
STOP = 0xFC
#: Song Position Pointer, two data bytes (14 bits, LSB first, in sixteenths).
SONG_POSITION = 0xF2

#: A tick more than this many standard deviations of a new observation from the
#: fit's prediction is off the prediction (held; see the module docstring).
K_SIGMA = 3.0

#: Two held ticks in a row whose distance from the prediction grows by more
#: than this many prediction intervals are a tempo jump (bounded jitter of the
#: assumed spread moves two ticks apart by at most 2 * sqrt(3) standard
#: deviations, 0.4 intervals).
JUMP_THRESHOLDS = 1.5

#: Held ticks off by the same amount (within the prediction interval) are a
#: step of the timing, not a tempo change, when that amount is more than this
#: many intervals: a ramp's first ticks off the line lie within about two.
STEP_MIN_THRESHOLDS = 2.5

#: The fit's curvature (a tempo ramp) is used when it is this many standard
#: errors from zero, and at least :data:`CURVE_MIN_TICKS` ticks are fitted.
K_CURVE = 3.5

#: Ticks a curved (quadratic) fit needs at least.
CURVE_MIN_TICKS = 12

#: A curved window whose newest half (of :data:`CURVE_MIN_TICKS` or more) bends
#: less than this many standard errors, or the other way, is a ramp that ended:
#: the window starts again from that half (a parabola through a ramp and the
#: steady tempo after it would overshoot the new tempo).
K_KINK = 1.5

#: The newest accepted ticks whose prediction errors are watched for a trend.
TREND_TICKS = 6

#: Those errors, all on one side and with a mean this many of its standard
#: errors from zero, are a tempo change within the prediction interval (a ramp
#: beginning or ending): the window starts again from them.
K_TREND = 3.5

#: Intervals (between ticks) whose median decides whether the clock is too fast.
FAST_INTERVALS = 3

#: Ticks faster than ``max_bpm`` times this (by the median interval) are out of
#: range; a fitted tempo above ``max_bpm`` is out of range too (:attr:`ClockModel.in_range`).
FAST_MARGIN = 1.5

#: An interval longer than this many periods at ``min_bpm`` is a gap (the clock paused).
GAP_MARGIN = 1.5


def _sums(ticks: list[tuple[int, float]], n0: int, t0: float) -> tuple[float, ...]:
    """``(sum x, sum y, sum x**2, sum x*y, sum x**3, sum x**4, sum x**2*y)`` of ``x = n - n0``, ``y = t - t0``.

    Counted from the window's first tick to keep the sums small.
    """
    sx = sy = sxx = sxy = sx3 = sx4 = sx2y = 0.0
    for n, t in ticks:
        x = n - n0
        y = t - t0
        x2 = x * x
        sx += x
        sy += y
        sxx += x2
        sxy += x * y
        sx3 += x2 * x
        sx4 += x2 * x2
        sx2y += x2 * y
    return sx, sy, sxx, sxy, sx3, sx4, sx2y


def _curvature(N: int, sx: float, sy: float, sxx: float, sxy: float, sx3: float, sx4: float, sx2y: float,
               sigma: float, k: float) -> tuple[float, float, float, float] | None:
    """The quadratic term of a least-squares fit from its sums over ``N`` points, if significant.

    The term is ``curve * z(x)`` with ``z(x) = x**2 - m2 - g * (x - xbar)``
    (``x**2`` made orthogonal to the straight line over the same points).

    Returns:
        ``(curve, m2, g, szz)`` when ``|curve|`` is ``k`` standard errors
        (``sigma / sqrt(szz)``) from zero, else ``None``.
    """
    xbar = sx / N
    m2 = sxx / N
    sxx_c = sxx - N * xbar * xbar
    if sxx_c <= 0.0:
        return None
    g = (sx3 - xbar * sxx) / sxx_c
    szz = sx4 - N * m2 * m2 - g * g * sxx_c
    if szz <= 0.0:
        return None
    curve = (sx2y - m2 * sy - g * (sxy - xbar * sy)) / szz
    if abs(curve) * math.sqrt(szz) < k * sigma:
        return None
    return curve, m2, g, szz


def _median3(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


class ClockModel:
    """Tempo and phase of a MIDI clock from the times of its ticks (see the module docstring).

    Args:
        window_ticks: ticks fitted at most (72 = 3 quarter notes).
        change_ticks: consecutive ticks off the prediction on the same side that
            mean a real tempo change (the window restarts from them).
        jitter_floor_s: the jitter assumed at least (seconds, the half-width of
            uniform jitter): ticks within it are never off the prediction.
        min_bpm: slowest tempo followed, quarter notes per minute.
        max_bpm: fastest tempo followed, quarter notes per minute.

    Ticks are numbered from 0 as they are accepted (:attr:`index`); ticks out
    of range are not numbered.  Not thread-safe: one thread calls :meth:`add`.

    Attributes:
        restarts: times the window restarted for a tempo change.
        outliers: single ticks off the prediction, dropped.
        out_of_range: ticks too fast, or intervals too slow, not fitted.
        gaps: pauses of the clock (the window restarted).
        phase_steps: times the ticks moved by a constant step (the window moved with them).
        missed_ticks: ticks that never came (two ticks in a row a whole number
            of periods late): counted into :attr:`index` all the same.
    """

    def __init__(self, window_ticks: int = 72, change_ticks: int = 3, jitter_floor_s: float = 0.001,
                 min_bpm: float = 20.0, max_bpm: float = 300.0) -> None:
        if window_ticks < 4:
            raise ValueError(f"window_ticks must be at least 4, not {window_ticks}")
        if change_ticks < 1:
            raise ValueError(f"change_ticks must be at least 1, not {change_ticks}")
        if not 0 < min_bpm < max_bpm:
            raise ValueError(f"need 0 < min_bpm < max_bpm, got {min_bpm}, {max_bpm}")
        self.window_ticks = window_ticks
        self.change_ticks = change_ticks
        self.jitter_floor_s = jitter_floor_s
        self.min_bpm = min_bpm
        self.max_bpm = max_bpm
        self._min_period_s = 60.0 / (CLOCKS_PER_QUARTER * max_bpm)
        self._max_period_s = 60.0 / (CLOCKS_PER_QUARTER * min_bpm)
        self._sigma_floor_s = jitter_floor_s / math.sqrt(3.0)  # standard deviation of uniform +/-floor
        self.restarts = 0
        self.outliers = 0
        self.out_of_range = 0
        self.gaps = 0
        self.missed_ticks = 0
        self.phase_steps = 0
        self.reset()

    def reset(self) -> None:
        """Forget every tick and the tempo (the counters stay)."""
        self.index = -1  # the number of the newest accepted tick
        self._window: deque[tuple[int, float]] = deque(maxlen=self.window_ticks)
        self._held: list[tuple[int, float, float]] = []  # (n, t, residual) off the prediction
        self._errors: deque[float] = deque(maxlen=TREND_TICKS)  # prediction errors of accepted ticks
        self._last_t: float | None = None  # the newest tick seen, accepted or not
        self._intervals: deque[float] = deque(maxlen=FAST_INTERVALS)
        self._slow_before = False  # the last interval was a gap
        self._period_s: float | None = None
        self._a = 0.0  # fitted time of tick _n0 (seconds)
        self._n0 = 0
        self._fit_n = 0  # points in the fit
        self._xbar = 0.0
        self._sxx = 0.0
        self._sigma_s = self._sigma_floor_s
        self._peak_s: float | None = None
        self._slope_s = 0.0  # the straight line's period, seconds per tick
        self._curve = 0.0  # curvature: seconds per tick squared (0: a straight line)
        self._m2 = 0.0  # mean of x**2 over the window
        self._g = 0.0  # projection of x**2 on the centred x
        self._szz = 0.0  # sum of z(x)**2 over the window

    # -- input --------------------------------------------------------------------
    def add(self, t_s: float, input_lost: bool = False) -> bool:
        """Take one tick that arrived at CLOCK_MONOTONIC ``t_s`` seconds.

        ``input_lost``: input may have been lost since the last tick (the
        JACK client skipped a period): a tick a whole number of periods late
        is counted as the ticks that never came, at once (``missed_ticks``).

        Returns:
            True if the tick was accepted and numbered (:attr:`index`); False
            if it is out of range (too fast, or the second too-long interval in a row).
        """
        last = self._last_t
        self._last_t = t_s
        if last is not None:
            interval = t_s - last
            if interval > GAP_MARGIN * self._max_period_s:
                self._intervals.clear()
                if self._slow_before:
                    self.out_of_range += 1
                    return False
                self._slow_before = True
                self.gaps += 1
                self._restart([])
                return self._accept(t_s, fit=True)
            self._slow_before = False
            self._intervals.append(interval)
            if (len(self._intervals) == FAST_INTERVALS
                    and _median3(list(self._intervals)) < self._min_period_s / FAST_MARGIN):
                self.out_of_range += 1
                return False
        return self._accept(t_s, fit=False, input_lost=input_lost)

    def _accept(self, t_s: float, fit: bool, input_lost: bool = False) -> bool:
        self.index += 1
        n = self.index
        if fit or self._fit_n < 2:
            self._window.append((n, t_s))
            self._refit()
            return True
        residual = t_s - self.time_of(n)
        period = self._period_s
        if input_lost and period and residual > 0.5 * period:
            m = round(residual / period)
            self.missed_ticks += m
            self.index += m
            n += m
            residual -= m * period
        if abs(residual) <= self._threshold_s(n):
            if self._held:
                self.outliers += len(self._held)
                self._held.clear()
            self._window.append((n, t_s))
            errors = self._errors
            errors.append(residual)
            if len(errors) == TREND_TICKS and self._trend(errors):
                self._tempo_changed(list(self._window)[-(TREND_TICKS + 1):])
            else:
                self._refit()
            return True
        if len(self._held) == 1 and self._lost_ticks(residual, n, t_s):
            return True
        if self._held and (self._held[-1][2] > 0) != (residual > 0):
            self.outliers += len(self._held)
            self._held.clear()
        held = self._held
        held.append((n, t_s, residual))
        threshold = self._threshold_s(n)
        if len(held) >= 2 and abs(held[-1][2]) - abs(held[-2][2]) > JUMP_THRESHOLDS * threshold:
            self._tempo_changed()  # the interval itself is off: a jump
        elif len(held) >= self.change_ticks:
            residuals = [r for _, _, r in held]
            mean = sum(residuals) / len(residuals)
            if max(residuals) - min(residuals) <= threshold and abs(mean) > STEP_MIN_THRESHOLDS * threshold:
                self._phase_step(mean)
            else:
                self._tempo_changed()
        return True

    def _trend(self, errors: deque[float]) -> bool:
        """The newest prediction errors lean one way (see :data:`K_TREND`)."""
        if len(self._window) < 2 * TREND_TICKS:
            return False
        if not (all(e > 0 for e in errors) or all(e < 0 for e in errors)):
            return False
        mean = sum(errors) / len(errors)
        return abs(mean) > K_TREND * self._sigma_s / math.sqrt(len(errors))

    def _tempo_changed(self, ticks: list[tuple[int, float]] | None = None) -> None:
        """A tempo change (counted in :attr:`restarts`): the window starts again from ``ticks``.

        By default from the last tick that agreed (the pivot) and the held ones.
        """
        self.restarts += 1
        if ticks is None:
            ticks = ([self._window[-1]] if self._window else []) + [(hn, ht) for hn, ht, _ in self._held]
        self._restart(ticks)

    def _phase_step(self, step_s: float) -> None:
        """The held ticks are off by the same ``step_s``, not growing: the clock's timing moved, not its tempo.

        The window is moved by ``step_s`` and keeps its ticks (and so its
        tempo), and the held ticks join it.  A step of about ``m >= 1`` whole
        periods is ``m`` lost ticks plus a step of the rest: the held ticks
        (and :attr:`index`) are renumbered ``m`` on.
        """
        period = self._period_s
        m = round(step_s / period) if period else 0
        if m >= 1:
            # About a whole number of periods: ticks lost (with the timing moved a little, as
            # around a JACK overrun that also lost the period they came in): counted, and the
            # rest of the step moves the window.
            self.missed_ticks += m
            self.index += m
            step_s -= m * period
        else:
            m = 0
        self.phase_steps += 1
        ticks = ([(wn, wt + step_s) for wn, wt in self._window]
                 + [(hn + m, ht) for hn, ht, _ in self._held])
        self._held.clear()
        self._window.clear()
        self._window.extend(ticks)
        self._refit()

    def _lost_ticks(self, residual: float, n: int, t_s: float) -> bool:
        """The held tick and this one are both a whole number ``m`` of periods late: ``m`` ticks were lost.

        Then both are renumbered ``m`` on (:attr:`index` too) and fitted:
        the count follows the sender's grid, not the ticks that arrived.  A
        tempo change makes the second tick later still, a stall of the
        sender's output makes the delays differ from whole periods.
        """
        period = self._period_s
        held_n, held_t, held_r = self._held[0]
        if period is None or held_n != n - 1:
            return False
        m = round(held_r / period)
        threshold = self._threshold_s(n)
        if m < 1 or abs(held_r - m * period) > threshold or abs(residual - m * period) > threshold:
            return False
        self.missed_ticks += m
        self.index += m
        self._held.clear()
        self._window.append((held_n + m, held_t))
        self._window.append((n + m, t_s))
        self._refit()
        return True

    def _restart(self, ticks: list[tuple[int, float]]) -> None:
        """Start the window again from ``ticks`` (the last period stays as a guess until two are fitted)."""
        self._held.clear()
        self._errors.clear()
        self._window.clear()
        self._window.extend(ticks)
        self._peak_s = None
        if ticks:
            self._refit()
        else:
            self._fit_n = 0

    def _threshold_s(self, n: int) -> float:
        """Half-width of the prediction interval of tick ``n``, seconds."""
        N = self._fit_n
        x = n - self._n0
        spread = 1.0 + 1.0 / N + ((x - self._xbar) ** 2 / self._sxx if self._sxx > 0 else 0.0)
        if self._curve:
            spread += self._z(x) ** 2 / self._szz
        return K_SIGMA * self._sigma_s * math.sqrt(spread)

    def _z(self, x: float) -> float:
        """The quadratic term at ``x`` ticks from the window's first, orthogonal to the line over the window."""
        return x * x - self._m2 - self._g * (x - self._xbar)

    def _refit(self) -> None:
        """Least squares over the window: ``t = a + slope * x (+ curve * z(x))``, ``x = n - n0``; spread, peak.

        The straight line always; the quadratic term ``z(x)`` (``x**2`` made
        orthogonal to the line, so the line's slope stays) when the curvature
        is :data:`K_CURVE` standard errors from zero (a tempo ramp); the
        period is then the slope at the newest tick.  A curved window whose
        newest half is straight restarts from that half (:data:`K_KINK`).
        """
        window = self._window
        N = len(window)
        n0, t0 = window[0]
        self._n0 = n0
        self._fit_n = N
        self._curve = 0.0
        if N == 1:
            self._a = t0
            self._xbar = 0.0
            self._sxx = 0.0
            return
        ticks = list(window)
        half_from = N - N // 2
        h = _sums(ticks[half_from:], n0, t0)  # the newest half of the window
        sx, sy, sxx, sxy, sx3, sx4, sx2y = (u + v for u, v in zip(_sums(ticks[:half_from], n0, t0), h))
        # The jitter's standard deviation from second differences of consecutive ticks
        # (t[n+1] - 2 t[n] + t[n-1] has variance 6 sigma**2 for independent jitter): blind
        # to the tempo and nearly so to a ramp, which inflates the fit's residuals instead.
        ss2 = 0.0
        count2 = 0
        prev = prev2 = None
        for n, t in ticks:
            if prev is not None and prev2 is not None and prev[0] == n - 1 and prev2[0] == n - 2:
                d2 = t - 2.0 * prev[1] + prev2[1]
                ss2 += d2 * d2
                count2 += 1
            prev2, prev = prev, (n, t)
        sigma = self._sigma_floor_s
        if count2:
            sigma = max(sigma, math.sqrt(ss2 / count2 / 6.0))
        self._sigma_s = sigma
        xbar, ybar = sx / N, sy / N
        m2 = sxx / N
        sxx_c = sxx - N * xbar * xbar
        sxy_c = sxy - xbar * sy
        slope = sxy_c / sxx_c
        a = t0 + ybar - slope * xbar
        self._period_s, self._slope_s, self._a, self._xbar, self._sxx = slope, slope, a, xbar, sxx_c
        if N >= CURVE_MIN_TICKS:
            curve = _curvature(N, sx, sy, sxx, sxy, sx3, sx4, sx2y, sigma, K_CURVE)
            if curve is not None and N >= 2 * CURVE_MIN_TICKS:
                half = _curvature(N // 2, *h, sigma, K_KINK)
                if half is None or (half[0] > 0) != (curve[0] > 0):  # a ramp ended in the newest half
                    self._tempo_changed(ticks[half_from - 1:])  # refits (once more at most per halving)
                    return
            if curve is not None:
                self._curve, self._m2, self._g, self._szz = curve
                self._period_s = slope + self._curve * (2.0 * (window[-1][0] - n0) - self._g)
        if N >= 8:
            c, m2, g = self._curve, self._m2, self._g
            peak = 0.0
            for n, t in window:
                x = n - n0
                r = t - a - slope * x
                if c:
                    r -= c * (x * x - m2 - g * (x - xbar))
                if r > peak or -r > peak:
                    peak = abs(r)
            self._peak_s = peak

    # -- output ---------------------------------------------------------------------
    @property
    def period_s(self) -> float | None:
        """Fitted (or last known) time between ticks, seconds; ``None`` before two ticks."""
        return self._period_s

    @property
    def bpm(self) -> float | None:
        """Fitted tempo, quarter notes per minute; ``None`` before two ticks."""
        period = self._period_s
        if period is None or period <= 0.0:
            return None
        return 60.0 / (CLOCKS_PER_QUARTER * period)

    @property
    def in_range(self) -> bool:
        """A tempo is known and lies within ``min_bpm`` .. ``max_bpm``."""
        bpm = self.bpm
        return bpm is not None and self.min_bpm <= bpm <= self.max_bpm

    def time_of(self, n: int) -> float:
        """Fitted CLOCK_MONOTONIC time of tick ``n`` (may be ahead of the newest), seconds.

        Raises:
            ValueError: no tick yet.
        """
        if self._fit_n == 0:
            raise ValueError("no tick yet")
        x = n - self._n0
        if self._curve:
            return self._a + self._slope_s * x + self._curve * self._z(x)
        period = self._period_s if self._period_s is not None else 0.0
        return self._a + period * x

    @property
    def fitted_ticks(self) -> int:
        """Ticks in the current fit (a restart makes it small)."""
        return self._fit_n

    @property
    def jitter_s(self) -> float | None:
        """Largest |residual| of the fitted ticks (the peak jitter), seconds; ``None`` below 8 ticks."""
        return self._peak_s
