"""``/band/ack s:address s:ref ...``: every state-changing command is answered, over real UDP.

Each ack names the command's address and the same ``ref`` its ``/band/error``
would carry; failures still answer ``/band/error`` and no ack.
"""

import time

import pytest

from conftest import generate_args, wait_job
from ai_band.host import OscClient

ACK = "/band/ack"
JUCE_TYPES = (int, float, str, bytes)


def ack(client: OscClient, address: str, timeout_s: float = 2.0) -> list:
    """The next ``/band/ack`` for ``address`` (acks of other commands are skipped)."""
    deadline = time.monotonic() + timeout_s
    while True:
        args = client.receive(ACK, timeout=max(0.01, deadline - time.monotonic()))[1]
        assert all(isinstance(a, JUCE_TYPES) for a in args), args
        if args[0] == address:
            return args


def no_message(client: OscClient, address: str, wait_s: float = 0.3) -> bool:
    """True when nothing at ``address`` arrives within ``wait_s`` (what arrived meanwhile is dropped)."""
    time.sleep(wait_s)
    return not [m for m in client.drain() if m[0] == address]


@pytest.fixture(scope="module")
def done_job(band):
    """A short generated job: (request id, job id)."""
    with OscClient(("127.0.0.1", band.port)) as client:
        client.send("/band/generate", *generate_args(id="ack-job", chords="C G", bars=2, style="rock", seed=3))
        job_id, _ = wait_job(client, "ack-job")
    return "ack-job", job_id


@pytest.mark.parametrize(
    "address, args, ref, details",
    [
        ("/band/stop", [], "/band/stop", []),
        ("/band/panic", [], "/band/panic", []),
        ("/band/mute", ["bass", 1], "bass", [1]),
        ("/band/mute", ["bass", 0], "bass", [0]),
        ("/band/preview/stop", [], "/band/preview/stop", []),
    ],
)
def test_commands_without_a_job_are_acknowledged(osc, address, args, ref, details):
    osc.send(address, *args)
    assert ack(osc, address) == [address, ref, *details]
    assert no_message(osc, "/band/error", 0.05)


def test_generate_is_acknowledged_with_its_request_id_and_the_job_id(osc):
    osc.send("/band/generate", *generate_args(id="ack-gen", chords="C F", bars=2, seed=1))
    address, ref, job_id = ack(osc, "/band/generate")
    assert ref == "ack-gen"
    assert wait_job(osc, "ack-gen")[0] == job_id
    # Without an id the ref is the address, as for its errors.
    osc.send("/band/generate", *generate_args(chords="C F", bars=1, seed=1))
    assert ack(osc, "/band/generate")[1] == "/band/generate"


def test_play_is_acknowledged_with_the_job_id(osc, done_job):
    _, job_id = done_job
    osc.send("/band/play", job_id)
    assert ack(osc, "/band/play") == ["/band/play", job_id]
    osc.send("/band/stop")
    ack(osc, "/band/stop")


def test_cancel_is_acknowledged_then_the_job_ends_cancelled(osc):
    # About 0.5 s of generation: still running when the cancel arrives (a few ms after the ack),
    # short enough not to delay the daemon's shutdown (the worker finishes the cancelled job).
    osc.send("/band/generate", *generate_args(id="ack-cancel", chords="C Am F G", bars=64, seed=2,
                                              parts="drums,bass,keys,pad,melody,arp,guitar,strings"))
    job_id = ack(osc, "/band/generate")[2]
    osc.send("/band/cancel", job_id)
    assert ack(osc, "/band/cancel") == ["/band/cancel", job_id]
    while True:
        _, (got_id, state, _, request_id, _url) = osc.receive("/band/job", timeout=10)
        if got_id == job_id and state in ("done", "failed", "cancelled"):
            break
    assert state == "cancelled"


def test_bye_is_acknowledged_with_the_client_and_the_registrations_removed(osc):
    osc.hello("ack-client")
    osc.send("/band/bye", "ack-client")
    assert ack(osc, "/band/bye") == ["/band/bye", "ack-client", 1]
    osc.send("/band/bye", "ack-client")  # idempotent: nothing left to remove
    assert ack(osc, "/band/bye") == ["/band/bye", "ack-client", 0]


@pytest.mark.parametrize(
    "address, args, ref, code",
    [
        ("/band/play", ["no-such-job"], "no-such-job", "unknown_job"),
        ("/band/cancel", ["no-such-job"], "no-such-job", "unknown_job"),
        ("/band/preview", ["no-such-job"], "no-such-job", "unknown_job"),
        ("/band/mute", ["tuba", 1], "tuba", "unknown_part"),
        ("/band/mute", ["bass"], "/band/mute", "bad_args"),
        ("/band/stop", [1], "/band/stop", "bad_args"),
        ("/band/panic", ["x"], "/band/panic", "bad_args"),
        ("/band/bye", [], "/band/bye", "bad_args"),
        ("/band/generate", ["id", "ack-bad", "style", "polka-core"], "ack-bad", "unknown_style"),
    ],
)
def test_failures_answer_error_with_the_same_ref_and_no_ack(osc, address, args, ref, code):
    osc.send(address, *args)
    got_ref, got_code, message = osc.receive("/band/error")[1]
    assert (got_ref, got_code) == (ref, code), message
    assert no_message(osc, ACK, 0.1)


def test_a_finished_job_cannot_be_cancelled(osc, done_job):
    _, job_id = done_job
    osc.send("/band/cancel", job_id)
    assert osc.receive("/band/error")[1][:2] == [job_id, "unknown_job"]
    assert no_message(osc, ACK, 0.1)


def test_acks_go_to_the_sender_only(band):
    target = ("127.0.0.1", band.port)
    with OscClient(target) as sender, OscClient(target) as listener, OscClient(target) as bystander:
        listener.hello("ack-listener")
        bystander.send("/band/ping", "other")
        bystander.receive("/band/pong")
        sender.send("/band/mute", "keys", 1)
        assert ack(sender, "/band/mute") == ["/band/mute", "keys", 1]
        assert no_message(listener, ACK)
        assert no_message(bystander, ACK)
        sender.send("/band/mute", "keys", 0)
        ack(sender, "/band/mute")
        listener.send("/band/bye", "ack-listener")
        ack(listener, "/band/bye")
