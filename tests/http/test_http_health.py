"""/health of the real daemon turns 503, naming the MIDI output, when its JACK server goes away.

Its own module: it stops its JACK server, so it must not share the module's one.
"""

from __future__ import annotations

import time
from pathlib import Path

from ai_band.testing.jackserver import JackServer
from httpband import fetch, http_band, start_http_band  # noqa: F401 - the fixture


def test_health_is_503_naming_the_midi_output_once_jack_is_gone(tmp_path: Path) -> None:
    with JackServer() as jack:
        band = start_http_band(jack, tmp_path)
        try:
            assert band.get("/health").status == 200
            jack.stop()
            deadline = time.monotonic() + 10
            reply = band.get("/health")
            while reply.status == 200 and time.monotonic() < deadline:
                time.sleep(0.1)
                reply = band.get("/health")
            body = reply.json()
            assert reply.status == 503, body
            assert "midi_output" in body["failing"]
            assert "JACK server dropped the client" in body["checks"]["midi_output"]["detail"]
            assert body["checks"]["event_loop"]["ok"] and body["checks"]["playback"]["ok"]
            assert fetch(band.base + "/api/status").status == 200  # still serving
        finally:
            band.daemon.terminate()
