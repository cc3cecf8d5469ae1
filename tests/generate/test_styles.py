"""Style table: complete, distinct, GM-valid."""

from __future__ import annotations

import pytest

from daemon.errors import StyleError
from daemon.generate import STYLES, style_names
from daemon.generate.bass import PATTERNS
from daemon.generate.drums import GROOVES
from daemon.generate.keys import COMPING
from daemon.generate.request import KNOWN_PARTS
from daemon.generate.styles import CHANNELS, DEFAULT_STYLE, get_style

REQUIRED = {"classical", "jazz", "rock", "blues", "electronic", "ambient"}


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


def test_styles_differ() -> None:
    for field in ("bpm", "bass_pattern", "keys_comping", "drum_groove"):
        assert len({getattr(s, field) for s in STYLES.values()}) >= 4, field


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
    assert CHANNELS["drums"] == 9
    assert len(set(CHANNELS.values())) == len(KNOWN_PARTS)


def test_get_style() -> None:
    assert get_style(None).name == DEFAULT_STYLE
    assert get_style(" Jazz ").name == "jazz"
    with pytest.raises(StyleError):
        get_style("polka")


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        STYLES["polka"] = STYLES["jazz"]  # type: ignore[index]
