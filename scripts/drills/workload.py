"""The drill workload: concurrent redis-py cluster clients, every operation recorded.

Each client is a thread with its own ``RedisCluster`` and a seeded random
generator. It runs one operation at a time, picked from:

* ``SET key value`` with a value never written before (registers);
* ``GET key``;
* ``RPUSH key element`` with an element never pushed before (lists);
* ``LRANGE key 0 -1``.

Every operation is recorded as an ``invoke`` and a completion in the checker's
format (``scripts/checker/history.py``), timed with one monotonic clock:

* ``ok``: the server answered.
* ``fail``: the server refused before executing (MOVED/ASK loops, CLUSTERDOWN,
  TRYAGAIN, LOADING, NOREPLICAS, READONLY, BUSY), or the connection could not
  even be opened, so a write certainly did not happen. A read that did not complete is also ``fail``: it has no effect.
* ``info``: anything else (a timeout, a dropped connection, an unexpected
  error): a write may or may not have happened. As in Jepsen, the client then
  continues under a new process number, since the old one may still be
  "running" that write.

redis-py's own retries are disabled (``Retry(NoBackoff(), 0)``): a client that
silently re-sent an RPUSH after a timeout could apply it twice, and the history
would not show it. Redirects (MOVED, ASK) are still followed, since a
redirected command was not executed.

Keys retire after a bounded number of operations and fresh ones take their
place, so that each list stays short and each register's history stays small
enough for the linearizability search.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import (
    AskError,
    BusyLoadingError,
    ClusterDownError,
    MovedError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    TryAgainError,
)
from redis.retry import Retry

REGISTERS_LIVE = 6  # register keys in use at any moment
LISTS_LIVE = 3
REGISTER_OPS_MAX = 150  # operations on one register key before it retires
LIST_OPS_MAX = 120
REFUSALS = (AskError, BusyLoadingError, ClusterDownError, MovedError, ReadOnlyError, TryAgainError)
REFUSAL_PREFIXES = ("NOREPLICAS", "BUSY", "CLUSTERDOWN", "TRYAGAIN", "LOADING", "MASTERDOWN")
MIX = (("set", 40), ("get", 30), ("rpush", 20), ("lrange", 10))


def outcome_of(exc: BaseException, f: str) -> str:
    """``fail`` if ``exc`` proves a write was refused unexecuted (or ``f`` is a read), else ``info``."""
    if f in ("get", "lrange"):
        return "fail"
    if isinstance(exc, REFUSALS):
        return "fail"
    if isinstance(exc, ResponseError) and str(exc).startswith(REFUSAL_PREFIXES):
        return "fail"
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)) and _while_connecting(str(exc)):
        return "fail"  # redis-py sends a command only once connected: this one never left
    return "info"


def _while_connecting(message: str) -> bool:
    """redis-py's wording for a connect that failed ("Error 111 connecting to ...", "Timeout connecting ...")."""
    return " connecting to " in message or message.startswith("Timeout connecting")


class Keys:
    """The live keys, each retired after its operation budget (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made = {"r": 0, "l": 0}
        self._live: dict[str, list[list[Any]]] = {"r": [], "l": []}
        self.used: dict[str, str] = {}  # key -> "r" (register) or "l" (list), every key ever handed out
        for kind, count in (("r", REGISTERS_LIVE), ("l", LISTS_LIVE)):
            for _ in range(count):
                self._live[kind].append([self._fresh(kind), 0])

    def _fresh(self, kind: str) -> str:
        self._made[kind] += 1
        key = f"{kind}{self._made[kind]}"
        self.used[key] = kind
        return key

    def pick(self, kind: str, rng: random.Random) -> str:
        budget = REGISTER_OPS_MAX if kind == "r" else LIST_OPS_MAX
        with self._lock:
            entry = rng.choice(self._live[kind])
            entry[1] += 1
            if entry[1] > budget:
                entry[0], entry[1] = self._fresh(kind), 1
            return entry[0]


class Recorder:
    """Records in the checker's format, appended from many threads."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 6)

    def add(self, process: int, type_: str, f: str, key: str, value: Any, error: str = "") -> None:
        record = {"process": process, "type": type_, "f": f, "key": key, "value": value, "time": self.now()}
        if error:
            record["error"] = error[:200]  # for people reading the history; the checker ignores it
        with self._lock:
            self.records.append(record)

    def run(self, process: int, f: str, key: str, value: Any, call: Callable[[], Any]) -> str:
        """Invoke ``call`` as operation ``f``, record both ends, and return the outcome."""
        self.add(process, "invoke", f, key, value)
        try:
            reply = call()
        except Exception as exc:  # redis-py raises RedisClusterException, which is no RedisError
            outcome = outcome_of(exc, f)
            self.add(process, outcome, f, key, value if f in ("set", "rpush") else None, f"{type(exc).__name__}: {exc}")
            return outcome
        self.add(process, "ok", f, key, _decode(reply) if f in ("get", "lrange") else value)
        return "ok"


def _decode(reply: Any) -> Any:
    if isinstance(reply, bytes):
        return reply.decode()
    if isinstance(reply, list):
        return [_decode(r) for r in reply]
    return reply


def cluster_client(addrs: list[tuple[str, int]], timeout_s: float) -> RedisCluster:
    return RedisCluster(
        startup_nodes=[ClusterNode(h, p) for h, p in addrs],
        retry=Retry(NoBackoff(), 0),
        socket_timeout=timeout_s,
        socket_connect_timeout=min(timeout_s, 1.0),
        require_full_coverage=False,
    )


class Workload:
    """``clients`` threads running the mix until :meth:`stop`."""

    def __init__(self, addrs: list[tuple[str, int]], clients: int, seed: int, op_timeout_s: float) -> None:
        self.addrs = addrs
        self.clients = clients
        self.seed = seed
        self.op_timeout_s = op_timeout_s
        self.keys = Keys()
        self.recorder = Recorder()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._counter = 0
        self._counter_lock = threading.Lock()
        self.crashes: list[str] = []

    def start(self) -> None:
        for i in range(self.clients):
            thread = threading.Thread(target=self._client, args=(i,), name=f"client-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.op_timeout_s + 30)

    def _unique(self, process: int) -> str:
        with self._counter_lock:
            self._counter += 1
            return f"v{self._counter}-p{process}"

    def _connect(self, give_up: Callable[[], bool]) -> RedisCluster | None:
        while not give_up():
            try:
                return cluster_client(self.addrs, self.op_timeout_s)
            except (redis.RedisError, RedisClusterException, OSError):
                time.sleep(0.2)
        return None

    def _client(self, index: int) -> None:
        try:
            self._client_loop(index)
        except Exception as exc:  # a dead client would silently thin the history: the runner reports it
            self.crashes.append(f"client {index}: {type(exc).__name__}: {exc}")

    def _client_loop(self, index: int) -> None:
        rng = random.Random(f"{self.seed}/{index}")
        process = index
        rc = self._connect(self._stop.is_set)
        kinds, weights = zip(*MIX, strict=True)
        while rc is not None and not self._stop.is_set():
            f = rng.choices(kinds, weights)[0]
            outcome = self._one(rc, process, f, rng)
            if outcome == "info":
                process += self.clients  # the old process may still be running its write
            if outcome != "ok":
                time.sleep(0.02 + rng.random() * 0.08)  # no hot loop against a node that is down
        if rc is not None:
            rc.close()

    def _one(self, rc: RedisCluster, process: int, f: str, rng: random.Random) -> str:
        key = self.keys.pick("r" if f in ("set", "get") else "l", rng)
        value = self._unique(process) if f in ("set", "rpush") else None
        return self._run(rc, process, f, key, value)

    def _run(self, rc: RedisCluster, process: int, f: str, key: str, value: str | None) -> str:
        calls: dict[str, Callable[[], Any]] = {
            "set": lambda: rc.set(key, value),
            "rpush": lambda: rc.rpush(key, value),
            "get": lambda: rc.get(key),
            "lrange": lambda: rc.lrange(key, 0, -1),
        }
        return self.recorder.run(process, f, key, value, calls[f])

    def final_reads(self, deadline_s: float) -> int:
        """Read every key ever used once more, retrying until ``ok``; returns keys left unread."""
        process = 10_000_000  # far from every client's process numbers
        past_deadline = lambda: time.monotonic() > deadline_s  # noqa: E731
        rc = self._connect(past_deadline)
        unread = 0
        for key, kind in sorted(self.keys.used.items()):
            f = "get" if kind == "r" else "lrange"
            while rc is None or self._run(rc, process, f, key, None) != "ok":
                if past_deadline():
                    unread += 1
                    break
                time.sleep(0.2)
                rc = rc or self._connect(past_deadline)
        return unread
