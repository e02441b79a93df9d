"""Generic key commands: DEL/EXISTS/TYPE, the EXPIRE and TTL families, KEYS, DBSIZE, FLUSHALL."""

import pytest

from trionode.core.reply import OK

from .helpers import START_MS, Client

NOT_INT = "ERR value is not an integer or out of range"


@pytest.fixture
def c() -> Client:
    return Client()


def test_del_counts_live_keys_once(c):
    c("MSET", "a", "1", "b", "2")
    c.drain()
    assert c("DEL", "a", "zz", "a", "b") == 2
    assert c.drain() == [[b"DEL", b"a", b"b"]]
    assert c("DEL", "zz") == 0
    assert c.drain() == []


def test_del_of_expired_key_removes_but_does_not_count(c):
    c("SET", "a", "1", "PX", "5")
    c("SET", "b", "2")
    c.tick(6)
    c.drain()
    assert c("UNLINK", "a", "b") == 1
    assert c.drain() == [[b"DEL", b"a", b"b"]]
    assert len(c.ks) == 0


def test_exists_counts_duplicates(c):
    c("SET", "k", "v")
    assert c("EXISTS", "k", "k", "zz") == 2


def test_type(c):
    c("SET", "s", "v")
    c("LPUSH", "l", "v")
    c("HSET", "h", "f", "v")
    c("SADD", "z", "v")
    assert [c("TYPE", k) for k in ("s", "l", "h", "z", "none")] == ["string", "list", "hash", "set", "none"]


def test_expire_and_ttl(c):
    c("SET", "k", "v")
    c.drain()
    assert c("TTL", "k") == -1
    assert c("PTTL", "k") == -1
    assert c("TTL", "nokey") == -2
    assert c("PTTL", "nokey") == -2
    assert c("EXPIRE", "k", "10") == 1
    assert c("PTTL", "k") == 10_000
    assert c("EXPIRETIME", "k") == START_MS // 1000 + 10
    assert c("PEXPIRETIME", "k") == START_MS + 10_000
    assert c("PEXPIRE", "k", "1500") == 1
    assert c("TTL", "k") == 2  # rounded, as Redis does
    c("PEXPIRE", "k", "499")
    assert c("TTL", "k") == 0
    assert c("EXPIREAT", "k", str(START_MS // 1000 + 100)) == 1
    assert c("PEXPIREAT", "k", str(START_MS + 200)) == 1
    assert c.drain() == [
        [b"PEXPIREAT", b"k", b"%d" % (START_MS + 10_000)],
        [b"PEXPIREAT", b"k", b"%d" % (START_MS + 1500)],
        [b"PEXPIREAT", b"k", b"%d" % (START_MS + 499)],
        [b"PEXPIREAT", b"k", b"%d" % (START_MS + 100_000)],
        [b"PEXPIREAT", b"k", b"%d" % (START_MS + 200)],
    ]
    assert c("EXPIRE", "nokey", "10") == 0
    assert c("EXPIRETIME", "nokey") == -2
    assert c.drain() == []


@pytest.mark.parametrize("cmd,arg", [("EXPIRE", "-1"), ("PEXPIRE", "0"), ("EXPIREAT", "1"), ("PEXPIREAT", "0")])
def test_expire_in_the_past_deletes(c, cmd, arg):
    c("SET", "k", "v")
    c.drain()
    assert c(cmd, "k", arg) == 1
    assert c("EXISTS", "k") == 0
    assert c.drain() == [[b"DEL", b"k"]]


def test_expire_options(c):
    c("SET", "k", "v")
    assert c("EXPIRE", "k", "10", "GT") == 0  # no TTL counts as infinite
    assert c("EXPIRE", "k", "10", "XX") == 0
    assert c("EXPIRE", "k", "10", "LT") == 1
    assert c("EXPIRE", "k", "5", "GT") == 0
    assert c("EXPIRE", "k", "20", "gt") == 1
    assert c("EXPIRE", "k", "30", "NX") == 0
    assert c("EXPIRE", "k", "30", "LT") == 0
    assert c("EXPIRE", "k", "15", "xx", "lt") == 1
    assert c("TTL", "k") == 15
    c("SET", "p", "v")
    assert c("EXPIRE", "p", "10", "NX") == 1


@pytest.mark.parametrize(
    "args,error",
    [
        (["10", "NX", "XX"], "ERR NX and XX, GT or LT options at the same time are not compatible"),
        (["10", "NX", "GT"], "ERR NX and XX, GT or LT options at the same time are not compatible"),
        (["10", "GT", "LT"], "ERR GT and LT options at the same time are not compatible"),
        (["10", "foo"], "ERR Unsupported option foo"),
        (["abc", "foo"], "ERR Unsupported option foo"),
        (["abc"], NOT_INT),
        (["9223372036854775807"], "ERR invalid expire time in 'expire' command"),
        (["-9223372036854775808"], "ERR invalid expire time in 'expire' command"),
        (["-9223372036854776"], "ERR invalid expire time in 'expire' command"),
    ],
)
def test_expire_errors(c, args, error):
    c("SET", "k", "v")
    assert c.err("EXPIRE", "k", *args) == error


def test_expire_bounds(c):
    c("SET", "k", "v")
    assert c("EXPIRE", "k", "-9223372036854775") == 1  # C truncation: still in range
    c("SET", "k", "v")
    assert c.err("PEXPIRE", "k", "9223372036854775807") == "ERR invalid expire time in 'pexpire' command"
    assert c("PEXPIREAT", "k", "9223372036854775807") == 1
    assert c.err("EXPIREAT", "k", "9223372036854776") == "ERR invalid expire time in 'expireat' command"


def test_ttl_of_expired_key(c):
    c("SET", "k", "v", "PX", "10")
    c.tick(11)
    c.drain()
    assert c("TTL", "k") == -2
    assert c.drain() == [[b"DEL", b"k"]]


def test_persist(c):
    c("SET", "k", "v", "EX", "10")
    c.drain()
    assert c("PERSIST", "k") == 1
    assert c("PERSIST", "k") == 0
    assert c("PERSIST", "nokey") == 0
    assert c("TTL", "k") == -1
    assert c.drain() == [[b"PERSIST", b"k"]]


def test_keys_glob_and_skips_expired(c):
    c("MSET", "hello", "1", "hallo", "2", "hxllo", "3", "heeeello", "4", "world", "5")
    c("SET", "help", "x", "PX", "1")
    c.tick(2)
    assert sorted(c("KEYS", "h?llo")) == [b"hallo", b"hello", b"hxllo"]
    assert sorted(c("KEYS", "h*llo")) == [b"hallo", b"heeeello", b"hello", b"hxllo"]
    assert sorted(c("KEYS", "h[ae]llo")) == [b"hallo", b"hello"]
    assert sorted(c("KEYS", "h[^e]llo")) == [b"hallo", b"hxllo"]
    assert sorted(c("KEYS", "h[a-b]llo")) == [b"hallo"]
    assert sorted(c("KEYS", "*")) == [b"hallo", b"heeeello", b"hello", b"hxllo", b"world"]
    assert c("KEYS", "hel*") == [b"hello"]
    assert b"help" in c.ks.data  # KEYS reads; it does not delete


def test_empty_key_matches_only_star_and_empty_pattern(c):
    c("MSET", "", "v", "x", "v")
    assert sorted(c("KEYS", "*")) == [b"", b"x"]
    assert c("KEYS", "**") == [b"x"]
    assert c("KEYS", "") == [b""]
    assert sorted(c("SCAN", "0", "MATCH", "*")[1]) == [b"", b"x"]
    assert c("SCAN", "0", "MATCH", "**")[1] == [b"x"]


def test_dbsize_and_flushall(c):
    assert c("DBSIZE") == 0
    c("MSET", "a", "1", "b", "2")
    c("EXPIRE", "a", "100")
    assert c("DBSIZE") == 2
    assert c.err("FLUSHALL", "foo") == "ERR syntax error"
    assert c.err("FLUSHALL", "ASYNC", "SYNC") == "ERR syntax error"
    assert c("FLUSHALL", "async") == OK
    assert c("DBSIZE") == 0
    assert c.drain()[-1] == [b"FLUSHALL"]
    assert c("FLUSHALL") == OK


def test_replay_mode_makes_no_expiry_decisions():
    c = Client(now_ms=None)
    c("SET", "k", "v", "PXAT", "1")
    c("PEXPIREAT", "j", "1")
    c("SET", "j", "v")
    assert c("PEXPIREAT", "j", "5") == 1
    assert c("GET", "k") == b"v"
    assert c("EXPIRETIME", "j") == 0
    assert c.ks.expires == {b"k": 1, b"j": 5}
    assert [e for e in c.drain() if e[0] == b"DEL"] == []


def test_replica_read_view_hides_expired_keys_without_deleting():
    c = Client()
    c("SET", "k", "v", "PX", "10")
    c.drain()
    c.ks.expire_deletes = False
    c.tick(11)
    assert c("GET", "k") is None
    assert c("EXISTS", "k") == 0
    assert c("TTL", "k") == -2
    assert b"k" in c.ks.data
    assert c.drain() == []
