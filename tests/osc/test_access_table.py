"""The bookkeeping of ai_band/osc/access.py on its own: allow-list, buckets, the client table."""

from __future__ import annotations

import pytest

from ai_band.osc.access import AccessError, AllowList, ClientTable, TokenBucket


def test_allow_list_matches_networks_and_ipv4_mapped_addresses():
    allow = AllowList(["127.0.0.0/8", "192.168.1.0/24", "::1/128"])
    assert allow.allows("127.0.0.2") and allow.allows("192.168.1.77") and allow.allows("::1")
    assert allow.allows("::ffff:192.168.1.5")  # an IPv4 client of a socket bound to ::
    assert not allow.allows("192.168.2.1") and not allow.allows("10.0.0.1") and not allow.allows("::2")
    assert not allow.allows("not an address")


def test_token_bucket_refills_at_its_rate_up_to_its_capacity():
    bucket = TokenBucket(rate_per_s=10.0, capacity=3, now_s=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.1)
    assert bucket.take(0.1) == 0.0
    assert bucket.take(100.0) == 0.0 and bucket.tokens == pytest.approx(2.0)  # capped at 3, one taken


def _register(table: ClientTable, name: str, ip: str, port: int, now_s: float = 0.0, token: str = ""):
    nonce = table.challenge(name, (ip, port), port, now_s)
    return table.verify(name, (ip, port), port, token, nonce, now_s)


def test_a_nonce_works_once_from_the_ip_it_was_given_to():
    table = ClientTable(max_clients=4)
    nonce = table.challenge("p", ("10.0.0.2", 5000), 9000, 0.0)
    with pytest.raises(AccessError, match="no such challenge") as other_ip:
        table.verify("p", ("10.0.0.3", 5000), 9000, "", nonce, 0.1)
    assert other_ip.value.code == "bad_nonce"
    with pytest.raises(AccessError):
        table.verify("p", ("10.0.0.2", 5000), 9001, "", nonce, 0.1)  # another reply port
    reg = table.verify("p", ("10.0.0.2", 5001), 9000, "", nonce, 0.2)  # another source port is fine
    assert reg.reply_addr == ("10.0.0.2", 9000)
    assert table.lookup(("10.0.0.2", 5001), 0.3) is reg and table.lookup(("10.0.0.2", 9000), 0.3) is reg
    assert table.lookup(("10.0.0.2", 5000), 0.3) is None  # the first hello's port never echoed
    with pytest.raises(AccessError):
        table.verify("p", ("10.0.0.2", 5001), 9000, "", nonce, 0.4)  # used up


def test_a_challenge_lapses():
    table = ClientTable()
    nonce = table.challenge("p", ("10.0.0.2", 5000), 5000, 0.0)
    with pytest.raises(AccessError):
        table.verify("p", ("10.0.0.2", 5000), 5000, "", nonce, 60.0)


def test_the_token_decides_control_and_a_wrong_one_is_refused():
    table = ClientTable(token="s3cret-token")
    assert _register(table, "a", "10.0.0.2", 1, token="s3cret-token").control
    assert not _register(table, "b", "10.0.0.2", 2).control
    with pytest.raises(AccessError) as wrong:
        _register(table, "c", "10.0.0.2", 3, token="guess-guess")
    assert wrong.value.code == "unauthorized"


def test_heartbeats_keep_a_registration_and_silence_ends_it():
    table = ClientTable(timeout_s=30.0)
    _register(table, "a", "10.0.0.2", 1)
    assert table.lookup(("10.0.0.2", 1), 25.0) is not None
    assert table.lookup(("10.0.0.2", 1), 50.0) is not None  # 25 s after the last message
    assert table.lookup(("10.0.0.2", 1), 81.0) is None
    assert table.clients == {}


def test_a_full_table_evicts_lapsed_entries_first_and_never_locks_out_a_returning_client():
    table = ClientTable(max_clients=2, timeout_s=10.0)
    _register(table, "a", "10.0.0.2", 1)
    _register(table, "b", "10.0.0.3", 1)
    with pytest.raises(AccessError) as full:
        table.challenge("c", ("10.0.0.4", 1), 1, 5.0)
    assert full.value.code == "too_many_clients"
    _register(table, "a", "10.0.0.2", 1, now_s=5.0)  # same ip and reply port
    _register(table, "b", "10.0.0.3", 7, now_s=5.0)  # same ip and name, new port: replaces the old
    assert sorted(table.clients) == [("10.0.0.2", 1), ("10.0.0.3", 7)]
    table.lookup(("10.0.0.2", 1), 12.0)  # a keeps talking, b falls silent
    _register(table, "c", "10.0.0.4", 1, now_s=16.0)  # b lapsed at 15 s: its place is free
    assert sorted(r.name for r in table.clients.values()) == ["a", "c"]
