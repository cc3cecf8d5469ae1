"""Keys: chord tones only, voice leading, range, comping rhythms."""

from __future__ import annotations

import random

import pytest

from ai_band.generate.pipeline import STYLES, generate
from ai_band.generate.parts.keys import (
    KEYS_HIGH,
    KEYS_LOW,
    choose_voicing,
    movement,
    voicing_candidates,
    voicing_tones,
)
from ai_band.model import Arrangement
from ai_band.request import GenerationRequest
from ai_band.theory.chords import parse_chord

SHEET = "| Dm9 G13 | Cmaj7/E | F#ø7 B7b9 | Em7 A7 | C/Bb | D/F# G7sus4 | Ab6 | C5 |"


def _span_of(arrangement: Arrangement, t: float):
    for span in arrangement.chords:
        if span.start_ppq <= t < span.start_ppq + span.duration_ppq:
            return span
    raise AssertionError(t)


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize("ts", [(4, 4), (3, 4), (6, 8), (7, 8)])
def test_keys_play_only_chord_tones(style: str, ts: tuple[int, int]) -> None:
    arrangement = generate(
        GenerationRequest(
            chords=SHEET, style=style, ts=ts, seed=3, humanize=0.0, swing=0.0, parts=("keys",)
        )
    )
    notes = arrangement.part("keys").notes
    assert notes
    for note in notes:
        span = _span_of(arrangement, note.start_ppq)
        assert note.pitch % 12 in span.pitch_classes, (style, span.symbol, note)
        assert note.end_ppq <= span.start_ppq + span.duration_ppq + 1e-9


@pytest.mark.parametrize("style", sorted(STYLES))
def test_keys_range(style: str) -> None:
    arrangement = generate(
        GenerationRequest(chords=SHEET, style=style, seed=3, humanize=1.0, bars=32, parts=("keys",))
    )
    pitches = [n.pitch for n in arrangement.part("keys").notes]
    assert KEYS_LOW <= min(pitches) and max(pitches) <= KEYS_HIGH


def test_rootless_voicings_leave_the_root_to_the_bass() -> None:
    assert 2 not in voicing_tones(parse_chord("Dm7"), "rootless")
    assert sorted(voicing_tones(parse_chord("Dm7"), "rootless")) == [0, 5, 9]
    assert voicing_tones(parse_chord("C"), "rootless") == [0, 4, 7]
    assert set(voicing_tones(parse_chord("G13"), "rootless")) == {11, 5, 4, 2}
    assert set(voicing_tones(parse_chord("C13"), "close")) == {0, 4, 10, 9}


def test_candidates_are_inversions_in_range() -> None:
    options = voicing_candidates([0, 4, 7], "close")
    assert (48, 52, 55) in options and (52, 55, 60) in options and (55, 60, 64) in options
    assert all(KEYS_LOW <= v[0] and v[-1] <= KEYS_HIGH for v in options)
    assert all(v[-1] - v[0] < 12 for v in options)
    spread = voicing_candidates([0, 4, 7, 11], "open")
    assert any(v[-1] - v[0] > 12 for v in spread)


@pytest.mark.parametrize("family", ["close", "open", "rootless"])
def test_each_voicing_minimises_movement(family: str) -> None:
    rng = random.Random(1)
    previous = None
    for (
        symbol
    ) in "Dm7 G7 Cmaj7 A7 Dm7 G7 Em7 A7b9 Fmaj7 Bb7 Ebmaj7 Abmaj7 Db7 Gb F#m7 B7 E".split():
        chord = parse_chord(symbol)
        chosen = choose_voicing(chord, family, previous, 62, rng)
        if previous is not None:
            options = voicing_candidates(voicing_tones(chord, family), family)
            near_center = [v for v in options if abs(sum(v) / len(v) - 62) <= 7]
            assert movement(previous, chosen) <= min(movement(previous, v) for v in near_center)
        previous = chosen


def test_voice_leading_beats_block_root_position_chords() -> None:
    arrangement = generate(
        GenerationRequest(
            chords="| Dm7 | G7 | Cmaj7 | A7 |" * 4,
            style="rock",
            seed=1,
            humanize=0.0,
            parts=("keys",),
        )
    )
    notes = arrangement.part("keys").notes
    voicings = []
    for span in arrangement.chords:
        voicings.append(tuple(sorted({n.pitch for n in notes if n.start_ppq == span.start_ppq})))
    led = sum(movement(a, b) for a, b in zip(voicings, voicings[1:]))
    # root-position block chords with the root in G3..F#4
    block = [
        tuple(55 + (span.root_pc - 7) % 12 + (pc - span.root_pc) % 12 for pc in span.pitch_classes)
        for span in arrangement.chords
    ]
    naive = sum(movement(a, b) for a, b in zip(block, block[1:]))
    assert led < naive / 2


def _onsets(style: str, **extra) -> list[float]:
    fields = dict(chords="C", style=style, seed=1, humanize=0.0, swing=0.0, bars=4, parts=("keys",))
    fields.update(extra)
    arrangement = generate(GenerationRequest(**fields))
    return sorted({n.start_ppq for n in arrangement.part("keys").notes})


def test_rock_eighth_pulse() -> None:
    assert _onsets("rock") == [i * 0.5 for i in range(32)]


def test_ambient_sustains_whole_bars() -> None:
    arrangement = generate(
        GenerationRequest(chords="C Am", style="ambient", seed=1, humanize=0.0, parts=("keys",))
    )
    notes = arrangement.part("keys").notes
    assert sorted({n.start_ppq for n in notes}) == [0.0, 4.0]
    assert all(n.duration_ppq > 3.8 for n in notes)


def test_electronic_offbeat_stabs() -> None:
    onsets = _onsets("electronic")
    assert all(t % 1 != 0 for t in onsets)
    assert {0.5, 1.5, 2.5, 3.5} <= set(onsets)


def test_jazz_charleston_and_variants() -> None:
    onsets = _onsets("jazz", bars=16)
    bars = [[t - 4 * b for t in onsets if 4 * b <= t < 4 * b + 4] for b in range(16)]
    assert all(bar and bar[0] == 0.0 for bar in bars)
    assert [0.0, 1.5] in bars  # the Charleston
    assert len({tuple(bar) for bar in bars}) >= 2


def test_classical_arpeggiates_one_note_at_a_time() -> None:
    arrangement = generate(
        GenerationRequest(chords="C G", style="classical", seed=1, humanize=0.0, parts=("keys",))
    )
    notes = arrangement.part("keys").notes
    starts = [n.start_ppq for n in notes]
    assert starts == [i * 0.5 for i in range(16)]
    assert len({n.pitch for n in notes[:8]}) >= 3


def test_classical_arpeggio_ascends_in_compound_meter() -> None:
    arrangement = generate(
        GenerationRequest(
            chords="C", style="classical", ts=(6, 8), seed=1, humanize=0.0, parts=("keys",)
        )
    )
    notes = arrangement.part("keys").notes
    first = [n.pitch for n in notes[:3]]
    assert first == sorted(first) and len(set(first)) == 3
