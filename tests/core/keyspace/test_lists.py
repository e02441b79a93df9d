"""List commands: pushes, pops with counts, LRANGE/LINDEX index arithmetic."""

import pytest

from trionode.core.errors import WRONGTYPE
from trionode.core.reply import NULL_ARRAY

from .helpers import Client

NOT_INT = "ERR value is not an integer or out of range"
NOT_POSITIVE = "ERR value is out of range, must be positive"


@pytest.fixture
def c() -> Client:
    return Client()


def test_push_and_range(c):
    assert c("LPUSH", "l", "a", "b", "c") == 3
    assert c("RPUSH", "l", "x", "y") == 5
    assert c("LRANGE", "l", "0", "-1") == [b"c", b"b", b"a", b"x", b"y"]
    assert c("LLEN", "l") == 5
    assert c.drain() == [[b"LPUSH", b"l", b"a", b"b", b"c"], [b"RPUSH", b"l", b"x", b"y"]]


@pytest.mark.parametrize(
    "start,stop,expected",
    [
        (0, -1, b"abcde"),
        (-100, 100, b"abcde"),
        (2, 1, b""),
        (-2, -1, b"de"),
        (1, 1, b"b"),
        (5, 10, b""),
        (-3, 2, b"c"),
        (0, -6, b""),
        (3, -1, b"de"),
    ],
)
def test_lrange_indexes(c, start, stop, expected):
    c("RPUSH", "l", *b"abcde".decode())
    assert c("LRANGE", "l", start, stop) == [bytes([x]) for x in expected]


def test_lindex(c):
    c("RPUSH", "l", "a", "b", "c")
    assert c("LINDEX", "l", "0") == b"a"
    assert c("LINDEX", "l", "-1") == b"c"
    assert c("LINDEX", "l", "3") is None
    assert c("LINDEX", "l", "-4") is None
    assert c.err("LINDEX", "l", "x") == NOT_INT
    assert c("LINDEX", "nokey", "x") is None  # Redis looks the key up first


def test_pop_single_and_count(c):
    c("RPUSH", "l", "a", "b", "c", "d")
    c.drain()
    assert c("LPOP", "l") == b"a"
    assert c("RPOP", "l") == b"d"
    assert c("RPOP", "l", "0") == []
    assert c("LPOP", "l", "5") == [b"b", b"c"]
    assert c("EXISTS", "l") == 0
    assert c.drain() == [[b"LPOP", b"l"], [b"RPOP", b"l"], [b"LPOP", b"l", b"2"]]


def test_pop_missing(c):
    assert c("LPOP", "nokey") is None
    assert c("LPOP", "nokey", "2") is NULL_ARRAY
    assert c("RPOP", "nokey", "0") is NULL_ARRAY
    assert c.drain() == []


def test_pop_errors(c):
    c("RPUSH", "l", "a")
    assert c.err("LPOP", "l", "-1") == NOT_POSITIVE
    assert c.err("LPOP", "l", "abc") == NOT_POSITIVE
    assert c.err("LPOP", "nokey", "-1") == NOT_POSITIVE
    assert c.err("RPOP", "l", "1", "2") == "ERR wrong number of arguments for 'rpop' command"
    assert c.err("LRANGE", "nokey", "a", "b") == NOT_INT


def test_wrongtype(c):
    c("SET", "s", "v")
    for args in (["LPUSH", "s", "x"], ["RPOP", "s"], ["LRANGE", "s", "0", "1"], ["LLEN", "s"], ["LINDEX", "s", "0"]):
        assert c.err(*args) == WRONGTYPE
    assert c("LLEN", "nokey") == 0
    assert c("LRANGE", "nokey", "0", "-1") == []
