"""MIDI files: content read back with mido and pretty_midi, atomic writes."""

from __future__ import annotations

import os
import pathlib

import mido
import pretty_midi
import pytest

from ai_band.errors import RenderError
from ai_band.generate.pipeline import generate
from ai_band.model import Arrangement, Note, Part
from ai_band.request import GenerationRequest
from ai_band.render import FULL, TICKS_PER_BEAT, write_midi_files


@pytest.fixture(scope="module")
def arrangement() -> Arrangement:
    return generate(
        GenerationRequest(
            chords="| Dm7 . G7 . | Cmaj7 | % | A7 |",
            style="jazz",
            bpm=132,
            ts=(3, 4),
            seed=7,
            bars=8,
            parts=("drums", "bass", "keys"),
        )
    )


def _tmp_files(directory: pathlib.Path) -> list[pathlib.Path]:
    return list(directory.glob("*.tmp"))


def test_writes_one_file_per_part_plus_full(
    tmp_path: pathlib.Path, arrangement: Arrangement
) -> None:
    paths = write_midi_files(arrangement, tmp_path)
    assert set(paths) == {"drums", "bass", "keys", FULL}
    assert paths[FULL] == tmp_path / "full.mid"
    assert paths["bass"] == tmp_path / "bass.mid"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bass.mid",
        "drums.mid",
        "full.mid",
        "keys.mid",
    ]


def _meta(track: mido.MidiTrack, kind: str) -> list[mido.MetaMessage]:
    return [m for m in track if m.type == kind]


@pytest.mark.parametrize("name", ["drums", "bass", "keys"])
def test_part_file_with_mido(tmp_path: pathlib.Path, arrangement: Arrangement, name: str) -> None:
    part = arrangement.part(name)
    midi = mido.MidiFile(write_midi_files(arrangement, tmp_path)[name])
    assert midi.type == 1 and midi.ticks_per_beat == TICKS_PER_BEAT
    assert len(midi.tracks) == 2
    conductor, track = midi.tracks
    (tempo,) = _meta(conductor, "set_tempo")
    assert tempo.tempo == mido.bpm2tempo(132)
    (sig,) = _meta(conductor, "time_signature")
    assert (sig.numerator, sig.denominator) == (3, 4)
    assert track.name == name
    (program,) = [m for m in track if m.type == "program_change"]
    assert (program.program, program.channel) == (part.program, part.channel)
    ons = [m for m in track if m.type == "note_on" and m.velocity > 0]
    offs = [m for m in track if m.type == "note_off"]
    assert len(ons) == len(offs) == len(part.notes)
    assert all(m.channel == part.channel for m in ons)
    first_tick = 0
    for m in track:
        first_tick += m.time
        if m.type == "note_on":
            break
    assert first_tick == round(part.notes[0].start_ppq * TICKS_PER_BEAT)
    assert ons[0].note in {n.pitch for n in part.notes if n.start_ppq == part.notes[0].start_ppq}
    total = sum(m.time for m in track)
    assert total == round(arrangement.length_ppq * TICKS_PER_BEAT)


def test_full_file_with_pretty_midi(tmp_path: pathlib.Path, arrangement: Arrangement) -> None:
    path = write_midi_files(arrangement, tmp_path)[FULL]
    pm = pretty_midi.PrettyMIDI(str(path))
    _, tempi = pm.get_tempo_changes()
    assert list(tempi) == [pytest.approx(132, abs=1e-3)]
    (sig,) = pm.time_signature_changes
    assert (sig.numerator, sig.denominator, sig.time) == (3, 4, 0.0)
    assert [i.name for i in pm.instruments] == ["drums", "bass", "keys"]
    seconds_per_ppq = 60.0 / 132
    for instrument in pm.instruments:
        part = arrangement.part(instrument.name)
        assert instrument.is_drum == (part.channel == 9)
        assert instrument.program == part.program
        assert len(instrument.notes) == len(part.notes)
        earliest = min(n.start for n in instrument.notes)
        assert earliest == pytest.approx(part.notes[0].start_ppq * seconds_per_ppq, abs=0.002)
        first_tick = round(part.notes[0].start_ppq * TICKS_PER_BEAT)
        expected = sorted(
            (n.pitch, n.velocity)
            for n in part.notes
            if round(n.start_ppq * TICKS_PER_BEAT) == first_tick
        )
        assert (
            sorted((n.pitch, n.velocity) for n in instrument.notes if n.start == earliest)
            == expected
        )
        last_end = max(n.end for n in instrument.notes)
        assert last_end <= arrangement.length_ppq * seconds_per_ppq + 0.002
    assert mido.MidiFile(path).tracks[0].name.endswith("full")


def test_part_file_with_pretty_midi(tmp_path: pathlib.Path, arrangement: Arrangement) -> None:
    pm = pretty_midi.PrettyMIDI(str(write_midi_files(arrangement, tmp_path)["drums"]))
    (instrument,) = pm.instruments
    assert instrument.is_drum and instrument.name == "drums"
    assert len(instrument.notes) == len(arrangement.part("drums").notes)


@pytest.mark.parametrize(
    ("ts", "clocks"), [((6, 8), 36), ((7, 8), 12), ((4, 4), 24), ((2, 2), 48), ((11, 16), 6)]
)
def test_time_signatures_and_metronome(
    tmp_path: pathlib.Path, ts: tuple[int, int], clocks: int
) -> None:
    arrangement = generate(GenerationRequest(chords="C G", ts=ts, seed=1, parts=("bass",)))
    midi = mido.MidiFile(write_midi_files(arrangement, tmp_path)["bass"])
    (sig,) = _meta(midi.tracks[0], "time_signature")
    assert (sig.numerator, sig.denominator, sig.clocks_per_click) == (*ts, clocks)


def test_key_signature_written(tmp_path: pathlib.Path) -> None:
    arrangement = generate(GenerationRequest(chords="Am Dm E7 Am", seed=1, parts=("bass",)))
    midi = mido.MidiFile(write_midi_files(arrangement, tmp_path)[FULL])
    assert [m.key for m in _meta(midi.tracks[0], "key_signature")] == ["Am"]


def test_repeated_pitch_is_restruck(tmp_path: pathlib.Path) -> None:
    notes = (Note(0.0, 1.0, 60, 90), Note(1.0, 1.0, 60, 80), Note(2.0, 0.0001, 62, 70))
    arrangement = Arrangement((Part("keys", 0, 2, notes),), 120.0, 4, 4, 1, "rock", "C", 1)
    track = mido.MidiFile(write_midi_files(arrangement, tmp_path)["keys"]).tracks[1]
    events = []
    now = 0
    for m in track:
        now += m.time
        if m.type in ("note_on", "note_off"):
            events.append((now, m.type, m.note))
    assert events == [
        (0, "note_on", 60),
        (480, "note_off", 60),
        (480, "note_on", 60),
        (960, "note_off", 60),
        (960, "note_on", 62),
        (961, "note_off", 62),
    ]


def test_overwrites_existing_files(tmp_path: pathlib.Path, arrangement: Arrangement) -> None:
    (tmp_path / "bass.mid").write_bytes(b"old")
    write_midi_files(arrangement, tmp_path)
    assert (tmp_path / "bass.mid").read_bytes()[:4] == b"MThd"


def test_creates_missing_job_dir(tmp_path: pathlib.Path, arrangement: Arrangement) -> None:
    job = tmp_path / "jobs" / "42"
    write_midi_files(arrangement, job)
    assert (job / "full.mid").is_file()


def test_job_dir_is_a_file(tmp_path: pathlib.Path, arrangement: Arrangement) -> None:
    target = tmp_path / "job"
    target.write_text("not a directory")
    with pytest.raises(RenderError) as info:
        write_midi_files(arrangement, target)
    assert info.value.code == "render_failed"
    assert isinstance(info.value.__cause__, OSError)
    assert _tmp_files(tmp_path) == []
    assert target.read_text() == "not a directory"


def test_bad_note_leaves_nothing_behind(tmp_path: pathlib.Path) -> None:
    good = Part("bass", 33, 1, (Note(0.0, 1.0, 40, 90),))
    bad = Part("keys", 0, 2, (Note(0.0, 1.0, 200, 90),))
    arrangement = Arrangement((good, bad), 120.0, 4, 4, 1, "rock", "C", 1)
    with pytest.raises(RenderError):
        write_midi_files(arrangement, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_failure_while_renaming_cleans_up(
    tmp_path: pathlib.Path, arrangement: Arrangement, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace = os.replace
    calls = []

    def flaky_replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(RenderError):
        write_midi_files(arrangement, tmp_path)
    assert _tmp_files(tmp_path) == []
    # the file renamed before the failure is complete
    assert [p.name for p in tmp_path.iterdir()] == [pathlib.Path(calls[0]).name]
    assert len(mido.MidiFile(calls[0]).tracks) == 2


def test_part_name_must_be_a_file_name(tmp_path: pathlib.Path) -> None:
    arrangement = Arrangement(
        (Part("../evil", 0, 2, (Note(0.0, 1.0, 60, 90),)),), 120.0, 4, 4, 1, "rock", "C", 1
    )
    with pytest.raises(RenderError):
        write_midi_files(arrangement, tmp_path / "job")
    assert not (tmp_path / "evil.mid").exists()
    assert list((tmp_path / "job").iterdir()) == []


@pytest.mark.skipif(not pathlib.Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_uncreatable_dir_even_for_root(arrangement: Arrangement) -> None:
    with pytest.raises(RenderError) as info:
        write_midi_files(arrangement, pathlib.Path("/proc/ai-band-no-such-job"))
    assert isinstance(info.value.__cause__, OSError)
