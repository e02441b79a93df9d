"""The drill workload: concurrent redis-py cluster clients, every operation recorded.

Each client is a thread with its own ``RedisCluster`` (and plain connections
for replica reads, pipelines and keyless commands) and a seeded random
generator. It runs one operation at a time, picked from the mix in
:mod:`.operations`: registers, keys with a time-to-live, lists, appended
strings, counters, hashes, sets, replica reads, ``WAIT`` pipelined with a
read, and keyless commands sent to any node. Values are never written twice.

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

from .operations import KIND_OF, MIX, Client, decode

# Per kind of key (see operations.KIND_OF): keys in use at any moment, and operations
# on one key before it retires (bounds the per-key linearizability search).
KEYS_LIVE = {"r": 6, "t": 4, "l": 3, "a": 2, "c": 2, "h": 2, "s": 2}
KEY_OPS_MAX = {"r": 150, "t": 80, "l": 120, "a": 100, "c": 150, "h": 150, "s": 100}
REGISTER_OPS_MAX, LIST_OPS_MAX = KEY_OPS_MAX["r"], KEY_OPS_MAX["l"]
REFUSALS = (AskError, BusyLoadingError, ClusterDownError, MovedError, ReadOnlyError, TryAgainError)
REFUSAL_PREFIXES = ("NOREPLICAS", "BUSY", "CLUSTERDOWN", "TRYAGAIN", "LOADING", "MASTERDOWN", "READONLY", "MOVED",
                    "ASK")  # fmt: skip
READS = ("get", "rget", "exists", "lrange", "strget", "intget", "hget", "smembers", "dbsize", "scan")


def outcome_of(exc: BaseException, f: str) -> str:
    """``fail`` if ``exc`` proves a write was refused unexecuted (or ``f`` is a read), else ``info``."""
    if f in READS:
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
        self._made = dict.fromkeys(KEYS_LIVE, 0)
        self._live: dict[str, list[list[Any]]] = {kind: [] for kind in KEYS_LIVE}
        self.used: dict[str, str] = {}  # key -> its kind, for every key ever handed out
        for kind, count in KEYS_LIVE.items():
            for _ in range(count):
                self._live[kind].append([self._fresh(kind), 0])

    def _fresh(self, kind: str) -> str:
        self._made[kind] += 1
        key = f"{kind}{self._made[kind]}"
        self.used[key] = kind
        return key

    def pick(self, kind: str, rng: random.Random) -> str:
        budget = KEY_OPS_MAX[kind]
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

    def add(self, process: int, type_: str, f: str, key: str, value: Any, **extra: Any) -> None:
        """Append one record; ``extra`` fields (``arg``, ``result``, ``client``, ``error``) only when set."""
        record = {"process": process, "type": type_, "f": f, "key": key, "value": value, "time": self.now()}
        record.update((name, v) for name, v in extra.items() if v is not None and v != "")
        if "error" in record:
            record["error"] = record["error"][:200]  # for people reading the history; the checker ignores it
        with self._lock:
            self.records.append(record)

    def run(self, process: int, f: str, key: str, value: Any, call: Callable[[], Any], arg: Any = None,
            client: int | None = None, read: Callable[[Any], Any] = decode) -> str:  # fmt: skip
        """Invoke ``call`` as operation ``f``, record both ends, and return the outcome."""
        self.add(process, "invoke", f, key, value, arg=arg, client=client)
        try:
            reply = call()
        except Exception as exc:  # redis-py raises RedisClusterException, which is no RedisError
            return self._failed(process, f, key, value, exc)
        self._ok(process, f, key, value, reply, read)
        return "ok"

    def run_pipeline(self, ops: list[tuple[int, str, str, Any, int]], call: Callable[[], list[Any]],
                     client: int | None = None) -> str:  # fmt: skip
        """Operations ``(process, f, key, value, reply index)`` sent in one pipeline ``call``; the first's outcome."""
        for process, f, key, value, _ in ops:
            self.add(process, "invoke", f, key, value, client=client)
        try:
            replies = call()
        except Exception as exc:  # as in run: the whole pipeline's fate is unknown or refused
            replies = [exc] * (max(at for *_, at in ops) + 1)
        outcomes = [
            self._failed(process, f, key, value, replies[at]) if isinstance(replies[at], Exception)
            else self._ok(process, f, key, value, replies[at], decode)
            for process, f, key, value, at in ops
        ]  # fmt: skip
        return outcomes[0]

    def _failed(self, process: int, f: str, key: str, value: Any, exc: BaseException) -> str:
        outcome = outcome_of(exc, f)
        self.add(process, outcome, f, key, None if f in READS else value, error=f"{type(exc).__name__}: {exc}")
        return outcome

    def _ok(self, process: int, f: str, key: str, value: Any, reply: Any, read: Callable[[Any], Any]) -> str:
        if f in READS:
            self.add(process, "ok", f, key, read(reply))
        else:
            self.add(process, "ok", f, key, value, result=reply if type(reply) is int else None)
        return "ok"


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

    def __init__(self, addrs: list[tuple[str, int]], clients: int, seed: int, op_timeout_s: float,
                 without: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.addrs = addrs
        self.mix = [(op, weight) for op, weight in MIX if op not in without]
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
        if rc is None:
            return
        client = Client(rc, self.recorder, index, self.addrs, self.op_timeout_s)
        ops, weights = zip(*self.mix, strict=True)
        while not self._stop.is_set():
            op = rng.choices(ops, weights)[0]
            kinds = KIND_OF[op]
            key = self.keys.pick(rng.choice(kinds), rng) if kinds else ""
            outcome = client.run(op, process, key, self._unique(process), rng)
            if outcome == "info":
                process += self.clients  # the old process may still be running its write
            if outcome != "ok":
                time.sleep(0.02 + rng.random() * 0.08)  # no hot loop against a node that is down
        client.close()

    def final_reads(self, deadline_s: float) -> int:
        """Read every key ever used once more, retrying until ``ok``; returns keys left unread."""
        process = 10_000_000  # far from every client's process numbers
        past_deadline = lambda: time.monotonic() > deadline_s  # noqa: E731
        rc = self._connect(past_deadline)
        client = Client(rc, self.recorder, -1, self.addrs, self.op_timeout_s) if rc else None
        unread = 0
        for key, kind in sorted(self.keys.used.items()):
            while client is None or not client.final_read(process, key, kind):
                if past_deadline():
                    unread += 1
                    break
                time.sleep(0.2)
                if client is None and (rc := self._connect(past_deadline)):
                    client = Client(rc, self.recorder, -1, self.addrs, self.op_timeout_s)
        if client is not None:
            client.close()
        return unread
