"""The two engines on their own: timing of onsets, GM coverage, drum kits, hi-hat choke."""

from __future__ import annotations

import numpy as np
import pytest

from ai_band.errors import RenderError
from ai_band.model import Arrangement, Note, Part
from ai_band.render.audio import AudioRenderer, find_soundfont
from ai_band.render.synth import NumpySynth, patch_for

SR = 44100


def first_sound(audio: np.ndarray, threshold: float = 1e-4) -> int:
    return int(np.flatnonzero(np.abs(audio).max(axis=1) > threshold)[0])


def test_numpy_onsets_are_sample_exact() -> None:
    synth = NumpySynth()
    # 1.37 quarter notes at 97 bpm: not on any grid.
    part = Part("keys", 0, 0, (Note(1.37, 0.5, 60, 100),))
    audio = synth.render_part(part, 97.0, SR, SR * 3)
    assert first_sound(audio, 0.0) == round(1.37 * 60 / 97 * SR) + 1  # the attack ramp starts at 0
    drums = Part("drums", 0, 9, (Note(0.5, 0.1, 36, 100),))
    assert first_sound(synth.render_part(drums, 120.0, SR, SR), 0.0) == round(
        0.25 * SR
    )  # one-shots start at full level


def test_numpy_covers_every_gm_program_and_drum_key() -> None:
    synth = NumpySynth()
    notes = (Note(0.0, 1.0, 60, 90),)
    for program in range(128):
        assert patch_for(program).gain > 0
        audio = synth.render_part(Part("melody", program, 0, notes), 120.0, SR, SR)
        assert np.sqrt(np.mean(audio**2)) > 1e-3, program
    for key in range(27, 88):
        audio = synth.render_part(Part("drums", 0, 9, (Note(0.0, 0.25, key, 100),)), 120.0, SR, SR)
        assert np.abs(audio).max() > 1e-3, key


def test_numpy_open_hat_is_choked_by_the_closed_hat() -> None:
    synth = NumpySynth()
    open_only = Part("drums", 0, 9, (Note(0.0, 0.5, 46, 100),))
    choked = Part("drums", 0, 9, (Note(0.0, 0.5, 46, 100), Note(0.5, 0.1, 42, 1)))
    ringing = synth.render_part(open_only, 120.0, SR, SR)
    cut = synth.render_part(choked, 120.0, SR, SR)
    late = slice(round(0.35 * SR), round(0.6 * SR))  # after the closed hat (0.25 s) has died down
    assert np.abs(cut[late]).max() < 0.05 * np.abs(ringing[late]).max()


def test_numpy_is_deterministic() -> None:
    part = Part("pad", 89, 3, tuple(Note(i * 2.0, 2.0, 48 + i, 80) for i in range(4)))
    first = NumpySynth().render_part(part, 100.0, 48000, 48000 * 6)
    second = NumpySynth().render_part(part, 100.0, 48000, 48000 * 6)
    assert np.array_equal(first, second)


def test_too_long_a_render_is_refused() -> None:
    parts = tuple(Part(f"p{i}", 0, i, ()) for i in range(8))
    huge = Arrangement(
        parts=parts, bpm=20, ts_num=4, ts_den=4, bars=512, style="x", key="C", seed=0
    )
    with AudioRenderer("numpy") as renderer, pytest.raises(RenderError, match="too long"):
        renderer.render(huge)


def test_duplicate_part_names_are_refused() -> None:
    parts = (Part("keys", 0, 0, ()), Part("keys", 4, 1, ()))
    arrangement = Arrangement(
        parts=parts, bpm=120, ts_num=4, ts_den=4, bars=1, style="x", key="C", seed=0
    )
    with AudioRenderer("numpy") as renderer, pytest.raises(RenderError, match="unique"):
        renderer.render(arrangement)


fluid_missing = pytest.mark.skipif(find_soundfont() is None, reason="no GM SoundFont installed")


@pytest.fixture(scope="module")
def fluid():
    pytest.importorskip("fluidsynth", reason="pyfluidsynth/libfluidsynth3 missing")
    if find_soundfont() is None:
        pytest.skip("no GM SoundFont (apt install fluid-soundfont-gm)")
    from ai_band.render.fluid import FluidEngine

    engine = FluidEngine(find_soundfont())
    yield engine
    engine.close()


def test_fluidsynth_onsets_on_the_block_grid(fluid) -> None:
    start_ppq = 1.37
    part = Part("keys", 0, 0, (Note(start_ppq, 0.5, 60, 110),))
    (audio,) = fluid.render_parts([part], 97.0, SR, SR * 3)
    exact = start_ppq * 60 / 97 * SR
    grid = round(exact / 64) * 64  # the nearest 64-frame block boundary, at most 32 frames off
    assert abs(grid - exact) <= 32
    onset = first_sound(audio, 1e-6)  # FluidSynth's reverb leaves ~1e-8 of noise before
    assert grid <= onset < grid + 64


def test_fluidsynth_drum_kits_and_fallback(fluid) -> None:
    notes = tuple(Note(i * 0.25, 0.2, key, 110) for i, key in enumerate((36, 38, 42, 49)))
    kits = [Part(f"kit{k}", k, 9, notes) for k in (0, 25, 40, 99)]  # 99: not in FluidR3 -> kit 0
    stems = fluid.render_parts(kits, 120.0, SR, SR * 2)
    for part, audio in zip(kits, stems):
        assert np.abs(audio).max() > 1e-3, part.name
    assert not np.array_equal(stems[0], stems[1])  # Standard and TR-808 differ
    assert np.array_equal(stems[0], stems[3])  # the missing kit falls back to Standard


def test_fluidsynth_stems_do_not_depend_on_order(fluid) -> None:
    a = Part("drums", 16, 9, tuple(Note(i * 0.5, 0.25, 36 + i % 12, 100) for i in range(8)))
    b = Part("bass", 33, 1, tuple(Note(i * 1.0, 0.9, 36 + i, 100) for i in range(4)))
    first = fluid.render_parts([a, b, a], 120.0, 48000, 48000 * 3)
    second = fluid.render_parts([b, a], 120.0, 48000, 48000 * 3)
    assert np.array_equal(first[0], first[2])
    assert np.array_equal(first[0], second[1]) and np.array_equal(first[1], second[0])


@pytest.mark.skipif(find_soundfont() is None, reason="no GM SoundFont (apt install fluid-soundfont-gm)")
def test_parallel_render_equals_the_serial_one() -> None:
    """Parts rendered on one thread per CPU (``ai-band generate``) give the serial render's mix and stems."""
    pytest.importorskip("fluidsynth", reason="pyfluidsynth/libfluidsynth3 missing")
    from ai_band.generate.pipeline import generate
    from ai_band.request import GenerationRequest

    arrangement = generate(GenerationRequest(chords="| C | Am | F | G |", bars=8, bpm=120.0, seed=3,
                                             parts=("drums", "bass", "keys", "pad")))
    with AudioRenderer("fluidsynth", threads=1) as serial, AudioRenderer("fluidsynth", threads=4) as parallel:
        assert serial._engine.threads == 1 and parallel._engine.threads == 4
        one = serial.render(arrangement)
        many = parallel.render(arrangement)
    floor = 10 ** (-90 / 20)  # -90 dBFS; each part on its own fresh synth makes it sample-exact today
    assert np.max(np.abs(one.mix - many.mix)) <= floor
    for name in one.stems:
        assert np.max(np.abs(one.stems[name] - many.stems[name])) <= floor, name
    assert one.loudness_lufs == pytest.approx(many.loudness_lufs, abs=1e-6)


def test_soundfont_loaded_in_the_background(tmp_path) -> None:
    """With ``background=True`` the constructor returns at once; a broken SoundFont fails the render."""
    pytest.importorskip("fluidsynth", reason="pyfluidsynth/libfluidsynth3 missing")
    soundfont = find_soundfont()
    if soundfont is None:
        pytest.skip("no GM SoundFont (apt install fluid-soundfont-gm)")
    part = Part("bass", 33, 1, (Note(0.0, 1.0, 40, 100),))
    arrangement = Arrangement(parts=(part,), bpm=120, ts_num=4, ts_den=4, bars=1, style="x", key="C", seed=0)
    with AudioRenderer("fluidsynth", soundfont) as ahead, AudioRenderer("fluidsynth", soundfont, background=True) as later:
        assert np.array_equal(ahead.render(arrangement).mix, later.render(arrangement).mix)
    broken = tmp_path / "broken.sf2"
    broken.write_bytes(b"RIFF\x04\x00\x00\x00sfbk")
    with AudioRenderer("fluidsynth", str(broken), background=True) as renderer:
        with pytest.raises(RenderError, match="SoundFont"):
            renderer.render(arrangement)
