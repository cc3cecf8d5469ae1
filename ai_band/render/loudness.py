"""Loudness normalisation and true-peak limiting of a mix and its stems.

The mix is brought to an integrated loudness target with one static gain,
then a look-ahead true-peak limiter keeps it under a ceiling.  The limiter's
gain curve is computed on the mix and applied, sample for sample, to every
stem too, so the processed stems still sum to the processed mix.

* Integrated loudness: ITU-R BS.1770-4 (K-weighting, 400 ms blocks with 75 %
  overlap, absolute gate -70 LUFS, relative gate -10 LU); EBU R128 uses the
  same measure.  The figures are pyloudnorm's (its K-weighting biquads, block
  bounds and gating; ``tests/render/test_loudness.py`` checks them against
  it) computed here with numpy alone: the K-weighting as one FFT convolution
  (overlap-save) with the filter's impulse response, which decays below
  1e-15 long before the frame ends, and the block energies from per-segment
  sums.  pyloudnorm filters with ``scipy.signal``, whose import alone takes
  about a second, longer than a whole ``ai-band generate --render wav``
  should.  Audio shorter than one 400 ms block is padded with silence.
* True peak: ITU-R BS.1770-4 Annex 2: 4x oversampling with the Annex's
  48-tap interpolation filter (its four 12-tap phases, each one
  convolution), then the largest absolute value over all channels, in dBTP.
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
(numpy's FFTs and array operations release the GIL).

Silence (or audio below the -70 LUFS absolute gate) is not an error: its
loudness is reported as :data:`SILENCE_LUFS` (-70.0, the gate) and no gain
is applied (``gain_db`` 0); a true peak of exactly zero is reported as
:data:`FLOOR_DBTP` (-200.0).  Both are finite so they serialise to JSON.

All audio here is float32 with shape ``(frames, channels)``; nothing is ever
clipped: the ceiling (<= 0 dBTP) keeps every sample within +-1 with margin.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

__all__ = [
    "FLOOR_DBTP",
    "SILENCE_LUFS",
    "Normalization",
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
_PHASES_F32 = _PHASES.astype(np.float32)
#: Output ``4q + r`` of the oversampler is phase ``(r + 3) % 4`` applied at input
#: frame ``q + _PHASE_LAG[r]`` (the centred alignment of ``scipy.signal.resample_poly``
#: with the 48-tap prototype, tap ``4m + p`` = phase ``p``'s tap ``m``).
_PHASE_LAG = (5, 6, 6, 6)

#: K-weighting (BS.1770-4 Annex 1) as pyloudnorm designs it for any sample rate:
#: RBJ-cookbook biquads, a high shelf (gain dB, Q, corner Hz), then a high pass (Q, corner Hz).
_SHELF = (4.0, 1.0 / math.sqrt(2.0), 1500.0)
_HIGH_PASS = (0.5, 38.0)
#: FFT frames the K-weighting filters at a time (~4 MB of temporaries per channel).
_KW_BATCH_SEGMENTS = 8
#: BS.1770-4 gating: block length s, overlap, absolute gate LUFS, relative gate LU, channel weights.
_GATE_BLOCK_S = 0.4
_GATE_OVERLAP = 0.75
_ABSOLUTE_GATE = -70.0
_RELATIVE_GATE = -10.0
_CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)

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


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (ITU-R BS.1770-4 / EBU R128) of ``audio``, LUFS.

    Args:
        audio: shape ``(frames, channels)`` (1..5 channels, in the order L, R, C,
            Ls, Rs) or ``(frames,)``.
        sample_rate: Hz.

    Returns:
        The gated loudness in LUFS, or :data:`SILENCE_LUFS` when every block
        is below the absolute gate (silence).

    Raises:
        ValueError: more than 5 channels.
    """
    data = np.asarray(audio)
    if data.ndim == 1:
        data = data[:, None]
    if data.shape[1] > len(_CHANNEL_WEIGHTS):
        raise ValueError(f"loudness is defined for 1..5 channels, not {data.shape[1]}")
    block = math.ceil(_GATE_BLOCK_S * sample_rate)
    frames = max(data.shape[0], block)
    energy = _block_energies(data, frames, sample_rate)
    weights = np.array(_CHANNEL_WEIGHTS[: data.shape[1]])
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + 10.0 * np.log10(weights @ energy)
    above = block_lufs >= _ABSOLUTE_GATE
    if not above.any():
        return SILENCE_LUFS
    relative = -0.691 + 10.0 * math.log10(weights @ energy[:, above].mean(axis=1)) + _RELATIVE_GATE
    keep = (block_lufs > relative) & (block_lufs > _ABSOLUTE_GATE)
    mean_square = float(weights @ energy[:, keep].mean(axis=1)) if keep.any() else 0.0
    value = -0.691 + 10.0 * math.log10(mean_square) if mean_square > 0.0 else SILENCE_LUFS
    return max(value, SILENCE_LUFS) if math.isfinite(value) else SILENCE_LUFS


def _biquads(sample_rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The K-weighting's two biquads ``(b, a)``, ``a[0] == 1``: pyloudnorm's ``IIRfilter`` formulas."""
    gain_db, q, corner = _SHELF
    amp = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * corner / sample_rate
    alpha = math.sin(w0) / (2.0 * q)
    cos, root = math.cos(w0), 2.0 * math.sqrt(amp) * alpha
    shelf_b = [amp * ((amp + 1) + (amp - 1) * cos + root), -2 * amp * ((amp - 1) + (amp + 1) * cos),
               amp * ((amp + 1) + (amp - 1) * cos - root)]
    shelf_a = [(amp + 1) - (amp - 1) * cos + root, 2 * ((amp - 1) - (amp + 1) * cos),
               (amp + 1) - (amp - 1) * cos - root]
    q, corner = _HIGH_PASS
    w0 = 2.0 * math.pi * corner / sample_rate
    alpha, cos = math.sin(w0) / (2.0 * q), math.cos(w0)
    pass_b = [(1 + cos) / 2, -(1 + cos), (1 + cos) / 2]
    pass_a = [1 + alpha, -2 * cos, 1 - alpha]
    return [(np.array(b) / a[0], np.array(a) / a[0]) for b, a in ((shelf_b, shelf_a), (pass_b, pass_a))]


@functools.cache
def _k_weighting(sample_rate: int) -> tuple[int, int, np.ndarray]:
    """``(fft_size, ir_frames, spectrum)`` for overlap-save K-weighting at ``sample_rate``.

    ``ir_frames`` is where the impulse response has decayed below 1e-16 of its
    peak (its slowest pole, the high pass's, sets it: about 8300 frames at
    44.1 kHz); ``spectrum`` is the filter's frequency response at the real
    FFT's bins, i.e. the transform of its impulse response (folded every
    ``fft_size`` frames, which adds nothing measurable).
    """
    sections = _biquads(sample_rate)
    radius = max(float(np.max(np.abs(np.roots(a)))) for _, a in sections)
    ir_frames = math.ceil(45.0 / -math.log(radius)) if radius > 0 else 16
    fft_size = max(1 << 15, 1 << math.ceil(math.log2(4 * ir_frames)))
    z = np.exp(-2j * math.pi * np.arange(fft_size // 2 + 1) / fft_size)
    spectrum = np.ones(z.size, dtype=np.complex128)
    for b, a in sections:
        spectrum *= (b[0] + z * (b[1] + z * b[2])) / (a[0] + z * (a[1] + z * a[2]))
    return fft_size, ir_frames, spectrum


def k_weighted(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``audio`` through the K-weighting filter (BS.1770-4 Annex 1), from rest.

    Args:
        audio: shape ``(frames, channels)``, float.
        sample_rate: Hz.

    Returns:
        float64 ``(channels, frames)``: the filtered signal, equal to a direct
        (recursive) filtering to within ~1e-12 of the signal's peak.
    """
    out = np.empty((audio.shape[1], audio.shape[0]))
    for start, stop, filtered in _k_weighted_batches(audio, sample_rate):
        out[:, start:stop] = filtered
    return out


def _k_weighted_batches(audio: np.ndarray, sample_rate: int):
    """Overlap-save K-weighting of ``audio`` ``(frames, channels)``, a few FFT frames at a time.

    Yields ``(start, stop, filtered)``: float64 ``(channels, stop - start)``
    of the filtered signal, in order.  ``filtered`` is a scratch buffer that
    the next batch overwrites (the consumer may also overwrite it).  The
    buffers are allocated once, a few MB each: the whole signal at once would
    touch ~400 MB of fresh memory, which in a new process costs more in page
    faults than the FFTs cost in arithmetic.
    """
    frames, channels = audio.shape
    fft_size, ir_frames, spectrum = _k_weighting(sample_rate)
    hop = fft_size - ir_frames + 1
    segments = max(1, -(-frames // hop))
    batch = min(_KW_BATCH_SEGMENTS, segments)
    window = np.empty((channels, (ir_frames - 1) + batch * hop))
    spectra = np.empty((channels, batch, fft_size // 2 + 1), dtype=np.complex128)
    circular = np.empty((channels, batch, fft_size))
    filtered = np.empty((channels, batch, hop))
    for first in range(0, segments, batch):
        count = min(batch, segments - first)
        start = first * hop
        stop = min(frames, start + count * hop)
        # The input: ir_frames - 1 frames of history, then count * hop new ones (zeros past the
        # ends), exactly the span of count FFT frames hop apart.
        lo = start - (ir_frames - 1)
        window.fill(0.0)
        window[:, max(lo, 0) - lo : stop - lo] = audio[max(lo, 0) : stop].T
        view = np.lib.stride_tricks.as_strided(
            window,
            shape=(channels, count, fft_size),
            strides=(window.strides[0], hop * window.strides[1], window.strides[1]),
            writeable=False,
        )
        np.fft.rfft(view, axis=2, out=spectra[:, :count])
        spectra[:, :count] *= spectrum
        np.fft.irfft(spectra[:, :count], fft_size, axis=2, out=circular[:, :count])
        filtered[:, :count] = circular[:, :count, ir_frames - 1 :]  # the frames free of wrap-around
        yield start, stop, filtered[:, :count].reshape(channels, count * hop)[:, : stop - start]


def _block_energies(audio: np.ndarray, frames: int, sample_rate: int) -> np.ndarray:
    """Mean square of the K-weighted ``audio`` in each 400 ms gating block (75 % overlap).

    Args:
        audio: shape ``(frames, channels)``.
        frames: length to measure, >= the audio's (zeros after it).
        sample_rate: Hz.

    Returns:
        float64, shape ``(channels, blocks)``.

    Block ``j`` spans ``[int(0.4 * (j * 0.25) * sr), int(0.4 * (j * 0.25 + 1) * sr))``,
    pyloudnorm's bounds to the float.  The bounds cut the signal into stretches;
    the squares of each filtered batch are summed per stretch as they come, and
    each block adds up its stretches.
    """
    step = 1.0 - _GATE_OVERLAP
    count = int(np.round((frames / sample_rate - _GATE_BLOCK_S) / (_GATE_BLOCK_S * step))) + 1
    j = np.arange(count)
    lower = (_GATE_BLOCK_S * (j * step) * sample_rate).astype(np.int64)
    upper = (_GATE_BLOCK_S * (j * step + 1) * sample_rate).astype(np.int64)
    bounds = np.unique(np.concatenate((lower, upper)))  # stretch i is [bounds[i], bounds[i + 1])
    stretch = np.zeros((audio.shape[1], bounds.size))
    for start, stop, filtered in _k_weighted_batches(audio, sample_rate):
        local = np.clip(bounds, start, stop) - start
        used = local[:-1] < local[1:]
        if used.any():
            squares = np.square(filtered[:, : local[-1]], out=filtered[:, : local[-1]])
            stretch[:, :-1][:, used] += np.add.reduceat(squares, local[:-1][used], axis=1)
    first, last = np.searchsorted(bounds, lower), np.searchsorted(bounds, upper)
    total = np.zeros((audio.shape[1], count))
    for k in range(int((last - first).max(initial=0))):
        index = np.minimum(first + k, bounds.size - 1)
        total += np.where(first + k < last, stretch[:, index], 0.0)
    return total / (_GATE_BLOCK_S * sample_rate)


def true_peak_envelope(audio: np.ndarray) -> np.ndarray:
    """Per-frame true peak: the largest absolute 4x-oversampled value near each frame.

    Element ``n`` is the maximum over all channels of the absolute values of
    the four interpolated samples of frame ``n`` (BS.1770-4 Annex 2 filter).

    Args:
        audio: float array, shape ``(frames, channels)``.

    Returns:
        float32 array, shape ``(frames,)``, linear (1.0 = full scale).
    """
    data = np.ascontiguousarray(np.asarray(audio, dtype=np.float32).T)
    frames = data.shape[1]
    envelope = np.empty(frames, dtype=np.float32)
    for start in range(0, frames, _TP_CHUNK):
        stop = min(frames, start + _TP_CHUNK)
        lo, hi = max(0, start - _TP_CONTEXT), min(frames, stop + _TP_CONTEXT)
        up = _oversample(data[:, lo:hi])  # (channels, phase r, frame q): output 4q + r
        np.abs(up, out=up)
        peak = up[0] if up.shape[0] == 1 else np.maximum.reduce(up, axis=0)
        # With the even-length filter, output 4q + r lies at input time q + (2r - 1) / 8:
        # frame q gathers outputs 4q - 1 .. 4q + 2 (times q - 3/8 .. q + 3/8), i.e. phases
        # 0, 1, 2 of frame q and phase 3 of frame q - 1.
        grouped = np.maximum(np.maximum(peak[0], peak[1]), peak[2])
        np.maximum(grouped[1:], peak[3, :-1], out=grouped[1:])
        if hi == frames:  # the last output (time frames - 5/8) belongs to the last frame
            grouped[-1] = max(grouped[-1], peak[3, -1])
        envelope[start:stop] = grouped[start - lo : stop - lo]
    return envelope


def _oversample(data: np.ndarray) -> np.ndarray:
    """4x oversampling with the Annex 2 filter: float32 ``(channels, frames)`` -> ``(channels, 4, frames)``.

    Element ``[c, r, q]`` is output ``4q + r`` of channel ``c``: phase ``(r + 3) % 4`` of the filter at input frame
    ``q + _PHASE_LAG[r]`` (the samples outside ``data`` taken as zero): the
    output of ``scipy.signal.resample_poly(data, 4, 1, axis=1, window=<the
    48-tap prototype / 4>)``, to float32 rounding.  Each phase is 12 scaled
    shifted copies added up (ten times faster than ``np.convolve`` here).
    """
    channels, frames = data.shape
    padded = np.zeros((channels, frames + 12), dtype=np.float32)
    padded[:, 6 : 6 + frames] = data
    up = np.zeros((channels, OVERSAMPLING, frames), dtype=np.float32)
    for r in range(OVERSAMPLING):
        taps, lag = _PHASES_F32[(r + 3) % OVERSAMPLING], _PHASE_LAG[r]
        acc = up[:, r]
        for m, tap in enumerate(taps):
            start = lag - m + 6
            acc += tap * padded[:, start : start + frames]
    return up


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


def _sliding(values: np.ndarray, width: int, reduce: Callable[..., np.ndarray]) -> np.ndarray:
    """``reduce`` over a centred window of odd ``width``, the edges repeated (``mode="nearest"``)."""
    half = width // 2
    padded = np.concatenate((np.repeat(values[:1], half), values, np.repeat(values[-1:], half)))
    return reduce(np.lib.stride_tricks.sliding_window_view(padded, width), axis=1)


def _peak_bound(audio: np.ndarray) -> np.ndarray:
    """An upper bound of each block's true peak, from sample values alone (float32, per block).

    An interpolated value is a 12-tap sum, so it is at most the sum of one
    phase's absolute taps (:data:`_PHASE_GAIN`, 2.02) times the largest
    sample within 6 frames; a block widened by one block on each side covers
    those frames.
    """
    sample_peak = np.maximum(_block_reduce(audio, np.max), -_block_reduce(audio, np.min))
    return (_sliding(sample_peak, 3, np.max) * np.float32(_PHASE_GAIN)).astype(np.float32)


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
    gain = _sliding(gain, width, np.min)
    gain = _sliding(gain, width, np.mean)
    gain = _sliding(gain, 3, np.min)
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
    wide_max = _sliding(_block_reduce(curve, np.max), 3, np.max)
    wide_min = _sliding(_block_reduce(curve, np.min), 3, np.min)
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
    # numpy's FFTs release the GIL: each loudness measurement runs beside the
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
