"""String commands: replies, error strings and effects, as Redis 7.0 gives them."""

import pytest

from trionode.core.errors import WRONGTYPE
from trionode.core.reply import OK

from .helpers import START_MS, Client

NOT_INT = "ERR value is not an integer or out of range"


@pytest.fixture
def c() -> Client:
    return Client()


def test_get_set_roundtrip_and_effects(c):
    assert c("GET", "k") is None
    assert c("SET", "k", "v") == OK
    assert c("GET", "k") == b"v"
    assert c("set", "k", "w") == OK
    assert c.drain() == [[b"SET", b"k", b"v"], [b"SET", b"k", b"w"]]
    assert len(c.ks) == 1


def test_set_nx_xx_get(c):
    assert c("SET", "k", "v", "XX") is None
    assert c("SET", "k", "v", "NX") == OK
    assert c("SET", "k", "v2", "NX") is None
    assert c("SET", "k", "v2", "NX", "GET") == b"v"
    assert c("SET", "k", "v3", "XX", "GET") == b"v"
    assert c("SET", "new", "x", "GET") is None
    assert c.drain() == [[b"SET", b"k", b"v"], [b"SET", b"k", b"v3"], [b"SET", b"new", b"x"]]
    c("LPUSH", "l", "a")
    assert c.err("SET", "l", "x", "GET") == WRONGTYPE
    assert c("SET", "l", "x") == OK  # plain SET overwrites any type


@pytest.mark.parametrize(
    "options",
    [
        ["NX", "XX"],
        ["XX", "NX"],
        ["KEEPTTL", "EX", "10"],
        ["EX", "10", "KEEPTTL"],
        ["EX", "10", "PX", "10"],
        ["PXAT", "10", "EXAT", "10"],
        ["EX"],
        ["foo"],
        ["GET", "bar"],
    ],
)
def test_set_syntax_errors(c, options):
    assert c.err("SET", "k", "v", *options) == "ERR syntax error"


@pytest.mark.parametrize(
    "options",
    [["EX", "0"], ["EX", "-1"], ["PX", "0"], ["EX", "9223372036854775807"], ["PX", "9223372036854775807"]],
)
def test_set_invalid_expire(c, options):
    assert c.err("SET", "k", "v", *options) == "ERR invalid expire time in 'set' command"


def test_set_expire_not_integer_beats_nothing_but_syntax(c):
    assert c.err("SET", "k", "v", "EX", "abc") == NOT_INT
    assert c.err("SET", "k", "v", "EX", "abc", "foo") == "ERR syntax error"


def test_set_repeated_options_allowed(c):
    assert c("SET", "k", "v", "EX", "10", "EX", "20") == OK
    assert c("TTL", "k") == 20
    assert c("SET", "k", "v", "NX", "NX") is None
    assert c("SET", "k", "v", "KEEPTTL", "KEEPTTL") == OK
    assert c("TTL", "k") == 20


def test_set_relative_expiry_propagates_absolute(c):
    c("SET", "k", "v", "EX", "10")
    c("SET", "p", "v", "PX", "1500")
    c("SET", "a", "v", "EXAT", str(START_MS // 1000 + 5))
    c("SET", "b", "v", "PXAT", str(START_MS + 7))
    assert c.drain() == [
        [b"SET", b"k", b"v", b"PXAT", b"%d" % (START_MS + 10_000)],
        [b"SET", b"p", b"v", b"PXAT", b"%d" % (START_MS + 1500)],
        [b"SET", b"a", b"v", b"PXAT", b"%d" % (START_MS + 5000)],
        [b"SET", b"b", b"v", b"PXAT", b"%d" % (START_MS + 7)],
    ]
    assert c.ks.expires[b"k"] == START_MS + 10_000


def test_set_past_deadline_deletes(c):
    c("SET", "k", "old")
    c.drain()
    assert c("SET", "k", "v", "EXAT", "1", "GET") == b"old"
    assert c("EXISTS", "k") == 0
    assert c.drain() == [[b"DEL", b"k"]]
    assert c("SET", "k", "v", "PXAT", "1") == OK
    assert c.drain() == []  # nothing existed, nothing changed


def test_set_drops_or_keeps_ttl(c):
    c("SET", "k", "v", "EX", "100")
    c("SET", "k", "v2", "KEEPTTL")
    assert c("TTL", "k") == 100
    c("SET", "k", "v3")
    assert c("TTL", "k") == -1
    assert c.drain()[1] == [b"SET", b"k", b"v2", b"KEEPTTL"]


def test_set_keepttl_on_expired_key_starts_fresh(c):
    c("SET", "k", "v", "PX", "10")
    c.tick(11)
    c.drain()
    c("SET", "k", "v2", "KEEPTTL")
    assert c("TTL", "k") == -1
    assert c.drain() == [[b"DEL", b"k"], [b"SET", b"k", b"v2", b"KEEPTTL"]]


def test_get_expired_key_is_deleted_lazily(c):
    c("SET", "k", "v", "PX", "100")
    c.drain()
    c.tick(100)
    assert c("GET", "k") == b"v"  # deadline == now: still alive, as in Redis
    c.tick(1)
    assert c("GET", "k") is None
    assert c.drain() == [[b"DEL", b"k"]]
    assert len(c.ks) == 0


def test_get_wrongtype(c):
    c("SADD", "s", "a")
    assert c.err("GET", "s") == WRONGTYPE


def test_setnx_getset_getdel(c):
    assert c("SETNX", "k", "v") == 1
    assert c("SETNX", "k", "w") == 0
    c("LPUSH", "l", "a")
    assert c("SETNX", "l", "x") == 0  # no WRONGTYPE: existence only
    assert c("GETSET", "k", "w") == b"v"
    assert c("GETSET", "n", "1") is None
    assert c.err("GETSET", "l", "x") == WRONGTYPE
    assert c("GETDEL", "k") == b"w"
    assert c("GETDEL", "k") is None
    assert c.err("GETDEL", "l") == WRONGTYPE
    assert c.drain() == [
        [b"SET", b"k", b"v"],
        [b"LPUSH", b"l", b"a"],
        [b"SET", b"k", b"w"],
        [b"SET", b"n", b"1"],
        [b"DEL", b"k"],
    ]


def test_getset_clears_ttl(c):
    c("SET", "k", "v", "EX", "10")
    c("GETSET", "k", "w")
    assert c("TTL", "k") == -1


def test_mget_mset(c):
    assert c("MSET", "a", "1", "b", "2") == OK
    c("LPUSH", "l", "x")
    assert c("MGET", "a", "l", "b", "zz") == [b"1", None, b"2", None]
    assert c.err("MSET", "a") == "ERR wrong number of arguments for 'mset' command"
    assert c.err("MSET", "a", "1", "b") == "ERR wrong number of arguments for 'mset' command"
    c("SET", "t", "v", "EX", "5")
    c("MSET", "t", "w")
    assert c("TTL", "t") == -1
    assert [b"MSET", b"a", b"1", b"b", b"2"] in c.drain()


def test_incr_family(c):
    assert c("INCR", "n") == 1
    assert c("INCRBY", "n", "10") == 11
    assert c("DECR", "n") == 10
    assert c("DECRBY", "n", "-5") == 15
    assert c("DECRBY", "n", "20") == -5
    assert c("GET", "n") == b"-5"
    assert c.drain()[-1] == [b"SET", b"n", b"-5", b"KEEPTTL"]


def test_incr_keeps_ttl(c):
    c("SET", "n", "1", "EX", "50")
    c("INCR", "n")
    assert c("TTL", "n") == 50


@pytest.mark.parametrize("value", ["", " 1", "1 ", "+1", "01", "-0", "1.0", "abc", "123456789012345678901"])
def test_incr_rejects_non_integers(c, value):
    c("SET", "k", value)
    assert c.err("INCR", "k") == NOT_INT
    assert c.err("INCRBY", "n", value) == NOT_INT


def test_incr_overflow(c):
    c("SET", "m", "9223372036854775807")
    assert c.err("INCR", "m") == "ERR increment or decrement would overflow"
    c("SET", "m", "-9223372036854775808")
    assert c.err("DECR", "m") == "ERR increment or decrement would overflow"
    assert c.err("DECRBY", "m", "1") == "ERR increment or decrement would overflow"
    c("SET", "n", "10")
    assert c.err("DECRBY", "n", "-9223372036854775808") == "ERR decrement would overflow"
    assert c.err("INCRBY", "n", "9223372036854775807") == "ERR increment or decrement would overflow"
    assert c("INCRBY", "z", "-9223372036854775808") == -9223372036854775808


def test_incr_wrongtype(c):
    c("HSET", "h", "f", "1")
    assert c.err("INCR", "h") == WRONGTYPE


def test_append_strlen(c):
    assert c("STRLEN", "k") == 0
    assert c("APPEND", "k", "abc") == 3
    assert c("APPEND", "k", "12") == 5
    assert c("GET", "k") == b"abc12"
    assert c("STRLEN", "k") == 5
    c("SADD", "s", "a")
    assert c.err("APPEND", "s", "x") == WRONGTYPE
    assert c.err("STRLEN", "s") == WRONGTYPE
    assert c.drain()[:2] == [[b"APPEND", b"k", b"abc"], [b"APPEND", b"k", b"12"]]


def test_append_keeps_ttl(c):
    c("SET", "k", "a", "EX", "9")
    c("APPEND", "k", "b")
    assert c("TTL", "k") == 9
