"""Loudness measurement, true peak and the limiter on synthetic signals."""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm
import pytest
from scipy.signal import butter, lfilter, resample_poly, sosfilt

from ai_band.render.loudness import (
    FLOOR_DBTP,
    SILENCE_LUFS,
    integrated_loudness,
    k_weighted,
    normalize,
    true_peak_dbtp,
    true_peak_envelope,
)

SR = 48000


def sine(
    freq: float, seconds: float, amplitude: float, phase: float = 0.0, sr: int = SR
) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * math.pi * freq * t + phase)).astype(np.float32)


def stereo(mono: np.ndarray) -> np.ndarray:
    return np.stack([mono, mono], axis=1)


def test_loudness_of_a_reference_sine() -> None:
    # EBU Tech 3341: a 1 kHz sine at -23 dBFS peak in both channels reads about -23 LUFS
    # (K-weighting gain at 1 kHz ~ +0.7 dB, -0.691 offset, two channels +3 dB, sine rms -3 dB).
    audio = stereo(sine(997.0, 5.0, 10 ** (-23 / 20)))
    assert integrated_loudness(audio, SR) == pytest.approx(-23.0, abs=0.1)
    assert integrated_loudness(audio, SR) == pytest.approx(
        pyloudnorm.Meter(SR).integrated_loudness(audio.astype(np.float64)), abs=0.01
    )


def _music_like(seconds: float, sr: int, channels: int) -> np.ndarray:
    """Noise bursts and tones of varying level, with quiet stretches that the gates drop."""
    rng = np.random.default_rng(7)
    frames = int(seconds * sr)
    t = np.arange(frames) / sr
    envelope = np.where((t % 3.0) < 2.2, 0.3 * (1 + np.sin(2 * math.pi * 0.37 * t)), 1e-4)
    audio = rng.standard_normal((frames, channels)) * envelope[:, None] * 0.3
    audio += (0.2 * np.sin(2 * math.pi * 55.0 * t) * envelope)[:, None]
    return audio.astype(np.float32)


@pytest.mark.parametrize("sr", [44100, 48000])
@pytest.mark.parametrize("channels", [1, 2, 5])
def test_loudness_equals_pyloudnorm(sr: int, channels: int) -> None:
    """The numpy measurement gives pyloudnorm's figure (BS.1770-4, float64) to far below 0.01 LU."""
    audio = _music_like(21.3, sr, channels)
    expected = pyloudnorm.Meter(sr).integrated_loudness(audio.astype(np.float64))
    assert integrated_loudness(audio, sr) == pytest.approx(expected, abs=1e-9)
    assert integrated_loudness(audio[:, 0], sr) == pytest.approx(
        pyloudnorm.Meter(sr).integrated_loudness(audio[:, 0].astype(np.float64)), abs=1e-9
    )


def test_k_weighting_equals_recursive_filtering() -> None:
    """The FFT convolution gives the two biquads' recursive output (scipy's lfilter, pyloudnorm's)."""
    from ai_band.render.loudness import _biquads

    audio = _music_like(30.0, 44100, 2)  # several overlap-save batches
    expected = audio.T.astype(np.float64)
    for b, a in _biquads(44100):
        expected = lfilter(b, a, expected, axis=1)
    assert np.max(np.abs(k_weighted(audio, 44100) - expected)) < 1e-12 * np.max(np.abs(expected))


def test_oversampling_equals_resample_poly() -> None:
    from ai_band.render.loudness import _oversample

    audio = _music_like(2.0, SR, 2).T.copy()
    expected = resample_poly(audio, 4, 1, axis=1, window=_annex_filter().astype(np.float32))
    interleaved = _oversample(audio).transpose(0, 2, 1).reshape(2, -1)  # (channel, 4q + r)
    assert np.max(np.abs(interleaved - expected)) < 1e-6


def test_loudness_of_short_and_silent_audio() -> None:
    assert integrated_loudness(np.zeros((SR, 2), np.float32), SR) == SILENCE_LUFS
    assert (
        integrated_loudness(stereo(sine(440, 0.1, 0.5)), SR) > -40.0
    )  # shorter than one 400 ms block
    assert (
        integrated_loudness(stereo(sine(440, 2.0, 1e-5)), SR) == SILENCE_LUFS
    )  # below the -70 gate


def test_true_peak_sees_between_samples() -> None:
    # A sine at fs/4 sampled 45 degrees off its crests: samples reach 0.707, the wave 1.0.
    audio = stereo(sine(SR / 4, 1.0, 1.0, phase=math.pi / 4))
    assert 20 * math.log10(np.max(np.abs(audio))) == pytest.approx(-3.01, abs=0.01)
    assert true_peak_dbtp(audio) == pytest.approx(0.0, abs=0.1)
    assert true_peak_dbtp(np.zeros((100, 2), np.float32)) == FLOOR_DBTP


def test_envelope_matches_resample_poly_in_chunks() -> None:
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal((600_000, 2)) * 0.2).astype(np.float32)  # spans several chunks
    envelope = true_peak_envelope(audio)
    assert envelope.shape == (600_000,)
    reference = np.abs(
        resample_poly(audio.astype(np.float64), 4, 1, axis=0, window=_annex_filter())
    ).max()
    assert float(envelope.max()) == pytest.approx(reference, rel=1e-5)
    # Aligned with the frames: for band-limited audio each frame's envelope covers its own sample.
    smooth = sosfilt(butter(8, 4000, fs=SR, output="sos"), audio, axis=0).astype(np.float32)
    assert np.all(true_peak_envelope(smooth) >= np.abs(smooth).max(axis=1) * 0.98)


def _annex_filter() -> np.ndarray:
    from ai_band.render.loudness import _PHASES

    return _PHASES.T.reshape(-1) / 4.0


def test_normalize_quiet_signal_reaches_the_target_without_limiting() -> None:
    stems = [stereo(sine(220, 4.0, 0.01)), stereo(sine(330, 4.0, 0.01))]
    mix, out, result = normalize(stems, SR, -20.0, -1.0)
    assert out[0] is stems[0]  # scaled in place
    assert not result.limited
    assert result.loudness_lufs == pytest.approx(-20.0, abs=0.05)
    assert result.gain_db == pytest.approx(-20.0 - result.input_lufs)
    assert np.array_equal(mix, out[0] + out[1])


def test_normalize_limits_spiky_signal_under_the_ceiling() -> None:
    rng = np.random.default_rng(1)
    body = rng.standard_normal(SR * 6).astype(np.float32) * 0.02
    body[SR :: SR // 2] = 0.9  # single-sample clicks, far above the body
    body[SR + 7 :: SR // 2] = -0.9
    other = sine(100, 6.0, 0.05)
    stems = [stereo(body), stereo(other)]
    mix, out, result = normalize([s.copy() for s in stems], SR, -14.0, -1.0)
    assert result.limited and result.max_reduction_db > 3.0
    up = resample_poly(mix.astype(np.float64), 4, 1, axis=0, window=_annex_filter())
    assert 20 * math.log10(np.abs(up).max()) <= -1.0
    assert result.true_peak_dbtp <= -1.0
    assert result.loudness_lufs < -14.0 + 0.05
    assert np.max(np.abs(mix - (out[0] + out[1]))) == 0.0
    # The same gain curve on both stems: their ratio to the input is equal frame by frame.
    ratio0 = out[1][:, 0] / np.where(stems[1][:, 0] == 0, 1, stems[1][:, 0])
    mask = np.abs(stems[0][:, 0]) > 1e-3
    mask &= np.abs(stems[1][:, 0]) > 1e-3
    assert np.allclose(out[0][mask, 0] / stems[0][mask, 0], ratio0[mask], rtol=1e-4)


def test_normalize_silence() -> None:
    stems = [np.zeros((SR, 2), np.float32)]
    mix, _out, result = normalize(stems, SR, -14.0, -1.0)
    assert not mix.any()
    assert (result.loudness_lufs, result.gain_db, result.limited, result.true_peak_dbtp) == (
        SILENCE_LUFS,
        0.0,
        False,
        FLOOR_DBTP,
    )
