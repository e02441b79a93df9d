"""How the drill workload records outcomes: a write is ``fail`` only when it certainly did not happen."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from redis.exceptions import ClusterDownError, MovedError, ReadOnlyError, ResponseError, TryAgainError

from scripts.checker import check_history
from scripts.drills.operations import KIND_OF, MIX, Client, _says_replica
from scripts.drills.workload import LIST_OPS_MAX, REGISTER_OPS_MAX, Keys, Recorder, outcome_of

pytestmark = pytest.mark.timeout(30)

NEVER_SENT_OR_REFUSED = [
    redis.ConnectionError("Error 111 connecting to 127.0.0.1:40869. Connection refused."),
    redis.TimeoutError("Timeout connecting to server"),
    ClusterDownError("this primary's lease has expired; the slot may have a new primary"),
    TryAgainError("TRYAGAIN"),
    MovedError("3999 127.0.0.1:6381"),
    ResponseError("NOREPLICAS Not enough good replicas to write."),
    ReadOnlyError("You can't write against a read only replica."),
]
MAYBE_HAPPENED = [
    redis.ConnectionError("Connection closed by server."),
    redis.TimeoutError("Timeout reading from socket"),
    ResponseError("ERR something unexpected"),
    RuntimeError("anything else"),
]


@pytest.mark.parametrize("exc", NEVER_SENT_OR_REFUSED, ids=repr)
def test_a_write_refused_or_never_sent_is_a_definite_failure(exc: Exception) -> None:
    assert outcome_of(exc, "set") == "fail"
    assert outcome_of(exc, "rpush") == "fail"


@pytest.mark.parametrize("exc", MAYBE_HAPPENED, ids=repr)
def test_a_write_that_may_have_reached_the_server_is_unknown(exc: Exception) -> None:
    assert outcome_of(exc, "set") == "info"
    assert outcome_of(exc, "rpush") == "info"


def test_a_read_that_did_not_complete_observed_nothing() -> None:
    for exc in NEVER_SENT_OR_REFUSED + MAYBE_HAPPENED:
        for read in ("get", "lrange", "rget", "intget", "hget", "smembers", "strget", "exists", "dbsize", "scan"):
            assert outcome_of(exc, read) == "fail"


def test_recorder_pairs_invoke_and_completion_and_keeps_the_error() -> None:
    rec = Recorder()

    def broken() -> None:
        raise redis.ConnectionError("Connection closed by server.")

    assert rec.run(7, "set", "r1", "v1", broken) == "info"
    assert rec.run(7, "get", "r1", None, lambda: b"v0") == "ok"
    kinds = [(r["type"], r["f"], r["value"]) for r in rec.records]
    assert kinds == [("invoke", "set", "v1"), ("info", "set", "v1"), ("invoke", "get", None), ("ok", "get", "v0")]
    assert rec.records[1]["error"].startswith("ConnectionError")


def test_keys_retire_after_their_budget() -> None:
    keys, rng = Keys(), random.Random(0)
    picks = [keys.pick("r", rng) for _ in range(REGISTER_OPS_MAX * 20)]
    per_key = {k: picks.count(k) for k in set(picks)}
    assert max(per_key.values()) <= REGISTER_OPS_MAX
    lists = [keys.pick("l", rng) for _ in range(LIST_OPS_MAX * 10)]
    assert max(lists.count(k) for k in set(lists)) <= LIST_OPS_MAX
    assert set(picks) | set(lists) <= set(keys.used)


class FakeServer:
    """A one-process stand-in for the cluster: enough of redis-py's API for every workload operation."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.nodes_manager = SimpleNamespace(slots_cache={})

    def keyslot(self, key: str) -> int:
        return 0

    def set(self, key: str, value: str, px: int | None = None) -> bool:
        self.data[key] = value
        return True

    def get(self, key: str) -> bytes | None:
        value = self.data.get(key)
        return None if value is None else str(value).encode()

    def delete(self, key: str) -> int:
        return int(self.data.pop(key, None) is not None)

    def exists(self, key: str) -> int:
        return int(key in self.data)

    def expire(self, key: str, seconds: int) -> bool:
        return key in self.data

    def rpush(self, key: str, value: str) -> int:
        self.data.setdefault(key, []).append(value)
        return len(self.data[key])

    def lrange(self, key: str, start: int, end: int) -> list[bytes]:
        return [v.encode() for v in self.data.get(key, [])]

    def append(self, key: str, token: str) -> int:
        self.data[key] = self.data.get(key, "") + token
        return len(self.data[key])

    def incr(self, key: str) -> int:
        self.data[key] = int(self.data.get(key, 0)) + 1
        return self.data[key]

    def hset(self, key: str, field: str, value: str) -> int:
        self.data.setdefault(key, {})[field] = value
        return 1

    def hget(self, key: str, field: str) -> bytes | None:
        value = self.data.get(key, {}).get(field)
        return None if value is None else value.encode()

    def sadd(self, key: str, member: str) -> int:
        self.data.setdefault(key, set()).add(member)
        return 1

    def smembers(self, key: str) -> set[bytes]:
        return {m.encode() for m in self.data.get(key, set())}

    def execute_command(self, *args: Any) -> Any:
        name = args[0].upper()
        if name == "ROLE":
            return [b"slave", b"127.0.0.1", 1, b"connected", 0]
        if name == "FLUSHALL":
            raise ReadOnlyError("You can't write against a read only replica.")
        nodes = b"e1 127.0.0.1:1@2 myself,slave e2 0"
        replies = {"READONLY": b"OK", "WAIT": 1, "DBSIZE": len(self.data), "CLUSTER": nodes}
        if name in replies:
            return replies[name]
        if name == "SCAN":
            return [b"0", [k.encode() for k in self.data]]
        return getattr(self, name.lower())(*args[1:])

    def pipeline(self, transaction: bool = False) -> FakePipeline:
        return FakePipeline(self)

    def close(self) -> None:
        pass


class FakePipeline:
    def __init__(self, server: FakeServer) -> None:
        self.server, self.commands = server, []

    def execute_command(self, *args: Any) -> None:
        self.commands.append(args)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        return [self.server.execute_command(*c) for c in self.commands]


def test_every_operation_records_a_history_the_checker_accepts() -> None:
    server, rec, keys, rng = FakeServer(), Recorder(), Keys(), random.Random(3)
    client = Client(server, rec, 0, [("127.0.0.1", 1)], 1.0)  # type: ignore[arg-type]
    client.plain = lambda addr: server  # type: ignore[method-assign]
    for n in range(400):
        op = [name for name, _ in MIX][n % len(MIX)]
        key = keys.pick(rng.choice(KIND_OF[op]), rng) if KIND_OF[op] else ""
        client.run(op, 0, key, f"v{n}", rng)
    for key, kind in sorted(keys.used.items()):
        assert client.final_read(1, key, kind)
    fs = {r["f"] for r in rec.records}
    assert {"set", "get", "rget", "del", "expire", "exists", "incr", "intget", "append", "strget", "hset",
            "hget", "sadd", "smembers", "rpush", "lrange", "dbsize", "scan", "flushall"} <= fs  # fmt: skip
    flushes = [r for r in rec.records if r["f"] == "flushall" and r["type"] != "invoke"]
    assert flushes and all(r["type"] == "fail" for r in flushes)  # refused by the "replica"
    result = check_history(rec.records)
    assert result.valid, [f.message for f in result.findings][:5]
    assert result.acked > 100


def test_flushall_goes_only_to_a_node_that_says_replica_in_role_and_in_its_configuration() -> None:
    replica = ["slave", "127.0.0.1", 7000, "connected", 5]
    me_replica = "abc 127.0.0.1:7001@17001 myself,slave def 0 0 2 connected\ndef 127.0.0.1:7000@17000 master - 0"
    me_primary = me_replica.replace("myself,slave", "myself,master")
    assert _says_replica(replica, me_replica)
    assert not _says_replica(replica, me_primary)  # ROLE can lag a promotion: the configuration must agree
    assert not _says_replica(["master", 3, []], me_replica)
    assert not _says_replica(replica, ResponseError("ERR"))
