"""The benchmark's music metrics on tiny hand-made inputs with known answers.

Pure Python: no music21, no MMA, no generator.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest


from bench.metrics import (
    beat_offsets,
    chord_tone_ratio,
    empty_beat_rate,
    groove_consistency,
    note_density,
    part_metrics,
    pitch_class_entropy,
    pitch_range,
    polyphony,
    scale_consistency,
    strong_beat_offsets,
    tonal_centroid,
    tonal_distance,
)

C_MAJOR_SCALE = [(float(i), 1.0, p) for i, p in enumerate((60, 62, 64, 65, 67, 69, 71, 72))]
CHROMATIC = [(float(i), 1.0, 60 + i) for i in range(12)]


def line(*pitches: int, step: float = 1.0) -> list[tuple[float, float, int]]:
    """A monophonic line of equal notes."""
    return [(i * step, step, p) for i, p in enumerate(pitches)]


# --- scale consistency -------------------------------------------------------


def test_scale_consistency_of_a_major_scale_is_one() -> None:
    assert scale_consistency(C_MAJOR_SCALE) == 1.0


def test_scale_consistency_of_a_minor_scale_is_one() -> None:
    assert scale_consistency(line(57, 59, 60, 62, 64, 65, 67)) == 1.0  # A natural minor


def test_scale_consistency_with_one_foreign_note() -> None:
    # C major scale (8 notes) plus F#: best scale C major (8/9) or G major (8/9: F# in, F out)
    assert scale_consistency(C_MAJOR_SCALE + [(8.0, 1.0, 66)]) == pytest.approx(8 / 9)


def test_scale_consistency_of_the_chromatic_scale() -> None:
    assert scale_consistency(CHROMATIC) == pytest.approx(7 / 12)


def test_scale_consistency_of_nothing_is_nan() -> None:
    assert math.isnan(scale_consistency([]))


# --- pitch-class entropy -----------------------------------------------------


def test_entropy_of_all_twelve_pitch_classes_is_log2_12() -> None:
    assert pitch_class_entropy(CHROMATIC) == pytest.approx(math.log2(12))


def test_entropy_of_one_pitch_class_is_zero() -> None:
    assert pitch_class_entropy(line(60, 72, 48, 60)) == 0.0


def test_entropy_of_two_equal_pitch_classes_is_one_bit() -> None:
    assert pitch_class_entropy(line(60, 67, 72, 55)) == pytest.approx(1.0)


def test_entropy_counts_notes_not_durations() -> None:
    notes = [(0.0, 3.0, 60), (3.0, 1.0, 62)]
    assert pitch_class_entropy(notes) == pytest.approx(1.0)


# --- pitch range and density -------------------------------------------------


def test_pitch_range_in_semitones() -> None:
    assert pitch_range(C_MAJOR_SCALE) == 12.0
    assert pitch_range(line(40)) == 0.0
    assert math.isnan(pitch_range([]))


def test_note_density_is_notes_per_bar() -> None:
    assert note_density(C_MAJOR_SCALE, n_bars=2) == 4.0
    assert math.isnan(note_density(C_MAJOR_SCALE, n_bars=0))


# --- polyphony ---------------------------------------------------------------


def test_polyphony_of_a_line_is_one() -> None:
    assert polyphony(C_MAJOR_SCALE) == 1.0


def test_polyphony_of_block_triads_is_three() -> None:
    triads = [(t, 1.0, p) for t in (0.0, 2.0) for p in (60, 64, 67)]  # gap 1..2 not counted
    assert polyphony(triads) == 3.0


def test_polyphony_is_time_weighted() -> None:
    # C for 4 beats, E joins for the last 2: 1 voice for 2 beats, 2 voices for 2 beats
    assert polyphony([(0.0, 4.0, 60), (2.0, 2.0, 64)]) == pytest.approx(1.5)


def test_polyphony_counts_a_doubled_pitch_once() -> None:
    assert polyphony([(0.0, 2.0, 60), (1.0, 2.0, 60)]) == 1.0


# --- empty beat rate ---------------------------------------------------------


def test_empty_beat_rate_two_of_four_beats() -> None:
    notes = [(0.0, 2.0, 60), (2.0, 2.0, 64)]  # onsets on beats 1 and 3 of a 4/4 bar
    assert empty_beat_rate(notes, length=4.0) == 0.5


def test_empty_beat_rate_sounding_mode_counts_held_notes() -> None:
    notes = [(0.0, 2.0, 60), (2.0, 2.0, 64)]
    assert empty_beat_rate(notes, length=4.0, mode="sounding") == 0.0
    assert empty_beat_rate([(0.0, 1.0, 60)], length=4.0, mode="sounding") == 0.75


def test_empty_beat_rate_tolerates_an_early_onset() -> None:
    # humanized: the beat-2 note comes 0.02 quarter notes early
    notes = [(0.0, 1.0, 60), (0.98, 1.0, 62)]
    assert empty_beat_rate(notes, length=4.0) == 0.5


def test_empty_beat_rate_with_dotted_beats() -> None:
    # 6/8 bar = two dotted-quarter beats; only the first has an onset
    assert empty_beat_rate([(0.0, 0.5, 60), (0.5, 0.5, 62)], length=3.0, beat_len=1.5) == 0.5


def test_empty_beat_rate_of_silence_is_one() -> None:
    assert empty_beat_rate([], length=8.0) == 1.0


# --- groove consistency ------------------------------------------------------


def test_identical_bars_have_groove_consistency_one() -> None:
    bar = [(0.0, 0.5, 36), (1.0, 0.5, 38), (2.5, 0.5, 36), (3.0, 0.5, 38)]
    notes = bar + [(s + 4.0, d, p) for s, d, p in bar]
    assert groove_consistency(notes, bar_len=4.0) == 1.0


def test_groove_consistency_counts_differing_cells() -> None:
    # 16th grid (4 cells per quarter, 16 per bar): bar 2 moves one onset -> 2 cells differ
    notes = [(0.0, 1.0, 60), (1.0, 1.0, 60), (4.0, 1.0, 60), (5.5, 1.0, 60)]
    assert groove_consistency(notes, 4.0, steps_per_quarter=4) == pytest.approx(1 - 2 / 16)


def test_groove_consistency_of_an_empty_bar_next_to_a_busy_one() -> None:
    notes = [(0.0, 1.0, 60), (1.0, 1.0, 60), (2.0, 1.0, 60), (3.0, 1.0, 60)]
    assert groove_consistency(notes, 4.0, n_bars=2, steps_per_quarter=4) == pytest.approx(
        1 - 4 / 16
    )


def test_groove_consistency_ignores_humanize_and_pitch() -> None:
    notes = [(0.0, 1.0, 60), (2.0, 1.0, 64), (3.99, 1.0, 67), (6.02, 1.0, 71)]
    assert groove_consistency(notes, bar_len=4.0) == 1.0


def test_groove_consistency_needs_two_bars() -> None:
    assert math.isnan(groove_consistency(C_MAJOR_SCALE[:4], bar_len=4.0))


# --- chord-tone ratio --------------------------------------------------------

C_THEN_G = [(0.0, 4.0, {0, 4, 7}), (4.0, 8.0, {7, 11, 2})]


def test_chord_tone_ratio_on_strong_beats_only() -> None:
    notes = [
        (0.0, 1.0, 64),  # beat 1, E in C: chord tone
        (1.0, 1.0, 65),  # beat 2, weak: ignored
        (2.0, 1.0, 62),  # beat 3, D in C: not a chord tone
        (4.0, 1.0, 71),  # bar 2 beat 1, B in G: chord tone
        (6.5, 1.0, 60),  # off the beat: ignored
    ]
    assert chord_tone_ratio(notes, C_THEN_G, 4.0, (0.0, 2.0)) == pytest.approx(2 / 3)


def test_chord_tone_ratio_uses_the_chord_of_the_beat_for_early_notes() -> None:
    # B played 0.02 early for the G bar: judged against G, not C
    assert chord_tone_ratio([(3.98, 1.0, 71)], C_THEN_G, 4.0) == 1.0


def test_chord_tone_ratio_without_strong_beat_notes_is_nan() -> None:
    assert math.isnan(chord_tone_ratio([(1.0, 1.0, 60)], C_THEN_G, 4.0))
    assert math.isnan(chord_tone_ratio([(16.0, 1.0, 60)], C_THEN_G, 4.0))  # no chord there


# --- meter helpers -----------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "strong"),
    [
        ((4, 4), (0.0, 2.0)),
        ((3, 4), (0.0,)),
        ((2, 4), (0.0,)),
        ((6, 8), (0.0,)),
        ((12, 8), (0.0, 3.0)),
        ((5, 4), (0.0, 3.0)),
        ((2, 2), (0.0,)),
    ],
)
def test_strong_beats(ts: tuple[int, int], strong: tuple[float, ...]) -> None:
    assert strong_beat_offsets(*ts) == strong


def test_beat_offsets_group_seven_eight() -> None:
    assert beat_offsets(7, 8) == ((0.0, 1.0), (1.0, 1.0), (2.0, 1.5))


@pytest.mark.parametrize(
    ("ts", "beats"),
    [
        # even x/8 bars group the eighths in twos: quarter-note beats, no dotted beat
        ((4, 8), ((0.0, 1.0), (1.0, 1.0))),
        ((8, 8), ((0.0, 1.0), (1.0, 1.0), (2.0, 1.0), (3.0, 1.0))),
        ((10, 8), ((0.0, 1.0), (1.0, 1.0), (2.0, 1.0), (3.0, 1.0), (4.0, 1.0))),
    ],
)
def test_beat_offsets_of_even_eighth_meters(ts: tuple[int, int], beats: tuple) -> None:
    """The bench's copy once gave 4/8 one dotted beat and 8/8 seven eighths; the meter tiles the bar."""
    assert beat_offsets(*ts) == beats
    assert sum(length for _, length in beat_offsets(*ts)) == ts[0] * 4 / ts[1]


# --- tonal distance ----------------------------------------------------------


def test_tonal_centroid_of_silence_is_none() -> None:
    assert tonal_centroid([0.0] * 12) is None


def test_tonal_distance_of_identical_parts_is_zero() -> None:
    triad = [(0.0, 4.0, 60), (0.0, 4.0, 64), (0.0, 4.0, 67)]
    bass = [(0.0, 4.0, 36), (0.0, 4.0, 40), (0.0, 4.0, 43)]  # same pitch classes, octaves down
    assert tonal_distance(triad, bass, length=4.0) == pytest.approx(0.0, abs=1e-12)


def test_tonal_distance_grows_with_distance_on_the_circle_of_fifths() -> None:
    c = [(0.0, 4.0, 60)]
    near = tonal_distance(c, [(0.0, 4.0, 55)], length=4.0)  # G: a fifth away
    far = tonal_distance(c, [(0.0, 4.0, 54)], length=4.0)  # F#: a tritone away
    assert 0.0 < near < far


def test_tonal_distance_skips_beats_where_a_part_rests() -> None:
    assert math.isnan(tonal_distance([(0.0, 1.0, 60)], [(2.0, 1.0, 60)], length=4.0))


# --- all at once -------------------------------------------------------------


def test_part_metrics_for_drums_has_no_pitch_metrics() -> None:
    kick = [(float(b), 0.25, 36) for b in range(8)]
    out = part_metrics(kick, bar_len=4.0, n_bars=2, pitched=False)
    assert out == {"note_density": 4.0, "empty_beat_rate": 0.0, "groove_consistency": 1.0}


def test_part_metrics_for_a_pitched_part() -> None:
    out = part_metrics(C_MAJOR_SCALE, 4.0, 2, chords=[(0.0, 8.0, {0, 4, 7})], ts=(4, 4))
    assert out["scale_consistency"] == 1.0
    assert out["pitch_range"] == 12.0
    assert out["polyphony"] == 1.0
    # strong beats 0, 2, 4, 6 hold C, E, G, B: three of four in the C triad
    assert out["chord_tone_ratio"] == 0.75
    assert out["note_density"] == 4.0


# --- helpers of the MMA reference (no mma binary needed) ----------------------


def test_mma_chord_names() -> None:
    from bench.mma_reference import mma_chord_name

    assert mma_chord_name("Dm7", 2, (2, 5, 9, 0)) == "Dm7"
    assert mma_chord_name("G7/B", 7, (7, 11, 2, 5)) == "G7/B"
    assert mma_chord_name("Cø7", 0, (0, 3, 6, 10)) == "Cm7b5"
    # the fallback names the chord from its pitch classes
    assert mma_chord_name("Bb13#11", 10, (10, 2, 5, 8), simple=True) == "Bb7"
    assert mma_chord_name("weird", 9, (9, 0, 4), simple=True) == "Am"


def test_write_mma_puts_chords_in_beat_slots() -> None:
    from bench.mma_reference import write_mma

    text = write_mma([[(0.0, "Em7"), (2.0, "A7")], [(0.0, "Dm7")]], "Swing", 120, (4, 4), seed=3)
    assert text.splitlines() == [
        "RndSeed 3",
        "Tempo 120",
        "Groove Swing",
        "1 Em7 / A7 /",
        "2 Dm7 / / /",
    ]


def test_groove_for_styles() -> None:
    from bench.mma_reference import groove_for

    assert groove_for("jazz")[0] == "JazzCombo"
    assert groove_for("jazz", ts_num=3)[0] == "JazzWaltz"
    assert groove_for("latin_jazz")[0] == "Salsa"  # the first family word that matches
    assert groove_for("zzz-unknown") == (None, "no MMA groove of this family")


def test_read_mma_midi_splits_tracks_by_role(tmp_path: Path) -> None:
    mido = pytest.importorskip("mido")
    from bench.mma_reference import read_mma_midi

    mid = mido.MidiFile(ticks_per_beat=192)
    for name, channel, pitch in (
        ("Drum", 9, 36),
        ("Walk", 15, 40),
        ("Chord-Piano", 2, 60),
        ("Arpeggio", 3, 72),
    ):
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=name)])
        track.append(mido.Message("note_on", channel=channel, note=pitch, velocity=90, time=192))
        track.append(mido.Message("note_on", channel=channel, note=pitch, velocity=0, time=96))
        mid.tracks.append(track)
    path = tmp_path / "t.mid"
    mid.save(path)
    roles = read_mma_midi(path)
    assert roles["drums"] == [(1.0, 0.5, 36)]
    assert roles["bass"] == [(1.0, 0.5, 40)]
    assert roles["arp"] == [(1.0, 0.5, 72)]
    assert roles["harmony"] == [(1.0, 0.5, 60), (1.0, 0.5, 72)]
