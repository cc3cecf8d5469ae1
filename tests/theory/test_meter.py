"""Beat grouping for any time signature."""

from __future__ import annotations

import pytest

from ai_band.theory.meter import Meter


@pytest.mark.parametrize(
    ("ts", "starts", "lengths", "strengths"),
    [
        ((4, 4), (0, 1, 2, 3), (1, 1, 1, 1), (2, 0, 1, 0)),
        ((3, 4), (0, 1, 2), (1, 1, 1), (2, 0, 0)),
        ((2, 4), (0, 1), (1, 1), (2, 0)),
        ((5, 4), (0, 1, 2, 3, 4), (1, 1, 1, 1, 1), (2, 0, 0, 1, 0)),
        ((2, 2), (0, 2), (2, 2), (2, 0)),
        ((6, 8), (0, 1.5), (1.5, 1.5), (2, 0)),
        ((12, 8), (0, 1.5, 3, 4.5), (1.5,) * 4, (2, 0, 1, 0)),
        ((7, 8), (0, 1, 2), (1, 1, 1.5), (2, 0, 0)),
        ((5, 8), (0, 1), (1, 1.5), (2, 0)),
        ((11, 16), (0, 1, 2), (1, 1, 0.75), (2, 0, 0)),
        ((32, 32), (0, 1, 2, 3), (1, 1, 1, 1), (2, 0, 1, 0)),
        ((1, 4), (0,), (1,), (2,)),
        ((1, 1), (0,), (4,), (2,)),
        ((1, 32), (0,), (0.125,), (2,)),
    ],
)
def test_beat_grouping(ts, starts, lengths, strengths) -> None:
    meter = Meter.from_ts(*ts)
    assert tuple(b.start for b in meter.beats) == starts
    assert tuple(b.length for b in meter.beats) == lengths
    assert tuple(b.strength for b in meter.beats) == strengths
    assert meter.bar_length == ts[0] * 4 / ts[1]


@pytest.mark.parametrize("num", range(1, 33))
@pytest.mark.parametrize("den", [1, 2, 4, 8, 16, 32])
def test_beats_tile_the_bar(num: int, den: int) -> None:
    meter = Meter.from_ts(num, den)
    assert meter.beats[0].start == 0.0
    for a, b in zip(meter.beats, meter.beats[1:]):
        assert b.start == pytest.approx(a.end)
    assert meter.beats[-1].end == pytest.approx(meter.bar_length)
    assert sum(b.units for b in meter.beats) == num


def test_subdivisions_are_halves_or_thirds() -> None:
    six_eight = Meter.from_ts(6, 8)
    assert six_eight.beats[1].subdivisions() == (1.5, 2.0, 2.5)
    assert six_eight.beats[0].compound
    four = Meter.from_ts(4, 4)
    assert four.beats[2].subdivisions() == (2.0, 2.5)
    assert four.beats[2].fine() == (2.0, 2.25, 2.5, 2.75)


def test_beat_at() -> None:
    meter = Meter.from_ts(7, 8)
    assert meter.beat_at(0.0).index == 0
    assert meter.beat_at(1.99).index == 1
    assert meter.beat_at(2.0).index == 2
    assert meter.beat_at(3.4).index == 2


def test_bad_time_signature() -> None:
    with pytest.raises(ValueError):
        Meter.from_ts(0, 4)


def test_accents_follow_the_metric_hierarchy() -> None:
    four = Meter.from_ts(4, 4)
    down, secondary, back, off, fine = (four.accent(t) for t in (0.0, 2.0, 1.0, 0.5, 0.25))
    assert down > secondary > back > off > fine
    six = Meter.from_ts(6, 8)
    assert six.accent(0.0) > six.accent(1.5) > six.accent(0.5) > six.accent(0.25)


def test_style_grouping_overrides_the_default() -> None:
    meter = Meter.from_ts(7, 8, (3, 2, 2))
    assert tuple(b.start for b in meter.beats) == (0.0, 1.5, 2.5)
    assert meter.beats[0].compound and not meter.beats[1].compound
    assert (
        Meter.from_ts(7, 8, (3, 3)).beats == Meter.from_ts(7, 8).beats
    )  # does not add up: ignored


def test_metal_plays_seven_eight_as_three_two_two() -> None:
    from ai_band.generate.pipeline import generate
    from ai_band.request import GenerationRequest

    arrangement = generate(
        GenerationRequest(
            chords="E5",
            style="metal",
            ts=(7, 8),
            seed=1,
            humanize=0.0,
            bars=2,
            parts=("drums",),
            energy=0.5,
        )
    )
    snares = sorted(
        n.start_ppq for n in arrangement.part("drums").notes if n.pitch == 38 and n.velocity > 80
    )
    assert snares == [1.5, 2.5, 5.0, 6.0]  # backbeats on the 2 and the 2 of 3+2+2
