"""The broadened checker: expiry, deletes, replica reads, counters, hashes, appends, sets, keyless commands.

Each class of anomaly is caught, and each legitimate history passes (no crying wolf).
"""

from __future__ import annotations

from typing import Any

import pytest

from scripts.checker import check_history

pytestmark = pytest.mark.timeout(30)

Record = dict[str, Any]
READS = ("get", "rget", "exists", "lrange", "strget", "smembers", "intget", "hget", "dbsize", "scan")


def op(process: int, f: str, key: str, value: Any, start: float, end: float, status: str = "ok", *,
       arg: Any = None, result: Any = None, client: int | None = None) -> list[Record]:  # fmt: skip
    """An invoke/completion pair; reads carry their value on the completion, writes their reply in ``result``."""
    who = process if client is None else client
    invoke = {"process": process, "type": "invoke", "f": f, "key": key, "time": start,
              "value": None if f in READS else value, "arg": arg, "client": who}  # fmt: skip
    done = {"process": process, "type": status, "f": f, "key": key, "value": value, "time": end, "result": result}
    return [invoke, done]


def kinds(*pairs: list[Record], margin_s: float = 0.5) -> list[str]:  # 0.5 s: round numbers below
    result = check_history([rec for pair in pairs for rec in pair], clock_margin_s=margin_s)
    return sorted(f.kind for f in result.findings)


# --- time-to-live ----------------------------------------------------------------


def test_a_key_may_vanish_after_its_deadline() -> None:
    assert kinds(op(1, "set", "t", "a", 0, 1, arg=3000), op(2, "get", "t", "a", 1.5, 2),
                 op(2, "get", "t", None, 4.2, 4.3), op(2, "exists", "t", 0, 5, 5.1)) == []  # fmt: skip


def test_a_key_that_vanishes_before_its_deadline_is_not_linearizable() -> None:
    # set at [0, 1] with 3 s to live: the deadline is at least 0 + 3 - 0.5 = 2.5.
    assert kinds(op(1, "set", "t", "a", 0, 1, arg=3000), op(2, "get", "t", None, 1.5, 2)) == ["nonlinearizable"]


def test_a_key_served_after_its_deadline_is_not_linearizable() -> None:
    # the deadline is at most 1 + 3 + 0.5 = 4.5
    assert kinds(op(1, "set", "t", "a", 0, 1, arg=3000), op(2, "get", "t", "a", 5, 5.1)) == ["nonlinearizable"]


def test_the_clock_margin_widens_the_deadline() -> None:
    early = (op(1, "set", "t", "a", 0, 1, arg=3000), op(2, "get", "t", None, 1.5, 2))
    assert kinds(*early, margin_s=2.0) == []


def test_a_key_once_expired_never_comes_back() -> None:
    assert kinds(op(1, "set", "t", "a", 0, 1, arg=3000), op(2, "get", "t", None, 4, 4.1),
                 op(2, "get", "t", "a", 4.2, 4.3)) == ["nonlinearizable"]  # fmt: skip


def test_expire_sets_a_deadline_and_replies_whether_the_key_exists() -> None:
    good = (op(1, "expire", "t", None, 0, 0.1, arg=1000, result=0), op(1, "set", "t", "a", 1, 1.1),
            op(1, "expire", "t", None, 2, 2.1, arg=1000, result=1), op(2, "get", "t", None, 3.7, 3.8))  # fmt: skip
    assert kinds(*good) == []
    early = (op(1, "set", "t", "a", 1, 1.1), op(1, "expire", "t", None, 2, 2.1, arg=2000, result=1),
             op(2, "get", "t", None, 3.0, 3.1))  # fmt: skip
    assert kinds(*early) == ["nonlinearizable"]
    assert kinds(op(1, "set", "t", "a", 1, 1.1), op(1, "expire", "t", None, 2, 2.1, arg=1000, result=0)) == [
        "nonlinearizable"
    ]


def test_an_unknown_write_with_a_deadline_explains_a_later_absence() -> None:
    # the set of "b" never answered and nobody read "b": it may still have happened and expired
    h = (
        op(1, "set", "t", "a", 0, 0.1),
        op(1, "set", "t", "b", 1, 2, "info", arg=1000),
        op(2, "get", "t", None, 5, 5.1),
    )
    assert kinds(*h) == []
    assert kinds(op(1, "set", "t", "a", 0, 0.1), op(1, "set", "t", "b", 1, 2, "fail", arg=1000),
                 op(2, "get", "t", None, 5, 5.1)) == ["nonlinearizable"]  # fmt: skip


def test_del_and_exists() -> None:
    assert kinds(op(1, "set", "t", "a", 0, 1), op(1, "del", "t", None, 2, 3, result=1),
                 op(2, "exists", "t", 0, 4, 5), op(2, "del", "t", None, 6, 7, result=0)) == []  # fmt: skip
    assert kinds(op(1, "set", "t", "a", 0, 1), op(1, "del", "t", None, 2, 3, result=0)) == ["nonlinearizable"]
    assert kinds(op(1, "set", "t", "a", 0, 1), op(2, "exists", "t", 0, 2, 3)) == ["nonlinearizable"]
    # an unknown delete may have happened: both "a" and absence can be read after it
    assert (
        kinds(op(1, "set", "t", "a", 0, 1), op(1, "del", "t", None, 2, 3, "info"), op(2, "get", "t", None, 4, 5)) == []
    )


# --- replica reads ---------------------------------------------------------------------


def test_a_stale_replica_read_is_fine_but_not_older_than_the_clients_own_write() -> None:
    writes = (op(1, "set", "r", "a", 0, 1), op(2, "set", "r", "b", 2, 3))
    assert kinds(*writes, op(1, "rget", "r", "a", 4, 5)) == []  # stale: client 1 wrote only "a"
    assert kinds(*writes, op(2, "rget", "r", "a", 4, 5, client=2)) == ["stale-read"]  # client 2 acked "b" before
    assert kinds(*writes, op(2, "rget", "r", None, 4, 5, client=2)) == ["stale-read"]
    assert kinds(*writes, op(7, "rget", "r", None, 4, 5)) == []  # another client may be behind


def test_a_replica_never_serves_an_uncommitted_value() -> None:
    assert kinds(op(1, "set", "r", "a", 0, 1, "fail"), op(2, "rget", "r", "a", 0.5, 2)) == ["phantom"]
    assert kinds(op(2, "rget", "r", "z", 0.5, 2)) == ["phantom"]
    assert kinds(op(2, "rget", "r", "a", 0.5, 0.6), op(1, "set", "r", "a", 1, 2)) == ["phantom"]  # from the future


def test_a_replica_never_serves_a_value_past_its_deadline() -> None:
    w = op(1, "set", "t", "a", 0, 1, arg=3000)  # deadline at most 1 + 3 + 0.5 = 4.5
    assert kinds(w, op(2, "rget", "t", "a", 4.4, 4.6)) == []
    assert kinds(w, op(2, "rget", "t", "a", 4.5, 4.6)) == ["expired-read"]
    later = op(3, "expire", "t", None, 2, 2.5, arg=3000, result=1)  # may have pushed it to 6
    assert kinds(w, later, op(2, "rget", "t", "a", 5.5, 5.6)) == []
    assert kinds(op(1, "set", "t", "a", 0, 1), op(2, "rget", "t", "a", 50, 51)) == []  # no deadline


def test_a_value_a_replica_served_must_survive() -> None:
    # "b" was never acknowledged to its writer, but a replica served it, so it was
    # committed: the primary may not go back to "a" afterwards.
    h = (op(1, "set", "r", "a", 0, 1), op(1, "set", "r", "b", 2, 3, "info"), op(2, "rget", "r", "b", 4, 5))
    assert kinds(*h, op(3, "get", "r", "b", 6, 7)) == []
    assert kinds(*h, op(3, "get", "r", "a", 6, 7)) == ["lost", "nonlinearizable"]


# --- counters, hashes, appended strings, sets ----------------------------------------


def test_counters() -> None:
    incr = lambda p, n, s, e, status="ok": op(p, "incr", "c", None, s, e, status, result=n)  # noqa: E731
    assert kinds(incr(1, 1, 0, 1), incr(2, 2, 2, 3), incr(1, None, 4, 5, "info"), op(3, "intget", "c", 3, 6, 7)) == []
    assert kinds(incr(1, 1, 0, 1), incr(2, 1, 2, 3)) == ["duplicate", "stale-read"]
    assert kinds(incr(1, 1, 0, 1), incr(2, 2, 2, 3), op(3, "intget", "c", 1, 4, 5)) == ["lost"]
    assert kinds(incr(1, 1, 0, 1), op(3, "intget", "c", 2, 4, 5)) == ["phantom"]


def test_hash_fields_are_registers() -> None:
    good = (op(1, "hset", "h", "a", 0, 1, arg="f1"), op(1, "hset", "h", "b", 2, 3, arg="f2"),
            op(2, "hget", "h", "a", 4, 5, arg="f1"), op(2, "hget", "h", "b", 4, 5, arg="f2"))  # fmt: skip
    assert kinds(*good) == []
    assert kinds(op(1, "hset", "h", "a", 0, 1, arg="f1"), op(2, "hget", "h", None, 4, 5, arg="f1")) == [
        "lost", "nonlinearizable"
    ]  # fmt: skip


def test_appended_strings_are_ordered_lists() -> None:
    a, b = op(1, "append", "s", "x1;", 0, 1, result=3), op(1, "append", "s", "x2;", 2, 3, result=6)
    assert kinds(a, b, op(2, "strget", "s", "x1;x2;", 4, 5)) == []
    assert kinds(a, b, op(2, "strget", "s", "x2;x1;", 4, 5)) == ["list-order"]
    assert kinds(a, b, op(2, "strget", "s", "x1;", 4, 5)) == ["lost"]


def test_sets_are_unordered() -> None:
    a, b = op(1, "sadd", "u", "m1", 0, 1, result=1), op(1, "sadd", "u", "m2", 2, 3, result=1)
    assert kinds(a, b, op(2, "smembers", "u", ["m2", "m1"], 4, 5)) == []
    assert kinds(a, b, op(2, "smembers", "u", ["m2"], 4, 5)) == ["lost"]


# --- keyless commands ---------------------------------------------------------------------


def test_keyless_commands() -> None:
    w = op(1, "set", "r", "a", 0, 1)
    assert kinds(w, op(2, "scan", "@n3", ["r"], 2, 3), op(2, "dbsize", "@n3", 1, 4, 5),
                 op(3, "flushall", "@n4", None, 2, 3, "fail")) == []  # fmt: skip
    assert kinds(w, op(2, "scan", "@n3", ["r", "ghost"], 2, 3)) == ["phantom"]
    assert kinds(w, op(2, "dbsize", "@n3", 2, 2, 3)) == ["phantom"]
    assert kinds(w, op(3, "flushall", "@n4", None, 2, 3)) == ["unsafe-flushall"]
