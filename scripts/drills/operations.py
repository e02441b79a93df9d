"""The operations of the drill workload: what each sends, and what it records.

One :class:`Client` per workload thread. :data:`MIX` weighs the operations;
each names the kind of key it works on (:data:`KIND_OF`) and records itself in
the checker's format (``scripts/checker/history.py``):

* registers ``r``: ``SET``, ``GET``; ``rget`` (a ``READONLY`` ``GET`` on a
  replica of the key's slot, sent as the pipeline ``READONLY; GET`` on a plain
  ``redis.Redis`` connection so that a reconnect cannot silently drop the
  ``READONLY`` flag); ``wait``: the pipeline ``SET; WAIT 1 ms; GET`` on the
  slot's primary, recorded as a ``set`` and a ``get`` that both span the whole
  pipeline (the ``get`` under a shadow process number, since one process runs
  one operation at a time);
* keys with a time-to-live ``t``: ``SET`` with ``PX`` (2-5 s) or without,
  ``GET``, ``EXPIRE`` (2-5 s), ``DEL``, ``EXISTS``, and replica reads;
  ``expiry-probe``: ``SET PX 1000``, then replica reads around the deadline
  (a replica must hide an expired key, and may not delete it itself: the
  window before the primary's delete arrives is short, so it is aimed at);
* lists ``l`` (``RPUSH``, ``LRANGE``), appended strings ``a`` (``APPEND`` of
  unique tokens, ``GET``), counters ``c`` (``INCR``, ``GET``), hashes ``h``
  (``HSET``, ``HGET`` over three fields), sets ``s`` (``SADD``, ``SMEMBERS``);
* keyless, to any node: ``DBSIZE`` and ``SCAN`` (sometimes after
  ``READONLY``), and ``FLUSHALL`` sent only to a node that has just said it
  is a replica both in ``ROLE`` (its data plane) and in ``CLUSTER NODES`` (its
  configuration): it must be refused. A primary is never flushed on purpose
  (that would wipe the history's keys); the remaining race, a promotion
  between those replies and the ``FLUSHALL`` on the same connection, is a
  window of one round trip.

Time-to-live values are seconds long so that the checker's clock margin
(``scripts/checker/register_model.py``) stays small beside them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

TTL_MS_MIN, TTL_MS_MAX = 2000, 5000
WAIT_TIMEOUT_MS = 200
PROBE_TTL_MS = 1000
PROBE_READS_S = (-0.05, 0.0, 0.05, 0.1, 0.2, 0.3)  # replica reads around the probe key's earliest deadline
HASH_FIELDS = ("f1", "f2", "f3")
SHADOW = 1_000_000  # added to a process number for the read of a pipeline
MIX = (
    ("set", 12), ("get", 9), ("rget", 8), ("wait", 4),
    ("tset", 6), ("tget", 5), ("expire", 3), ("del", 2), ("exists", 3),
    ("rpush", 7), ("lrange", 4), ("append", 5), ("strget", 3), ("incr", 5), ("intget", 3),
    ("hset", 5), ("hget", 4), ("sadd", 4), ("smembers", 3),
    ("dbsize", 1), ("scan", 1), ("flushall", 1), ("expiry-probe", 1),
)  # fmt: skip
KIND_OF = {
    "set": "r", "get": "r", "rget": "rt", "wait": "r",
    "tset": "t", "tget": "t", "expire": "t", "del": "t", "exists": "t",
    "rpush": "l", "lrange": "l", "append": "a", "strget": "a", "incr": "c", "intget": "c",
    "hset": "h", "hget": "h", "sadd": "s", "smembers": "s",
    "dbsize": "", "scan": "", "flushall": "", "expiry-probe": "t",
}  # fmt: skip
FINAL_READ = {"r": "get", "t": "get", "l": "lrange", "a": "strget", "c": "intget", "h": "hget", "s": "smembers"}


def decode(reply: Any) -> Any:
    if isinstance(reply, bytes):
        return reply.decode()
    if isinstance(reply, (list, tuple)):
        return [decode(r) for r in reply]
    if isinstance(reply, set):
        return sorted(decode(r) for r in reply)
    return reply


def plain_client(host: str, port: int, timeout_s: float) -> redis.Redis:
    return redis.Redis(host=host, port=port, socket_timeout=timeout_s, socket_connect_timeout=min(timeout_s, 1.0),
                       retry=Retry(NoBackoff(), 0))  # fmt: skip


class Client:
    """One workload thread's connections and the operations it runs (see the module docstring)."""

    def __init__(self, rc: RedisCluster, recorder: Any, index: int, addrs: list[tuple[str, int]],
                 timeout_s: float) -> None:  # fmt: skip
        self.rc = rc
        self.recorder = recorder
        self.index = index
        self.addrs = addrs
        self.timeout_s = timeout_s
        self._plain: dict[tuple[str, int], redis.Redis] = {}

    def close(self) -> None:
        self.rc.close()
        for conn in self._plain.values():
            conn.close()

    def plain(self, addr: tuple[str, int]) -> redis.Redis:
        if addr not in self._plain:
            self._plain[addr] = plain_client(*addr, self.timeout_s)
        return self._plain[addr]

    def run(self, op: str, process: int, key: str, value: str, rng: random.Random) -> str:
        """Run operation ``op`` (a :data:`MIX` name) on ``key``; ``value`` is a fresh unique value."""
        return getattr(self, "_" + op.replace("-", "_"))(process, key, value, rng)

    def record(self, process: int, f: str, key: str, call: Callable[[], Any], value: Any = None, arg: Any = None,
               read: Callable[[Any], Any] = decode) -> str:  # fmt: skip
        return self.recorder.run(process, f, key, value, call, arg=arg, client=self.index, read=read)

    # --- registers ---------------------------------------------------------------

    def _set(self, process: int, key: str, value: str, rng: random.Random) -> str:
        return self.record(process, "set", key, lambda: self.rc.set(key, value), value)

    def _get(self, process: int, key: str, value: str, rng: random.Random) -> str:
        return self.record(process, "get", key, lambda: self.rc.get(key))

    _tget = _get

    def _rget(self, process: int, key: str, value: str, rng: random.Random, addr: tuple[str, int] | None = None) -> str:
        replicas = self._slot_nodes(key)[1:]
        addr = addr or (rng.choice(replicas) if replicas else rng.choice(self.addrs))
        return self.record(process, "rget", key, lambda: _pipeline(self.plain(addr), ("READONLY",), ("GET", key))[-1])

    def _expiry_probe(self, process: int, key: str, value: str, rng: random.Random) -> str:
        """``SET PX``, then replica reads of that key around its deadline, all on one replica."""
        ttl_ms, deadline = PROBE_TTL_MS, time.monotonic() + PROBE_TTL_MS / 1000
        outcome = self.record(process, "set", key, lambda: self.rc.set(key, value, px=ttl_ms), value, ttl_ms)
        replicas = self._slot_nodes(key)[1:]
        if outcome != "ok" or not replicas:
            return outcome
        addr = rng.choice(replicas)
        for at in PROBE_READS_S:
            time.sleep(max(0.0, deadline + at - time.monotonic()))
            self._rget(process, key, "", rng, addr)
        return outcome

    def _wait(self, process: int, key: str, value: str, rng: random.Random) -> str:
        """``SET; WAIT; GET`` in one pipeline to the slot's primary (the read runs after ``WAIT``)."""
        primary = (self._slot_nodes(key) or [rng.choice(self.addrs)])[0]
        conn = self.plain(primary)
        calls = (("SET", key, value), ("WAIT", 1, WAIT_TIMEOUT_MS), ("GET", key))
        ops = [(process, "set", key, value, 0), (process + SHADOW, "get", key, None, 2)]
        return self.recorder.run_pipeline(ops, lambda: _replies(conn, *calls), client=self.index)

    def _tset(self, process: int, key: str, value: str, rng: random.Random) -> str:
        if rng.random() < 0.3:
            return self._set(process, key, value, rng)
        ttl_ms = rng.randint(TTL_MS_MIN, TTL_MS_MAX)
        return self.record(process, "set", key, lambda: self.rc.set(key, value, px=ttl_ms), value, ttl_ms)

    def _expire(self, process: int, key: str, value: str, rng: random.Random) -> str:
        ttl_s = rng.randint(TTL_MS_MIN // 1000, TTL_MS_MAX // 1000)
        return self.record(process, "expire", key, lambda: int(self.rc.expire(key, ttl_s)), arg=ttl_s * 1000)

    def _del(self, process: int, key: str, value: str, rng: random.Random) -> str:
        # Not rc.delete(): redis-py runs it as a cluster pipeline, which re-sends a command that
        # timed out. A DEL applied but still waiting for the ISR was sent again and answered 0
        # (a false non-linearizable history in crash-full-sync).
        return self.record(process, "del", key, lambda: self.rc.execute_command("DEL", key))

    def _exists(self, process: int, key: str, value: str, rng: random.Random) -> str:
        return self.record(process, "exists", key, lambda: self.rc.exists(key))

    # --- lists, strings, counters, hashes, sets ------------------------------------

    def _rpush(self, process: int, key: str, value: str, rng: random.Random) -> str:
        return self.record(process, "rpush", key, lambda: self.rc.rpush(key, value), value)

    def _lrange(self, process: int, key: str, value: str, rng: random.Random) -> str:
        return self.record(process, "lrange", key, lambda: self.rc.lrange(key, 0, -1))

    def _append(self, process: int, key: str, value: str, rng: random.Random) -> str:
        token = value + ";"  # the checker splits the string at ';' (scripts/checker/families.py)
        return self.record(process, "append", key, lambda: self.rc.append(key, token), token)

    def _strget(self, process: int, key: str, value: str, rng: random.Random) -> str:
        return self.record(process, "strget", key, lambda: self.rc.get(key))

    def _incr(self, process: int, key: str, value: str, rng: random.Random) -> str:
        return self.record(process, "incr", key, lambda: self.rc.incr(key))

    def _intget(self, process: int, key: str, value: str, rng: random.Random) -> str:
        return self.record(process, "intget", key, lambda: self.rc.get(key), read=_int)

    def _hset(self, process: int, key: str, value: str, rng: random.Random) -> str:
        field = rng.choice(HASH_FIELDS)
        return self.record(process, "hset", key, lambda: self.rc.hset(key, field, value), value, field)

    def _hget(self, process: int, key: str, value: str, rng: random.Random, field: str = "") -> str:
        field = field or rng.choice(HASH_FIELDS)
        return self.record(process, "hget", key, lambda: self.rc.hget(key, field), arg=field)

    def _sadd(self, process: int, key: str, value: str, rng: random.Random) -> str:
        return self.record(process, "sadd", key, lambda: self.rc.sadd(key, value), value)

    def _smembers(self, process: int, key: str, value: str, rng: random.Random) -> str:
        return self.record(process, "smembers", key, lambda: self.rc.smembers(key))

    # --- keyless, to any node -------------------------------------------------------

    def _dbsize(self, process: int, key: str, value: str, rng: random.Random) -> str:
        addr = rng.choice(self.addrs)
        calls = (("READONLY",), ("DBSIZE",)) if rng.random() < 0.5 else (("DBSIZE",),)
        return self.record(process, "dbsize", _at(addr), lambda: _pipeline(self.plain(addr), *calls)[-1])

    def _scan(self, process: int, key: str, value: str, rng: random.Random) -> str:
        addr = rng.choice(self.addrs)
        calls = (("READONLY",), ("SCAN", 0, "COUNT", 1000)) if rng.random() < 0.5 else (("SCAN", 0, "COUNT", 1000),)
        return self.record(process, "scan", _at(addr), lambda: _pipeline(self.plain(addr), *calls)[-1][1])

    def _flushall(self, process: int, key: str, value: str, rng: random.Random) -> str:
        """``FLUSHALL`` to a node that says it is a replica: the expected outcome is a refusal (``fail``)."""
        addr = rng.choice(self.addrs)
        conn = self.plain(addr)
        try:
            role, nodes = decode(_replies(conn, ("ROLE",), ("CLUSTER", "NODES")))
        except redis.RedisError:
            return "fail"  # nothing sent that could write, nothing recorded
        if not _says_replica(role, nodes):
            return "ok"
        return self.record(process, "flushall", _at(addr), lambda: conn.execute_command("FLUSHALL"), arg="replica")

    def final_read(self, process: int, key: str, kind: str) -> bool:
        """Read ``key`` (of ``kind``) with its family's read, every field of a hash; True if all were ``ok``."""
        op, rng = FINAL_READ[kind], random.Random(0)
        if op == "hget":
            return all(self._hget(process, key, "", rng, field) == "ok" for field in HASH_FIELDS)
        return self.run(op, process, key, "", rng) == "ok"

    def _slot_nodes(self, key: str) -> list[tuple[str, int]]:
        """The slot's primary, then its replicas, as the cluster client last learned them."""
        slot = self.rc.keyslot(key)
        nodes = self.rc.nodes_manager.slots_cache.get(slot) or []
        return [(n.host, n.port) for n in nodes]


def _replies(conn: redis.Redis, *commands: tuple[Any, ...]) -> list[Any]:
    """Send ``commands`` in one round trip; error replies come back as exceptions in the list."""
    pipe = conn.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    return pipe.execute(raise_on_error=False)


def _pipeline(conn: redis.Redis, *commands: tuple[Any, ...]) -> list[Any]:
    """:func:`_replies`, raising the last command's error reply (earlier ones only prepare it)."""
    replies = _replies(conn, *commands)
    if isinstance(replies[-1], Exception):
        raise replies[-1]
    return replies


def _says_replica(role: Any, nodes: Any) -> bool:
    """Both the data plane (``ROLE``) and the configuration (``CLUSTER NODES``, ``myself``) say replica."""
    if isinstance(role, Exception) or isinstance(nodes, Exception) or not role or role[0] != "slave":
        return False
    myself = [line.split() for line in str(nodes).splitlines() if "myself" in line]
    return bool(myself) and len(myself[0]) > 2 and "slave" in myself[0][2].split(",")


def _int(reply: Any) -> int | None:
    return None if reply is None else int(reply)


def _at(addr: tuple[str, int]) -> str:
    return f"@{addr[0]}:{addr[1]}"
