"""Loudness measurement, true peak and the limiter on synthetic signals."""

from __future__ import annotations

import math
import pathlib
import sys

import numpy as np
import pytest
from scipy.signal import butter, resample_poly, sosfilt

import ai_band.render.loudness as loudness
from ai_band.errors import RenderError
from ai_band.generate.pipeline import generate
from ai_band.render.audio import AudioRenderer
from ai_band.render.loudness import (
    FLOOR_DBTP,
    SILENCE_LUFS,
    integrated_loudness,
    normalize,
    true_peak_dbtp,
    true_peak_envelope,
)
from ai_band.request import GenerationRequest
from tests.cli.clirun import error_line, run_cli

SR = 48000


def sine(
    freq: float, seconds: float, amplitude: float, phase: float = 0.0, sr: int = SR
) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * math.pi * freq * t + phase)).astype(np.float32)


def stereo(mono: np.ndarray) -> np.ndarray:
    return np.stack([mono, mono], axis=1)


def tone(dbfs_seconds: list[tuple[float, float]], sr: int = SR, freq: float = 1000.0) -> np.ndarray:
    """EBU Tech 3341's test signals: a stereo sine (same in both channels) whose peak level
    (dBFS) changes from stretch to stretch, each stretch ``seconds`` long."""
    return stereo(np.concatenate([sine(freq, seconds, 10 ** (dbfs / 20), sr=sr) for dbfs, seconds in dbfs_seconds]))


@pytest.mark.parametrize("sr", [44100, 48000])
@pytest.mark.parametrize(
    "stretches, expected_lufs",
    [
        ([(-23.0, 20.0)], -23.0),  # Tech 3341 case 1: 1 kHz at -23 dBFS reads -23 LUFS
        ([(-33.0, 20.0)], -33.0),  # case 2: and -33 dBFS reads -33 LUFS
        ([(-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0)], -23.0),  # case 3: the relative gate drops -36
        ([(-72.0, 10.0), (-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0), (-72.0, 10.0)], -23.0),  # case 4
    ],
)
def test_loudness_of_ebu_tech_3341_signals(
    sr: int, stretches: list[tuple[float, float]], expected_lufs: float
) -> None:
    """EBU Tech 3341 (v4, 2016) Table 1, cases 1-4: the integrated loudness within +-0.1 LU.

    (The K-weighting adds ~+0.7 dB at 1 kHz, the -0.691 offset takes it back,
    two channels add 3 dB and a sine's mean square is 3 dB below its peak.)
    """
    assert integrated_loudness(tone(stretches, sr), sr) == pytest.approx(expected_lufs, abs=0.1)


def test_loudness_counts_channels_and_weights_surrounds() -> None:
    """BS.1770-4: a channel alone is 3 dB below the same in two; Ls/Rs weigh 1.41 (+1.5 dB)."""
    mono = sine(1000.0, 10.0, 10 ** (-23 / 20))
    assert integrated_loudness(mono, SR) == pytest.approx(-26.01, abs=0.1)
    five = np.zeros((mono.size, 5), np.float32)
    five[:, 3] = mono
    assert integrated_loudness(five, SR) == pytest.approx(-26.01 + 10 * math.log10(1.41), abs=0.1)
    with pytest.raises(ValueError):
        integrated_loudness(np.zeros((SR, 6), np.float32), SR)


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


@pytest.mark.parametrize("sr", [44100, 48000])
@pytest.mark.parametrize("dbfs", [0.0, -6.0])
def test_true_peak_of_a_997_hz_sine(sr: int, dbfs: float) -> None:
    """A 997 Hz sine (no common period with the sample rate: every phase is sampled)
    reads its peak level in dBTP within EBU Tech 3341's true-peak tolerance (+0.2 / -0.4 dB),
    and in fact within 0.05 dB: the Annex 2 filter is flat at 1 kHz."""
    audio = stereo(sine(997.0, 1.0, 10 ** (dbfs / 20), sr=sr))
    assert true_peak_dbtp(audio) == pytest.approx(dbfs, abs=0.05)
    assert true_peak_dbtp(audio[:, :1]) == pytest.approx(dbfs, abs=0.05)


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


def test_normalize_holds_the_ceiling_on_a_clipping_prone_mix() -> None:
    """A loud target on a square-like mix with inter-sample overshoot (a clipped sine's edges
    ring past full scale when interpolated): the limiter must act, and the result measured
    independently (Annex 2 filter, resample_poly on float64) and after rounding to 16-bit PCM
    stays under the ceiling."""
    t = np.arange(SR * 5) / SR
    clipped = np.clip(3.0 * np.sin(2 * math.pi * 110.0 * t), -1.0, 1.0).astype(np.float32) * 0.05
    hats = np.zeros_like(clipped)
    hats[:: SR // 8] = 0.2  # single-sample clicks: full-band transients
    stems = [stereo(clipped), stereo(hats), stereo(sine(SR / 4, 5.0, 0.03, phase=math.pi / 4))]
    mix, _out, result = normalize(stems, SR, -8.0, -1.0)
    assert result.limited and result.max_reduction_db > 1.0
    for audio in (mix.astype(np.float64), np.rint(mix * 32768.0) / 32768.0):
        up = resample_poly(audio, 4, 1, axis=0, window=_annex_filter())
        assert 20 * math.log10(np.abs(up).max()) <= -1.0
    assert result.true_peak_dbtp <= -1.0
    assert result.true_peak_dbtp == pytest.approx(true_peak_dbtp(mix), abs=1e-6)
    assert -8.0 - 6.0 < result.loudness_lufs < -8.0 + 0.05


def test_a_failed_library_import_is_a_render_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The background import settles with the failure; the loudness stage raises it, naming
    what to install (it does not hang and does not fall back)."""
    monkeypatch.setattr(loudness, "_imported", None)
    monkeypatch.setitem(sys.modules, "pyloudnorm", None)  # "import pyloudnorm" fails
    loudness.import_libraries(background=True)
    with pytest.raises(RenderError, match=r"needs pyloudnorm and scipy.*pip install 'pyloudnorm"):
        normalize([stereo(sine(440.0, 1.0, 0.1))], SR, -14.0, -1.0)
    with pytest.raises(RenderError, match="pyloudnorm"):
        loudness.import_libraries()
    with pytest.raises(RenderError, match="pyloudnorm"):
        AudioRenderer("numpy", background=True).render(
            generate(GenerationRequest(chords="| C |", style="rock", bpm=120, bars=1, seed=1, parts=("bass",)))
        )


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


def test_generate_reports_a_broken_pyloudnorm_in_one_line(tmp_path: pathlib.Path) -> None:
    """``ai-band generate --render wav`` imports the libraries in the background; when that
    fails, the run ends with one ``ai-band: error:`` line naming pyloudnorm, exit 1, and no
    half-made job folder (a real process, a real import failure)."""
    shadow = tmp_path / "site" / "pyloudnorm"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('this pyloudnorm is broken')\n")
    out = tmp_path / "out"
    result = run_cli("generate", "--chords", "| C | G |", "--bars", "2", "--render", "wav", "-o", str(out),
                     env={"PYTHONPATH": str(tmp_path / "site")})
    assert result.returncode == 1, result.stderr
    line = error_line(result)
    assert "pyloudnorm" in line and "this pyloudnorm is broken" in line, line
    assert not out.exists() or not any(out.iterdir())
