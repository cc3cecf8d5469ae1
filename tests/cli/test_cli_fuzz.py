"""The argument parser fuzzed with hypothesis: random flags, values, config files and AI_BAND_* variables.

In-process ``main(argv)``: whatever comes in, the exit code is 0, 1 or 2, no
exception escapes, and a failure ends in one ``ai-band: error: ...`` line.
Output folders stay under the test's tmp_path; no audio is rendered (slow) and
no daemon is started (``run`` is fuzzed only up to its config check).
"""

from __future__ import annotations

import itertools
import json
import logging
import os

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ai_band.cli import main
from ai_band.config.schema import SECTIONS

REQUEST_FLAGS = ["--chords", "--style", "--key", "--bpm", "--bars", "--ts", "--parts", "--seed", "--humanize",
                 "--swing", "--prompt", "--energy", "--complexity", "--structure", "--sections", "--duration",
                 "--programs", "--channels", "--render", "--stems", "--sample-rate", "--bit-depth", "--id"]
DAEMON_FLAGS = ["--host", "--port", "--timeout", "--json", "--config"]
FLAGS = {
    "generate": [*REQUEST_FLAGS, "--job-id", "--force", "--config", "--log-level", "-o", "--help", "--list-styles"],
    "styles": ["--json", "--help", "-x"],
    "status": [*DAEMON_FLAGS, "--help"],
    "jobs": [*DAEMON_FLAGS, "--help"],
}
WORDS = ["C Am F G", "| Dm7 | G7 | Cmaj7 |", "| C | Q7 |", "I vi ii V7", "N.C.", "%", "jazz", "rock", "bossa nova",
         "nope", "C", "Am", "F#m", "D dorian", "H", "120", "0", "-1", "1e9", "nan", "inf", "4/4", "7/8", "4/5",
         "0/4", "drums,bass", "kazoo", "drums,drums", "1", "0.5", "2", "verse chorus verse", "AABA",
         '{"verse": "C G", "chorus": "F C"}', '{"x": 1}', "[]", "bass=33", "bass=200", "keys:4", "mid", "mid,mp3",
         "44100", "48000", "22050", "16", "24", "12", "debug", "loud", "", " ", "--", "-", "--bpm", "=", "\x00",
         "sad slow jazz ballad in D minor", "upbeat 128 bpm house", "ünïcödé"]
#: Values -o, --host, --port and --timeout may take: all safe (tmp folders, loopback, short waits).
SAFE = {
    "--host": ["127.0.0.1", "localhost", "::1"],
    "--port": ["1", "0", "65536", "x", "9", "-5"],
    "--timeout": ["0.1", "0", "-1", "x", "1e-9", "nan"],
}
KEYS = sorted({key for cls in SECTIONS.values() for key in cls.__annotations__})

toml_scalars = st.one_of(st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False),
                         st.text(max_size=12), st.sampled_from(WORDS))
toml_values = st.one_of(toml_scalars, st.lists(st.text(max_size=6), max_size=3))
config_tables = st.dictionaries(st.sampled_from([*SECTIONS, "oscc", "Render"]),
                                st.dictionaries(st.sampled_from([*KEYS, "prot", "x"]), toml_values, max_size=4),
                                max_size=4)
env_vars = st.dictionaries(st.sampled_from(["AI_BAND_OSC_PORT", "AI_BAND_RENDER_BIT_DEPTH", "AI_BAND_DAEMON_NAME",
                                            "AI_BAND_ZEROCONF_ENABLED", "AI_BAND_MIDI_PARTS", "AI_BAND_OCS_PORT",
                                            "AI_BAND_PLAYBACK_SPIN_MS", "AI_BAND_"]),
                           st.one_of(st.sampled_from(WORDS), st.text(max_size=8)).filter(lambda v: "\x00" not in v),
                           max_size=3)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    return json.dumps(value)


def to_toml(tables: dict[str, dict[str, object]]) -> str:
    """A TOML document of ``tables`` (strings JSON-escaped, which TOML mostly accepts; the rest is a syntax error)."""
    return "".join(f"[{name}]\n" + "".join(f"{key} = {_toml_value(v)}\n" for key, v in table.items())
                   for name, table in tables.items())


@st.composite
def argv(draw: st.DrawFn) -> tuple[list[str], dict[str, object] | str | None, bool]:
    """(arguments, config file content or None, whether ``-o`` is appended)."""
    command = draw(st.sampled_from([*FLAGS, "run", "bogus", ""]))
    args = [command] if command else []
    flags = FLAGS.get(command, ["--osc-port", "--midi-api", "--config", "--name", "--log-level"])
    for _ in range(draw(st.integers(0, 6))):
        flag = draw(st.sampled_from(flags))
        args.append(flag)
        if flag in SAFE:
            args.append(draw(st.sampled_from(SAFE[flag])))
        elif flag in ("-o", "--config"):
            args.append("{" + flag.strip("-") + "}")
        elif flag not in ("--force", "--json", "--help") and draw(st.booleans() | st.just(True)):
            args.append(draw(st.one_of(st.sampled_from(WORDS), st.text(max_size=10))))
    config = draw(st.one_of(st.none(), config_tables, st.text(max_size=40)))
    return args, config, draw(st.booleans() | st.just(True))


#: Plausible values per ``generate`` flag, so that many draws make it past validation and write files.
PLAUSIBLE = {
    "--chords": ["C Am F G", "| Dm7 G7 | Cmaj7 |", "I IV V I", "| Am | % | F | G |"], "--style": ["jazz", "Rock", "lo-fi"],
    "--key": ["C", "Am", "Eb"], "--bpm": ["60", "120.5", "200"], "--bars": ["1", "4", "9"], "--ts": ["3/4", "6/8", "5/4"],
    "--parts": ["drums,bass", "keys", "pad,arp,melody"], "--seed": ["0", "7", "2147483647"], "--humanize": ["0", "1"],
    "--swing": ["0.3"], "--prompt": ["happy reggae", "dark metal 170 bpm"], "--energy": ["0.9"], "--complexity": ["0.1"],
    "--structure": ["intro verse outro", "AABA"], "--sections": ['{"intro": "C", "verse": "Am F"}'],
    "--duration": ["5", "20"], "--programs": ["bass=33"], "--channels": ["bass=2,keys=3"], "--render": ["mid"],
    "--stems": ["0", "1"], "--sample-rate": ["48000"], "--bit-depth": ["24"], "--id": ["req-1"],
    "--job-id": ["a", "b"], "--log-level": ["error"],
}


@st.composite
def generate_argv(draw: st.DrawFn) -> tuple[list[str], dict[str, object] | str | None, bool]:
    """``generate`` with mostly plausible values and now and then a wrong one."""
    args = ["generate"]
    for flag in draw(st.lists(st.sampled_from(sorted(PLAUSIBLE)), max_size=5, unique=True)):
        wrong = draw(st.integers(0, 9)) == 0
        args += [flag, draw(st.sampled_from(WORDS)) if wrong else draw(st.sampled_from(PLAUSIBLE[flag]))]
    config = draw(st.one_of(st.none(), st.none(), config_tables))
    return args, config, True


@pytest.fixture
def keep_logging():
    """``generate`` sets up logging (as the console script does); put the root logger back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(case=st.one_of(argv(), generate_argv()), environ=env_vars)
def test_any_command_line_ends_in_0_1_or_2_without_a_traceback(tmp_path, capsys, keep_logging, case, environ):
    args, config, with_output = case
    n = next(COUNTER)
    out = tmp_path / f"out{n}"
    cfg = tmp_path / f"cfg{n}.toml"
    if config is not None:
        cfg.write_text(to_toml(config) if isinstance(config, dict) else config, encoding="utf-8")
    args = [a.replace("{o}", str(out)).replace("{config}", str(cfg)) for a in args]
    if args and args[0] == "generate" and with_output:
        args += ["-o", str(out)]
    if args and args[0] in ("status", "jobs"):
        args[1:1] = ["--timeout", "0.1", "--port", "9"]  # a closed loopback port unless the draw gives another
    if args and args[0] == "run":
        args += ["--config", str(cfg), "--osc-port", "70000"]  # always invalid: never starts a daemon
    saved = {k: v for k, v in os.environ.items() if k.startswith("AI_BAND_")}
    os.environ.update(environ)
    try:
        code = main(args)
    finally:
        for key in environ:
            os.environ.pop(key, None)
        os.environ.update(saved)
    captured = capsys.readouterr()
    event(f"{args[0] if args else '(none)'} exit {code}")
    assert code in (0, 1, 2), (args, captured.err)
    assert "Traceback" not in captured.err and "internal error" not in captured.err, (args, captured.err)
    if code != 0:
        last = captured.err.strip().splitlines()[-1]
        assert last.startswith("ai-band: error: "), (args, captured.err)
    if args and args[0] == "run":
        assert code == 2


COUNTER = itertools.count()
