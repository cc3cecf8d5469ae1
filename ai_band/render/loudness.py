"""Loudness normalisation and true-peak limiting of a mix and its stems.

The mix is brought to an integrated loudness target with one static gain,
then a look-ahead true-peak limiter keeps it under a ceiling.  The limiter's
gain curve is computed on the mix and applied, sample for sample, to every
stem too, so the processed stems still sum to the processed mix.

* Integrated loudness: ITU-R BS.1770-4 (K-weighting, 400 ms blocks with 75 %
  overlap, absolute gate -70 LUFS, relative gate -10 LU) as measured by
  pyloudnorm; EBU R128 uses the same measure.  Audio shorter than one
  400 ms block is padded with silence for the measurement.
* True peak: ITU-R BS.1770-4 Annex 2: 4x oversampling with the Annex's
  48-tap interpolation filter (applied with :func:`scipy.signal.resample_poly`),
  then the largest absolute value over all channels, in dBTP.
* Limiter: the gain each block of 32 frames (0.7 ms) needs is held with a
  release of :data:`RELEASE_DB_PER_S`, smoothed over a look-ahead of
  +-:data:`LOOKAHEAD_S` and interpolated per frame, in a way that can only
  stay below what every block needs (see :func:`_gain_curve`).  The result
  is measured again and the limiter repeats with a little more margin
  until the ceiling holds.

Speed: oversampling is the costly part, and most of a mix cannot come near
the ceiling.  An interpolated value is a 12-tap sum, so a block's true peak
is at most 2.02 times its largest nearby sample; only blocks whose bound
reaches the level that matters (what the limiter must act on, or the
largest peak found so far) are oversampled.  The peaks reported are exact.
The loudness measurements run in a helper thread beside the peak work
(pyloudnorm's filters release the GIL).  The audio is worked on in small
chunks and blocks, so a long render does not touch hundreds of MB of fresh
temporaries (in a new process the page faults cost more than the arithmetic).

Imports: pyloudnorm, ``scipy.signal`` and ``scipy.ndimage`` take about a
second to import in a new process, so they are imported on first use, not
with this module; :func:`import_libraries` with ``background=True`` starts
that import in a thread of its own, for a caller (``ai-band generate
--render``) that knows early that it will need them and has other work
(generation, FluidSynth's rendering, which runs without the GIL) to overlap
it with.  A failed import is a :class:`~ai_band.errors.RenderError` when
the loudness stage needs the libraries.

Silence (or audio below the -70 LUFS absolute gate) is not an error: its
loudness is reported as :data:`SILENCE_LUFS` (-70.0, the gate) and no gain
is applied (``gain_db`` 0); a true peak of exactly zero is reported as
:data:`FLOOR_DBTP` (-200.0).  Both are finite so they serialise to JSON.

All audio here is float32 with shape ``(frames, channels)``; nothing is ever
clipped: the ceiling (<= 0 dBTP) keeps every sample within +-1 with margin.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ai_band.errors import RenderError

__all__ = [
    "FLOOR_DBTP",
    "SILENCE_LUFS",
    "Normalization",
    "import_libraries",
    "integrated_loudness",
    "normalize",
    "true_peak",
    "true_peak_dbtp",
    "true_peak_envelope",
]

logger = logging.getLogger(__name__)

#: Loudness reported for silence or audio entirely below the absolute gate, LUFS.
SILENCE_LUFS = -70.0

#: True peak reported for digital silence, dBTP.
FLOOR_DBTP = -200.0

#: Oversampling factor of the true-peak meter (BS.1770-4 Annex 2).
OVERSAMPLING = 4

# BS.1770-4 Annex 2, Table 1: the 4-phase, 12-taps-per-phase interpolation
# filter (phase 0 is nearly the identity; phases 2 and 3 mirror 1 and 0).
_PHASE0 = (
    0.0017089843750,
    0.0109863281250,
    -0.0196533203125,
    0.0332031250000,
    -0.0594482421875,
    0.1373291015625,
    0.9721679687500,
    -0.1022949218750,
    0.0476074218750,
    -0.0266113281250,
    0.0148925781250,
    -0.0083007812500,
)
_PHASE1 = (
    -0.0291748046875,
    0.0292968750000,
    -0.0517578125000,
    0.0891113281250,
    -0.1665039062500,
    0.4650878906250,
    0.7797851562500,
    -0.2003173828125,
    0.1015625000000,
    -0.0582275390625,
    0.0330810546875,
    -0.0189208984375,
)
_PHASES = np.array([_PHASE0, _PHASE1, _PHASE1[::-1], _PHASE0[::-1]])
#: The same filter as one 48-tap prototype (tap 4*m + p is phase p's tap m),
#: divided by the up factor because resample_poly multiplies it back.
_TP_FILTER = (_PHASES.T.reshape(-1) / OVERSAMPLING).astype(np.float32)

#: BS.1770-4 gating block length, seconds (audio shorter than one is padded).
_GATE_BLOCK_S = 0.4

#: Input frames per chunk of the true-peak meter (bounds its memory: ~2 MB of temporaries).
_TP_CHUNK = 1 << 16
#: Context frames on each side of a chunk: the filter spans 12 input frames.
_TP_CONTEXT = 16

#: Limiter look-ahead: the gain starts to fall this long before a peak, seconds.
LOOKAHEAD_S = 0.002
#: Limiter release: the gain recovers at this rate after a peak, dB per second.
RELEASE_DB_PER_S = 40.0
#: Head-room below the ceiling the limiter aims for on its first pass, dB.
_FIRST_MARGIN_DB = 0.02
#: The result must be this far under the ceiling, so rounding to 16-bit PCM cannot cross it, dB.
_CHECK_MARGIN_DB = 0.005
#: Extra head-room added on each further pass when the ceiling was missed, dB.
_RETRY_MARGIN_DB = 0.05
_MAX_PASSES = 6
#: Frames per block of the limiter's gain curve and of its verification.
_LIMIT_BLOCK = 32
#: Largest sum of absolute taps of one Annex 2 phase: how far interpolation can overshoot.
_PHASE_GAIN = float(np.abs(_PHASES).sum(axis=1).max())


@dataclass(frozen=True)
class Normalization:
    """What :func:`normalize` did.

    Attributes:
        input_lufs: integrated loudness of the mix before processing, LUFS
            (:data:`SILENCE_LUFS` for silence).
        gain_db: static gain applied for the loudness target, dB (0 for silence).
        limited: the true-peak limiter reduced the gain somewhere.
        max_reduction_db: deepest gain reduction of the limiter, dB (>= 0).
        loudness_lufs: integrated loudness of the processed mix, LUFS.
        true_peak_dbtp: true peak of the processed mix, dBTP.
    """

    input_lufs: float
    gain_db: float
    limited: bool
    max_reduction_db: float
    loudness_lufs: float
    true_peak_dbtp: float


class _Libraries(NamedTuple):
    """The library functions the loudness stage uses, imported on first use."""

    meter: Callable[[int], Any]  # pyloudnorm.Meter: BS.1770-4 integrated loudness
    resample_poly: Callable[..., np.ndarray]  # scipy.signal: the Annex 2 oversampler
    maximum_filter1d: Callable[..., np.ndarray]  # scipy.ndimage: the limiter's windows
    minimum_filter1d: Callable[..., np.ndarray]
    uniform_filter1d: Callable[..., np.ndarray]


_import_lock = threading.Lock()
_imported: Future[_Libraries] | None = None


def import_libraries(background: bool = False) -> None:
    """Import pyloudnorm, ``scipy.signal`` and ``scipy.ndimage`` for the loudness stage, once.

    Their import takes about a second in a new process.  Without this call
    the first measurement imports them; a caller that knows early that it
    will render audio can start the import beforehand.  Idempotent.

    Args:
        background: import in a daemon thread and return at once (the
            measurement then waits for it); else import now, in this thread.

    Raises:
        RenderError: (``background=False``) an import failed.  With
            ``background=True`` the same error is raised by the first
            measurement instead.
    """
    future = _start_import(background)
    if not background:
        future.result()


def _start_import(background: bool) -> Future[_Libraries]:
    """The import's future, starting the import (in a thread or here) on the first call."""
    global _imported
    with _import_lock:
        future, first = _imported, _imported is None
        if future is None:
            future = _imported = Future()
    if first:
        if background:
            threading.Thread(target=_import_into, args=(future,), name="loudness-import", daemon=True).start()
        else:
            _import_into(future)
    return future


def _import_into(future: Future[_Libraries]) -> None:
    """Import the libraries and settle ``future`` with them or with a RenderError; never raises."""
    try:
        import pyloudnorm
        from scipy.ndimage import maximum_filter1d, minimum_filter1d, uniform_filter1d
        from scipy.signal import resample_poly

        future.set_result(
            _Libraries(pyloudnorm.Meter, resample_poly, maximum_filter1d, minimum_filter1d, uniform_filter1d)
        )
    except BaseException as exc:  # noqa: BLE001 - handed to whoever measures next
        error = RenderError(
            f"the loudness stage needs pyloudnorm and scipy, and importing them failed "
            f"({type(exc).__name__}: {exc}); install them with pip install 'pyloudnorm>=0.1.1' 'scipy>=1.10'"
        )
        error.__cause__ = exc
        future.set_exception(error)


def _libraries() -> _Libraries:
    """The imported libraries, waiting for a background import (RenderError if it failed)."""
    return _start_import(False).result()


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (ITU-R BS.1770-4 / EBU R128) of ``audio``, LUFS, measured by pyloudnorm.

    Args:
        audio: float, shape ``(frames, channels)`` (1..5 channels, in the order L, R, C,
            Ls, Rs) or ``(frames,)``.
        sample_rate: Hz.

    Returns:
        The gated loudness in LUFS, or :data:`SILENCE_LUFS` when every block
        is below the absolute gate (silence).

    Raises:
        ValueError: more than 5 channels (pyloudnorm's check).
        RenderError: pyloudnorm or scipy cannot be imported.
    """
    data = np.asarray(audio)
    if data.dtype not in (np.float32, np.float64):
        data = data.astype(np.float64)
    if data.ndim == 1:
        data = data[:, None]
    block = math.ceil(_GATE_BLOCK_S * sample_rate)
    if data.shape[0] < block:
        data = np.concatenate(
            [data, np.zeros((block - data.shape[0], data.shape[1]), dtype=data.dtype)]
        )
    value = float(_libraries().meter(sample_rate).integrated_loudness(data))
    if not math.isfinite(value) or value < SILENCE_LUFS:
        return SILENCE_LUFS
    return value


def true_peak_envelope(audio: np.ndarray) -> np.ndarray:
    """Per-frame true peak: the largest absolute 4x-oversampled value near each frame.

    Element ``n`` is the maximum over all channels of the absolute values of
    the four interpolated samples of frame ``n`` (BS.1770-4 Annex 2 filter).

    Args:
        audio: float array, shape ``(frames, channels)``.

    Returns:
        float32 array, shape ``(frames,)``, linear (1.0 = full scale).
    """
    resample_poly = _libraries().resample_poly
    data = np.ascontiguousarray(np.asarray(audio, dtype=np.float32).T)
    frames = data.shape[1]
    envelope = np.empty(frames, dtype=np.float32)
    for start in range(0, frames, _TP_CHUNK):
        stop = min(frames, start + _TP_CHUNK)
        lo, hi = max(0, start - _TP_CONTEXT), min(frames, stop + _TP_CONTEXT)
        up = resample_poly(data[:, lo:hi], OVERSAMPLING, 1, axis=1, window=_TP_FILTER)
        np.abs(up, out=up)
        peak = up[0] if up.shape[0] == 1 else np.maximum.reduce(up, axis=0)
        # With the even-length filter, output 4n + k lies at input time n + (2k - 1) / 8:
        # frame n gathers outputs 4n - 1 .. 4n + 2 (times n - 3/8 .. n + 3/8), i.e. outputs
        # 4n .. 4n + 2 of its own group of four and the last of the previous group.
        groups = peak.reshape(hi - lo, OVERSAMPLING)
        grouped = groups[:, :3].max(axis=1)
        np.maximum(grouped[1:], groups[:-1, 3], out=grouped[1:])
        if hi == frames:  # the last output (time frames - 5/8) belongs to the last frame
            grouped[-1] = max(grouped[-1], groups[-1, 3])
        envelope[start:stop] = grouped[start - lo : stop - lo]
    return envelope


def true_peak(audio: np.ndarray) -> float:
    """True peak of ``audio`` (BS.1770-4 Annex 2, 4x oversampled), linear full scale."""
    if audio.size == 0:
        return 0.0
    return float(true_peak_envelope(audio).max())


def true_peak_dbtp(audio: np.ndarray) -> float:
    """True peak of ``audio`` in dBTP; :data:`FLOOR_DBTP` for digital silence."""
    return _to_db(true_peak(audio))


def _to_db(linear: float) -> float:
    return 20.0 * math.log10(linear) if linear > 0.0 else FLOOR_DBTP


def _block_reduce(values: np.ndarray, reduce: Callable[..., np.ndarray] = np.max) -> np.ndarray:
    """``reduce`` of each run of :data:`_LIMIT_BLOCK` frames along axis 0 (the last run may be shorter).

    ``values`` is ``(frames,)`` or ``(frames, channels)`` (then over the channels too);
    a contiguous input is reduced in place, without a copy.
    """
    full = values.shape[0] // _LIMIT_BLOCK * _LIMIT_BLOCK
    out = reduce(values[:full].reshape(full // _LIMIT_BLOCK, -1), axis=1)
    if full < values.shape[0]:
        out = np.append(out, reduce(values[full:]))
    return out


def _peak_bound(audio: np.ndarray) -> np.ndarray:
    """An upper bound of each block's true peak, from sample values alone (float32, per block).

    An interpolated value is a 12-tap sum, so it is at most the sum of one
    phase's absolute taps (:data:`_PHASE_GAIN`, 2.02) times the largest
    sample within 6 frames; a block widened by one block on each side covers
    those frames.
    """
    sample_peak = np.maximum(_block_reduce(audio, np.max), -_block_reduce(audio, np.min))
    widened = _libraries().maximum_filter1d(sample_peak, 3, mode="nearest")
    return (widened * np.float32(_PHASE_GAIN)).astype(np.float32)


def _measure_blocks(audio: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """Exact true peak of each of ``blocks`` (sorted, unique block indices) of ``audio``.

    Runs of adjacent blocks are gathered, each with :data:`_TP_CONTEXT`
    frames of context on both sides, into one array that is oversampled in
    one go: a result depends only on the frames within 6 of it, which all
    lie in its own run's context.
    """
    frames = audio.shape[0]
    breaks = np.flatnonzero(np.diff(blocks) != 1) + 1
    starts = blocks[np.concatenate(([0], breaks))] * _LIMIT_BLOCK
    stops = np.minimum(
        (blocks[np.concatenate((breaks - 1, [blocks.size - 1]))] + 1) * _LIMIT_BLOCK, frames
    )
    lows = np.maximum(starts - _TP_CONTEXT, 0)
    highs = np.minimum(stops + _TP_CONTEXT, frames)
    gathered = np.concatenate([np.arange(lo, hi) for lo, hi in zip(lows.tolist(), highs.tolist())])
    envelope = true_peak_envelope(audio[gathered])
    offsets = np.concatenate(([0], np.cumsum(highs - lows)[:-1]))
    inner = np.concatenate(
        [
            np.arange(o + s - lo, o + e - lo)
            for o, s, e, lo in zip(offsets.tolist(), starts.tolist(), stops.tolist(), lows.tolist())
        ]
    )
    lengths = np.minimum(_LIMIT_BLOCK, frames - blocks * _LIMIT_BLOCK)
    return np.maximum.reduceat(envelope[inner], np.concatenate(([0], np.cumsum(lengths)[:-1])))


class _BlockPeaks:
    """Per-block true peaks of one signal, oversampled only where they can matter.

    ``values`` holds the exact peak of every measured block and an upper
    bound (:func:`_peak_bound` or better) of every other block.
    """

    def __init__(self, audio: np.ndarray, bound: np.ndarray) -> None:
        self.audio = audio
        self.values = bound.astype(np.float32, copy=True)
        self.exact = np.zeros(bound.size, dtype=bool)

    def measure(self, blocks: np.ndarray) -> None:
        """Oversample ``blocks`` (and gaps of up to 3 blocks between them: cheaper than a call)."""
        blocks = np.unique(blocks[~self.exact[blocks]])
        if blocks.size == 0:
            return
        gaps = np.diff(blocks)
        fill = [
            np.arange(a + 1, a + g)
            for a, g in zip(blocks[:-1].tolist(), gaps.tolist())
            if 1 < g <= 4
        ]
        if fill:
            blocks = np.unique(np.concatenate([blocks, *fill]))
            blocks = blocks[~self.exact[blocks]]
        self.values[blocks] = _measure_blocks(self.audio, blocks)
        self.exact[blocks] = True

    def measure_above(self, threshold: float) -> None:
        """Make every block whose bound exceeds ``threshold`` exact."""
        self.measure(np.flatnonzero(~self.exact & (self.values > threshold)))

    def peak(self) -> float:
        """The exact largest true peak: blocks are measured, highest bound first, until no
        unmeasured bound exceeds the largest exact value."""
        while True:
            best = float(self.values[self.exact].max(initial=0.0))
            candidates = np.flatnonzero(~self.exact & (self.values > best))
            if candidates.size == 0:
                return best
            self.measure(candidates[np.argsort(-self.values[candidates], kind="stable")[:512]])


def _gain_curve(
    block_peak: np.ndarray, frames: int, ceiling: float, sample_rate: int
) -> np.ndarray:
    """Limiter gain per frame (<= 1, float32): each block's peak times gain stays under ``ceiling``.

    Worked out on blocks of :data:`_LIMIT_BLOCK` frames (0.7 ms), each needing
    ``min(1, ceiling / its peak)``.  That need is held with a constant-rate
    release (in dB: a running maximum of the reduction minus
    ``RELEASE_DB_PER_S`` times the time elapsed), then the look-ahead stage
    takes the minimum over +-``LOOKAHEAD_S`` and averages over the same
    window, then the minimum with both neighbour blocks, and the result is
    interpolated linearly between block centres.  Every step can only lower
    the gain below what each block needs: an average at block ``b`` is over
    minima that all include ``b``, and an interpolated frame lies between
    two values that are both at most its own block's.

    Args:
        block_peak: true peak (or an upper bound) of each block, linear.
        frames: length of the signal, frames.
        ceiling: the largest allowed peak, linear.
        sample_rate: Hz.
    """
    need = block_peak / np.float32(ceiling)
    need_db = np.zeros(need.size, dtype=np.float64)
    over = need > 1.0
    need_db[over] = 20.0 * np.log10(need[over].astype(np.float64))
    ramp = np.arange(need.size, dtype=np.float64) * (RELEASE_DB_PER_S * _LIMIT_BLOCK / sample_rate)
    held_db = np.maximum.accumulate(need_db + ramp) - ramp
    gain = 10.0 ** (-np.maximum(held_db, 0.0) / 20.0)
    width = 2 * max(1, math.ceil(LOOKAHEAD_S * sample_rate / _LIMIT_BLOCK)) + 1
    libraries = _libraries()
    gain = libraries.minimum_filter1d(gain, width, mode="nearest")
    gain = libraries.uniform_filter1d(gain, width, mode="nearest")
    gain = libraries.minimum_filter1d(gain, 3, mode="nearest")
    # The running sum of the average leaves ~1e-16 residues: snap "untouched" back to exactly 1.
    gain[gain > 1.0 - 1e-9] = 1.0
    return _interpolate_blocks(gain, frames)


def _interpolate_blocks(gain: np.ndarray, frames: int) -> np.ndarray:
    """Per-frame float32 values interpolated linearly between block centres, held at the ends.

    ``np.interp(frames, centres, gain)`` with ``centres = 32 b + 15.5`` to the
    bit, computed block by block (frame ``32 b + k`` lies ``k - 15.5`` frames
    from its own centre) without its float64 frame arrays.
    """
    held = np.concatenate((gain[:1], gain, gain[-1:]))  # held[b + 1] is block b's value
    offset = np.arange(_LIMIT_BLOCK) - (_LIMIT_BLOCK - 1) / 2.0
    out = np.empty((gain.size, _LIMIT_BLOCK), dtype=np.float32)
    half = _LIMIT_BLOCK // 2
    # First half of a block: from the previous centre; second half: from its own.
    for cols, before, after, distance in ((slice(0, half), held[:-2], held[1:-1], offset[:half] + _LIMIT_BLOCK),
                                          (slice(half, None), held[1:-1], held[2:], offset[half:])):
        slope = (after - before) / _LIMIT_BLOCK
        out[:, cols] = slope[:, None] * distance + before[:, None]
    return out.reshape(-1)[:frames]


def _limited_bound(
    curve: np.ndarray, static_peaks: np.ndarray, static_bound: np.ndarray
) -> np.ndarray:
    """Upper bound of each block's true peak after the limiter.

    Near frame ``n`` the limited signal is ``sum_k h_k g_k x_k`` (``x`` the
    statically scaled mix, ``g`` the curve, ``h`` one Annex 2 phase): at most
    ``g_n |y_n| + max|g_k - g_n| * sum|h_k| * max|x_k|``, ``y`` the unlimited
    interpolation.  Per block (widened by a block on each side for the
    filter's reach): ``max g * peak + (max g - min g) * bound``.
    """
    libraries = _libraries()
    wide_max = libraries.maximum_filter1d(_block_reduce(curve, np.max), 3, mode="nearest")
    wide_min = libraries.minimum_filter1d(_block_reduce(curve, np.min), 3, mode="nearest")
    return wide_max * static_peaks + (wide_max - wide_min) * static_bound


def normalize(
    stems: Sequence[np.ndarray],
    sample_rate: int,
    target_lufs: float,
    ceiling_dbtp: float,
) -> tuple[np.ndarray, list[np.ndarray], Normalization]:
    """Bring the mix of ``stems`` to ``target_lufs`` under a true-peak ceiling.

    The mix is the sum of the stems.  A static gain sets its integrated
    loudness to the target; where its true peak would then exceed the
    ceiling, a look-ahead limiter lowers the gain (the same curve for the
    mix and every stem).  The result is measured again; if the ceiling is
    still exceeded (inter-sample peaks move a little under a varying gain),
    the limiter runs again aiming a little lower, and as a last resort the
    whole result is scaled down.  With limiting the final loudness is below
    the target.

    True peaks are only oversampled where they can matter: a block whose
    bound from its sample values (:func:`_peak_bound`) is below the level
    in question cannot reach it.  The true peak reported is exact.

    Args:
        stems: one float32 array per part, all of shape ``(frames, 2)``.
        sample_rate: Hz.
        target_lufs: integrated loudness target of the mix, LUFS (ITU-R BS.1770-4).
        ceiling_dbtp: true-peak ceiling of the mix, dBTP (<= 0).

    Returns:
        ``(mix, processed stems, Normalization)``: the stems are the input arrays,
        scaled in place (so the audio is held once, not twice); the mix is float32
        ``(frames, 2)`` and is exactly the float32 sum of the processed stems.
    """
    if not stems:
        raise ValueError("normalize needs at least one stem")
    raw_mix = _sum(stems)
    frames = raw_mix.shape[0]
    # pyloudnorm's filters release the GIL: each loudness measurement runs beside the
    # peak work of the same stage.
    with ThreadPoolExecutor(1, thread_name_prefix="loudness") as executor:
        loudness = executor.submit(integrated_loudness, raw_mix, sample_rate)
        raw_bound = _peak_bound(raw_mix)
        raw_peaks = _BlockPeaks(raw_mix, raw_bound)
        raw_peaks.peak()  # needed below whatever the gain: found while the loudness is measured
        input_lufs = loudness.result()
        gain_db = 0.0 if input_lufs <= SILENCE_LUFS else target_lufs - input_lufs
        static = 10.0 ** (gain_db / 20.0)
        ceiling = 10.0 ** ((ceiling_dbtp - _CHECK_MARGIN_DB) / 20.0)
        aim = ceiling * 10.0 ** (-(_FIRST_MARGIN_DB - _CHECK_MARGIN_DB) / 20.0)

        limited = False
        reduction_db = 0.0
        out = list(stems)
        scaling = _InPlaceGain(out)
        for attempt in range(_MAX_PASSES):
            raw_peaks.measure_above(aim / static)
            if raw_peaks.peak() * static <= aim:
                scaling.apply(np.float32(static))
                mix = _sum(out)
                loudness = executor.submit(integrated_loudness, mix, sample_rate)
                # A constant gain scales the true peak exactly; no need to oversample again.
                peak = raw_peaks.peak() * static
            else:
                static_peaks = raw_peaks.values * np.float32(static)
                curve = _gain_curve(static_peaks, frames, aim, sample_rate)
                limited = True
                reduction_db = -20.0 * math.log10(float(curve.min()))
                scaling.apply((curve * np.float32(static))[:, None])
                mix = _sum(out)
                loudness = executor.submit(integrated_loudness, mix, sample_rate)
                bound = _limited_bound(curve, static_peaks, raw_bound * np.float32(static))
                peak = _BlockPeaks(mix, bound).peak()
            if peak <= ceiling:
                break
            logger.debug(
                "true peak %.3f dBTP above the %.2f dBTP ceiling on pass %d; aiming lower",
                _to_db(peak),
                ceiling_dbtp,
                attempt + 1,
            )
            aim *= (ceiling / peak) * 10.0 ** (-_RETRY_MARGIN_DB / 20.0)
        else:
            # Linear scaling keeps the shape of every peak: this always lands under the ceiling.
            scale = np.float32(ceiling / peak * 10.0 ** (-_RETRY_MARGIN_DB / 20.0))
            logger.warning(
                "limiter missed the ceiling after %d passes; scaling by %.3f dB",
                _MAX_PASSES,
                20.0 * math.log10(float(scale)),
            )
            scaling.apply(scaling.applied * scale)
            mix = _sum(out)
            loudness = executor.submit(integrated_loudness, mix, sample_rate)
            peak = true_peak(mix)
            limited = True
        output_lufs = loudness.result()
    result = Normalization(
        input_lufs=input_lufs,
        gain_db=gain_db,
        limited=limited,
        max_reduction_db=reduction_db,
        loudness_lufs=output_lufs,
        true_peak_dbtp=_to_db(peak),
    )
    logger.debug(
        "loudness %.2f -> %.2f LUFS (gain %+.2f dB), true peak %.2f dBTP, limiter %.2f dB",
        input_lufs,
        result.loudness_lufs,
        gain_db,
        result.true_peak_dbtp,
        reduction_db,
    )
    return mix, out, result


class _InPlaceGain:
    """Scales the stems in place (one copy of the audio, not two) towards a target gain.

    ``applied`` is the gain the stems carry now (a number or a ``(frames, 1)``
    array); a new target multiplies them by ``target / applied``.
    """

    def __init__(self, stems: list[np.ndarray]) -> None:
        self.stems = stems
        self.applied: np.float32 | np.ndarray = np.float32(1.0)

    def apply(self, target: np.float32 | np.ndarray) -> None:
        unscaled = np.ndim(self.applied) == 0 and float(self.applied) == 1.0
        factor = target if unscaled else target / self.applied
        if np.ndim(factor) == 0 and float(factor) == 1.0:
            return
        for stem in self.stems:
            stem *= factor
        self.applied = target


def _sum(stems: Sequence[np.ndarray]) -> np.ndarray:
    total = np.array(stems[0], dtype=np.float32, copy=True)
    for stem in stems[1:]:
        total += stem
    return total
