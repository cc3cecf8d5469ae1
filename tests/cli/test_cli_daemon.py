"""``ai-band status`` and ``ai-band jobs`` against the real daemon (its own process, JACK, OSC on 127.0.0.1)."""

from __future__ import annotations

import json

import pytest
from clirun import run_cli as cli
from conftest import generate_args, wait_job

pytestmark = pytest.mark.jack


def test_status_prints_the_daemons_state_readably_and_as_json(band):
    result = cli("status", "--port", str(band.port))
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("ai-band (ai-band ") and f"OSC port {band.port}" in text
    assert "transport: stopped" in text and "playing job: none" in text
    assert "ports: ai-band:drums, ai-band:bass" in text
    raw = cli("status", "--port", str(band.port), "--json")
    assert raw.returncode == 0, raw.stderr
    status = json.loads(raw.stdout)
    assert status["osc_port"] == band.port and status["transport"]["playing"] is False
    assert set(status) >= {"name", "version", "uptime_s", "clients", "jobs", "ports", "playback", "counters"}


def test_jobs_lists_the_daemons_jobs(band, osc):
    empty = cli("jobs", "--port", str(band.port), "--host", "localhost")
    assert empty.returncode == 0, empty.stderr
    osc.send("/band/generate", *generate_args(id="cli-jobs", chords="| C | Am | F | G |", seed=3))
    job_id, files = wait_job(osc, "cli-jobs")
    result = cli("jobs", "--port", str(band.port))
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith(job_id))
    assert "done" in line and "100%" in line and "request cli-jobs" in line and f"{len(files)} files" in line
    jobs = json.loads(cli("jobs", "--port", str(band.port), "--json").stdout)
    job = next(j for j in jobs if j["id"] == job_id)
    assert (job["state"], job["request_id"]) == ("done", "cli-jobs")


def test_port_comes_from_the_environment_and_the_config(band, tmp_path):
    by_env = cli("status", env={"AI_BAND_OSC_PORT": str(band.port)})
    assert by_env.returncode == 0, by_env.stderr
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[osc]\nport = {band.port}\n")
    assert cli("jobs", "--config", str(cfg)).returncode == 0
