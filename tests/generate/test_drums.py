"""Drums: GM kit, grooves per beat in any meter, crash and fills."""

from __future__ import annotations

import pytest

from ai_band.generate.pipeline import STYLES, generate
from ai_band.model import Arrangement, Note
from ai_band.request import GenerationRequest

KICK, SNARE, CLOSED_HAT, PEDAL_HAT, CRASH, RIDE, CLAP = 36, 38, 42, 44, 49, 51, 39
TOMS = {41, 43, 45, 47, 48, 50}


def _drums(style: str, ts: tuple[int, int] = (4, 4), bars: int = 8, **extra) -> Arrangement:
    fields = dict(
        chords="C", style=style, ts=ts, bars=bars, seed=1, humanize=0.0, swing=0.0, parts=("drums",)
    )
    fields.update(extra)
    return generate(GenerationRequest(**fields))


def _in_bar(arrangement: Arrangement, bar: int, pitch: int) -> list[float]:
    """Offsets from the bar start of ``pitch`` hits in 0-based ``bar``."""
    length = arrangement.bar_length_ppq
    return sorted(
        n.start_ppq - bar * length
        for n in arrangement.part("drums").notes
        if n.pitch == pitch and bar * length <= n.start_ppq < (bar + 1) * length
    )


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize("ts", [(4, 4), (3, 4), (7, 8), (12, 8), (1, 4), (11, 16)])
def test_channel_program_and_crash_on_bar_one(style: str, ts: tuple[int, int]) -> None:
    arrangement = _drums(style, ts)
    part = arrangement.part("drums")
    assert part.channel == 9
    assert part.program == STYLES[style].drums_program
    assert 0.0 in _in_bar(arrangement, 0, CRASH)
    assert all(27 <= n.pitch <= 87 for n in part.notes)  # GM percussion key map range


@pytest.mark.parametrize(
    ("ts", "kicks", "snares", "hats"),
    [
        ((4, 4), [0.0, 2.0], [1.0, 3.0], [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]),
        ((3, 4), [0.0], [1.0, 2.0], [0.5, 1.0, 1.5, 2.0, 2.5]),
        ((2, 4), [0.0], [1.0], [0.5, 1.0, 1.5]),
        ((6, 8), [0.0], [1.5], [0.5, 1.0, 1.5, 2.0, 2.5]),
        ((12, 8), [0.0, 3.0], [1.5, 4.5], [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5]),
        ((7, 8), [0.0], [1.0, 2.0], [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]),
        ((5, 4), [0.0, 3.0], [1.0, 2.0, 4.0], [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5]),
    ],
)
def test_rock_groove_follows_the_meter(ts, kicks, snares, hats) -> None:
    arrangement = _drums("rock", ts, bars=1)
    # bar 1 carries the crash instead of the first hat; kicks/snares may gain extras
    assert set(kicks) <= set(_in_bar(arrangement, 0, KICK))
    loud_snares = [
        n.start_ppq for n in arrangement.part("drums").notes if n.pitch == SNARE and n.velocity > 60
    ]
    assert loud_snares == snares
    assert set(hats) <= set(_in_bar(arrangement, 0, CLOSED_HAT)) | set(_in_bar(arrangement, 0, 46))


def test_fills_on_the_last_bar_of_every_four_and_crash_after() -> None:
    arrangement = _drums("rock", bars=12)
    # bar 12 (index 11) is the ending (12 >= 8 bars), so bar 11 carries the fill into it
    fills = {3, 7, 10}
    for bar in range(12):
        toms = [
            n
            for n in arrangement.part("drums").notes
            if n.pitch in TOMS and bar * 4 <= n.start_ppq < bar * 4 + 4
        ]
        if bar in fills:
            assert toms and all(n.start_ppq >= bar * 4 + 2 for n in toms), bar
        else:
            assert not toms, bar
        assert (0.0 in _in_bar(arrangement, bar, CRASH)) == (bar % 4 == 0 or bar == 11), bar
    ending = [n for n in arrangement.part("drums").notes if n.start_ppq >= 44]
    assert {n.start_ppq for n in ending} == {44.0} and {KICK, CRASH} <= {n.pitch for n in ending}


def test_short_loops_have_no_ending() -> None:
    arrangement = _drums("rock", bars=4)
    last = [n for n in arrangement.part("drums").notes if n.start_ppq >= 12]
    assert len({n.start_ppq for n in last}) > 4  # the groove and a fill, not a final hit


def test_jazz_fills_every_eight_bars() -> None:
    arrangement = _drums("jazz", bars=24)
    fill_bars = {int(n.start_ppq // 4) for n in arrangement.part("drums").notes if n.pitch in TOMS}
    assert fill_bars == {7, 15, 22}  # phrase ends, then the bar before the ending


def test_jazz_ride_pattern_and_hihat_on_two_and_four() -> None:
    arrangement = _drums("jazz", bars=2)
    assert _in_bar(arrangement, 1, RIDE) == [0.0, 1.0, 1.5, 2.0, 3.0, 3.5]
    assert _in_bar(arrangement, 1, PEDAL_HAT) == [1.0, 3.0]


def test_jazz_default_swing_moves_the_skip_note() -> None:
    arrangement = generate(
        GenerationRequest(chords="C", style="jazz", bars=2, seed=1, humanize=0.0, parts=("drums",))
    )
    swing = STYLES["jazz"].swing
    assert _in_bar(arrangement, 1, RIDE)[2] == pytest.approx(1.5 + swing / 3)


@pytest.mark.parametrize("ts", [(4, 4), (3, 4), (5, 4)])
def test_electronic_four_on_the_floor(ts: tuple[int, int]) -> None:
    arrangement = _drums("electronic", ts, bars=2)
    assert _in_bar(arrangement, 1, KICK) == [float(b) for b in range(ts[0])]
    assert CLAP in {n.pitch for n in arrangement.part("drums").notes}


def test_every_meter_gets_a_groove() -> None:
    for num in range(1, 33):
        for den in (1, 2, 4, 8, 16, 32):
            arrangement = _drums("rock", (num, den), bars=2)
            assert _in_bar(arrangement, 1, KICK)[0] == 0.0, (num, den)


def test_drum_hits_are_short() -> None:
    notes: tuple[Note, ...] = _drums("electronic", (4, 4)).part("drums").notes
    assert max(n.duration_ppq for n in notes) <= 0.1
