"""Hash and set commands: replies (map/set shapes), deletion of empty aggregates, effects."""

import pytest

from trionode.core.errors import WRONGTYPE

from .helpers import Client


@pytest.fixture
def c() -> Client:
    return Client()


def test_hset_hget_hdel(c):
    assert c("HSET", "h", "a", "1", "b", "2") == 2
    assert c("HSET", "h", "a", "9", "c", "3") == 1
    assert c("HGET", "h", "a") == b"9"
    assert c("HGET", "h", "zz") is None
    assert c("HGET", "nokey", "a") is None
    assert c("HGETALL", "h") == {b"a": b"9", b"b": b"2", b"c": b"3"}
    assert c("HGETALL", "nokey") == {}
    assert c("HLEN", "h") == 3
    assert c("HDEL", "h", "a", "a", "zz") == 1
    assert c("HDEL", "h", "zz") == 0
    assert c("HDEL", "h", "b", "c") == 2
    assert c("EXISTS", "h") == 0
    assert c("HDEL", "h", "b") == 0
    assert c.drain() == [
        [b"HSET", b"h", b"a", b"1", b"b", b"2"],
        [b"HSET", b"h", b"a", b"9", b"c", b"3"],
        [b"HDEL", b"h", b"a"],
        [b"HDEL", b"h", b"b", b"c"],
    ]


def test_hset_arity(c):
    assert c.err("HSET", "h", "a", "1", "b") == "ERR wrong number of arguments for 'hset' command"


def test_hincrby(c):
    assert c("HINCRBY", "h", "n", "5") == 5
    assert c("HINCRBY", "h", "n", "-7") == -2
    assert c.drain()[-1] == [b"HSET", b"h", b"n", b"-2"]
    c("HSET", "h", "s", "str")
    assert c.err("HINCRBY", "h", "s", "1") == "ERR hash value is not an integer"
    assert c.err("HINCRBY", "h", "n", "x") == "ERR value is not an integer or out of range"
    c("HSET", "h", "big", "9223372036854775807")
    assert c.err("HINCRBY", "h", "big", "1") == "ERR increment or decrement would overflow"
    assert c.err("HINCRBY", "new", "f", "x") == "ERR value is not an integer or out of range"
    assert c("EXISTS", "new") == 0


def test_sets(c):
    assert c("SADD", "s", "a", "b", "a") == 2
    assert c("SADD", "s", "a") == 0
    assert c("SMEMBERS", "s") == {b"a", b"b"}
    assert c("SMEMBERS", "nokey") == set()
    assert c("SISMEMBER", "s", "a") == 1
    assert c("SISMEMBER", "s", "z") == 0
    assert c("SISMEMBER", "nokey", "z") == 0
    assert c("SCARD", "s") == 2
    assert c("SREM", "s", "a", "z", "a") == 1
    assert c("SREM", "s", "z") == 0
    assert c("SREM", "s", "b") == 1
    assert c("EXISTS", "s") == 0
    assert c("SCARD", "s") == 0
    assert c.drain() == [[b"SADD", b"s", b"a", b"b"], [b"SREM", b"s", b"a"], [b"SREM", b"s", b"b"]]


def test_replies_are_copies(c):
    c("SADD", "s", "a")
    c("HSET", "h", "f", "v")
    c("SMEMBERS", "s").add(b"zz")
    c("HGETALL", "h")[b"zz"] = b"x"
    assert c("SCARD", "s") == 1
    assert c("HLEN", "h") == 1


@pytest.mark.parametrize(
    "args",
    [
        ["HSET", "k", "f", "v"],
        ["HGET", "k", "f"],
        ["HDEL", "k", "f"],
        ["HGETALL", "k"],
        ["HLEN", "k"],
        ["HINCRBY", "k", "f", "1"],
        ["SADD", "k", "m"],
        ["SREM", "k", "m"],
        ["SMEMBERS", "k"],
        ["SISMEMBER", "k", "m"],
        ["SCARD", "k"],
    ],
)
def test_wrongtype(c, args):
    c("RPUSH", "k", "x")
    assert c.err(*args) == WRONGTYPE
