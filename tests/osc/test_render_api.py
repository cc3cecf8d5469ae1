"""Audio through the daemon: /band/generate render=..., the rendering state, files, job.json; preview errors."""

import json
from pathlib import Path

import numpy as np
import soundfile

from conftest import generate_args


def collect_job(osc, request_id, timeout_s=60):
    """All /band/job states and /band/file messages of one request, until it is final."""
    states, files = [], []
    while True:
        address, args = osc.receive(timeout=timeout_s)
        if address == "/band/error" and args[0] == request_id:
            raise AssertionError(args)
        if address == "/band/file":
            files.append((args[1], args[2]))
        if address == "/band/job" and args[3] == request_id:
            states.append((args[1], args[2]))
            if args[1] in ("done", "failed", "cancelled"):
                return args[0], states, files


def test_render_wav_flac_stems_through_the_daemon(osc):
    osc.send("/band/generate", *generate_args(id="aud-1", chords="| C | Am | F | G |", style="rock", bars=4,
                                              bpm=120, render="mid,wav,flac", stems=1, sample_rate=48000,
                                              bit_depth=24, seed=2))
    job_id, states, files = collect_job(osc, "aud-1")
    names = [s for s, _ in states]
    assert names[0] == "queued" and names[-1] == "done" and "rendering" in names
    progress = [p for s, p in states if s == "rendering"]
    assert progress == sorted(progress) and 0.5 <= progress[0] < 1.0
    # MIDI files and job.json are announced before rendering starts.
    first_render = names.index("rendering")
    kinds = {Path(p).suffix for _, p in files}
    assert {".mid", ".json", ".wav", ".flac"} <= kinds
    mix = {Path(p).suffix: p for part, p in files if part == "mix"}
    for suffix in (".wav", ".flac"):
        info = soundfile.info(mix[suffix])
        assert info.samplerate == 48000 and info.subtype == "PCM_24" and info.channels == 2
        assert abs(info.duration - (4 * 4 * 60 / 120 + 2.0)) < 1e-3  # bars x beats x 60 / bpm + 2 s tail
    audio, rate = soundfile.read(mix[".wav"], dtype="float64")
    assert np.sqrt(np.mean(audio**2)) > 1e-3  # not silent
    assert np.max(np.abs(audio)) < 1.0
    stems = [p for part, p in files if part not in ("mix", "full", "job") and p.endswith(".wav")]
    assert len(stems) == 3
    total = sum(soundfile.read(p, dtype="float64")[0] for p in stems)
    assert np.max(np.abs(total - audio)) < 2e-3
    meta = json.loads(Path(next(p for part, p in files if part == "job")).read_text())
    assert meta["audio"]["engine"] in ("fluidsynth", "numpy")
    assert meta["audio"]["true_peak_dbtp"] <= -1.0
    assert meta["audio"]["sample_rate"] == 48000 and meta["audio"]["bit_depth"] == 24
    assert first_render > 0


def test_render_errors(osc):
    osc.send("/band/generate", *generate_args(id="aud-bad", render="mp3"))
    assert osc.receive("/band/error")[1][:2] == ["aud-bad", "bad_value"]
    osc.send("/band/generate", *generate_args(id="aud-bad2", sample_rate=22050))
    assert osc.receive("/band/error")[1][:2] == ["aud-bad2", "out_of_range"]


def test_preview_needs_a_rendered_mix(osc):
    osc.send("/band/generate", *generate_args(id="mid-only", bars=2))
    job_id, _, _ = collect_job(osc, "mid-only")
    osc.send("/band/preview", job_id)
    ref, code, message = osc.receive("/band/error")[1]
    assert (ref, code) == (job_id, "unknown_job") and "render" in message
    osc.send("/band/preview", "no-such-job")
    assert osc.receive("/band/error")[1][1] == "unknown_job"
    osc.send("/band/preview/stop")
    osc.send("/band/ping", "ok")
    assert osc.receive("/band/pong")[1] == ["ok"]
