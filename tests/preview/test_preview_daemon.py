"""/band/preview end to end: the daemon renders a mix and plays it into JACK on the host's bar line."""

import time

import numpy as np
import pytest

from conftest import DropoutGuard, generate_args, wait_job
from ai_band.testing.audio_recorder import AudioRecorder
from ai_band.host import HostSimulator


def test_preview_plays_the_mix_into_jack_on_the_next_bar_line(band, jack_server, osc):
    osc.send("/band/generate", *generate_args(id="pv-1", chords="| C | G |", style="rock", bars=2, bpm=120,
                                              render="wav", seed=5))
    job_id, files = wait_job(osc, "pv-1", timeout_s=60)
    assert files["mix"].endswith("mix.wav")
    with AudioRecorder(jack_server.name) as rec, HostSimulator(("127.0.0.1", band.port), rate_hz=25) as host:
        with DropoutGuard(rec, count_xruns=True):
            host.play()
            time.sleep(0.6)
            osc.send("/band/preview", job_id)
            address, (ref, state, until_s) = osc.receive("/band/preview", timeout=10)
            assert (ref, state) == (job_id, "playing") and until_s >= 0.2
            rec.connect("ai-band-preview")
            time.sleep(until_s + 1.0)
            first = rec.first_sound_time()
            assert first is not None, "the preview never sounded"
            # The first sample sounds on a host bar line (4/4 at 120 bpm: every 2 s), coarse bound.
            seg = [c for c in host.clock.changes if c.time_s <= first][-1]
            ppq = seg.ppq_at(first)
            off_bar_ms = (ppq - round(ppq / 4) * 4) * 60000 / seg.bpm
            assert abs(off_bar_ms) < 10.0, off_bar_ms
            audio, start = rec.audio()
            loud = np.sqrt(np.mean(audio[-4800:] ** 2))
            assert loud > 1e-3  # still playing the mix
            osc.send("/band/preview/stop")
            time.sleep(0.3)
            audio, start = rec.audio()
            tail = audio[-4800:]  # the last 100 ms at 48 kHz
            assert np.max(np.abs(tail)) < 1e-3, "preview did not stop"
        osc.send("/band/status")
        import json

        status = json.loads(osc.receive("/band/status")[1][0])
        assert status["preview"]["host_api"].startswith("JACK")
