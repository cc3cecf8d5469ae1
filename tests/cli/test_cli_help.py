"""``--help`` of every command: every option's default shown, nothing stale, and fast to build."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest
from clirun import ROOT
from clirun import run_cli as cli

from ai_band.cli import COMMANDS, build_parser


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_module_registers_its_command():
    assert sorted(_subparsers()) == sorted(c.__name__.rsplit(".", 1)[1] for c in COMMANDS)


@pytest.mark.parametrize("command", sorted(_subparsers()))
def test_help_shows_every_default(command):
    result = cli(command, "--help")
    assert result.returncode == 0 and result.stderr == ""
    printed = " ".join(result.stdout.split())
    assert "--list-styles" not in printed and "${" not in printed
    parser = _subparsers()[command]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.nargs == 0 or action.required:
            continue  # -h, on/off switches, required options have no default
        text = " ".join(parser._get_formatter()._expand_help(action).split())
        assert "(default: " in text, f"{command} {action.option_strings}: {text}"
        assert "".join(text.split()) in "".join(printed.split())  # as printed, wrapped at any space or hyphen


def test_defaults_in_help_are_the_shipped_ones():
    text = " ".join(cli("run", "--help").stdout.split())
    assert "(default: [osc] port, 9100)" in text and "(default: [daemon] log_level, info)" in text
    assert "[render] sample_rate, 44100" in " ".join(cli("generate", "--help").stdout.split())


def test_building_the_parser_loads_no_heavy_module():
    code = ("import sys; from ai_band.cli import build_parser; build_parser().format_help(); "
            "print(__import__('json').dumps(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    loaded = set(json.loads(result.stdout))
    heavy = {"numpy", "mido", "jack", "asyncio", "importlib.metadata", "tomllib", "ai_band.config.schema",
             "ai_band.request", "ai_band.generate.pipeline", "ai_band.generate.styles", "pythonosc", "typing"}
    assert not loaded & heavy


def test_version():
    from ai_band import __version__

    result = cli("--version")
    assert (result.returncode, result.stdout) == (0, f"ai-band {__version__}\n")


def test_styles_lists_each_style_with_tempo_meter_and_feel():
    from ai_band.generate.styles import STYLES, style_names

    result = cli("styles")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0].rstrip("*") for line in lines[:-1]] == style_names()
    jazz = next(line for line in lines if line.startswith("jazz "))
    assert f"{STYLES['jazz'].bpm:g} bpm" in jazz and "4/4" in jazz and "swing 0.55 (8ths)" in jazz
    assert "12/8" in next(line for line in lines if line.startswith("gospel "))
    assert "straight" in next(line for line in lines if line.startswith("rock"))
    rows = json.loads(cli("styles", "--json").stdout)
    assert [r["name"] for r in rows] == style_names()
    waltz = next(r for r in rows if r["name"] == "waltz")
    assert (waltz["bpm"], waltz["ts"], waltz["feel"]) == (STYLES["waltz"].bpm, "3/4", "straight")
