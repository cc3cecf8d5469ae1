"""``ai-band host`` as a user runs it: a subprocess driving the real daemon, recorded on real JACK ports."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import DropoutGuard, generate_args, recorder_on, wait_job
from ai_band.host import OscClient
from ai_band.request import KNOWN_PARTS

ROOT = Path(__file__).resolve().parents[2]
#: ``[1234.567890] play     bar 1 beat 1.00  ppq 0.000  120.00 bpm  4/4  playing``
STATUS_RE = re.compile(r"^\[(\d+\.\d+)\] (\w+)\s+bar (-?\d+) beat ([\d.]+)\s+ppq (-?[\d.]+)\s+([\d.]+) bpm\s+"
                       r"(\d+)/(\d+)\s+(playing|stopped)$")
#: Coarse bound for a shared machine (tests/playback/test_live.py); bench/tempo_lock.py has the tight ones.
COARSE_MS = 6.0


def host_command(*args: str, stdin=subprocess.DEVNULL) -> subprocess.Popen:
    """``python -m ai_band host ...`` with text pipes for stdout and stderr."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "ai_band", "host", *args], stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def status(line: str) -> dict:
    """One status line of ``ai-band host`` as a dict (time_s on CLOCK_MONOTONIC)."""
    m = STATUS_RE.match(line.strip())
    assert m, f"not a status line: {line!r}"
    return {"time_s": float(m[1]), "what": m[2], "bar": int(m[3]), "beat": float(m[4]), "ppq": float(m[5]),
            "bpm": float(m[6]), "ts": (int(m[7]), int(m[8])), "playing": m[9] == "playing"}


def daemon_transport(client: OscClient) -> dict:
    """The daemon's view of the host transport (``/band/status`` ``transport``)."""
    client.send("/band/status")
    return json.loads(client.receive("/band/status")[1][0])["transport"]


def test_host_command_drives_the_band_tempo_locked_and_stops_it_clean(band, jack_server):
    with OscClient(("127.0.0.1", band.port)) as osc:
        osc.send("/band/generate", *generate_args(id="host-cmd-1", chords="| C | Am | F | G |", style="rock",
                                                  humanize=0, swing=0, seed=4, bpm=120))
        job_id, _ = wait_job(osc, "host-cmd-1")
        with recorder_on(jack_server, "ai-band", count=len(KNOWN_PARTS)) as recorder, DropoutGuard(recorder):
            host = host_command("--port", str(band.port), "--bpm", "120", "--seconds", "4")
            started = status(host.stdout.readline())
            assert (started["what"], started["ppq"], started["bpm"], started["playing"]) == ("play", 0.0, 120.0, True)
            osc.send("/band/play", job_id)  # armed while playing: starts on the host's next bar line
            assert osc.receive("/band/ack")[1] == ["/band/play", job_id]
            out, err = host.communicate(timeout=20)
            assert host.returncode == 0, err
            stopped = status(out.splitlines()[-1])
            assert (stopped["what"], stopped["playing"]) == ("stop", False)
            assert stopped["time_s"] - started["time_s"] == pytest.approx(4.0, abs=0.05)
            time.sleep(0.3)
            events = recorder.events()
    ons = [e for e in events if e.is_note_on]
    assert len(ons) > 10, err
    beat_s = 60.0 / 120.0
    # The first note-on falls on a bar line of the host's grid (4/4: every 4 beats from its play).
    first_beats = (ons[0].time_s - started["time_s"]) / beat_s
    assert round(first_beats / 4) >= 1
    assert abs(first_beats - 4 * round(first_beats / 4)) * beat_s * 1000 < COARSE_MS, first_beats
    # Every note-on is on the host's 16th-note grid: locked to its tempo, not drifting.
    offsets_16th = [((e.time_s - started["time_s"]) / beat_s * 4 % 1 + 0.5) % 1 - 0.5 for e in ons]
    assert max(abs(x) for x in offsets_16th) * beat_s / 4 * 1000 < COARSE_MS
    # The host's stop ended the band: no new notes, none left sounding.
    assert [e for e in ons if e.time_s > stopped["time_s"] + 0.030] == []
    assert recorder.hanging_notes() == []


def test_host_command_takes_commands_from_stdin(band):
    host = host_command("--port", str(band.port), "--stopped", stdin=subprocess.PIPE)
    lines = iter(host.stdout.readline, "")

    def command(text: str) -> dict:
        host.stdin.write(text + "\n")
        host.stdin.flush()
        return status(next(lines))

    with OscClient(("127.0.0.1", band.port)) as osc:
        ready = status(next(lines))
        assert (ready["what"], ready["playing"], ready["bar"], ready["beat"]) == ("ready", False, 1, 1.0)
        played = command("play")
        assert (played["what"], played["playing"]) == ("play", True)
        time.sleep(0.3)
        assert daemon_transport(osc)["playing"] is True
        tempo = command("bpm 90")
        assert (tempo["what"], tempo["bpm"]) == ("tempo", 90.0)
        time.sleep(0.3)
        assert daemon_transport(osc)["bpm"] == pytest.approx(90.0)
        relocated = command("bar 3")
        assert (relocated["what"], relocated["bar"], relocated["beat"], relocated["ppq"]) == ("relocate", 3, 1.0, 8.0)
        time.sleep(0.3)
        assert daemon_transport(osc)["ppq"] == pytest.approx(8.0 + 0.3 * 90 / 60, abs=0.15)
        host.stdin.write("bpm fast\n")  # a bad line is reported and changes nothing
        host.stdin.flush()
        stopped = command("stop")
        assert (stopped["what"], stopped["playing"], stopped["bpm"]) == ("stop", False, 90.0)
        time.sleep(0.3)
        assert daemon_transport(osc)["playing"] is False
        host.stdin.write("quit\n")
        host.stdin.flush()
        out, err = host.communicate(timeout=10)
    assert host.returncode == 0, err
    assert status(out.splitlines()[-1])["what"] == "stop"
    assert "bpm must be a tempo in 1..999 bpm, got 'fast'" in err
    assert "Traceback" not in err


def test_host_command_loops_its_bars(band):
    # 240 bpm, a 1-bar loop from bar 2 (start ppq 5 is in bar 2): wraps every second, exactly.
    host = host_command("--port", str(band.port), "--bpm", "240", "--bars", "1", "--start-ppq", "5",
                        "--seconds", "2.6")
    out, err = host.communicate(timeout=15)
    assert host.returncode == 0, err
    lines = [status(line) for line in out.splitlines()]
    assert [s["what"] for s in lines] == ["play", "loop", "loop", "stop"]
    assert all(s["ppq"] == 4.0 for s in lines[1:3])
    assert lines[1]["time_s"] - lines[0]["time_s"] == pytest.approx(0.75, abs=1e-6)  # ppq 5 -> 8 at 4 ppq/s
    assert lines[2]["time_s"] - lines[1]["time_s"] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--bpm", "0"], "--bpm: must be a tempo in 1..999 bpm"),
        (["--bpm", "fast"], "--bpm: must be a tempo in 1..999 bpm"),
        (["--ts", "4/3"], "--ts: denominator must be one of"),
        (["--ts", "four"], "--ts: expected a time signature such as '4/4'"),
        (["--bars", "-1"], "--bars: must be a whole number of bars 0..10000"),
        (["--bars", "1.5"], "--bars: must be a whole number of bars 0..10000"),
        (["--port", "70000"], "--port: must be a UDP port 1..65535"),
        (["--start-ppq", "inf"], "--start-ppq: must be a position in quarter notes"),
        (["--seconds", "0"], "--seconds: must be a number of seconds, 0.001..1e6"),
        (["--play", "--stopped"], "not allowed with argument --play"),
        (["--host", "no-such-host.invalid"], "--host: cannot resolve host 'no-such-host.invalid'"),
    ],
)
def test_host_command_bad_flags_exit_2_with_one_error_line(args, needle):
    host = host_command(*args)
    out, err = host.communicate(timeout=10)
    assert host.returncode == 2
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert "error: argument" in last and needle in last, err
