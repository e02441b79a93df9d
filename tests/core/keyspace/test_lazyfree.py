"""Big values leave the keyspace at once and are freed later, in bounded steps (UNLINK semantics)."""

import pytest

from tests.core.keyspace.helpers import Client
from trionode import limits

BIG = 10 * limits.lazyfree_members_min
STEP = limits.lazyfree_members_min


def _drain(c: Client) -> list[int]:
    steps = []
    while c.ks.garbage:
        steps.append(c.ks.garbage.release(STEP))
    assert c.ks.garbage.members == 0
    return steps


def _fill(c: Client, kind: str, key: str = "big") -> None:
    members = [f"m{i}" for i in range(BIG)]
    if kind == "set":
        c("SADD", key, *members)
    elif kind == "list":
        c("RPUSH", key, *members)
    else:
        c("HSET", key, *[x for m in members for x in (m, "v")])


@pytest.mark.parametrize("kind", ["set", "list", "hash"])
@pytest.mark.parametrize("drop", [("DEL", "big"), ("UNLINK", "big"), ("SET", "big", "x"), ("SET", "big", "x", "EX", 9)])
def test_a_dropped_big_value_is_gone_at_once_and_freed_in_steps(kind, drop) -> None:
    c = Client()
    _fill(c, kind)
    c(*drop)
    assert c("EXISTS", "big") == (1 if drop[0] == "SET" else 0)
    assert c.ks.garbage.members == BIG  # nothing was freed inside the command
    assert max(_drain(c)) <= STEP


def test_small_values_are_freed_at_once() -> None:
    c = Client()
    c("SADD", "small", *range(limits.lazyfree_members_min))
    c("DEL", "small")
    assert not c.ks.garbage


def test_flushall_hands_over_everything_and_no_step_exceeds_its_budget() -> None:
    c = Client()
    _fill(c, "set", "a")
    _fill(c, "hash", "b")
    for i in range(300):
        c("SET", f"k{i}", i)
    c("EXPIRE", "k1", 100)
    c("FLUSHALL")
    assert c("DBSIZE") == 0 and c("TTL", "k1") == -2
    steps = _drain(c)
    assert max(steps) <= STEP and sum(steps) >= 2 * BIG + 302


def test_expired_big_values_are_freed_lazily_too() -> None:
    c = Client()
    _fill(c, "list")
    c("PEXPIRE", "big", 1)
    c.ks.now_ms += 10
    assert c("LLEN", "big") == 0
    assert c.ks.garbage.members == BIG
