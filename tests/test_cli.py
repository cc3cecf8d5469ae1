"""The ``ai-band`` command line: offline generation, flags, signals, exit codes."""

import signal
import subprocess
import sys
from pathlib import Path

import mido
import pretty_midi
import pytest

from ai_band.testing.daemonproc import DaemonProcess

ROOT = Path(__file__).resolve().parents[1]


def ai_band(*args, **kw):
    return subprocess.run([sys.executable, "-m", "ai_band", *args], capture_output=True, text=True, cwd=ROOT, timeout=60, **kw)


def test_generate_offline_writes_readable_files(tmp_path):
    result = ai_band("generate", "--chords", "| Dm7 | G7 | Cmaj7 | A7 |", "--style", "jazz", "--bpm", "150",
                     "--ts", "3/4", "--seed", "7", "-o", str(tmp_path), "--job-id", "cli-job")
    assert result.returncode == 0, result.stderr
    job = tmp_path / "cli-job"
    assert sorted(p.name for p in job.iterdir()) == ["bass.mid", "drums.mid", "full.mid", "job.json", "keys.mid"]
    pm = pretty_midi.PrettyMIDI(str(job / "full.mid"))
    assert round(pm.get_tempo_changes()[1][0]) == 150
    assert (pm.time_signature_changes[0].numerator, pm.time_signature_changes[0].denominator) == (3, 4)
    drums = [i for i in pm.instruments if i.is_drum]
    assert len(drums) == 1 and drums[0].notes
    names = {t.name for t in mido.MidiFile(str(job / "full.mid")).tracks}
    assert {"drums", "bass", "keys"} <= names


def test_generate_is_deterministic_by_seed(tmp_path):
    for name in ("a", "b"):
        assert ai_band("generate", "--chords", "C Am F G", "--seed", "3", "-o", str(tmp_path), "--job-id", name).returncode == 0
    assert (tmp_path / "a" / "full.mid").read_bytes() == (tmp_path / "b" / "full.mid").read_bytes()


def test_generate_bad_chord_is_a_clear_error(tmp_path):
    result = ai_band("generate", "--chords", "| C | Q7 |", "-o", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("ai-band: error: --chords:") and "Q7" in result.stderr and "bar 2" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_config_reports_all_errors_and_exits_2(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[osc]\nport = -1\n[midi]\napi = "winmm"\n')
    result = ai_band("run", "--config", str(cfg))
    assert result.returncode == 2
    assert "osc.port" in result.stderr and "midi.api" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_no_jack_server_is_a_clear_error(tmp_path):
    env = {"JACK_DEFAULT_SERVER": "no-such-server-aiband", "PATH": "/usr/bin:/bin"}
    result = ai_band("run", "--midi-api", "jack", "--osc-port", "0", "--osc-host", "127.0.0.1",
                     "--zeroconf-interfaces", "none", "--output-dir", str(tmp_path), env=env)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]  # after the daemon's log and libjack's own messages
    assert last.startswith("ai-band: error: ") and "JACK" in last
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_within_5_s_with_exit_0(jack_server, tmp_path, sig):
    daemon = DaemonProcess(tmp_path, env=jack_server.env()).start()
    assert daemon.port > 0  # --osc-port 0 took a free port and logged it
    code, took = daemon.terminate(sig)
    assert code == 0, daemon.log_text()
    assert took < 5.0
    assert "ai-band stopped" in daemon.log_text()


def test_job_json_holds_the_resolved_request_and_reproduces_the_job(tmp_path):
    import json

    from ai_band import __version__

    result = ai_band("generate", "--chords", "| Dm7 G7 | Cmaj7 | N.C. | A7 |", "--style", "jazz", "--prompt", "slow sad ballad",
                     "--bars", "8", "-o", str(tmp_path), "--job-id", "meta")
    assert result.returncode == 0, result.stderr
    meta = json.loads((tmp_path / "meta" / "job.json").read_text())
    assert meta["version"] == __version__ and meta["job_id"] == "meta"
    request = meta["request"]
    for key in ("style", "bpm", "key", "ts", "parts", "bars", "seed", "humanize", "swing", "energy", "complexity",
                "programs", "channels"):
        assert request[key] is not None, key
    assert request["style"] == "jazz"  # explicit key beats the prompt
    assert meta["requested"]["prompt"] == "slow sad ballad"
    assert len(meta["chords_per_bar"]) == 8
    assert [c["symbol"] for c in meta["chords_per_bar"][0]] == ["Dm7", "G7"]
    assert meta["chords_per_bar"][0][1]["beat"] == 2.0
    assert meta["generation_ms"] > 0 and meta["seed"] == request["seed"]
    # The resolved request alone reproduces the notes.
    args = []
    for key, value in request.items():
        if value is None or key in ("id", "play", "prompt", "duration_s"):
            continue
        flag = {"duration_s": "duration"}.get(key, key)
        if isinstance(value, dict):
            value = ",".join(f"{k}={v}" for k, v in value.items()) if key != "sections" else json.dumps(value)
        elif isinstance(value, list):
            value = ",".join(value) if key == "parts" else " ".join(value)
        args += [f"--{flag}", str(value)]
    again = ai_band("generate", *args, "-o", str(tmp_path), "--job-id", "again")
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / "full.mid").read_bytes() == (tmp_path / "meta" / "full.mid").read_bytes()
