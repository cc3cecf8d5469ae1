"""``POST /api/generate`` on the real daemon: the same keys, validation and error codes as ``/band/generate``."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from ai_band.host import OscClient
from httpband import HttpBand, fetch, http_band  # noqa: F401 - the fixture


def post(band: HttpBand, body: object, content_type: str = "application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return band.get("/api/generate", method="POST", data=data, headers={"Content-Type": content_type})


def test_generate_over_http_then_poll_and_download(http_band: HttpBand) -> None:
    reply = post(http_band, {"id": "http-gen", "chords": "C Am F G", "style": "rock", "bars": 4,
                             "parts": "drums,bass", "seed": 11})
    assert reply.status == 202, reply.body
    job = reply.json()
    assert reply.headers["location"] == f"/api/jobs/{job['id']}"
    assert job["request_id"] == "http-gen" and job["state"] in ("queued", "generating", "done")
    deadline = time.monotonic() + 60
    while job["state"] not in ("done", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(0.1)
        job = http_band.get(reply.headers["location"]).json()
    assert job["state"] == "done", job
    assert job["request"]["seed"] == 11
    full = next(f for f in job["files"] if f["part"] == "full")
    data = fetch(full["url"]).body
    assert hashlib.sha256(data).hexdigest() == full["sha256"]
    assert Path(http_band.daemon.output_dir, job["id"], "full.mid").read_bytes() == data


@pytest.mark.parametrize("raw", [
    {"bpm": 1000},
    {"bpm": "fast"},
    {"tempo": 120},
    {"style": "no-such-style"},
    {"chords": "C Xm7b13#"},
    {"bars": 4, "duration": 10},
    {"parts": "drums,kazoo"},
])
def test_refusals_carry_the_osc_error_code_and_field(http_band: HttpBand, raw: dict) -> None:
    reply = post(http_band, raw)
    error = reply.json()["error"]
    assert reply.status == 400, error
    with OscClient(("127.0.0.1", http_band.daemon.port)) as osc:
        osc.send("/band/generate", json.dumps({"id": "same", **raw}))
        _, (ref, code, message) = osc.receive("/band/error", timeout=10)
    assert error["code"] == code
    assert error["field"] and error["field"] in message


def test_body_must_be_a_json_object(http_band: HttpBand) -> None:
    bad_json = post(http_band, b"{not json")
    assert bad_json.status == 400 and bad_json.json()["error"] == {
        "code": "bad_value", "field": "json", "message": bad_json.json()["error"]["message"]}
    assert post(http_band, [1, 2]).json()["error"]["code"] == "bad_value"
    form = post(http_band, b"bpm=120", content_type="application/x-www-form-urlencoded")
    assert form.status == 415 and form.json()["error"]["code"] == "unsupported_media_type"
    huge = post(http_band, b'{"prompt": "' + b"x" * 100_000 + b'"}')
    assert huge.status == 413 and huge.json()["error"]["code"] == "too_large"
