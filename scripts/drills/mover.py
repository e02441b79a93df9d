"""The ``migrate`` drill's mover: slot ranges go back and forth between the two shards, all the time.

One migration at a time, in a thread beside the nemesis. A step reads the
Raft leader's ``CLUSTER STATUS``: if some slots are away from the shard that
owned them when the cluster formed, the first such run goes home; otherwise a
random range (:data:`RANGE_SLOTS`) of a random shard leaves for the other
one. The step sends ``CLUSTER MIGRATESLOTS`` to the source shard's primary
and follows the migration in the leader's status (``migrations`` while it
runs, ``migrations_recent`` once it ended) until it commits or aborts.

Each step is logged as events for ``nemesis.jsonl`` (all with ``slots``):

* ``migrate``: the command was sent (``node`` the source primary, ``to`` the
  target primary);
* ``migrate-start``: the leader's status shows it running (``id``, 12 digits);
  a migration that ends between two looks is seen only ended;
* ``migrate-commit`` / ``migrate-abort``: how it ended (``id``);
* ``migrate-refused``: the source answered with an error (``error``), or could
  not be reached, so nothing started;
* ``migrate-unstarted``: ``+OK``, but no migration with those slots reached
  the configuration: the source's job (``CLUSTER GETSLOTMIGRATIONS``) failed
  first (``id``, ``message``: its start was refused, e.g. for an epoch a
  failover had just changed), or nothing was seen within :data:`START_WAIT_S`.

A migration still running :data:`END_WAIT_S` after it was seen is stuck, a
finding as much as a cluster that does not settle: the mover stops and keeps
the reason in :attr:`Mover.error` for the nemesis to raise.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from .cluster import ClusterError, LocalCluster, Node

SLOTS = 16384
RANGE_SLOTS = (256, 4096)  # a new range's size: about 1/60 to 1/4 of the slots, so several live keys move
POLL_S = 0.1
GAVE_UP_POLLS = 5  # the source's own jobs are looked at every fifth look at the leader's status
START_WAIT_S = 15.0  # past the node's migration_start_timeout_ms (10 s)
END_WAIT_S = 60.0  # a migration running this long is stuck
IDLE_S = (0.1, 0.5)  # between two migrations, and after a refusal

Log = Callable[..., None]


def owners(status: dict[str, Any]) -> list[str | None]:
    """Each slot's shard id in a ``CLUSTER STATUS`` report (None: unassigned)."""
    out: list[str | None] = [None] * SLOTS
    for shard in status.get("shards", []):
        for start, end in shard["slots"]:
            out[start : end + 1] = [shard["id"]] * (end - start + 1)
    return out


def displaced_run(home: list[str | None], now: list[str | None]) -> tuple[int, int] | None:
    """The first run of slots away from home, all held by one shard; None if every slot is home."""
    start = next((s for s in range(SLOTS) if now[s] != home[s] and now[s] is not None), None)
    if start is None:
        return None
    end = start
    while end + 1 < SLOTS and now[end + 1] == now[start] and home[end + 1] != now[end + 1]:
        end += 1
    return start, end


def random_range(now: list[str | None], shard_id: str, rng: random.Random) -> tuple[int, int]:
    """A range of ``shard_id``'s slots of a random size within :data:`RANGE_SLOTS`, all owned by it."""
    mine = [s for s in range(SLOTS) if now[s] == shard_id]
    assert mine, f"shard {shard_id} owns no slot"
    start = rng.choice(mine)
    end = start
    size = rng.randint(*RANGE_SLOTS)
    while end + 1 < SLOTS and now[end + 1] == shard_id and end - start + 1 < size:
        end += 1
    return start, end


class _Abandoned(Exception):
    """The run ended while the mover followed a migration."""


class Mover:
    """Runs migration steps in a thread from :meth:`start` until :meth:`stop` (see the module docstring)."""

    def __init__(self, cluster: LocalCluster, rng: random.Random, log: Log) -> None:
        self.cluster = cluster
        self.rng = random.Random(rng.random())  # its own stream: the nemesis' schedule stays the seed's
        self.log = log
        self.home: list[str | None] = []
        self.seen: set[str] = set()  # migration ids already reported
        self.outcomes: dict[str, int] = {}  # committed / aborted / refused / unstarted -> count
        self.error = ""
        self.in_flight = threading.Event()  # a migration was sent and has not ended
        self._stop = threading.Event()
        self._abandon = threading.Event()  # the run is over: stop following the migration in flight
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        status = self.cluster.leader_status()
        if status is None:
            raise ClusterError("migrate: no Raft leader answers CLUSTER STATUS")
        self.home = owners(status)
        self._thread = threading.Thread(target=self._run, name="mover", daemon=True)
        self._thread.start()

    def stop(self, abandon: bool = False) -> None:
        """Ask the mover to stop after its current migration ends (or at once: ``abandon``), and wait for it."""
        self._stop.set()
        if abandon:
            self._abandon.set()
        if self._thread is not None:
            self._thread.join(timeout=START_WAIT_S + END_WAIT_S + 10)
            self._thread = None

    def summary(self) -> str:
        return " ".join(f"{k}={self.outcomes.get(k, 0)}" for k in ("committed", "aborted", "refused", "unstarted"))

    def _run(self) -> None:
        try:
            while not self._stop.is_set() and not self.error:
                self._step()
                time.sleep(self.rng.uniform(*IDLE_S))
        except _Abandoned:
            pass
        except Exception as exc:  # a dead mover would silently stop the drill's point: the nemesis raises it
            self.error = f"mover: {type(exc).__name__}: {exc}"
        finally:
            self.in_flight.clear()

    def _step(self) -> None:
        status = self.cluster.leader_status()
        if status is None or status.get("migrations") or len(status.get("shards", [])) != 2:
            return  # no leader now, or a migration (an earlier one) still runs: look again
        now = owners(status)
        slots = displaced_run(self.home, now)
        if slots is None:
            slots = random_range(now, self.rng.choice(sorted(s["id"] for s in status["shards"])), self.rng)
        source_shard = next(s for s in status["shards"] if s["id"] == now[slots[0]])
        target_shard = next(s for s in status["shards"] if s["id"] != source_shard["id"])
        source, target = self.cluster.by_id(source_shard["primary_id"]), self.cluster.by_id(target_shard["primary_id"])
        label = f"{slots[0]}-{slots[1]}"
        self.in_flight.set()
        try:
            self._migrate(source, target, slots, label)
        finally:
            self.in_flight.clear()

    def _migrate(self, source: Node, target: Node, slots: tuple[int, int], label: str) -> None:
        self.log("migrate", source, slots=label, to=target.name)
        before = {row["name"] for row in export_rows(source)}
        try:
            source.call("CLUSTER", "MIGRATESLOTS", "SLOTSRANGE", *slots, "NODE", target.node_id)
        except redis.RedisError as exc:
            self._end("refused", source, label, error=f"{type(exc).__name__}: {exc}"[:200])
            return
        found = self._wait(lambda m: m["slots"] == [list(slots)] and m["id"] not in self.seen, START_WAIT_S,
                           lambda: failed_export(source, label, before))  # fmt: skip
        if found is not None and "operation" in found:  # the source's job failed: had its start applied?
            row = found
            found = self._wait(lambda m: m["id"] == row["name"], POLL_S)
            if found is None:
                self._end("unstarted", source, label, id=row["name"][:12], message=row["message"][:200])
                return
        if found is None:
            self._end("unstarted", source, label)
            return
        migration = found
        self.seen.add(migration["id"])
        if migration["state"] == "running":
            self.log("migrate-start", source, slots=label, id=migration["id"][:12])
            migration = self._wait(lambda m: m["id"] == found["id"] and m["state"] != "running", END_WAIT_S)
            if migration is None:
                self.error = f"migration of slots {label} still running {END_WAIT_S:.0f}s after it started"
                self.log("migrate-stuck", source, slots=label)
                return
        self._end(migration["state"], source, label, id=migration["id"][:12])

    def _end(self, outcome: str, source: Node, label: str, **detail: Any) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        action = {"committed": "commit", "aborted": "abort"}.get(outcome, outcome)
        self.log(f"migrate-{action}", source, slots=label, **detail)

    def _wait(self, match: Callable[[dict[str, Any]], bool], timeout_s: float,
              gave_up: Callable[[], dict[str, Any] | None] | None = None) -> dict[str, Any] | None:  # fmt: skip
        """The first migration in the leader's status (running or recent) that ``match``es, polling until then.

        ``gave_up`` is asked every :data:`GAVE_UP_POLLS` looks; what it returns (not None) is returned at once.
        """
        deadline = time.monotonic() + timeout_s
        looks = 0
        while time.monotonic() < deadline:
            if self._abandon.is_set():
                raise _Abandoned
            status = self.cluster.leader_status() or {}
            for migration in [*status.get("migrations", []), *status.get("migrations_recent", [])]:
                if match(migration):
                    return migration
            looks += 1
            if gave_up is not None and looks % GAVE_UP_POLLS == 0 and (answer := gave_up()) is not None:
                return answer
            time.sleep(POLL_S)
        return None


def failed_export(node: Node, label: str, before: set[str]) -> dict[str, Any] | None:
    """A job of ``node`` not in ``before`` that exported the slots ``label`` and failed (or was cancelled)."""
    for row in export_rows(node):
        if row["name"] not in before and row["slot_ranges"] == label and row["state"] in ("failed", "cancelled"):
            return row
    return None


def export_rows(node: Node) -> list[dict[str, Any]]:
    """The node's ``CLUSTER GETSLOTMIGRATIONS`` export rows, decoded; [] if it does not answer."""
    try:
        rows = node.call("CLUSTER", "GETSLOTMIGRATIONS")
    except redis.RedisError:
        return []
    out = []
    for row in rows:
        pairs = row.items() if isinstance(row, dict) else zip(row[::2], row[1::2], strict=True)
        decoded = {k.decode(): v.decode() if isinstance(v, bytes) else v for k, v in pairs}
        if decoded.get("operation") == "EXPORT":
            out.append(decoded)
    return out
