"""Rules every part keeps: ranges, harmony, N.C., energy, feel, idioms of each instrument."""

from __future__ import annotations

import pickle
import statistics

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ai_band.generate.pipeline import STYLES, generate
from ai_band.generate.parts.guitar import TUNING, chord_shapes, power_shape
from ai_band.generate.parts.melody import safe_pitch_classes
from ai_band.model import Arrangement, ChordSpan, Note
from ai_band.request import KNOWN_PARTS, GenerationRequest
from ai_band.generate.parts.strings import CELLO_HIGH, UPPER_LOW
from ai_band.model import PARTS
from ai_band.theory import parse_chord

SHEET = "| Dm9 G13 | Cmaj7/E | F#ø7 B7b9 | Em7 A7 | C/Bb | D/F# G7sus4 | Ab6 | C5 |"
PITCHED = tuple(p for p in KNOWN_PARTS if p != "drums")


def _span_at(arrangement: Arrangement, t: float) -> ChordSpan:
    for span in arrangement.chords:
        if span.start_ppq - 1e-9 <= t < span.start_ppq + span.duration_ppq - 1e-9:
            return span
    raise AssertionError(t)


def _full(style: str, **extra) -> Arrangement:
    fields = dict(chords=SHEET, style=style, seed=3, parts=KNOWN_PARTS, bars=16)
    fields.update(extra)
    return generate(GenerationRequest(**fields))


@pytest.mark.parametrize("style", sorted(STYLES))
def test_every_part_stays_in_its_range(style: str) -> None:
    for extra in (dict(humanize=1.0, energy=1.0, complexity=1.0), dict(energy=0.0, ts=(6, 8))):
        arrangement = _full(style, structure=("intro", "verse", "chorus", "outro"), **extra)
        for part in arrangement.parts:
            low, high = PARTS[part.name].pitch_range
            pitches = [n.pitch for n in part.notes]
            assert pitches, part.name
            assert low <= min(pitches) and max(pitches) <= high, (
                part.name,
                min(pitches),
                max(pitches),
            )
        melody = [n.pitch for n in arrangement.part("melody").notes]
        lo, hi = STYLES[style].melody_range
        assert lo <= min(melody) and max(melody) <= hi


@pytest.mark.parametrize("style", sorted(STYLES))
def test_harmony_parts_play_chord_tones(style: str) -> None:
    arrangement = _full(style, humanize=0.0, swing=0.0)
    for name in ("pad", "arp", "strings", "guitar"):
        for note in arrangement.part(name).notes:
            span = _span_at(arrangement, note.start_ppq)
            assert note.pitch % 12 in span.pitch_classes + (span.bass_pc,), (
                name,
                span.symbol,
                note,
            )
            assert note.end_ppq <= span.start_ppq + span.duration_ppq + 1e-9, (name, note)


def _melody_clashes(arrangement: Arrangement) -> list[tuple[str, Note]]:
    """Melody notes starting on a beat a semitone (pc distance 1) from a sounding chord tone."""
    meter_beats = _beat_starts(arrangement)
    bad = []
    for note in arrangement.part("melody").notes:
        offset = note.start_ppq % arrangement.bar_length_ppq
        if not any(abs(offset - b) < 1e-9 for b in meter_beats):
            continue
        span = _span_at(arrangement, note.start_ppq)
        sounding = span.pitch_classes + (span.bass_pc,)
        pc = note.pitch % 12
        if any(min((pc - c) % 12, (c - pc) % 12) == 1 for c in sounding):
            bad.append((span.symbol, note))
    return bad


def _beat_starts(arrangement: Arrangement) -> list[float]:
    from ai_band.theory.meter import Meter

    style = STYLES[arrangement.style]
    meter = Meter.from_ts(
        arrangement.ts_num,
        arrangement.ts_den,
        style.grouping(arrangement.ts_num, arrangement.ts_den),
    )
    return [b.start for b in meter.beats]


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize("ts", [(4, 4), (3, 4), (6, 8), (7, 8)])
def test_melody_never_clashes_on_the_beat(style: str, ts: tuple[int, int]) -> None:
    arrangement = generate(
        GenerationRequest(
            chords=SHEET,
            style=style,
            ts=ts,
            seed=11,
            humanize=0.0,
            swing=0.0,
            parts=("melody",),
            bars=16,
            complexity=1.0,
            energy=1.0,
        )
    )
    assert arrangement.part("melody").notes
    assert _melody_clashes(arrangement) == []


@settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    style=st.sampled_from(sorted(STYLES)),
    seed=st.integers(0, 2**31 - 1),
    chords=st.lists(
        st.sampled_from(
            [
                "C",
                "Cmaj7",
                "Dm7",
                "G7",
                "E7#9",
                "Bbmaj7#11",
                "F#m7b5",
                "Abdim7",
                "Dsus4",
                "G13",
                "C7alt",
                "Am/G",
                "Ebaug",
                "B7b9",
                "Fm6",
                "N.C.",
            ]
        ),
        min_size=1,
        max_size=8,
    ),
    complexity=st.floats(0.0, 1.0),
    energy=st.floats(0.0, 1.0),
)
def test_melody_rule_holds_for_any_changes(style, seed, chords, complexity, energy) -> None:
    sheet = " ".join(chords)
    if all(c == "N.C." for c in chords):
        sheet += " C"
    arrangement = generate(
        GenerationRequest(
            chords=sheet,
            style=style,
            seed=seed,
            humanize=0.0,
            swing=0.0,
            parts=("melody",),
            complexity=complexity,
            energy=energy,
            key="C",
        )
    )
    assert _melody_clashes(arrangement) == []
    notes = arrangement.part("melody").notes
    for a, b in zip(notes, notes[1:]):
        assert b.start_ppq >= a.end_ppq - 1e-9  # one voice
    for note in notes:
        span = _span_at(arrangement, note.start_ppq)
        assert span.pitch_classes, note  # silent over N.C.
        assert note.end_ppq <= span.start_ppq + span.duration_ppq + 1e-9  # no note across a change


def test_safe_pitch_classes() -> None:
    cmaj7 = parse_chord("Cmaj7").pitch_classes
    assert safe_pitch_classes(cmaj7, cmaj7) == [4, 7]  # C and B are a semitone apart
    assert 5 not in safe_pitch_classes((0, 4, 7), range(12))  # F against E
    assert 2 in safe_pitch_classes((0, 4, 7), range(12))  # the 9th is fine


def test_melody_is_phrased_with_rests_and_a_climax() -> None:
    arrangement = generate(
        GenerationRequest(
            chords="| C | Am | F | G |",
            style="rock",
            seed=4,
            humanize=0.0,
            swing=0.0,
            parts=("melody",),
            structure=("verse", "chorus", "verse", "chorus"),
            sections=(("chorus", "| F | G | Em | Am |"),),
        )
    )
    notes = arrangement.part("melody").notes
    # a breath (rest of at least a beat) in every four-bar phrase
    for phrase in range(4):
        inside = [n for n in notes if phrase * 16 <= n.start_ppq < phrase * 16 + 16]
        gaps = [b.start_ppq - a.end_ppq for a, b in zip(inside, inside[1:])]
        tail = phrase * 16 + 16 - inside[-1].end_ppq
        assert max(gaps + [tail]) >= 0.9, phrase
    verse = [n.pitch for n in notes if n.start_ppq < 16]
    chorus = [n.pitch for n in notes if 16 <= n.start_ppq < 32]
    assert max(chorus) > max(verse)  # the climax is in the chorus
    # the second verse sings the first verse's tune
    second = [n.pitch for n in notes if 32 <= n.start_ppq < 48]
    assert second[: len(verse) - 1] == verse[: len(second[: len(verse) - 1])]


def test_melody_moves_mostly_by_step() -> None:
    steps = []
    for seed in range(6):
        notes = (
            generate(
                GenerationRequest(
                    chords="| C | Am | Dm7 | G7 |", seed=seed, parts=("melody",), bars=16
                )
            )
            .part("melody")
            .notes
        )
        steps += [abs(b.pitch - a.pitch) for a, b in zip(notes, notes[1:])]
    assert statistics.median(steps) <= 3
    assert sum(s > 9 for s in steps) / len(steps) < 0.05


@pytest.mark.parametrize("style", sorted(STYLES))
def test_nc_bars_are_silent_for_the_harmony(style: str) -> None:
    arrangement = generate(
        GenerationRequest(
            chords="| C | N.C. | Am | F G |",
            style=style,
            seed=2,
            humanize=0.0,
            swing=0.0,
            parts=KNOWN_PARTS,
            bars=8,
        )
    )
    rests = [
        (s.start_ppq, s.start_ppq + s.duration_ppq)
        for s in arrangement.chords
        if not s.pitch_classes
    ]
    assert rests and all(s.bass_pc == -1 for s in arrangement.chords if not s.pitch_classes)
    for part in arrangement.parts:
        inside = [n for n in part.notes if any(a <= n.start_ppq < b for a, b in rests)]
        if part.name == "drums" and STYLES[style].nc_drums:
            assert inside, style  # the drums keep time
        else:
            assert not inside, (part.name, inside[:3])
        for n in part.notes:  # nothing rings into the N.C. bar either (but the drums' hits)
            if part.name != "drums":
                assert not any(n.start_ppq < a < n.end_ppq - 1e-9 for a, _ in rests), (part.name, n)


def test_half_bar_nc() -> None:
    arrangement = generate(
        GenerationRequest(
            chords="| C . N.C. . | G |",
            style="jazz",
            seed=2,
            humanize=0.0,
            swing=0.0,
            parts=("bass", "keys", "melody"),
            bars=4,
        )
    )
    for part in arrangement.parts:
        assert not [n for n in part.notes if 2.0 <= n.start_ppq < 4.0 or 10.0 <= n.start_ppq < 12.0]
        assert [n for n in part.notes if n.start_ppq < 2.0]


def _density_and_velocity(style: str, energy: float, seeds: range) -> tuple[float, float]:
    counts, velocities = [], []
    for seed in seeds:
        arrangement = generate(
            GenerationRequest(
                chords="| C | Am | F | G7 |",
                style=style,
                seed=seed,
                energy=energy,
                parts=("drums", "bass", "keys", "guitar", "arp"),
                bars=8,
            )
        )
        notes = [n for p in arrangement.parts for n in p.notes]
        counts.append(len(notes))
        velocities.append(statistics.fmean(n.velocity for n in notes))
    return statistics.fmean(counts), statistics.fmean(velocities)


@pytest.mark.parametrize("style", sorted(STYLES))
def test_energy_raises_density_and_velocity(style: str) -> None:
    low_n, low_v = _density_and_velocity(style, 0.1, range(4))
    high_n, high_v = _density_and_velocity(style, 0.9, range(4))
    assert high_n > low_n * 1.1, (low_n, high_n)
    assert high_v > low_v + 8, (low_v, high_v)


def test_energy_hats_go_from_eighths_to_sixteenths() -> None:
    def hats(energy: float) -> int:
        drums = generate(
            GenerationRequest(
                chords="C",
                style="rock",
                seed=1,
                energy=energy,
                parts=("drums",),
                bars=2,
                humanize=0.0,
            )
        ).part("drums")
        return sum(n.pitch == 42 and 4 <= n.start_ppq < 8 for n in drums.notes)

    assert (hats(0.1), hats(0.5), hats(0.9)) == (4, 8, 16)


def test_complexity_adds_passing_notes_and_ghosts() -> None:
    def stats(complexity: float) -> tuple[int, int]:
        non_root = ghosts = 0
        for seed in range(6):
            a = generate(
                GenerationRequest(
                    chords="| C | F | G | C |",
                    style="funk",
                    seed=seed,
                    complexity=complexity,
                    parts=("drums", "bass"),
                    bars=8,
                )
            )
            ghosts += sum(n.pitch == 38 and n.velocity < 45 for n in a.part("drums").notes)
            non_root += sum(
                n.pitch % 12 != _span_at(a, n.start_ppq).root_pc for n in a.part("bass").notes
            )
        return non_root, ghosts

    simple, busy = stats(0.0), stats(1.0)
    assert busy[0] > simple[0] and busy[1] > 2 * simple[1]


@pytest.mark.parametrize("style", ["rock", "jazz", "funk", "latin", "classical", "reggae"])
def test_meter_accents_downbeat_backbeat_offbeat(style: str) -> None:
    """Within each pitched part: downbeats louder than backbeats, backbeats than off-beats."""
    compared = 0
    for part in ("bass", "keys", "arp", "guitar"):
        downs, backs, offs = [], [], []
        for seed in range(4):
            a = generate(
                GenerationRequest(
                    chords="| C | Am | F | G |",
                    style=style,
                    seed=seed,
                    humanize=0.0,
                    swing=0.0,
                    parts=(part,),
                    bars=7,
                )
            )
            for n in a.part(part).notes:
                x = n.start_ppq % 4
                if x == 0:
                    downs.append(n.velocity)
                elif x in (1.0, 3.0):
                    backs.append(n.velocity)
                elif x % 1 == 0.5:
                    offs.append(n.velocity)
        groups = [g for g in (downs, backs, offs) if len(g) >= 8]
        means = [statistics.fmean(g) for g in groups]
        assert means == sorted(means, reverse=True), (part, means)
        compared += len(groups) >= 2
    assert compared >= 2


def test_same_seed_same_notes_in_every_part() -> None:
    request = GenerationRequest(
        chords=SHEET,
        style="latin",
        seed=77,
        parts=KNOWN_PARTS,
        structure=("intro", "verse", "chorus", "outro"),
        humanize=0.6,
    )
    first = generate(request)
    assert generate(request) == first
    assert pickle.loads(pickle.dumps(first)) == first


def test_guitar_shapes_are_playable() -> None:
    for symbol in ("C", "Am", "G7", "F", "Bbmaj7", "F#m7b5", "E7#9", "C/E", "D/F#", "Ab6", "Gsus4"):
        chord = parse_chord(symbol)
        shapes = chord_shapes(chord)
        assert shapes, symbol
        shape, _ = shapes[0]
        strings = [s for s, _ in shape]
        assert strings == sorted(set(strings)) and len(shape) >= 4, (symbol, shape)
        assert shape[0][1] % 12 == chord.bass_pc, symbol
        frets = [p - TUNING[s] for s, p in shape]
        fretted = [f for f in frets if f > 0]
        assert all(0 <= f <= 12 for f in frets)
        assert not fretted or max(fretted) - min(fretted) <= 3, (symbol, frets)
        assert all(p % 12 in chord.pitch_classes + (chord.bass_pc,) for _, p in shape)
        third = chord.interval_pc(3, 4)
        assert third is None or third in {p % 12 for _, p in shape}, symbol
    # the open shapes players learn first
    assert chord_shapes(parse_chord("C"))[0][0] == ((1, 48), (2, 52), (3, 55), (4, 60), (5, 64))
    assert chord_shapes(parse_chord("Am"))[0][0] == ((1, 45), (2, 52), (3, 57), (4, 60), (5, 64))
    assert power_shape(parse_chord("E")) == ((0, 40), (1, 47), (2, 52))


def test_guitar_strums_down_low_to_high_and_up_high_to_low() -> None:
    arrangement = generate(
        GenerationRequest(
            chords="| C | G |",
            style="country",
            seed=1,
            humanize=0.5,
            bars=2,
            parts=("guitar",),
            energy=0.5,
        )
    )
    grid = generate(
        GenerationRequest(
            chords="| C | G |",
            style="country",
            seed=1,
            humanize=0.0,
            bars=2,
            parts=("guitar",),
            energy=0.5,
        )
    )
    assert all((n.start_ppq * 16).is_integer() for n in grid.part("guitar").notes)
    rock = generate(
        GenerationRequest(
            chords="| C | G |",
            style="rock",
            seed=1,
            humanize=0.4,
            bars=4,
            parts=("guitar",),
            structure=("chorus",),
        )
    )
    notes = rock.part("guitar").notes
    # group notes into strums (onsets within 30 ms)
    strums: list[list[Note]] = []
    for n in notes:
        if strums and n.start_ppq - strums[-1][0].start_ppq < 0.06:
            strums[-1].append(n)
        else:
            strums.append([n])
    downs = ups = 0
    for strum in strums:
        if len(strum) < 3:
            continue
        order = [n.pitch for n in sorted(strum, key=lambda n: n.start_ppq)]
        spread = strum[-1].start_ppq - strum[0].start_ppq
        assert 0.0 < spread < 0.06  # a few milliseconds per string
        downs += order == sorted(order)
        ups += order == sorted(order, reverse=True)
    assert downs > 5 and ups > 3
    assert arrangement.part("guitar").notes


def test_strings_voice_lead_smoothly() -> None:
    arrangement = generate(
        GenerationRequest(
            chords="| Dm7 | G7 | Cmaj7 | A7 | Dm7 | G7 | Em7 A7 | Dm7 G7 |",
            style="classical",
            seed=1,
            humanize=0.0,
            parts=("strings",),
            bars=8,
        )
    )
    notes = arrangement.part("strings").notes
    onsets = sorted({n.start_ppq for n in notes})
    chords = [sorted(n.pitch for n in notes if n.start_ppq == t) for t in onsets]
    for voicing in chords:
        assert voicing[0] <= CELLO_HIGH and all(p >= UPPER_LOW for p in voicing[1:])
    moves = []
    for a, b in zip(chords, chords[1:]):
        upper_a, upper_b = a[1:4], b[1:4]
        moves += [min(abs(x - y) for y in upper_b) for x in upper_a]
    assert statistics.fmean(moves) <= 2.0 and max(moves) <= 5


def test_arp_rates() -> None:
    def steps(style: str, **extra) -> list[float]:
        notes = (
            generate(
                GenerationRequest(
                    chords="C",
                    style=style,
                    seed=1,
                    humanize=0.0,
                    swing=0.0,
                    parts=("arp",),
                    bars=1,
                    **extra,
                )
            )
            .part("arp")
            .notes
        )
        return [n.start_ppq for n in notes]

    assert steps("electronic") == [i * 0.25 for i in range(16)]  # 16ths
    assert steps("classical") == [i * 0.5 for i in range(8)]  # 8ths
    assert steps("jazz", energy=0.5) == pytest.approx([i / 3 for i in range(12)])  # triplets
    assert steps("electronic", energy=0.1) == [i * 0.5 for i in range(8)]  # halved when calm


def test_pocket_snare_behind_hats_ahead_bass_behind() -> None:
    arrangement = generate(
        GenerationRequest(
            chords="| C | Am | F | G |",
            style="lofi",
            seed=1,
            humanize=0.6,
            swing=0.0,
            parts=("drums", "bass"),
            bars=16,
        )
    )

    def mean_offset(notes, pitches=None):
        offsets = []
        for n in notes:
            if pitches and n.pitch not in pitches:
                continue
            offsets.append(n.start_ppq - round(n.start_ppq * 4) / 4)
        return statistics.fmean(offsets)

    drums = arrangement.part("drums").notes
    snare, kick = mean_offset(drums, {37, 38}), mean_offset(drums, {36})
    assert snare > kick + 0.005  # the lo-fi snare drags
    assert mean_offset(arrangement.part("bass").notes) > 0.004  # the bass sits back


@pytest.mark.parametrize("style", sorted(STYLES))
def test_intro_a_b_fill_ending_differ(style: str) -> None:
    """Each style's drums play distinct intro, A, B, fill and ending bars."""
    if "drums" not in STYLES[style].intro_parts:
        structure = ("verse", "chorus", "outro")
    else:
        structure = ("intro", "verse", "chorus", "outro")
    arrangement = generate(
        GenerationRequest(
            chords="C",
            style=style,
            seed=5,
            humanize=0.0,
            swing=0.0,
            parts=("drums",),
            structure=structure,
            bars=4 * len(structure),
            energy=0.6,
        )
    )
    length = arrangement.bar_length_ppq

    def bar(k: int) -> frozenset[tuple[float, int]]:
        return frozenset(
            (round(n.start_ppq - k * length, 3), n.pitch)
            for n in arrangement.part("drums").notes
            if k * length <= n.start_ppq < (k + 1) * length
        )

    first = {name: f for name, f, _ in arrangement.sections}
    a = bar(first["verse"] + 1)
    b = bar(first["chorus"] + 1)
    fill = bar(first["verse"] + 3)
    ending = bar(arrangement.bars - 1)
    assert a != b and a != fill and ending != a
    assert len({t for t, _ in ending}) == 1  # one final hit
    if "intro" in first:
        assert bar(first["intro"] + 1) != a


@pytest.mark.parametrize("style", sorted(STYLES))
def test_melody_stays_one_voice_when_swung_and_humanized(style: str) -> None:
    for seed in range(3):
        notes = generate(
            GenerationRequest(chords=SHEET, style=style, seed=seed, parts=("melody",),
                              complexity=1.0, swing=0.6, humanize=0.5, bars=8)
        ).part("melody").notes
        for a, b in zip(notes, notes[1:]):
            assert b.start_ppq >= a.end_ppq - 0.04, (a, b)  # at most a humanize nudge
