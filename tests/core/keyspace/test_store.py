"""Keyspace structure: snapshot round-trip, the per-slot index, active expiry, SCAN."""

import random
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trionode import limits
from trionode.core.keyspace import Keyspace, execute
from trionode.core.slots import key_slot

from .helpers import START_MS, Client, snapshot


def populated() -> Client:
    c = Client()
    c("MSET", "s1", "v", "", "empty-name", "{tag}a", "1")
    c("SET", "ttl", "v", "PX", "5000")
    c("RPUSH", "l", "a", "b", "a")
    c("HSET", "h", "f", "1", "g", "")
    c("SADD", "z", "x", "y")
    c("EXPIRE", "z", "100")
    c("PEXPIREAT", "l", "1")  # deadline already passed: deleted now
    c("RPUSH", "l2", "only")
    return c


def test_dump_load_round_trip_is_exact():
    c = populated()
    for chunk_keys_max in (1, 3, 1024):
        chunks = list(c.ks.dump(chunk_keys_max))
        assert all(1 <= len(chunk) <= chunk_keys_max for chunk in chunks)
        copy = Keyspace()
        for chunk in chunks:
            copy.load_chunk(chunk)
        copy.check_invariants()
        assert copy.data == c.ks.data
        assert copy.expires == c.ks.expires
        assert type(copy.data[b"l2"]) is deque and type(copy.data[b"z"]) is set
    entries = {entry[0]: entry for entry in snapshot(c.ks)}
    assert entries[b"ttl"] == [b"ttl", "string", b"v", START_MS + 5000]
    assert entries[b"h"] == [b"h", "hash", {b"f": b"1", b"g": b""}, None]
    assert entries[b"l2"] == [b"l2", "list", [b"only"], None]
    assert sorted(entries[b"z"][2]) == [b"x", b"y"] and entries[b"z"][1] == "set"


def test_dump_is_a_copy():
    c = populated()
    chunks = list(c.ks.dump(1024))
    c("RPUSH", "l2", "more")
    c("SADD", "z", "w")
    entries = {entry[0]: entry for entry in chunks[0]}
    assert entries[b"l2"][2] == [b"only"]


def test_dump_is_the_keyspace_as_of_the_call_while_commands_run_between_chunks():
    # Compaction consumes the dump in a worker thread while commands go on: the
    # chunks must still be the cut taken at the call, built lazily chunk by chunk.
    c = populated()
    before = snapshot(c.ks)
    chunks = c.ks.dump(1)
    c("RPUSH", "l2", "more")
    c("HSET", "h", "f", "changed")
    c("SADD", "z", "w")
    c("SET", "s1", "new")
    c("DEL", "ttl")
    c("SET", "added", "x")
    first = next(chunks)
    c("FLUSHALL")
    assert [first, *chunks] == [[entry] for entry in before]


def test_dump_chunks_are_bounded_in_bytes_as_well_as_keys():
    # A chunk's record is encoded whole in memory: big values must not pile into one.
    c = Client()
    big = 400 * 1024
    for i in range(10):
        c("SET", f"s{i}", "v" * big)
    c("HSET", "h", *[x for i in range(4) for x in (f"f{i}", "v" * big)])
    chunks = list(c.ks.dump(1024))
    assert sum(map(len, chunks)) == 11 and len(chunks) >= 4

    def value_bytes(entry: list) -> int:
        plain = entry[2]
        return sum(map(len, [*plain, *plain.values()])) if isinstance(plain, dict) else len(plain)

    # A chunk closes at the entry that takes it to the bound: all before that one stay under it.
    assert all(sum(map(value_bytes, chunk[:-1])) < limits.snapshot_chunk_bytes_max for chunk in chunks)


def test_slot_index_tracks_every_insert_and_delete():
    c = Client()
    c("MSET", "{x}1", "a", "{x}2", "b", "y", "c")
    slot = key_slot(b"x")
    assert c.ks.count_in_slot(slot) == 2
    assert c.ks.keys_in_slot(slot, 10) == [b"{x}1", b"{x}2"]
    assert c.ks.keys_in_slot(slot, 1) == [b"{x}1"]
    assert c.ks.keys_in_slot(slot, 0) == []
    c("DEL", "{x}1")
    assert c.ks.keys_in_slot(slot, 10) == [b"{x}2"]
    c("SET", "{x}2", "again")  # overwrite: index untouched
    c("RPUSH", "{x}l", "a")
    c("LPOP", "{x}l")  # emptied list: key gone from the index
    assert c.ks.count_in_slot(slot) == 1
    c("FLUSHALL")
    assert sum(c.ks.count_in_slot(s) for s in range(16384)) == 0


def test_check_invariants_detects_a_stale_index():
    c = populated()
    c.ks.slot_keys[key_slot(b"s1")].pop(b"s1")
    with pytest.raises(AssertionError):
        c.ks.check_invariants()


def expiring_keyspace(expired: int, future: int, persistent: int) -> Keyspace:
    ks = Keyspace()
    ks.now_ms = START_MS
    for i in range(expired):
        execute(ks, [b"SET", b"e%d" % i, b"v", b"PXAT", b"%d" % (START_MS + 10)])
    for i in range(future):
        execute(ks, [b"SET", b"f%d" % i, b"v", b"PXAT", b"%d" % (START_MS + 10_000)])
    for i in range(persistent):
        execute(ks, [b"SET", b"p%d" % i, b"v"])
    ks.effects.clear()
    return ks


def test_active_expire_deletes_only_expired_and_logs_one_del():
    ks = expiring_keyspace(expired=50, future=50, persistent=50)
    now = START_MS + 11
    deleted = ks.active_expire(now, random.Random(7), sample_keys=20, rounds_max=16)
    assert 0 < deleted <= 50
    assert len(ks.effects) == 1 and ks.effects[0][0] == b"DEL"
    assert len(ks.effects[0]) == deleted + 1
    assert all(key.startswith(b"e") for key in ks.effects[0][1:])
    assert len(ks) == 150 - deleted
    ks.check_invariants()
    for _ in range(200):
        ks.active_expire(now, random.Random(len(ks)), 20, 16)
    assert sorted(k[:1] for k in ks.data) == [b"f"] * 50 + [b"p"] * 50


def test_active_expire_is_bounded_and_deterministic():
    counts = []
    for _ in range(2):
        ks = expiring_keyspace(expired=2000, future=0, persistent=0)
        counts.append(ks.active_expire(START_MS + 11, random.Random(3), sample_keys=20, rounds_max=16))
    assert counts[0] == counts[1] == 20 * 16  # all samples hit: every round runs, no more


def test_active_expire_stops_when_few_samples_are_expired():
    ks = expiring_keyspace(expired=1, future=400, persistent=0)
    assert ks.active_expire(START_MS + 11, random.Random(1), 20, 16) <= 1
    assert ks.active_expire(START_MS + 5, random.Random(1), 20, 16) == 0
    assert ks.effects in ([], [[b"DEL", b"e0"]])


def scan_all(c: Client, count: int, between=lambda: None) -> list[bytes]:
    seen, cursor, calls = [], b"0", 0
    while True:
        cursor, keys = c("SCAN", cursor, "COUNT", count)
        seen += keys
        calls += 1
        assert calls <= 16385
        if cursor == b"0":
            return seen
        between()


def test_scan_covers_everything_once_when_nothing_changes():
    c = Client()
    keys = [b"key:%d" % i for i in range(500)]
    c("MSET", *[x for k in keys for x in (k, b"v")])
    assert sorted(scan_all(c, 10)) == sorted(keys)
    assert sorted(scan_all(c, 1000)) == sorted(keys)
    cursor, batch = c("SCAN", "0", "COUNT", "10")
    assert len(batch) >= 10 and cursor != b"0"


def test_scan_options():
    c = Client()
    c("MSET", "a1", "v", "a2", "v", "b1", "v")
    c("SADD", "a3", "m")
    c("SET", "a4", "v", "PX", "1")
    c.tick(2)
    assert sorted(c("SCAN", "0", "COUNT", "100000", "MATCH", "a*")[1]) == [b"a1", b"a2", b"a3"]
    assert sorted(c("SCAN", "0", "count", "100", "type", "SET")[1]) == [b"a3"]
    assert c("SCAN", "0", "TYPE", "nosuchtype")[1] == []
    assert c("SCAN", "18446744073709551615") == [b"0", []]
    assert c("SCAN", "-1") == [b"0", []]  # strtoul wraps negatives
    for bad in ("x", " 0", "18446744073709551616", "1.5", "-"):
        assert c.err("SCAN", bad) == "ERR invalid cursor"
    for options in (["COUNT", "0"], ["COUNT", "-1"], ["foo"], ["MATCH"], ["COUNT", "1", "TYPE"]):
        assert c.err("SCAN", "0", *options) == "ERR syntax error"
    assert c.err("SCAN", "0", "COUNT", "x") == "ERR value is not an integer or out of range"
    assert c.err("SCAN", "x", "foo") == "ERR invalid cursor"


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 40), st.integers(0, 2**32))
def test_scan_returns_every_key_present_throughout(count, seed):
    rng = random.Random(seed)
    c = Client(check=False)
    stable = [b"stable:%d" % i for i in range(60)]
    churn = [b"churn:%d" % i for i in range(60)]
    c("MSET", *[x for k in stable + churn[:30] for x in (k, b"v")])

    def mutate():
        for _ in range(rng.randint(0, 5)):
            key = rng.choice(churn)
            c("DEL", key) if rng.random() < 0.5 else c("SET", key, "v")

    seen = scan_all(c, count, mutate)
    assert set(stable) <= set(seen)
    assert set(seen) <= set(stable) | set(churn)
    c.ks.check_invariants()
