"""Configuration: the shipped file equals the defaults; every mistake reported at once."""

from pathlib import Path

import pytest

from ai_band.cli import build_parser
from ai_band.cli.run import _run_overrides
from ai_band.config import Config, build_config, config_as_dict, load_config
from ai_band.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_config_documents_every_default():
    shipped = load_config(ROOT / "config" / "ai-band.toml")
    assert shipped == Config()
    text = (ROOT / "config" / "ai-band.toml").read_text()
    for section, values in config_as_dict(Config()).items():
        assert f"[{section}]" in text
        for key in values:
            assert f"\n{key} = " in text, f"{section}.{key} is not documented"


def test_all_errors_reported_together():
    with pytest.raises(ConfigError) as info:
        build_config({"osc": {"prot": 1, "port": 70000}, "midy": {}, "midi": {"api": "winmm"}})
    errors = info.value.errors
    assert len(errors) == 4
    joined = "\n".join(errors)
    assert "did you mean [midi]" in joined
    assert "did you mean 'port'" in joined
    assert "osc.port must be in 0..65535" in joined
    assert "midi.api must be one of" in joined


def test_flags_override_file(tmp_path):
    cfg_file = tmp_path / "a.toml"
    cfg_file.write_text('[osc]\nport = 9999\nhost = "127.0.0.1"\n[daemon]\nname = "studio"\n')
    args = build_parser().parse_args(
        ["run", "--config", str(cfg_file), "--osc-port", "0", "--zeroconf-interfaces", "127.0.0.1"]
    )
    cfg = load_config(args.config, _run_overrides(args))
    assert cfg.osc.port == 0 and cfg.osc.host == "127.0.0.1" and cfg.daemon.name == "studio"
    assert cfg.zeroconf.interfaces == ("127.0.0.1",)
    args = build_parser().parse_args(["run", "--zeroconf-interfaces", "none"])
    assert load_config(None, _run_overrides(args)).zeroconf.enabled is False


def test_unreadable_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[osc\nport = 1")
    with pytest.raises(ConfigError):
        load_config(bad)
