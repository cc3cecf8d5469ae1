"""generate(): defaults, determinism, invariants across styles and meters."""

from __future__ import annotations

import hashlib
import os
import pathlib
import pickle
import random
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ai_band.errors import ChordError, RequestError, StyleError
from ai_band.generate.pipeline import STYLES, generate, request_seed, style_names, validate_request
from ai_band.generate.parts.bass import generate_bass
from ai_band.generate.context import PartContext, build_slots
from ai_band.generate.parts.drums import generate_drums
from ai_band.generate.groove import finalize
from ai_band.generate.parts.keys import generate_keys
from ai_band.theory.meter import Meter
from ai_band.model import Arrangement
from ai_band.request import KNOWN_PARTS, GenerationRequest, parse_request
from ai_band.theory import parse_key, parse_progression

ALL_PARTS = ("drums", "bass", "keys")
#: The meters every style must groove in (issue 3).
SPEC_METERS = [(2, 4), (3, 4), (4, 4), (5, 4), (6, 8), (7, 8), (12, 8)]
METERS = [
    (2, 4),
    (3, 4),
    (4, 4),
    (5, 4),
    (6, 8),
    (7, 8),
    (12, 8),
    (11, 16),
    (1, 4),
    (32, 32),
    (2, 2),
    (1, 1),
    (9, 8),
    (5, 16),
    (1, 32),
    (13, 32),
]
SHEETS = [
    "C Am F G",
    "| Dm7 . G7 . | Cmaj7 | % | A7 |",
    "| C/E F G7 | Am7/G | D/F# G |",
    "| Cmaj7 | Bø7 E7 | Am | . |",
    "| F#m7b5 B7 | Em C/Bb A7 D7 G7 C7 F7 Bb7 |",
]


def check_invariants(arrangement: Arrangement, allow_empty: bool = False) -> None:
    """Everything playback relies on, for every part.

    ``allow_empty``: a part may have no notes (it sits out a short song or an N.C. sheet).
    """
    length = arrangement.length_ppq
    for part in arrangement.parts:
        notes = part.notes
        assert notes or allow_empty, f"{part.name} is empty"
        starts = [n.start_ppq for n in notes]
        assert starts == sorted(starts), part.name
        last_end: dict[int, float] = {}
        for n in notes:
            assert 0.0 <= n.start_ppq, (part.name, n)
            assert n.duration_ppq > 0.0, (part.name, n)
            assert n.end_ppq <= length, (part.name, n, length)
            assert 0 <= n.pitch <= 127 and isinstance(n.pitch, int)
            assert 1 <= n.velocity <= 127 and isinstance(n.velocity, int)
            assert n.start_ppq >= last_end.get(n.pitch, 0.0), (part.name, n)
            last_end[n.pitch] = n.end_ppq
        assert 0 <= part.channel <= 15 and 0 <= part.program <= 127
    for part in arrangement.parts:
        assert (part.channel == 9) == (part.name == "drums")
    assert len({p.channel for p in arrangement.parts}) == len(arrangement.parts)


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize("ts", METERS, ids=lambda ts: f"{ts[0]}-{ts[1]}")
def test_every_style_and_meter_fills_every_part(style: str, ts: tuple[int, int]) -> None:
    arrangement = generate(
        GenerationRequest(chords=SHEETS[1], style=style, ts=ts, parts=ALL_PARTS, seed=3, bars=8)
    )
    assert [p.name for p in arrangement.parts] == list(ALL_PARTS)
    check_invariants(arrangement)
    assert (arrangement.ts_num, arrangement.ts_den) == ts


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize("ts", SPEC_METERS, ids=lambda ts: f"{ts[0]}-{ts[1]}")
def test_every_style_and_meter_plays_all_eight_parts(style: str, ts: tuple[int, int]) -> None:
    arrangement = generate(
        GenerationRequest(chords=SHEETS[0], style=style, ts=ts, parts=KNOWN_PARTS, seed=3, bars=8)
    )
    assert [p.name for p in arrangement.parts] == list(KNOWN_PARTS)
    check_invariants(arrangement)
    for part in arrangement.parts:
        bars_played = {int(n.start_ppq // arrangement.bar_length_ppq) for n in part.notes}
        assert len(bars_played) >= 6, (part.name, sorted(bars_played))


@pytest.mark.parametrize("ts", METERS, ids=lambda ts: f"{ts[0]}-{ts[1]}")
def test_any_meter_keeps_the_invariants_with_all_parts(ts: tuple[int, int]) -> None:
    for style in ("jazz", "funk", "latin", "country"):
        arrangement = generate(
            GenerationRequest(
                chords=SHEETS[3], style=style, ts=ts, parts=KNOWN_PARTS, seed=5, bars=9
            )
        )
        check_invariants(arrangement)


@settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    style=st.sampled_from(sorted(STYLES)),
    num=st.integers(1, 32),
    den=st.sampled_from([1, 2, 4, 8, 16, 32]),
    seed=st.integers(0, 2**31 - 1),
    humanize=st.floats(0.0, 1.0),
    swing=st.floats(0.0, 1.0),
    bars=st.one_of(st.none(), st.integers(1, 12)),
    sheet=st.sampled_from(SHEETS + ["| C | N.C. | G7 . N.C. . | C |"]),
    parts=st.permutations(KNOWN_PARTS).flatmap(
        lambda p: st.integers(1, len(KNOWN_PARTS)).map(lambda k: tuple(p[:k]))
    ),
    energy=st.one_of(st.none(), st.floats(0.0, 1.0)),
    complexity=st.one_of(st.none(), st.floats(0.0, 1.0)),
    structure=st.sampled_from(
        [None, ("intro", "verse", "chorus", "outro"), ("a", "a", "b", "a"), ("breakdown", "solo")]
    ),
)
def test_invariants_hold_for_any_request(
    style, num, den, seed, humanize, swing, bars, sheet, parts, energy, complexity, structure
) -> None:
    request = GenerationRequest(
        chords=sheet,
        style=style,
        ts=(num, den),
        seed=seed,
        humanize=humanize,
        swing=swing,
        bars=bars,
        parts=parts,
        energy=energy,
        complexity=complexity,
        structure=structure,
    )
    arrangement = generate(request)
    assert tuple(p.name for p in arrangement.parts) == parts
    check_invariants(arrangement, allow_empty=True)


def test_same_seed_same_notes_different_seed_different_notes() -> None:
    changed = []
    for style in STYLES:
        request = GenerationRequest(
            chords=SHEETS[1], style=style, seed=42, parts=KNOWN_PARTS, bars=8
        )
        first = generate(request)
        assert generate(request) == first
        other = generate(replace(request, seed=43))
        changed.append(other.parts != first.parts)
        # parts are seeded one by one: dropping a part leaves the others alone
        fewer = generate(replace(request, parts=KNOWN_PARTS[:-1]))
        assert fewer.parts == first.parts[:-1]
    assert sum(changed) >= len(STYLES) - 2


def test_seed_none_uses_content_hash() -> None:
    request = GenerationRequest(chords="C Am F G", style="rock")
    arrangement = generate(request)
    assert arrangement.seed == request_seed(request)
    assert 0 <= arrangement.seed < 2**31
    assert generate(GenerationRequest(id="other", chords="C Am F G", style="rock")) == arrangement
    assert request_seed(GenerationRequest(chords="C Am F G7", style="rock")) != arrangement.seed


def test_result_is_picklable() -> None:
    arrangement = generate(
        GenerationRequest(chords=SHEETS[2], style="jazz", seed=1, parts=ALL_PARTS)
    )
    assert pickle.loads(pickle.dumps(arrangement)) == arrangement


@pytest.mark.parametrize("style", sorted(STYLES))
def test_style_defaults_applied(style: str) -> None:
    defaults = STYLES[style]
    arrangement = generate(GenerationRequest(chords="C Am F G", style=style, seed=1))
    assert arrangement.style == style
    assert arrangement.bpm == defaults.bpm
    assert tuple(p.name for p in arrangement.parts) == defaults.parts
    assert (arrangement.ts_num, arrangement.ts_den) == defaults.ts
    for part in arrangement.parts:
        assert part.program == defaults.program(part.name)
    assert arrangement.bars == 4


def test_request_overrides_defaults() -> None:
    request = parse_request(
        {
            "chords": "C Am F G",
            "style": "Jazz",
            "bpm": "99",
            "ts": "3/4",
            "parts": "keys,bass",
            "seed": 5,
            "key": "C",
            "bars": 6,
        }
    )
    arrangement = generate(request)
    assert arrangement.bpm == 99.0
    assert (arrangement.ts_num, arrangement.ts_den) == (3, 4)
    assert [p.name for p in arrangement.parts] == ["keys", "bass"]
    assert (arrangement.key, arrangement.seed, arrangement.bars, arrangement.style) == (
        "C",
        5,
        6,
        "jazz",
    )


def test_default_style_when_none() -> None:
    arrangement = generate(GenerationRequest(chords="C F"))
    assert arrangement.style in style_names()


def test_unknown_style() -> None:
    with pytest.raises(StyleError) as info:
        generate(GenerationRequest(chords="C", style="polka"))
    assert info.value.field == "style"
    assert "jazz" in str(info.value)


def test_bad_chord_names_token_and_bar() -> None:
    with pytest.raises(ChordError) as info:
        generate(GenerationRequest(chords="| C | F | Q7 |", style="rock"))
    assert (info.value.token, info.value.bar) == ("Q7", 3)


def test_bad_key() -> None:
    with pytest.raises(RequestError) as info:
        generate(GenerationRequest(chords="C", key="Z#"))
    assert info.value.field == "key"


def test_key_inferred_when_missing() -> None:
    assert generate(GenerationRequest(chords="Am Dm E7 Am", seed=1)).key == "Am"
    assert generate(GenerationRequest(chords="Am Dm E7 Am", key="C", seed=1)).key == "C"


def test_sheet_loops_and_truncates() -> None:
    sheet = "| C | F G | Am |"
    looped = generate(GenerationRequest(chords=sheet, bars=7, seed=1, parts=("keys",)))
    assert looped.bars == 7
    assert [(c.symbol, c.bar) for c in looped.chords] == [
        ("C", 0),
        ("F", 1),
        ("G", 1),
        ("Am", 2),
        ("C", 3),
        ("F", 4),
        ("G", 4),
        ("Am", 5),
        ("C", 6),
    ]
    assert looped.chords[2].start_ppq == 6.0 and looped.chords[2].duration_ppq == 2.0
    assert max(n.end_ppq for n in looped.part("keys").notes) <= 28.0
    short = generate(GenerationRequest(chords=sheet, bars=1, seed=1, parts=("keys",)))
    assert [c.symbol for c in short.chords] == ["C"]
    assert short.length_ppq == 4.0


def test_chord_spans_cover_the_arrangement() -> None:
    arrangement = generate(GenerationRequest(chords=SHEETS[4], ts=(7, 8), bars=5, seed=1))
    spans = arrangement.chords
    assert spans[0].start_ppq == 0.0
    for a, b in zip(spans, spans[1:]):
        assert b.start_ppq == pytest.approx(a.start_ppq + a.duration_ppq)
    assert spans[-1].start_ppq + spans[-1].duration_ppq == pytest.approx(arrangement.length_ppq)
    assert spans[1].symbol == "B7" and spans[1].bass_pc == 11


@pytest.mark.parametrize("style", sorted(STYLES))
def test_no_humanize_no_swing_is_exactly_on_the_grid(style: str) -> None:
    arrangement = generate(
        GenerationRequest(
            chords="| C Am | F G7 |",
            style=style,
            seed=9,
            humanize=0.0,
            swing=0.0,
            parts=ALL_PARTS,
            bars=8,
        )
    )
    for part in arrangement.parts:
        for note in part.notes:
            assert (note.start_ppq * 16).is_integer(), (part.name, note)


@pytest.mark.parametrize("style", sorted(STYLES))
def test_every_part_on_the_grid_without_humanize_and_swing(style: str) -> None:
    """With humanize 0 and swing 0 every onset of every part lies on the 1/48-quarter grid
    (16ths, 32nds and triplets of any beat); strums collapse to block chords."""
    arrangement = generate(
        GenerationRequest(
            chords="| C Am | F G7 | N.C. | Dm7 G7 |",
            style=style,
            seed=9,
            humanize=0.0,
            swing=0.0,
            parts=KNOWN_PARTS,
            bars=9,
            structure=("intro", "verse", "chorus"),
        )
    )
    for part in arrangement.parts:
        for note in part.notes:
            assert abs(note.start_ppq * 48 - round(note.start_ppq * 48)) < 1e-6, (part.name, note)


def test_humanize_moves_notes_off_the_grid_but_not_the_pattern() -> None:
    base = dict(chords="| C Am | F G7 |", style="rock", seed=9, swing=0.0, parts=ALL_PARTS, bars=8)
    tight = generate(GenerationRequest(humanize=0.0, **base))
    loose = generate(GenerationRequest(humanize=1.0, **base))
    for a, b in zip(tight.parts, loose.parts):
        assert len(a.notes) == len(b.notes)
        assert sorted(n.pitch for n in a.notes) == sorted(n.pitch for n in b.notes)
        assert any(not (n.start_ppq * 16).is_integer() for n in b.notes)


def test_known_parts_all_generated() -> None:
    arrangement = generate(GenerationRequest(chords="C G", parts=KNOWN_PARTS, seed=1))
    assert [p.name for p in arrangement.parts] == list(KNOWN_PARTS)


def test_thirty_two_bars_three_parts_is_fast() -> None:
    request = GenerationRequest(
        chords="| Dm9 G13 | Cmaj9 A7b9 | Fmaj7 | Bø7 E7 |" * 8,
        style="jazz",
        parts=ALL_PARTS,
        seed=1,
        humanize=0.5,
    )
    generate(request)
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        arrangement = generate(request)
        best = min(best, time.perf_counter() - began)
    assert arrangement.bars == 32
    assert best < 0.1


def test_validate_request_accepts_good_and_rejects_bad() -> None:
    validate_request(
        GenerationRequest(chords="| Dm7 . G7 . | C |", style="jazz", key="C", ts=(7, 8))
    )
    with pytest.raises(StyleError):
        validate_request(GenerationRequest(chords="C", style="polka"))
    with pytest.raises(ChordError) as info:
        validate_request(GenerationRequest(chords="| C | % | Gx7 |"))
    assert (info.value.token, info.value.bar) == ("Gx7", 3)
    with pytest.raises(RequestError) as key_info:
        validate_request(GenerationRequest(chords="C", key="H"))
    assert key_info.value.field == "key"


def test_same_notes_in_another_process_with_another_hash_seed() -> None:
    code = (
        "import hashlib\n"
        "from ai_band.generate.pipeline import generate\n"
        "from ai_band.request import GenerationRequest as R\n"
        "a = generate(R(chords='| Dm7 G7/B | C/E | % | F#ø7 . B7 . |', style='jazz', ts=(7, 8),"
        " bars=9, parts=('drums', 'bass', 'keys')))\n"
        "print(hashlib.sha256(repr(a).encode()).hexdigest())\n"
    )
    here = generate(
        GenerationRequest(
            chords="| Dm7 G7/B | C/E | % | F#ø7 . B7 . |",
            style="jazz",
            ts=(7, 8),
            bars=9,
            parts=ALL_PARTS,
        )
    )
    root = pathlib.Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=str(root))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, check=True
    )
    assert result.stdout.strip() == hashlib.sha256(repr(here).encode()).hexdigest()


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize("ts", [(4, 4), (3, 4), (7, 8), (12, 8), (11, 16), (1, 4), (32, 32)])
def test_raw_generator_output_needs_no_repair(style: str, ts: tuple[int, int]) -> None:
    """On the straight grid the generators already keep every invariant (finalize drops nothing)."""
    sheet = parse_progression("| C G/B Am | F . C/E Dm7 | G7sus4 | Bb/D Ebmaj7 |", *ts)
    meter = Meter.from_ts(*ts)
    slots = build_slots(sheet, 8, meter)
    ctx = PartContext(STYLES[style], meter, 8, slots, parse_key("C"))
    for name, make in (("drums", generate_drums), ("bass", generate_bass), ("keys", generate_keys)):
        raw = make(ctx, random.Random(f"1:{name}"))
        assert raw
        for note in raw:
            assert note.duration_ppq > 0 and 0 <= note.start_ppq
            assert note.end_ppq <= ctx.length + 1e-9
        # drum grooves may stack two hits of one drum at one time (kept once, the louder)
        distinct = {(n.start_ppq, n.pitch) for n in raw}
        if name != "drums":
            assert len(distinct) == len(raw), name
        repaired = finalize(raw, ctx.length)
        assert len(repaired) == len(distinct), name
        assert {(n.start_ppq, n.pitch, n.duration_ppq) for n in repaired} <= {
            (n.start_ppq, n.pitch, n.duration_ppq) for n in raw
        }, name
