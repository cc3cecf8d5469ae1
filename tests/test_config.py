"""Configuration: one shipped default file, mirrored by config/ai-band.toml; layers; every mistake at once."""

import dataclasses
import tomllib
from pathlib import Path

import pytest

from ai_band.cli import build_parser
from ai_band.cli.run import _run_overrides
from ai_band.config import Config, build_config, config_as_dict, default, default_text, load_config
from ai_band.config.schema import SECTIONS
from ai_band.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
USER_FILE = ROOT / "config" / "ai-band.toml"


def test_config_ai_band_toml_mirrors_the_shipped_defaults_exactly():
    assert USER_FILE.read_text() == default_text()  # comments included
    assert default_text() == (ROOT / "ai_band" / "config" / "default.toml").read_text()


def test_the_code_takes_every_default_from_the_shipped_file():
    shipped = tomllib.loads(default_text())
    assert config_as_dict(Config()) == shipped
    assert list(SECTIONS) == list(shipped)
    for name, cls in SECTIONS.items():
        assert [f.name for f in dataclasses.fields(cls)] == list(shipped[name])
    assert load_config(USER_FILE, environ={}) == Config()
    assert default("osc", "port") == Config().osc.port == 9100


def test_package_data_names_the_default_file():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["package-data"]["ai_band.config"] == ["default.toml"]


def test_all_errors_reported_together():
    with pytest.raises(ConfigError) as info:
        build_config({"osc": {"prot": 1, "port": 70000}, "midy": {}, "midi": {"api": "winmm"}})
    errors = info.value.errors
    assert len(errors) == 4
    joined = "\n".join(errors)
    assert "did you mean [midi]" in joined
    assert "did you mean 'port'" in joined
    assert "osc.port must be in 0..65535" in joined
    assert "midi.api must be one of auto, alsa, jack, coremidi" in joined
    assert "\n" not in str(info.value)  # the CLI prints it as one line


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("bit_depth", 12, "render.bit_depth must be one of 16, 24, got 12"),
    ("sample_rate", 22050, "render.sample_rate must be one of 44100, 48000, got 22050"),
    ("engine", "timidity", "render.engine must be one of auto, fluidsynth, numpy, got 'timidity'"),
    ("tail_s", "2", "render.tail_s must be a finite number, got '2'"),
    ("workers", 1.5, "render.workers must be an integer, got 1.5"),
])
def test_out_of_set_and_mistyped_values_name_what_is_allowed(tmp_path, key, value, expected):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[render]\n{key} = {value!r}\n".replace("'", '"'))
    with pytest.raises(ConfigError) as info:
        load_config(cfg, environ={})
    assert info.value.errors == [f"{cfg}: {expected}"]


def test_environment_overrides_the_file_and_flags_override_both(tmp_path):
    cfg_file = tmp_path / "a.toml"
    cfg_file.write_text('[osc]\nport = 9999\nhost = "127.0.0.1"\n[daemon]\nname = "studio"\n')
    env = {"AI_BAND_OSC_PORT": "9200", "AI_BAND_DAEMON_NAME": "from-env", "AI_BAND_ZEROCONF_ENABLED": "no",
           "AI_BAND_MIDI_PARTS": "drums, bass", "AI_BAND_PLAYBACK_LATE_DROP_MS": "30", "PATH": "/bin"}
    cfg = load_config(cfg_file, environ=env)
    assert (cfg.osc.port, cfg.osc.host, cfg.daemon.name) == (9200, "127.0.0.1", "from-env")
    assert cfg.zeroconf.enabled is False and cfg.midi.parts == ("drums", "bass")
    assert cfg.playback.late_drop_ms == 30.0
    args = build_parser().parse_args(["run", "--config", str(cfg_file), "--osc-port", "0", "--name", "flag"])
    cfg = load_config(args.config, _run_overrides(args), environ=env)
    assert (cfg.osc.port, cfg.daemon.name) == (0, "flag")


def test_flags_override_file(tmp_path):
    cfg_file = tmp_path / "a.toml"
    cfg_file.write_text('[osc]\nport = 9999\nhost = "127.0.0.1"\n[daemon]\nname = "studio"\n')
    args = build_parser().parse_args(
        ["run", "--config", str(cfg_file), "--osc-port", "0", "--zeroconf-interfaces", "127.0.0.1"]
    )
    cfg = load_config(args.config, _run_overrides(args), environ={})
    assert cfg.osc.port == 0 and cfg.osc.host == "127.0.0.1" and cfg.daemon.name == "studio"
    assert cfg.zeroconf.interfaces == ("127.0.0.1",)
    args = build_parser().parse_args(["run", "--zeroconf-interfaces", "none"])
    assert load_config(None, _run_overrides(args), environ={}).zeroconf.enabled is False


def test_bad_environment_variables_are_named_with_every_other_error(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[render]\nbit_depth = 12\n")
    env = {"AI_BAND_OSC_PORT": "ninety", "AI_BAND_OCS_HOST": "127.0.0.1", "AI_BAND_ZEROCONF_ENABLED": "maybe",
           "AI_BAND_PLAYBACK_SPIN_MS": "99"}
    with pytest.raises(ConfigError) as info:
        load_config(cfg, environ=env)
    assert sorted(info.value.errors) == sorted([
        "environment AI_BAND_OCS_HOST: no such setting; did you mean 'AI_BAND_OSC_HOST'?",
        "environment AI_BAND_OSC_PORT: must be an integer, got 'ninety'",
        "environment AI_BAND_ZEROCONF_ENABLED: must be true or false (1/0, yes/no, on/off), got 'maybe'",
        "environment AI_BAND_PLAYBACK_SPIN_MS: playback.spin_ms must be in 0..20, got 99.0",
        f"{cfg}: render.bit_depth must be one of 16, 24, got 12",
    ])


def test_unreadable_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read: No such file or directory"):
        load_config(tmp_path / "missing.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[osc\nport = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, environ={})
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe[osc]")
    with pytest.raises(ConfigError):
        load_config(binary, environ={})
    not_a_table = tmp_path / "flat.toml"
    not_a_table.write_text("osc = 5\n")
    with pytest.raises(ConfigError, match=r"\[osc\] must be a table"):
        load_config(not_a_table, environ={"AI_BAND_OSC_PORT": "9200"})


def test_osc_packet_caps_are_range_checked_together():
    with pytest.raises(ConfigError) as info:
        build_config({"osc": {"max_args": 2, "max_bundle_messages": 0, "max_scheduled_messages": -1,
                              "max_schedule_ahead_s": 1e9}})
    assert info.value.errors == [
        "config: osc.max_args must be in 8..16384, got 2",
        "config: osc.max_bundle_messages must be in 1..4096, got 0",
        "config: osc.max_scheduled_messages must be in 0..65536, got -1",
        "config: osc.max_schedule_ahead_s must be in 0..3600, got 1000000000.0",
    ]
    cfg = build_config({"osc": {"max_args": 16, "max_schedule_ahead_s": 2}})
    assert (cfg.osc.max_args, cfg.osc.max_schedule_ahead_s, cfg.osc.max_bundle_messages) == (16, 2.0, 64)


def test_the_token_never_shows_in_a_repr_or_the_dumped_config() -> None:
    from ai_band.config import config_as_dict, load_config

    config = load_config(None, overrides={"osc": {"token": "s3cret-token-value"}})
    assert config.osc.token == "s3cret-token-value"
    assert "s3cret" not in repr(config)
    assert config_as_dict(config)["osc"]["token"] == "***"
    assert config_as_dict(load_config(None))["osc"]["token"] == ""
