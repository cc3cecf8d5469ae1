"""The HTTP server of the real daemon (own process, JACK MIDI): health, status, styles, metrics, JSON errors."""

from __future__ import annotations

import json
import time

from prometheus_client.parser import text_string_to_metric_families

from ai_band.host import OscClient
from httpband import HttpBand, http_band  # noqa: F401 - the fixture


def _osc(band: HttpBand) -> OscClient:
    return OscClient(("127.0.0.1", band.daemon.port))


def test_health_names_each_check_and_is_ok(http_band: HttpBand) -> None:
    reply = http_band.get("/health")
    body = reply.json()
    assert reply.status == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"event_loop", "playback", "midi_output"}
    assert all(check["ok"] for check in body["checks"].values()), body
    assert "8 port(s) open" in body["checks"]["midi_output"]["detail"]


def test_api_status_is_what_band_status_sends(http_band: HttpBand) -> None:
    with _osc(http_band) as osc:
        over_osc = json.loads(osc.request("/band/status", reply_address="/band/status")[0])
    over_http = http_band.get("/api/status").json()
    assert set(over_http) == set(over_osc)
    for key in ("name", "version", "osc_port", "ports"):
        assert over_http[key] == over_osc[key]
    assert over_http["osc_port"] == http_band.daemon.port
    assert over_http["uptime_s"] >= over_osc["uptime_s"]


def test_api_styles_match_band_styles(http_band: HttpBand) -> None:
    with _osc(http_band) as osc:
        over_osc = osc.request("/band/styles", reply_address="/band/styles", timeout=10)
    reply = http_band.get("/api/styles")
    assert reply.status == 200
    assert reply.json() == {"styles": over_osc}
    assert "rock" in over_osc


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_count_osc_messages_at_scrape_time(http_band: HttpBand) -> None:
    first = http_band.get("/metrics")
    assert first.status == 200
    assert first.headers["content-type"].startswith("text/plain; version=")
    before = _samples(first.body.decode())
    with _osc(http_band) as osc:
        for i in range(3):
            osc.request("/band/ping", i, reply_address="/band/pong")
    after = _samples(http_band.get("/metrics").body.decode())
    key = ("ai_band_osc_events_total", (("event", "messages"),))
    assert after[key] - before.get(key, 0.0) >= 3
    assert ("ai_band_build_info", (("name", "ai-band"), ("version", http_band.get("/api/status").json()["version"]))) in after
    assert ("ai_band_transport_playing", ()) in after
    for bound in ("0.5", "1", "2", "5"):
        assert ("ai_band_playback_late_groups_total", (("bound_ms", bound),)) in after
    assert ("ai_band_output_xruns_total", ()) in after
    assert after[("ai_band_jobs_active", ())] == 0


def test_refusals_are_json_errors(http_band: HttpBand) -> None:
    missing = http_band.get("/no/such/route")
    assert missing.status == 404
    assert missing.json()["error"]["code"] == "not_found"

    wrong_method = http_band.get("/health", method="POST", data=b"{}")
    assert wrong_method.status == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    assert "GET" in wrong_method.headers["allow"]

    bad_attribute = http_band.get("/band/mute?NO_SUCH_ATTRIBUTE")
    assert bad_attribute.status == 400
    assert bad_attribute.json()["error"]["code"] == "bad_request"

    too_big = http_band.get("/api/status", method="POST", data=b"x" * (200 * 1024))
    assert too_big.status in (405, 413)
    assert "error" in too_big.json()


def test_http_port_log_line_and_clean_stop(http_band: HttpBand) -> None:
    log = http_band.daemon.log_text()
    assert "HTTP listening on http://127.0.0.1:" in log
    assert "Traceback" not in log


def test_metrics_jobs_by_state_queue_depth_and_render_speed(http_band: HttpBand) -> None:
    before = _samples(http_band.get("/metrics").body.decode())
    assert before[("ai_band_jobs", (("state", "queued"),))] == 0  # every state exported, 0 when none
    assert not [key for key in before if key[0] == "ai_band_render_speed_realtime"]  # no audio job yet
    body = {"chords": "C G", "style": "rock", "bars": 2, "parts": "bass", "seed": 9, "render": "wav"}
    reply = http_band.get("/api/generate", method="POST", data=json.dumps(body).encode(),
                          headers={"Content-Type": "application/json"})
    assert reply.status == 202, reply.body
    job_id = reply.json()["id"]
    deadline = time.monotonic() + 60
    while (job := http_band.get(f"/api/jobs/{job_id}").json())["state"] not in ("done", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert job["state"] == "done", job
    ratio = next(j for j in http_band.get("/api/status").json()["jobs"] if j["id"] == job_id)["audio"]["realtime_ratio"]
    after = _samples(http_band.get("/metrics").body.decode())
    done = ("ai_band_jobs", (("state", "done"),))
    assert after[done] == before[done] + 1
    assert after[("ai_band_render_speed_realtime", (("stat", "last"),))] == ratio > 0
    assert after[("ai_band_render_speed_realtime", (("stat", "min"),))] <= ratio
    assert ("ai_band_http_event_streams", ()) in after
    assert ("ai_band_http_event_streams_events_total", (("event", "dropped_slow"),)) in after
