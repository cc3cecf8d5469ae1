"""``[sync]`` and the latency offsets in the config: validated once, every problem named."""

from __future__ import annotations

import pytest

from ai_band.config import load_config
from ai_band.config.schema import parse_part_offsets
from ai_band.errors import ConfigError


def test_defaults_follow_osc_and_send_clock():
    config = load_config(None)
    assert config.sync.source == "osc"
    assert config.sync.clock_out is True
    assert config.playback.offset_ms == 0.0 and config.playback.part_offsets_ms == ()


def test_every_bad_value_is_reported_together():
    with pytest.raises(ConfigError) as caught:
        load_config(None, overrides={"sync": {"source": "gps", "bpm": 1000.0, "ts_den": 3},
                                     "playback": {"offset_ms": 150.0, "part_offsets_ms": ["bass=x", "kazoo=1"]}})
    text = str(caught.value)
    for fragment in ("sync.source", "gps", "sync.bpm", "sync.ts_den", "playback.offset_ms", "part_offsets_ms"):
        assert fragment in text, text


def test_part_offsets_parse_to_ms_by_part():
    assert parse_part_offsets(("bass=-4.5", " drums = 2")) == {"bass": -4.5, "drums": 2.0}
    for bad in (("bass",), ("bass=1", "bass=2"), ("bass=101",), ("bass=nan",), ("kazoo=1",)):
        with pytest.raises(ValueError):
            parse_part_offsets(bad)


def test_environment_and_flag_choose_the_source(monkeypatch):
    monkeypatch.setenv("AI_BAND_SYNC_SOURCE", "internal")
    assert load_config(None).sync.source == "internal"
