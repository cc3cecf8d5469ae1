"""Every bad input to every command: one line ``ai-band: error: ...``, exit 2 (1 at run time), no traceback."""

from __future__ import annotations

import json
import socket
import stat

import pytest
from clirun import error_line
from clirun import run_cli as cli

CHORDS = ("--chords", "C Am F G")

#: (argv, exit code, fragments the one error line must hold); {tmp} is a fresh folder.
BAD_INPUT = [
    (["generate", "--chords", "| C | Q7 |", "-o", "{tmp}"], 2, ["--chords", "'Q7'", "bar 2"]),
    (["generate", "--style", "nope", "-o", "{tmp}"], 2, ["--style", "unknown style 'nope'", "jazz", "rock"]),
    (["generate", "--bpm", "999", "-o", "{tmp}"], 2, ["--bpm", "20..400", "999"]),
    (["generate", "--bpm", "fast", "-o", "{tmp}"], 2, ["--bpm", "expected a number", "'fast'"]),
    (["generate", "--ts", "4/5", "-o", "{tmp}"], 2, ["--ts", "denominator", "(1, 2, 4, 8, 16, 32)"]),
    (["generate", "--parts", "drums,kazoo", "-o", "{tmp}"], 2, ["--parts", "'kazoo'", "known: drums, bass"]),
    (["generate", "--sample-rate", "22050", "-o", "{tmp}"], 2, ["--sample-rate", "one of 44100, 48000"]),
    (["generate", "--bit-depth", "12", "-o", "{tmp}"], 2, ["--bit-depth", "one of 16, 24", "12"]),
    (["generate", "--render", "mp3", "-o", "{tmp}"], 2, ["--render", "'mp3'", "mid, wav, flac"]),
    (["generate", "--programs", "bass=200", "-o", "{tmp}"], 2, ["--programs (bass)", "0..127"]),
    (["generate", "--channels", "bass=17", "-o", "{tmp}"], 2, ["--channels (bass)", "1..16"]),
    (["generate", "--sections", "{{not json", "-o", "{tmp}"], 2, ["--sections", "JSON object"]),
    (["generate", "--structure", "verse", "--sections", '{{"chorus": "C"}}', "-o", "{tmp}"], 2,
     ["--sections", "'chorus' is not in the structure"]),
    (["generate", "--bars", "8", "--duration", "10", "-o", "{tmp}"], 2, ["--duration", "bars or duration"]),
    (["generate", "--bars", "9999", "-o", "{tmp}"], 2, ["--bars", "1..512"]),
    (["generate", "--key", "H#", "-o", "{tmp}"], 2, ["--key"]),
    (["generate", *CHORDS, "-o", "/proc/foo"], 2, ["-o /proc/foo", "cannot create"]),
    (["generate", *CHORDS, "-o", "/etc/passwd"], 2, ["-o /etc/passwd", "/etc/passwd is not a folder"]),
    (["generate", *CHORDS, "-o", "/dev/null/x"], 2, ["-o /dev/null/x", "/dev/null is not a folder"]),
    (["generate", *CHORDS, "-o", "{tmp}", "--job-id", "../up"], 2, ["--job-id", "plain folder name", "'../up'"]),
    (["generate", *CHORDS], 2, ["required", "-o/--output"]),
    (["generate", *CHORDS, "-o", "{tmp}", "--log-level", "loud"], 2, ["--log-level", "'loud'", "debug"]),
    (["generate", *CHORDS, "-o", "{tmp}", "--list-styles"], 2, ["unrecognized arguments: --list-styles"]),
    (["generate", *CHORDS, "-o", "{tmp}", "--config", "{tmp}/missing.toml"], 2,
     ["missing.toml: cannot read: No such file or directory"]),
    (["run", "--midi-api", "winmm"], 2, ["--midi-api", "'winmm'", "'auto', 'alsa', 'jack', 'coremidi'"]),
    (["run", "--osc-port", "70000"], 2, ["command line: osc.port must be in 0..65535, got 70000"]),
    (["run", "--osc-port", "x"], 2, ["--osc-port", "'x'"]),
    (["run", "--osc-host", "not-an-ip"], 2, ["osc.host must be an IP address", "'not-an-ip'"]),
    (["status", "--port", "0"], 2, ["--port", "1..65535"]),
    (["status", "--timeout", "-1"], 2, ["--timeout", "0..3600"]),
    (["jobs", "--host", "bad host name.invalid."], 2, ["--host", "cannot resolve"]),
    (["styles", "--color"], 2, ["unrecognized arguments: --color"]),
    (["dance"], 2, ["invalid choice: 'dance'", "run", "generate", "styles", "status", "jobs"]),
    ([], 2, ["required: COMMAND"]),
]


@pytest.mark.parametrize(("argv", "code", "fragments"), BAD_INPUT, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_input_is_one_error_line(tmp_path, argv, code, fragments):
    result = cli(*(a.format(tmp=tmp_path) for a in argv))
    assert result.returncode == code, result.stderr
    line = error_line(result)
    for fragment in fragments:
        assert fragment in line, line
    if argv and argv[0] == "generate":
        assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("where", ["file", "environment"])
def test_bad_config_names_the_allowed_sets_and_nothing_is_written(tmp_path, where):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[render]\nbit_depth = 12\nsample_rate = 22050\n" if where == "file" else "")
    env = {"AI_BAND_RENDER_BIT_DEPTH": "12", "AI_BAND_RENDER_SAMPLE_RATE": "22050"} if where == "environment" else {}
    out = tmp_path / "out"
    for argv in (["generate", *CHORDS, "-o", str(out), "--config", str(cfg)],  # MIDI only: checked all the same
                 ["generate", *CHORDS, "-o", str(out), "--config", str(cfg), "--render", "wav"],
                 ["run", "--config", str(cfg), "--osc-port", "0"],
                 ["status", "--config", str(cfg)],
                 ["jobs", "--config", str(cfg)]):
        result = cli(*argv, env=env)
        assert result.returncode == 2, (argv, result.stderr)
        line = error_line(result)
        assert "bit_depth must be one of 16, 24, got 12" in line
        assert "sample_rate must be one of 44100, 48000, got 22050" in line
        assert ("environment AI_BAND_RENDER_BIT_DEPTH" in line) == (where == "environment")
        assert not out.exists()


def test_environment_variable_that_does_not_parse_is_named(tmp_path):
    result = cli("generate", *CHORDS, "-o", str(tmp_path), env={"AI_BAND_OSC_PORT": "ninety"})
    assert result.returncode == 2
    assert error_line(result) == ("ai-band: error: invalid configuration: environment AI_BAND_OSC_PORT: "
                                  "must be an integer, got 'ninety'")


def test_existing_job_id_is_refused_unless_force(tmp_path):
    first = cli("generate", *CHORDS, "--seed", "1", "-o", str(tmp_path), "--job-id", "take")
    assert first.returncode == 0, first.stderr
    before = (tmp_path / "take" / "full.mid").read_bytes()
    again = cli("generate", *CHORDS, "--seed", "2", "-o", str(tmp_path), "--job-id", "take")
    assert again.returncode == 2
    assert "job folder" in error_line(again) and "--force" in again.stderr
    assert (tmp_path / "take" / "full.mid").read_bytes() == before
    forced = cli("generate", *CHORDS, "--seed", "2", "-o", str(tmp_path), "--job-id", "take", "--force")
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "take" / "full.mid").read_bytes() != before
    assert json.loads((tmp_path / "take" / "job.json").read_text())["seed"] == 2


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_files_get_the_mode_of_the_process_umask(tmp_path, umask, mode):
    result = cli("generate", *CHORDS, "-o", str(tmp_path), "--job-id", "j", umask=umask)
    assert result.returncode == 0, result.stderr
    files = list((tmp_path / "j").iterdir())
    assert {p.name for p in files} >= {"full.mid", "job.json", "bass.mid"}
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {oct(mode)}


def test_a_write_that_fails_at_run_time_is_exit_1_and_leaves_no_half_made_job(tmp_path):
    result = cli("generate", *CHORDS, "--bars", "64", "-o", str(tmp_path), "--job-id", "full-disk",
                 max_file_bytes=200)
    assert result.returncode == 1, result.stderr
    line = error_line(result)
    assert str(tmp_path / "full-disk") in line and "File too large" in line
    assert not (tmp_path / "full-disk").exists()


def test_chords_are_optional_when_the_request_is_otherwise_complete(tmp_path):
    prompt = cli("generate", "--prompt", "sad slow jazz ballad in D minor", "-o", str(tmp_path), "--job-id", "p")
    assert prompt.returncode == 0, prompt.stderr
    meta = json.loads((tmp_path / "p" / "job.json").read_text())
    assert meta["request"]["style"] == "jazz" and meta["request"]["key"] == "Dm"
    sections = cli("generate", "--structure", "verse chorus verse", "--sections",
                   '{"verse": "| Am | F |", "chorus": "| C | G | C |"}', "-o", str(tmp_path), "--job-id", "s")
    assert sections.returncode == 0, sections.stderr
    meta = json.loads((tmp_path / "s" / "job.json").read_text())
    assert meta["request"]["bars"] == 7
    assert [c["symbol"] for bar in meta["chords_per_bar"] for c in bar] == ["Am", "F", "C", "G", "C", "Am", "F"]
    bare = cli("generate", "--style", "rock", "-o", str(tmp_path), "--job-id", "bare")
    assert bare.returncode == 0, bare.stderr
    meta = json.loads((tmp_path / "bare" / "job.json").read_text())
    from ai_band.cli.generate import DEFAULT_CHORDS
    from ai_band.request import GenerationRequest

    assert DEFAULT_CHORDS == GenerationRequest().chords  # the help text names the default OSC uses
    assert [c["symbol"] for bar in meta["chords_per_bar"] for c in bar] == DEFAULT_CHORDS.split()


def test_a_daemon_that_does_not_answer():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        for command in ("status", "jobs"):
            result = cli(command, "--port", str(port), "--timeout", "0.5")
            assert result.returncode == 1
            assert error_line(result) == f"ai-band: error: no answer from 127.0.0.1:{port} within 0.5 s"
        assert silent.recv(100).startswith(b"/band/hello\0")  # it was asked (the /band/hello handshake comes first)
    closed = cli("status", "--port", str(port))
    assert closed.returncode == 1
    assert error_line(closed) == f"ai-band: error: no answer from 127.0.0.1:{port}: nothing listens there (connection refused)"
