"""Song form: structure, sections, duration, resolution, layering, fills and endings."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ai_band.errors import ChordError, RequestError, StyleError
from ai_band.generate.pipeline import MAX_BARS, STYLES, generate, resolve_request, validate_request
from ai_band.generate.arrange import (
    AB_PERIOD,
    ENDING_MIN_BARS,
    allocate_bars,
    plan_loop,
    plan_song,
    section_role,
)
from ai_band.model import Arrangement
from ai_band.request import KNOWN_PARTS, GenerationRequest, parse_request

SONG = ("intro", "verse", "chorus", "verse", "chorus", "outro")


def _bars_with_notes(arrangement: Arrangement, part: str) -> set[int]:
    length = arrangement.bar_length_ppq
    return {int(n.start_ppq // length + 1e-9) for n in arrangement.part(part).notes}


@pytest.mark.parametrize(
    ("name", "role"),
    [
        ("intro", "intro"),
        ("Verse", "verse"),
        ("verse2", "verse"),
        ("a", "verse"),
        ("b", "bridge"),
        ("chorus", "chorus"),
        ("pre-chorus", "prechorus"),
        ("drop", "chorus"),
        ("solo", "solo"),
        ("breakdown", "breakdown"),
        ("outro", "outro"),
        ("coda", "outro"),
        ("whatever", "verse"),
    ],
)
def test_section_roles(name: str, role: str) -> None:
    assert section_role(name) == role


@given(
    lengths=st.lists(st.integers(1, 16), min_size=1, max_size=12),
    total=st.integers(1, 300),
)
def test_allocate_bars_adds_up(lengths: list[int], total: int) -> None:
    out = allocate_bars(lengths, total)
    assert sum(out) == total and len(out) == len(lengths)
    if total >= len(lengths):
        assert min(out) >= 1
    else:
        assert out[-1] == 1  # the last section (the ending) survives


def test_allocate_bars_keeps_proportions() -> None:
    assert allocate_bars([4, 8, 4], 16) == [4, 8, 4]
    assert allocate_bars([4, 8, 4], 32) == [8, 16, 8]
    assert allocate_bars([4, 4], 6) == [3, 3]


def test_loop_plan_alternates_a_and_b_with_fills_and_ending() -> None:
    style = STYLES["rock"]
    plan = plan_loop(style, 24, ("drums", "bass"), 0.5)
    variations = [b.variation for b in plan.bars]
    assert variations[:8] == ["A"] * 8 and variations[8:16] == ["B"] * 8
    assert variations[16:23] == ["A"] * 7 and variations[23] == "ending"
    assert [k for k, b in enumerate(plan.bars) if b.fill] == [3, 7, 11, 15, 19, 22]
    assert plan.bars[8].energy == pytest.approx(0.6)
    assert plan.sections == (("main", 0, 24),)
    assert AB_PERIOD == 8 and ENDING_MIN_BARS == 8


@pytest.mark.parametrize("bars", [1, 2, 4, 7])
def test_short_loops_stay_loopable(bars: int) -> None:
    plan = plan_loop(STYLES["jazz"], bars, ("drums",), 0.5)
    assert all(b.variation == "A" for b in plan.bars)


def test_song_plan_layers_parts() -> None:
    style = STYLES["rock"]  # intro: drums, guitar; lift: strings, arp, pad
    parts = KNOWN_PARTS
    plan = plan_song(style, [(name, 4) for name in SONG], parts, 0.5)
    by_section = {b.section: b for b in plan.bars if b.section_bar == 0}
    assert by_section["intro"].parts == {"drums", "guitar"}
    assert by_section["intro"].variation == "intro"
    assert by_section["verse"].parts == set(parts) - {"strings", "arp", "pad"}
    assert by_section["chorus"].parts == set(parts) and by_section["chorus"].variation == "B"
    assert by_section["chorus"].energy > by_section["verse"].energy > by_section["intro"].energy
    # every section ends with a fill and starts with a crash; the last bar is the ending
    for name, first, count in plan.sections:
        assert plan.bars[first].crash
        if first + count < len(plan.bars):
            assert plan.bars[first + count - 1].fill
    assert plan.bars[-1].variation == "ending" and plan.bars[-1].parts == set(parts)
    assert plan.bars[-2].fill
    # the second chorus lifts a little more than the first
    choruses = [b.energy for b in plan.bars if b.section == "chorus" and b.section_bar == 0]
    assert choruses[1] > choruses[0]


def test_structure_with_sections_gives_bar_counts_and_section_list() -> None:
    request = parse_request(
        {
            "chords": "| C | Am | F | G |",
            "structure": "intro verse chorus verse chorus outro",
            "sections": '{"intro": "| C | G |", "chorus": "| F | G | C | C | F | G | C | C |"}',
            "style": "rock",
            "seed": 1,
        }
    )
    arrangement = generate(request)
    assert arrangement.sections == (
        ("intro", 0, 2),
        ("verse", 2, 4),
        ("chorus", 6, 8),
        ("verse", 14, 4),
        ("chorus", 18, 8),
        ("outro", 26, 4),
    )
    assert arrangement.bars == 30
    symbols = [c.symbol for c in arrangement.chords if c.bar in (0, 1, 6, 13, 26)]
    assert symbols == ["C", "G", "F", "C", "C"]


def test_sections_without_structure_play_in_order() -> None:
    request = parse_request({"chords": "C", "sections": '{"verse": "C Am", "chorus": "F G F G"}'})
    arrangement = generate(request)
    assert arrangement.sections == (("verse", 0, 2), ("chorus", 2, 4))
    assert resolve_request(request).structure == ("verse", "chorus")


def test_song_form_letters() -> None:
    arrangement = generate(
        parse_request(
            {
                "chords": "| C | Am | Dm | G7 |",
                "structure": "AABA",
                "seed": 3,
                "sections": '{"b": "| F | F | C | G7 |"}',
                "style": "jazz",
            }
        )
    )
    assert [s[0] for s in arrangement.sections] == ["a", "a", "b", "a"]
    assert arrangement.bars == 16


@pytest.mark.parametrize(
    ("duration", "bpm", "ts", "bars"),
    [
        (30, 120, "4/4", 15),
        (60, 90, "3/4", 30),
        (10, 120, "6/8", 7),
        (1, 60, "4/4", 1),
        (600, 400, "12/8", 667 // 1),
    ],
)
def test_duration_gives_bars(duration: float, bpm: float, ts: str, bars: int) -> None:
    request = parse_request({"chords": "C G", "duration": duration, "bpm": bpm, "ts": ts})
    num, den = map(int, ts.split("/"))
    expected = max(1, round(duration * bpm / 60 / (num * 4 / den)))
    if expected > MAX_BARS:
        with pytest.raises(RequestError) as info:
            validate_request(request)
        assert info.value.field == "duration"
        return
    assert expected == bars
    resolved = resolve_request(request)
    assert (resolved.bars, resolved.duration_s) == (bars, None)
    assert resolve_request(resolved) == resolved
    assert generate(request).bars == bars


def test_duration_with_structure_scales_sections() -> None:
    request = parse_request(
        {"chords": "C Am F G", "structure": "intro verse chorus outro", "duration": 64, "bpm": 120}
    )
    arrangement = generate(request)
    assert arrangement.bars == 32
    assert [count for _, _, count in arrangement.sections] == [8, 8, 8, 8]


def test_bars_with_structure_scales_sections() -> None:
    request = GenerationRequest(chords="C Am F G", structure=("verse", "chorus"), bars=6)
    assert [count for _, _, count in generate(request).sections] == [3, 3]
    tiny = generate(GenerationRequest(chords="C Am F G", structure=SONG, bars=3))
    assert [s[0] for s in tiny.sections] == ["intro", "verse", "outro"]


def test_parts_enter_and_drop_by_section() -> None:
    request = GenerationRequest(
        chords="| C | Am | F | G |",
        style="rock",
        structure=SONG,
        parts=KNOWN_PARTS,
        seed=2,
        humanize=0.0,
    )
    arrangement = generate(request)
    intro = set(range(0, 4))
    verse = set(range(4, 8))
    chorus = set(range(8, 12))
    for part in KNOWN_PARTS:
        played = _bars_with_notes(arrangement, part)
        assert bool(played & intro) == (part in ("drums", "guitar")), part
        assert bool(played & chorus), part
        assert bool(played & verse) == (part not in ("strings", "arp", "pad")), part
        assert 23 in played, part  # the whole band plays the ending
    # the melody enters with the verse
    assert min(_bars_with_notes(arrangement, "melody")) == 4


def test_breakdown_drops_drums_and_bass() -> None:
    arrangement = generate(
        GenerationRequest(
            chords="C Am F G",
            structure=("verse", "breakdown", "chorus"),
            parts=("drums", "bass", "keys"),
            seed=1,
            humanize=0.0,
        )
    )
    for part in ("drums", "bass"):
        assert not _bars_with_notes(arrangement, part) & set(range(4, 8)), part
    assert _bars_with_notes(arrangement, "keys") >= set(range(4, 8))


def test_intro_without_intro_parts_keeps_someone_playing() -> None:
    arrangement = generate(
        GenerationRequest(chords="C G", structure=("intro", "verse"), parts=("bass",), style="rock")
    )
    assert _bars_with_notes(arrangement, "bass") & {0, 1}


def test_resolve_request_fills_every_field() -> None:
    resolved = resolve_request(GenerationRequest(chords="Am Dm E7 Am", parts=("bass", "drums")))
    for name in (
        "style",
        "bpm",
        "key",
        "ts",
        "parts",
        "bars",
        "seed",
        "humanize",
        "swing",
        "energy",
        "complexity",
        "structure",
        "programs",
        "channels",
    ):
        assert getattr(resolved, name) is not None, name
    style = STYLES["rock"]
    assert (resolved.style, resolved.bpm, resolved.key, resolved.ts) == (
        "rock",
        style.bpm,
        "Am",
        (4, 4),
    )
    assert (resolved.bars, resolved.structure) == (4, ("main",))
    assert (resolved.energy, resolved.complexity) == (style.energy, style.complexity)
    assert resolved.programs == (("bass", style.bass_program), ("drums", style.drums_program))
    assert resolved.channels == (("bass", 1), ("drums", 9))
    assert resolve_request(resolved) == resolved
    assert generate(resolved) == generate(
        GenerationRequest(chords="Am Dm E7 Am", parts=("bass", "drums"))
    )


def test_resolve_request_uses_style_defaults_and_aliases() -> None:
    resolved = resolve_request(GenerationRequest(chords="C F G C", style="Bossa Nova"))
    assert resolved.style == "bossa" and resolved.parts == STYLES["bossa"].parts
    waltz = resolve_request(GenerationRequest(chords="C F G C", style="waltz"))
    assert waltz.ts == (3, 4) and waltz.bpm == STYLES["waltz"].bpm


def test_program_and_channel_overrides_apply() -> None:
    request = parse_request(
        {
            "chords": "C Am F G",
            "parts": "drums,bass,keys,melody",
            "programs": "bass=33,melody=65",
            "channels": "keys=2,melody=12",
            "seed": 1,
        }
    )
    arrangement = generate(request)
    programs = {p.name: p.program for p in arrangement.parts}
    channels = {p.name: p.channel for p in arrangement.parts}
    assert programs["bass"] == 33 and programs["melody"] == 65
    assert programs["keys"] == STYLES["rock"].keys_program
    assert channels["keys"] == 1 and channels["melody"] == 11
    # bass's default channel index 1 was taken by the keys override: bass moves to a free one
    assert channels["bass"] not in (1, 9, 11, channels["drums"])
    assert channels["drums"] == 9
    assert len(set(channels.values())) == 4


def test_validate_request_rejects_what_generate_would() -> None:
    with pytest.raises(StyleError):
        validate_request(GenerationRequest(chords="C", style="polka"))
    with pytest.raises(ChordError) as info:
        validate_request(GenerationRequest(chords="C", sections=(("verse", "| C | Xq7 |"),)))
    assert (info.value.token, info.value.bar) == ("Xq7", 2)
    with pytest.raises(RequestError) as section:
        validate_request(
            GenerationRequest(chords="C", structure=("verse",), sections=(("chrous", "F"),))
        )
    assert section.value.field == "sections"
    with pytest.raises(RequestError) as too_long:
        validate_request(GenerationRequest(chords="| C " * 100 + "|", structure=("a",) * 6))
    assert too_long.value.field == "structure"
    # roman numerals resolve in the request's key
    validate_request(GenerationRequest(chords="| I | vi | ii7 | V7 |", key="Eb"))
    with pytest.raises(ChordError):
        generate(GenerationRequest(chords="| I | vi |"))  # no key to resolve them in
    assert [
        c.symbol for c in generate(GenerationRequest(chords="| I | V7/V |", key="G")).chords
    ] == [
        "I",
        "V7/V",
    ]


def test_validate_request_accepts_a_song_form_and_names_a_bad_section_chord() -> None:
    # Its speed (it runs on the event loop) is measured by bench.gen_speed.
    fields = dict(chords="| Dm7 G7 | Cmaj7 | Am7 D7 | Gmaj7 |" * 4, style="jazz", key="C", structure=SONG)
    validate_request(GenerationRequest(**fields, sections=(("chorus", "| F | G | C | Am |" * 2),)))
    with pytest.raises(ChordError, match="Hx"):
        validate_request(GenerationRequest(**fields, sections=(("chorus", "| F | Hx7 | C |"),)))


@settings(max_examples=40, deadline=None, database=None)
@given(
    structure=st.lists(
        st.sampled_from(["intro", "verse", "chorus", "bridge", "solo", "outro", "a", "b"]),
        min_size=1,
        max_size=8,
    ),
    lengths=st.lists(st.integers(1, 6), min_size=8, max_size=8),
)
def test_sections_cover_the_arrangement(structure: list[str], lengths: list[int]) -> None:
    sheets = {
        name: " ".join(["C"] * n)
        for name, n in zip(
            ["intro", "verse", "chorus", "bridge", "solo", "outro", "a", "b"], lengths
        )
    }
    used = tuple(dict.fromkeys(structure))
    request = GenerationRequest(
        chords="C G",
        structure=tuple(structure),
        sections=tuple((name, sheets[name]) for name in used),
        parts=("drums", "bass"),
        seed=1,
    )
    arrangement = generate(request)
    assert [s[0] for s in arrangement.sections] == structure
    assert arrangement.bars == sum(sheets[name].count("C") for name in structure)
    position = 0
    for name, first, count in arrangement.sections:
        assert first == position and count >= 1
        position += count
    assert position == arrangement.bars
