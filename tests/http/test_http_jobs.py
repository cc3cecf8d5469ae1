"""``GET /api/jobs``, ``DELETE /api/jobs/{id}`` and ``POST /api/jobs/{id}/play`` on the real daemon."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ai_band.http.server import FINAL_JOB_STATES, JOB_STATES
from ai_band.jobs.manager import FINAL_STATES, STATES
from httpband import HttpBand, Reply, http_band  # noqa: F401 - the fixture

FINAL = ("done", "failed", "cancelled", "interrupted")


def generate(band: HttpBand, seed: int, bars: int = 1, **extra: object) -> dict:
    body = {"chords": "C G", "style": "rock", "bars": bars, "parts": "drums,bass", "seed": seed, **extra}
    reply = band.get("/api/generate", method="POST", data=json.dumps(body).encode(),
                     headers={"Content-Type": "application/json"})
    assert reply.status == 202, reply.body
    return reply.json()  # type: ignore[return-value]


def wait_final(band: HttpBand, job_id: str, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        job = band.get(f"/api/jobs/{job_id}").json()
        if job["state"] in FINAL or time.monotonic() > deadline:  # type: ignore[index]
            return job  # type: ignore[return-value]
        time.sleep(0.05)


def error_of(reply: Reply) -> dict:
    return reply.json()["error"]  # type: ignore[index]


def test_server_states_match_the_job_manager() -> None:
    assert JOB_STATES == STATES and FINAL_JOB_STATES == FINAL_STATES


def test_list_newest_first_filter_and_paging(http_band: HttpBand) -> None:
    ids = [generate(http_band, seed)["id"] for seed in (1, 2, 3)]
    for job_id in ids:
        assert wait_final(http_band, job_id)["state"] == "done"
    listed = http_band.get("/api/jobs?limit=200").json()
    all_ids = [job["id"] for job in listed["jobs"]]
    assert listed["total"] == len(all_ids) and listed["limit"] == 200 and listed["offset"] == 0
    positions = [all_ids.index(job_id) for job_id in ids]
    assert positions == sorted(positions, reverse=True)  # the last submitted comes first
    one = http_band.get(f"/api/jobs/{ids[0]}").json()
    assert listed["jobs"][positions[0]] == one  # the same serializer as GET /api/jobs/{id}

    done = http_band.get("/api/jobs?state=done&limit=200").json()
    assert {job["state"] for job in done["jobs"]} == {"done"} and set(ids) <= {j["id"] for j in done["jobs"]}
    assert http_band.get("/api/jobs?state=interrupted").json()["total"] == 0

    page = http_band.get("/api/jobs?limit=2&offset=1").json()
    assert [job["id"] for job in page["jobs"]] == all_ids[1:3]
    assert page["total"] == listed["total"] and page["limit"] == 2 and page["offset"] == 1
    assert http_band.get(f"/api/jobs?offset={len(all_ids)}").json()["jobs"] == []
    assert len(http_band.get("/api/jobs").json()["jobs"]) == min(50, len(all_ids))


@pytest.mark.parametrize("query, field, code", [
    ("state=finished", "state", "bad_value"),
    ("limit=0", "limit", "out_of_range"),
    ("limit=201", "limit", "out_of_range"),
    ("limit=ten", "limit", "bad_value"),
    ("offset=-1", "offset", "out_of_range"),
    ("offset=1.5", "offset", "bad_value"),
])
def test_bad_list_parameters_are_json_refusals(http_band: HttpBand, query: str, field: str, code: str) -> None:
    reply = http_band.get(f"/api/jobs?{query}")
    error = error_of(reply)
    assert reply.status == 400 and error["code"] == code and error["field"] == field, error
    assert field in error["message"]


def test_delete_a_finished_job_removes_its_files_and_entry(http_band: HttpBand) -> None:
    job = wait_final(http_band, generate(http_band, 21)["id"])
    assert job["state"] == "done"
    folder = Path(http_band.daemon.output_dir, job["id"])
    assert (folder / "full.mid").is_file()
    reply = http_band.get(f"/api/jobs/{job['id']}", method="DELETE")
    assert reply.status == 200 and reply.json() == {"deleted": job["id"]}
    assert not folder.exists()
    assert http_band.get(f"/api/jobs/{job['id']}").status == 404
    assert job["id"] not in [j["id"] for j in http_band.get("/api/jobs?limit=200").json()["jobs"]]
    again = http_band.get(f"/api/jobs/{job['id']}", method="DELETE")
    assert again.status == 404 and error_of(again)["code"] == "unknown_job"


def test_play_arms_a_done_job_which_then_cannot_be_deleted(http_band: HttpBand) -> None:
    job = wait_final(http_band, generate(http_band, 31)["id"])
    reply = http_band.get(f"/api/jobs/{job['id']}/play", method="POST")
    assert reply.status == 202 and reply.json()["id"] == job["id"], reply.body
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the scheduler thread takes the command
        playback = http_band.get("/api/status").json()["playback"]
        if job["id"] in (playback["pending_job"], playback["current_job"]):
            break
        time.sleep(0.02)
    else:
        pytest.fail(f"job not armed: {playback}")
    refused = http_band.get(f"/api/jobs/{job['id']}", method="DELETE")
    assert refused.status == 409 and error_of(refused)["code"] == "job_playing", refused.body
    assert Path(http_band.daemon.output_dir, job["id"], "full.mid").is_file()
    # another job armed replaces it; then the first may go
    other = wait_final(http_band, generate(http_band, 32)["id"])
    assert http_band.get(f"/api/jobs/{other['id']}/play", method="POST").status == 202
    deadline = time.monotonic() + 5
    while http_band.get("/api/status").json()["playback"]["pending_job"] != other["id"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert http_band.get(f"/api/jobs/{job['id']}", method="DELETE").status == 200


def test_play_refusals_have_the_osc_codes(http_band: HttpBand) -> None:
    unknown = http_band.get("/api/jobs/no-such-job/play", method="POST")
    assert unknown.status == 404 and error_of(unknown)["code"] == "unknown_job"
    running = generate(http_band, 41, bars=64, render="wav")
    early = http_band.get(f"/api/jobs/{running['id']}/play", method="POST")
    if wait_final(http_band, running["id"])["state"] == "done" and early.status == 202:
        pytest.skip("the job finished before the play request")
    assert early.status == 409 and error_of(early)["code"] == "unknown_job", early.body
    assert "only a done job can play" in error_of(early)["message"]


def test_delete_cancels_an_unfinished_job(http_band: HttpBand) -> None:
    job = generate(http_band, 51, bars=64, render="wav")
    reply = http_band.get(f"/api/jobs/{job['id']}", method="DELETE")
    if reply.status == 200:
        pytest.skip("the job finished before the delete request")
    assert reply.status == 202 and reply.json()["id"] == job["id"], reply.body
    assert wait_final(http_band, job["id"])["state"] == "cancelled"
    cancelled = http_band.get("/api/jobs?state=cancelled&limit=200").json()
    assert job["id"] in [j["id"] for j in cancelled["jobs"]]


def test_concurrent_polls_of_a_finished_job_get_one_answer_across_its_refresh(http_band: HttpBand) -> None:
    # The kept answer of a finished job is refreshed once a second by one task while the polls that
    # come in meanwhile get the answer it replaces: 40 polls at once, before and after the expiry,
    # all 200 with the same body, and the refresh still notices a file gone from disk.
    from concurrent.futures import ThreadPoolExecutor

    job_id = generate(http_band, 11)["id"]
    assert wait_final(http_band, job_id)["state"] == "done"
    first = http_band.get(f"/api/jobs/{job_id}")
    with ThreadPoolExecutor(40) as pool:
        for _ in range(2):
            time.sleep(1.1)  # past the kept answer's second
            replies = list(pool.map(lambda _i: http_band.get(f"/api/jobs/{job_id}"), range(40)))
            assert [r.status for r in replies] == [200] * 40
            assert {r.body for r in replies} == {first.body}
    files = first.json()["files"]  # type: ignore[index]
    gone = next(f for f in files if f["name"].endswith(".mid"))
    (http_band.daemon.output_dir / job_id / gone["name"]).unlink()
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        now = {f["name"]: f for f in http_band.get(f"/api/jobs/{job_id}").json()["files"]}  # type: ignore[index]
        if now[gone["name"]]["size"] is None:
            break
        time.sleep(0.2)
    assert now[gone["name"]]["size"] is None and now[gone["name"]]["url"] is None
