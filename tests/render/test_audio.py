"""Audio rendering: real WAV/FLAC files read back with soundfile, both engines.

Loudness is re-measured here with pyloudnorm (ITU-R BS.1770-4) and the true
peak with an independent 4x oversampler (``scipy.signal.resample_poly`` over
the whole file, once with the BS.1770-4 Annex 2 filter and once with
scipy's own Kaiser-windowed filter).  The FluidSynth tests use the installed
General MIDI SoundFont and are skipped, with the reason, when it or
libfluidsynth is missing.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Iterator

import numpy as np
import pyloudnorm
import pytest
import soundfile
from scipy.signal import resample_poly

import ai_band.render.audio as audio_module
from ai_band.errors import RenderError
from ai_band.generate.pipeline import generate
from ai_band.model import Arrangement, Note, Part
from ai_band.request import GenerationRequest
from ai_band.render.audio import (
    AudioOptions,
    AudioRenderer,
    RenderedAudio,
    find_soundfont,
    write_audio,
)

# BS.1770-4 Annex 2 interpolation filter, phases 0 and 1 (2 and 3 mirror them).
_P0 = [
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
]
_P1 = [
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
]
_ANNEX2 = np.array([_P0, _P1, _P1[::-1], _P0[::-1]]).T.reshape(-1) / 4.0


def measured_true_peak_dbtp(audio: np.ndarray, annex: bool = True) -> float:
    """Independent true peak, dBTP: 4x oversampling of the whole signal at once."""
    up = resample_poly(
        audio.astype(np.float64), 4, 1, axis=0, window=_ANNEX2 if annex else ("kaiser", 5.0)
    )
    return 20.0 * math.log10(float(np.max(np.abs(up))))


def measured_lufs(audio: np.ndarray, sample_rate: int) -> float:
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(audio.astype(np.float64)))


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


def fluidsynth_available() -> str:
    """Empty when the FluidSynth tests can run, else why not."""
    try:
        import fluidsynth  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"pyfluidsynth/libfluidsynth3 missing: {exc}"
    if find_soundfont() is None:
        return "no GM SoundFont (apt install fluid-soundfont-gm)"
    return ""


needs_fluidsynth = pytest.mark.skipif(
    bool(fluidsynth_available()), reason=fluidsynth_available() or "ok"
)


@pytest.fixture(scope="module")
def short() -> Arrangement:
    """4 bars of rock at 120 bpm: drums, bass, keys, melody (8 s of music)."""
    return generate(
        GenerationRequest(
            chords="| C | Am | F | G |",
            style="rock",
            bpm=120,
            bars=4,
            seed=1,
            parts=("drums", "bass", "keys", "melody"),
        )
    )


@pytest.fixture(scope="module")
def numpy_renderer() -> Iterator[AudioRenderer]:
    renderer = AudioRenderer("numpy")
    yield renderer
    renderer.close()


@pytest.fixture(scope="module")
def fluid_renderer() -> Iterator[AudioRenderer]:
    reason = fluidsynth_available()
    if reason:
        pytest.skip(reason)
    renderer = AudioRenderer("fluidsynth")
    yield renderer
    renderer.close()


@pytest.fixture(params=["numpy", pytest.param("fluidsynth", marks=needs_fluidsynth)])
def renderer(request: pytest.FixtureRequest) -> AudioRenderer:
    return request.getfixturevalue(f"{request.param.replace('fluidsynth', 'fluid')}_renderer")


def check_files(
    rendered: RenderedAudio,
    arrangement: Arrangement,
    written: list[tuple[str, pathlib.Path]],
    options: AudioOptions,
    fmt: str,
) -> None:
    """Everything the files must satisfy, read back from disk."""
    subtype = {16: "PCM_16", 24: "PCM_24"}[options.bit_depth]
    sr = options.sample_rate
    music_s = (
        arrangement.bars * arrangement.ts_num * (4 / arrangement.ts_den) * 60.0 / arrangement.bpm
    )
    frames = round((music_s + options.tail_s) * sr)
    paths = {name: path for name, path in written if path.suffix == f".{fmt}"}
    assert list(paths) == ["mix"] + [p.name for p in arrangement.parts]
    data = {}
    for name, path in paths.items():
        info = soundfile.info(str(path))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (
            sr,
            2,
            frames,
            subtype,
        ), name
        assert info.format == fmt.upper()
        data[name], _ = soundfile.read(str(path), dtype="float64", always_2d=True)
    mix = data.pop("mix")
    assert rms(mix) > 0.01  # well above silence (-40 dBFS)
    for part in arrangement.parts:
        if part.notes:
            assert rms(data[part.name]) > 1e-4, f"{part.name} is silent"
    # The stems sum to the mix: each file is rounded to PCM separately.
    tolerance = 2e-3 if options.bit_depth == 16 else 1e-4
    assert np.max(np.abs(sum(data.values()) - mix)) < tolerance
    peak = measured_true_peak_dbtp(mix)
    assert peak <= options.true_peak_dbtp, peak
    assert peak == pytest.approx(rendered.true_peak_dbtp, abs=0.01)
    assert measured_true_peak_dbtp(mix, annex=False) <= options.true_peak_dbtp + 0.1
    assert np.max(np.abs(mix)) < 10 ** (options.true_peak_dbtp / 20)
    loudness = measured_lufs(mix, sr)
    assert loudness == pytest.approx(rendered.loudness_lufs, abs=0.05)
    if rendered.limited:
        assert options.target_lufs - 3.0 < loudness < options.target_lufs + 0.05
    else:
        assert loudness == pytest.approx(options.target_lufs, abs=0.5)


@pytest.mark.parametrize(
    ("sample_rate", "bit_depth", "fmt"),
    [(44100, 16, "wav"), (48000, 24, "flac"), (44100, 24, "wav"), (48000, 16, "flac")],
)
def test_files_meet_the_spec(
    renderer: AudioRenderer,
    short: Arrangement,
    tmp_path: pathlib.Path,
    sample_rate: int,
    bit_depth: int,
    fmt: str,
) -> None:
    options = AudioOptions(sample_rate=sample_rate, bit_depth=bit_depth)
    rendered = renderer.render(short, options)
    written = write_audio(rendered, tmp_path, (fmt,), stems=True, bit_depth=bit_depth)
    assert [name for name, _ in written] == ["mix", "drums", "bass", "keys", "melody"]
    check_files(rendered, short, written, options, fmt)
    assert not list(tmp_path.glob("*.tmp"))


def test_rendered_audio_in_memory(renderer: AudioRenderer, short: Arrangement) -> None:
    rendered = renderer.render(short, AudioOptions(tail_s=1.5))
    assert rendered.engine == renderer.engine
    assert rendered.music_s == pytest.approx(4 * 4 * 60 / 120)
    assert rendered.duration_s == pytest.approx(8 + 1.5)
    assert rendered.mix.dtype == np.float32 and rendered.mix.shape == (round(9.5 * 44100), 2)
    assert list(rendered.stems) == ["drums", "bass", "keys", "melody"]
    stem_sum = np.sum([s.astype(np.float64) for s in rendered.stems.values()], axis=0)
    assert np.max(np.abs(stem_sum - rendered.mix)) < 1e-4
    assert rendered.true_peak_dbtp <= -1.0
    assert measured_true_peak_dbtp(rendered.mix) <= -1.0
    # Whatever still rings at the end is faded out: the last frame is silent.
    assert np.max(np.abs(rendered.mix[-1])) < 1e-3


def test_both_formats_and_mix_only(
    renderer: AudioRenderer, short: Arrangement, tmp_path: pathlib.Path
) -> None:
    rendered = renderer.render(short, AudioOptions(tail_s=0.5))
    written = write_audio(rendered, tmp_path, ("wav", "flac"), stems=False, bit_depth=16)
    assert written == [("mix", tmp_path / "mix.wav"), ("mix", tmp_path / "mix.flac")]
    wav, _ = soundfile.read(str(tmp_path / "mix.wav"))
    flac, _ = soundfile.read(str(tmp_path / "mix.flac"))
    assert np.array_equal(wav, flac)  # both lossless from the same PCM


def test_renders_are_deterministic(renderer: AudioRenderer, short: Arrangement) -> None:
    first = renderer.render(short, AudioOptions(tail_s=0.5))
    second = renderer.render(short, AudioOptions(tail_s=0.5))
    for name in first.stems:
        assert np.array_equal(first.stems[name], second.stems[name]), name


def test_progress_after_each_part(renderer: AudioRenderer, short: Arrangement) -> None:
    seen: list[float] = []
    renderer.render(short, AudioOptions(tail_s=0.2), progress=seen.append)
    assert len(seen) == len(short.parts) + 1
    assert seen == sorted(seen) and seen[-1] == 1.0 and 0 < seen[0] < 1


def test_silence_does_not_crash(renderer: AudioRenderer, tmp_path: pathlib.Path) -> None:
    empty = Arrangement(
        parts=(Part("bass", 33, 1, ()), Part("drums", 0, 9, ())),
        bpm=100,
        ts_num=4,
        ts_den=4,
        bars=1,
        style="rock",
        key="C",
        seed=0,
    )
    rendered = renderer.render(empty, AudioOptions(tail_s=0.0))
    assert rendered.mix.shape == (round(2.4 * 44100), 2)
    assert not rendered.mix.any()
    assert (rendered.loudness_lufs, rendered.gain_db, rendered.limited) == (-70.0, 0.0, False)
    assert math.isfinite(rendered.true_peak_dbtp)
    written = write_audio(rendered, tmp_path, ("wav",), stems=True, bit_depth=16)
    assert len(written) == 3


def test_every_family_sounds(renderer: AudioRenderer) -> None:
    """One part per GM program family (plus a GS drum kit), each stem audible."""
    notes = tuple(Note(i * 0.5, 0.45, 48 + (i * 5) % 24, 70 + (i * 13) % 50) for i in range(8))
    parts = tuple(
        Part(f"p{program}", program, i % 8 + (i >= 9), notes)
        for i, program in enumerate(range(0, 128, 8))
    )
    drums = tuple(Note(i * 0.25, 0.2, key, 100) for i, key in enumerate(range(35, 82)))
    arrangement = Arrangement(
        parts=(*parts, Part("kit", 25, 9, drums)),
        bpm=180,
        ts_num=4,
        ts_den=4,
        bars=4,
        style="test",
        key="C",
        seed=0,
    )
    rendered = renderer.render(arrangement, AudioOptions(tail_s=0.5))
    for name, stem in rendered.stems.items():
        assert rms(stem) > 1e-4, name


def test_other_meters_and_lengths(renderer: AudioRenderer) -> None:
    """6/8 at 90 quarter notes per minute: 2 bars are 6 quarter notes, 4 s."""
    notes = (Note(0.0, 1.5, 60, 100), Note(3.0, 3.0, 64, 90))
    arrangement = Arrangement(
        parts=(Part("keys", 0, 0, notes),),
        bpm=90,
        ts_num=6,
        ts_den=8,
        bars=2,
        style="waltz",
        key="C",
        seed=0,
    )
    rendered = renderer.render(arrangement, AudioOptions(sample_rate=48000, tail_s=0.25))
    assert rendered.music_s == pytest.approx(4.0)
    assert rendered.mix.shape[0] == round(4.25 * 48000)


def test_numpy_engine_on_a_full_band(numpy_renderer: AudioRenderer, tmp_path: pathlib.Path) -> None:
    parts = ("drums", "bass", "keys", "pad", "melody", "arp", "guitar", "strings")
    arrangement = generate(GenerationRequest(style="ambient", bars=4, seed=3, parts=parts))
    rendered = numpy_renderer.render(arrangement, AudioOptions(bit_depth=24))
    written = write_audio(rendered, tmp_path, ("flac",), stems=True, bit_depth=24)
    check_files(rendered, arrangement, written, AudioOptions(bit_depth=24), "flac")


@needs_fluidsynth
def test_fluidsynth_long_arrangement(fluid_renderer: AudioRenderer, tmp_path: pathlib.Path) -> None:
    """The benchmark's workload once: 32 bars at 120 bpm, 66 s of audio."""
    arrangement = generate(
        GenerationRequest(
            chords="| C | Am | F | G |",
            style="rock",
            bpm=120,
            bars=32,
            seed=1,
            parts=("drums", "bass", "keys", "melody"),
        )
    )
    options = AudioOptions()
    rendered = fluid_renderer.render(arrangement, options)
    assert rendered.engine == "fluidsynth" and rendered.soundfont
    written = write_audio(rendered, tmp_path, ("wav",), stems=True, bit_depth=16)
    check_files(rendered, arrangement, written, options, "wav")


@needs_fluidsynth
def test_fluidsynth_uses_the_soundfont(fluid_renderer: AudioRenderer) -> None:
    assert fluid_renderer.engine == "fluidsynth"
    assert fluid_renderer.soundfont == find_soundfont()


# -- engine choice ----------------------------------------------------------------


def test_auto_without_a_soundfont_is_numpy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setattr(audio_module, "DEFAULT_SOUNDFONTS", (str(tmp_path / "none.sf2"),))
    renderer = AudioRenderer("auto")
    assert (renderer.engine, renderer.soundfont) == ("numpy", None)
    renderer.close()
    renderer = AudioRenderer("auto", str(tmp_path / "missing.sf2"))
    assert renderer.engine == "numpy"
    renderer.close()


def test_fluidsynth_with_a_missing_soundfont_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "missing.sf2"
    with pytest.raises(RenderError) as info:
        AudioRenderer("fluidsynth", str(missing))
    message = str(info.value)
    assert (
        str(missing) in message
        and "fluid-soundfont-gm" in message
        and "render.soundfont" in message
    )


def test_fluidsynth_with_a_broken_soundfont_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    if fluidsynth_available().startswith("pyfluidsynth"):
        pytest.skip(fluidsynth_available())
    broken = tmp_path / "broken.sf2"
    broken.write_bytes(b"RIFF\x04\x00\x00\x00sfbk")
    with pytest.raises(RenderError, match="fluid-soundfont-gm"):
        AudioRenderer("fluidsynth", str(broken))
    assert AudioRenderer("auto", str(broken)).engine == "numpy"


@needs_fluidsynth
def test_auto_finds_the_installed_soundfont() -> None:
    with AudioRenderer("auto") as renderer:
        assert renderer.engine == "fluidsynth"
        assert renderer.soundfont is not None and renderer.soundfont.endswith(".sf2")


def test_bad_arguments() -> None:
    with pytest.raises(RenderError, match="unknown audio engine"):
        AudioRenderer("timidity")
    with pytest.raises(ValueError, match="sample_rate"):
        AudioOptions(sample_rate=22050)
    with pytest.raises(ValueError, match="bit_depth"):
        AudioOptions(bit_depth=32)
    with pytest.raises(ValueError, match="tail_s"):
        AudioOptions(tail_s=-1)


def test_closed_renderer_refuses(short: Arrangement) -> None:
    renderer = AudioRenderer("numpy")
    renderer.close()
    renderer.close()
    with pytest.raises(RenderError, match="closed"):
        renderer.render(short)


# -- atomic writes ------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_render(numpy_renderer: AudioRenderer, short: Arrangement) -> RenderedAudio:
    return numpy_renderer.render(short, AudioOptions(tail_s=0.1))


def test_job_dir_is_a_file(small_render: RenderedAudio, tmp_path: pathlib.Path) -> None:
    blocker = tmp_path / "job"
    blocker.write_text("not a directory")
    with pytest.raises(RenderError, match="writing audio files"):
        write_audio(small_render, blocker, ("wav", "flac"), stems=True, bit_depth=16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job"]


def test_failure_midway_leaves_nothing(
    small_render: RenderedAudio, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    real_write = soundfile.write

    def flaky(*args: object, **kwargs: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise OSError("disk full")
        real_write(*args, **kwargs)

    monkeypatch.setattr(soundfile, "write", flaky)
    with pytest.raises(RenderError, match="disk full"):
        write_audio(small_render, tmp_path, ("wav", "flac"), stems=True, bit_depth=24)
    assert list(tmp_path.iterdir()) == []


def test_bad_formats_and_names(small_render: RenderedAudio, tmp_path: pathlib.Path) -> None:
    with pytest.raises(RenderError, match="formats"):
        write_audio(small_render, tmp_path, ("mp3",), stems=False, bit_depth=16)
    with pytest.raises(RenderError, match="bit_depth"):
        write_audio(small_render, tmp_path, ("wav",), stems=False, bit_depth=8)
    bad = RenderedAudio(**{**small_render.__dict__, "stems": {"../x": small_render.mix}})
    with pytest.raises(RenderError, match="file name"):
        write_audio(bad, tmp_path, ("wav",), stems=True, bit_depth=16)
    assert list(tmp_path.iterdir()) == []


def test_existing_files_are_replaced(small_render: RenderedAudio, tmp_path: pathlib.Path) -> None:
    (tmp_path / "mix.wav").write_bytes(b"old")
    write_audio(small_render, tmp_path, ("wav",), stems=False, bit_depth=16)
    assert soundfile.info(str(tmp_path / "mix.wav")).frames == small_render.mix.shape[0]
