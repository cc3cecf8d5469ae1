"""Style table: complete, distinct, GM-valid."""

from __future__ import annotations

import pytest

from ai_band.errors import StyleError
from ai_band.generate.pipeline import STYLES, style_names
from ai_band.generate.parts.bass import PATTERNS
from ai_band.generate.parts.drums import GROOVES
from ai_band.generate.parts.guitar import PATTERNS as GUITAR_PATTERNS
from ai_band.generate.parts.keys import COMPING
from ai_band.request import KNOWN_PARTS
from ai_band.generate.styles import ALIASES, DEFAULT_STYLE, get_style
from ai_band.model import PARTS

REQUIRED = {
    "classical",
    "jazz",
    "rock",
    "blues",
    "electronic",
    "ambient",
    "funk",
    "hiphop",
    "house",
    "bossa",
    "reggae",
    "latin",
    "metal",
    "country",
    "gospel",
    "waltz",
    "swing",
    "lofi",
}


def test_required_styles_present() -> None:
    assert REQUIRED <= set(style_names())
    assert style_names() == sorted(STYLES)
    assert DEFAULT_STYLE in STYLES


@pytest.mark.parametrize("name", sorted(STYLES))
def test_style_fields_valid(name: str) -> None:
    style = STYLES[name]
    assert style.name == name
    assert 20 <= style.bpm <= 400
    assert style.parts and set(style.parts) <= set(KNOWN_PARTS)
    assert len(set(style.parts)) == len(style.parts)
    assert 0 <= style.swing <= 1 and 0 <= style.humanize <= 1
    for part in KNOWN_PARTS:
        assert 0 <= style.program(part) <= 127
    assert style.drum_groove in GROOVES
    assert style.bass_pattern in PATTERNS
    assert style.keys_comping in COMPING
    assert style.keys_voicing in ("close", "open", "rootless")
    assert style.fill_every in (4, 8)
    assert 48 <= style.keys_center <= 84 and 28 <= style.bass_center <= 55
    assert style.ts[0] >= 1 and style.ts[1] in (1, 2, 4, 8, 16, 32)
    assert 0 <= style.energy <= 1 and 0 <= style.complexity <= 1
    assert style.swing_level in ("sub", "fine")
    for pattern in (style.bass_pattern_b,):
        assert pattern is None or pattern in PATTERNS
    assert style.keys_comping_b is None or style.keys_comping_b in COMPING
    assert style.guitar_pattern in GUITAR_PATTERNS
    assert style.guitar_pattern_b is None or style.guitar_pattern_b in GUITAR_PATTERNS
    assert style.arp_rate in ("16th", "8th", "triplet")
    assert style.arp_shape in ("up", "down", "updown", "broken")
    assert style.melody_rhythm in ("straight", "swing", "sparse", "syncopated", "lyrical")
    low, high = PARTS["melody"].pitch_range
    assert low <= style.melody_range[0] < style.melody_range[1] <= high
    assert style.melody_range[1] - style.melody_range[0] >= 15  # room for an arch
    assert set(style.intro_parts) <= set(KNOWN_PARTS) and style.intro_parts
    assert set(style.lift_parts) <= set(KNOWN_PARTS)
    assert style.ending in ("hit", "ring")
    for voice, ms in style.pocket:
        assert voice in set(KNOWN_PARTS) | {"kick", "snare", "hats"} and abs(ms) <= 15
    for (num, den), groups in style.groupings:
        assert sum(groups) == num
    for velocity in (
        style.drums_velocity,
        style.bass_velocity,
        style.keys_velocity,
        style.pad_velocity,
        style.melody_velocity,
        style.arp_velocity,
        style.guitar_velocity,
        style.strings_velocity,
    ):
        assert 1 <= velocity <= 127
    channels = [style.channel(p) for p in KNOWN_PARTS]
    assert len(set(channels)) == len(channels) and style.channel("drums") == 9


def test_styles_differ() -> None:
    for field in ("bpm", "bass_pattern", "keys_comping", "drum_groove"):
        assert len({getattr(s, field) for s in STYLES.values()}) >= 4, field
    # every style has its own groove, and no two styles share groove, bass and comping
    assert len({s.drum_groove for s in STYLES.values()}) == len(STYLES)
    assert len({(s.bass_pattern, s.keys_comping, s.guitar_pattern) for s in STYLES.values()}) >= 16


@pytest.mark.parametrize(
    ("style", "ts"), [("waltz", (3, 4)), ("gospel", (12, 8)), ("rock", (4, 4)), ("jazz", (4, 4))]
)
def test_idiomatic_meters(style: str, ts: tuple[int, int]) -> None:
    assert STYLES[style].ts == ts


def test_ranges_table_covers_every_part() -> None:
    assert tuple(PARTS) == KNOWN_PARTS
    assert PARTS["guitar"].pitch_range == (40, 76)  # E2..E5
    assert PARTS["bass"].pitch_range == (28, 55)  # E1..G3
    for spec in PARTS.values():
        low, high = spec.pitch_range
        assert 0 <= low < high <= 127


def test_aliases() -> None:
    for alias, name in ALIASES.items():
        assert get_style(alias).name == name
    assert get_style("Bossa  Nova").name == "bossa"
    assert get_style("salsa").name == "latin"
    assert get_style("Lo-Fi").name == "lofi"


@pytest.mark.parametrize(
    ("style", "bass", "keys"),
    [
        ("jazz", 32, 0),
        ("rock", 34, 18),
        ("electronic", 38, 90),
        ("ambient", 35, 89),
        ("classical", 43, 0),
        ("blues", 33, 4),
    ],
)
def test_gm_programs(style: str, bass: int, keys: int) -> None:
    assert (STYLES[style].program("bass"), STYLES[style].program("keys")) == (bass, keys)


def test_channels_distinct_and_drums_on_nine() -> None:
    assert PARTS["drums"].channel == 9
    assert len({spec.channel for spec in PARTS.values()}) == len(KNOWN_PARTS)


def test_programs_default_to_the_parts_table() -> None:
    """A style that names no programs plays each part's GM default from ai_band.model.PARTS."""
    from ai_band.generate.styles import Style

    bare = Style(
        name="bare", description="", bpm=100.0, parts=("drums",), swing=0.0, humanize=0.0,
        drum_groove="rock", bass_pattern="root_eighths", keys_comping="eighths", keys_voicing="close",
    )
    # Standard kit, Finger Bass, Grand Piano, Warm Pad, Flute, Saw Lead, Clean Guitar, Strings 1
    assert [bare.program(p) for p in KNOWN_PARTS] == [0, 33, 0, 89, 73, 81, 27, 48]
    assert STYLES["rock"].program("drums") == 16  # the style's own choice: Power kit
    with pytest.raises(KeyError):
        bare.program("tuba")


def test_get_style() -> None:
    assert get_style(None).name == DEFAULT_STYLE
    assert get_style(" Jazz ").name == "jazz"
    with pytest.raises(StyleError):
        get_style("polka")


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        STYLES["polka"] = STYLES["jazz"]  # type: ignore[index]
