"""The faults a drill injects, one kind per drill.

A nemesis runs *cycles*: pick a target, inject the fault, hold it, heal it.
Hold times scale with ``node_timeout_ms`` so that each fault is long enough to
make the cluster act (suspect, fail over, shrink an ISR) and short enough for
several cycles per run. Every choice comes from the drill's seeded generator;
what the cluster does in between is not deterministic, so a seed names the
fault schedule, not the outcome.

Faults (the drill of the same name runs each):

* ``kill-primary`` / ``kill-leader`` / ``kill-random``: SIGKILL a shard
  primary / the Raft leader / any node; restart it after the hold.
* ``kill-minority``: SIGKILL two of the five nodes at once (sometimes both
  members of a shard), restart them after the hold.
* ``restart-all``: SIGKILL every node at once, then start them all again.
* ``pause-primary``: SIGSTOP a primary past its lease, then SIGCONT it; it
  wakes up believing it is still primary.
* ``partition-primary``: cut a primary off from every other node on the
  cluster bus (the fault proxy black-holes those links). Clients can still
  reach it; it must neither acknowledge nor serve stale reads.
* ``partition-random``: cut one or two random nodes off from the rest (the
  Raft leader, a primary, its replica, or any mix of them).
* ``torn-tail``: SIGKILL a node, append a torn record to the newest segment of
  one of its write-ahead logs (random bytes, a cut-short record, or a whole
  record with a bad checksum), restart it.
* ``replica-churn``: swap a shard's replica for the node that has no shard
  role, under load: the spare joins and catches up, then the old one leaves.
* ``double-failover``: SIGKILL a primary and, soon after its successor is
  promoted, the successor too (the spare first joins that shard as a second
  replica, so that a second promotion has a candidate); restart both.
* ``crash-full-sync``: SIGKILL a replica until it has left the in-sync set,
  restart its primary meanwhile (an empty replication backlog), restart the
  replica, and the moment the primary starts its full sync, SIGKILL the replica
  or the primary; restart it.
* ``clock-step``: step one node's wall clock 1-2 s forward or backward, hold,
  step it back (monotonic time is untouched; see ``clockshim/``).
* ``migrate``: slot ranges move back and forth between the two shards all the
  time (:mod:`.mover`) while one node of either shard (its primary more often
  than its replica) or both primaries at once are killed (SIGKILL, restarted
  after the hold), paused or cut off from the bus. Holds are sometimes
  shorter than a failover; each fault waits (briefly) for a migration in
  flight.

Every injection and heal is logged as an event (time, action, target) for the
run's ``nemesis.jsonl``.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scripts.checker.linearizable import DEFAULT_CLOCK_MARGIN_S

from .cluster import ClusterError, LocalCluster, Node
from .mover import Mover

Log = Callable[..., None]


class Nemesis:
    """Base: ``cycle`` injects and heals one fault; ``heal_all`` undoes anything left."""

    name = ""
    extra_conf = ""  # added to every node's configuration
    clock_shim = False  # nodes start with a wall clock the nemesis can step
    clock_margin_s = DEFAULT_CLOCK_MARGIN_S  # how far a node's clock may be off, for the checker
    catch_up_timeout_s = 60.0

    def __init__(self, cluster: LocalCluster, rng: random.Random, log: Log, node_timeout_ms: int) -> None:
        self.cluster = cluster
        self.rng = rng
        self.log = log
        self.node_timeout_s = node_timeout_ms / 1000
        self.faults = 0
        self.crashes: list[str] = []  # nodes that exited on their own: a finding, not a fault

    def hold_s(self) -> float:
        """Long enough for a failover (suspect + lease + hand-over), with some spread."""
        return self.node_timeout_s * self.rng.uniform(1.2, 2.5)

    def start(self) -> None:
        """Start whatever the nemesis runs beside its cycles (the workload is running)."""

    def cycle(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop whatever the nemesis runs beside its cycles (the run ends, whether or not it healed)."""

    def summary(self) -> str:
        """Words for the drill's one-line result beyond ``faults``; empty for most."""
        return ""

    def restart_crashed(self, restart: bool = True) -> None:
        """Note every node that exited although the drill did not kill it, and start it again."""
        for node in self.cluster.nodes:
            if node.crashed:
                assert node.proc is not None
                self.crashes.append(f"{node.name} exited with {node.proc.returncode}; see {node.log_path}")
                self.log("crash", node, returncode=node.proc.returncode)
                node.killed = True  # noted once
                if restart:
                    node.start()
                    self.log("start", node)

    def heal_all(self) -> None:
        """Resume paused nodes, restart dead ones, heal every cut."""
        self.restart_crashed()
        self.cluster.proxy.heal()
        for node in self.cluster.nodes:
            if node.paused:
                node.resume()
                self.log("resume", node)
            if not node.alive:
                node.start()
                self.log("start", node)
        for node in self.cluster.nodes:
            node.wait_ready()

    def _pick(self, nodes: list[Node]) -> Node:
        if not nodes:
            raise ClusterError(f"{self.name}: no target (the cluster reports none): {self.cluster.status()}")
        return self.rng.choice(sorted(nodes, key=lambda n: n.name))

    def _kill_and_restart(self, nodes: list[Node], hold_s: float, while_down: Callable[[], None] | None = None) -> None:
        """SIGKILL ``nodes`` together (one fault), run ``while_down``, wait ``hold_s``, restart them."""
        for node in nodes:
            node.kill9()
            self.log("kill", node)
        self.faults += 1
        if while_down is not None:
            while_down()
        time.sleep(hold_s)
        for node in nodes:
            node.start()
            self.log("start", node)
        for node in nodes:
            node.wait_ready()


    def _attach_spare(self, shard: dict[str, Any]) -> Node:
        """The node without a shard role joins ``shard`` as a replica and enters its in-sync set."""
        in_shard = {n for s in self.cluster.shards() for n in [s.get("primary_id"), *s.get("replica_ids", [])]}
        spare = self._pick([n for n in self.cluster.nodes if n.node_id not in in_shard])
        spare.call("CLUSTER", "REPLICATE", shard["primary_id"], timeout_s=30)
        self.log("replicate", spare, shard=shard["id"][:12])
        deadline = time.monotonic() + self.catch_up_timeout_s
        while spare.node_id not in self._isr(shard["id"]):
            if time.monotonic() > deadline:
                raise ClusterError(f"{spare.name} did not enter the in-sync set of shard {shard['id']}")
            time.sleep(0.2)
        self.log("in-sync", spare)
        return spare

    def _isr(self, shard_id: str) -> list[str]:
        for shard in self.cluster.shards():
            if shard["id"] == shard_id:
                return list(shard.get("isr_ids", []))
        return []

    def _pause_and_resume(self, node: Node) -> None:
        """SIGSTOP ``node`` (one fault), hold, SIGCONT it."""
        node.pause()
        self.faults += 1
        self.log("pause", node)
        time.sleep(self.hold_s())
        node.resume()
        self.log("resume", node)

    def _partition(self, minority: list[Node]) -> None:
        """Cut ``minority`` off from every other node on the bus (one fault), hold, heal."""
        rest = [n.node_id for n in self.cluster.nodes if n not in minority]
        for node in minority:
            self.cluster.proxy.isolate(node.node_id, rest)
        self.faults += 1
        self.log("partition", None, minority=[n.name for n in minority])
        time.sleep(self.hold_s())
        self.cluster.proxy.heal()
        self.log("heal", None)


class KillPrimary(Nemesis):
    name = "kill-primary"

    def cycle(self) -> None:
        self._kill_and_restart([self._pick(self.cluster.primaries())], self.hold_s())


class KillLeader(Nemesis):
    name = "kill-leader"

    def cycle(self) -> None:
        leader = self.cluster.leader()
        self._kill_and_restart([self._pick([leader] if leader else [])], self.hold_s())


class KillRandom(Nemesis):
    name = "kill-random"

    def cycle(self) -> None:
        self._kill_and_restart([self._pick(self.cluster.nodes)], self.hold_s())


class RestartAll(Nemesis):
    name = "restart-all"

    def cycle(self) -> None:
        self._kill_and_restart(list(self.cluster.nodes), self.rng.uniform(0.2, 1.5))


class PausePrimary(Nemesis):
    name = "pause-primary"

    def cycle(self) -> None:
        self._pause_and_resume(self._pick(self.cluster.primaries()))


class PartitionPrimary(Nemesis):
    name = "partition-primary"

    def cycle(self) -> None:
        self._partition([self._pick(self.cluster.primaries())])


class KillMinority(Nemesis):
    """``kill -9`` two of the five nodes at once: sometimes a shard's primary and its replica."""

    name = "kill-minority"

    def cycle(self) -> None:
        self._kill_and_restart(self.rng.sample(sorted(self.cluster.nodes, key=lambda n: n.name), 2), self.hold_s())


class PartitionRandom(Nemesis):
    """Split the cluster bus into a minority (one or two nodes) and a majority, then heal."""

    name = "partition-random"

    def cycle(self) -> None:
        nodes = sorted(self.cluster.nodes, key=lambda n: n.name)
        self._partition(self.rng.sample(nodes, self.rng.randint(1, 2)))


class TornTail(Nemesis):
    name = "torn-tail"

    def cycle(self) -> None:
        node = self._pick(self.cluster.nodes)

        def tear() -> None:
            file, size = append_garbage(node.data_dir, self.rng)
            self.log("torn-tail", node, file=file, bytes=size)

        self._kill_and_restart([node], self.rng.uniform(0.2, 1.0), tear)


def torn_record(rng: random.Random) -> bytes:
    """What a write cut short by a crash leaves at a WAL's end, in one of three shapes.

    Records are ``u32 length | u64 checksum | payload`` (little-endian): random bytes
    (a length no record has), a header whose payload was cut short, or a whole record
    whose checksum does not match (its sectors reached the disk out of order).
    """
    shape = rng.randrange(3)
    if shape == 0:
        return rng.randbytes(rng.randint(1, 512))
    length = rng.randint(1, 256)
    header = struct.pack("<IQ", length, rng.getrandbits(64))
    payload = rng.randbytes(length if shape == 2 else rng.randrange(length))
    return header + payload


def append_garbage(data_dir: Path, rng: random.Random) -> tuple[str, int]:
    """Append a torn record (:func:`torn_record`) to the newest segment of one of the node's WALs."""
    newest: dict[tuple[Path, str], Path] = {}
    for path in sorted(data_dir.rglob("*.wal")):
        prefix = path.name.rsplit("-", 1)[0]
        newest[(path.parent, prefix)] = path  # names sort by first seq, so the last one wins
    if not newest:
        raise ClusterError(f"no WAL segment under {data_dir}")
    target = newest[rng.choice(sorted(newest))]
    garbage = torn_record(rng)
    with open(target, "ab") as fh:
        fh.write(garbage)
    return str(target.relative_to(data_dir)), len(garbage)


class ReplicaChurn(Nemesis):
    """Swap a shard's replica for the spare node, under load.

    Done the safe way round: the spare first joins as an extra replica
    (``CLUSTER REPLICATE``) and must enter the ISR; only then is the old replica
    detached (``CLUSTER DETACH``) and becomes the spare. A one-step ``CLUSTER
    REPLACE`` of the shard's only in-sync replica is refused by design (S8).
    """

    name = "replica-churn"

    def cycle(self) -> None:
        shard = self.rng.choice(sorted((s for s in self.cluster.shards() if s.get("replica_ids")),
                                       key=lambda s: s["id"]))  # fmt: skip
        old = self.cluster.by_id(self.rng.choice(sorted(shard["replica_ids"])))
        spare = self._attach_spare(shard)
        self.faults += 1
        spare.call("CLUSTER", "DETACH", old.node_id, timeout_s=30)
        self.log("detach", old)


class DoubleFailover(Nemesis):
    """Kill a primary, then its successor soon after the promotion; restart both (see the module docstring)."""

    name = "double-failover"
    promotion_timeout_s = 30.0

    def cycle(self) -> None:
        shard = self._in_sync(self._shard_with_two_replicas()["id"])
        first = self.cluster.by_id(shard["primary_id"])
        first.kill9()
        self.log("kill", first)
        self.faults += 1
        down = [first]
        second = self._wait_promoted(shard["id"], first.node_id)
        time.sleep(self.rng.uniform(0.1, 1.0))  # "soon after": before it has settled into the role
        second.kill9()
        self.log("kill", second, promoted=True)
        down.append(second)
        time.sleep(self.hold_s())
        for node in self.rng.sample(down, len(down)):
            node.start()
            self.log("start", node)
        for node in down:
            node.wait_ready()

    def _shard_with_two_replicas(self) -> dict[str, Any]:
        shards = sorted(self.cluster.shards(), key=lambda s: s["id"])
        for shard in shards:
            if len(shard.get("replica_ids", [])) >= 2:
                return shard
        shard = self.rng.choice(shards)
        self._attach_spare(shard)
        return next(s for s in self.cluster.shards() if s["id"] == shard["id"])

    def _in_sync(self, shard_id: str) -> dict[str, Any]:
        """The shard once a replica is back in its ISR: killing a primary that has no in-sync replica
        leaves the shard down by design (a seed-3 run killed one 3 s after the last cycle's restarts)."""
        deadline = time.monotonic() + self.promotion_timeout_s
        while time.monotonic() < deadline:
            shard = next(s for s in self.cluster.shards() if s["id"] == shard_id)
            if len(shard.get("isr_ids", [])) >= 2:
                return shard
            time.sleep(0.05)
        raise ClusterError(f"{self.name}: shard {shard_id[:12]} had no in-sync replica {self.promotion_timeout_s:.0f}s "
                           f"after the last cycle: {self.cluster.status()}")  # fmt: skip

    def _wait_promoted(self, shard_id: str, old_id: str) -> Node:
        deadline = time.monotonic() + self.promotion_timeout_s
        while time.monotonic() < deadline:
            for shard in self.cluster.shards():
                if shard["id"] == shard_id and shard.get("primary_id") not in (None, old_id):
                    node = self.cluster.by_id(shard["primary_id"])
                    self.log("promoted", node)
                    return node
            time.sleep(0.05)
        raise ClusterError(f"{self.name}: shard {shard_id[:12]} had no new primary {self.promotion_timeout_s:.0f}s "
                           f"after its primary was killed: {self.cluster.status()}")  # fmt: skip


class FullSyncCrash(Nemesis):
    """Crash a replica or its primary in the middle of a full sync (see the module docstring).

    A primary resyncs a replica partially from its in-memory backlog of recent
    records, which a restart empties. So the replica is killed and kept down
    until it has left the in-sync set (writes go on without it), its primary is
    restarted, and then the replica comes back behind the primary's backlog and
    must load a snapshot. On the primary's log line that starts the snapshot
    the replica is frozen (SIGSTOP), so that the crash lands while it loads
    even though a drill's snapshot is small; ``mid_sync`` in the event says
    whether the replica had not yet logged the snapshot installed. Then the
    replica is killed, or the primary is killed and the replica thawed.
    """

    name = "crash-full-sync"
    log_timeout_s = 30.0
    FULL_SYNC_LINE = "full resync of "
    INSTALLED_LINE = "full resync installed"

    def cycle(self) -> None:
        shard = self.rng.choice(sorted((s for s in self.cluster.shards() if s.get("replica_ids")),
                                       key=lambda s: s["id"]))  # fmt: skip
        primary = self.cluster.by_id(shard["primary_id"])
        replica = self.cluster.by_id(self.rng.choice(sorted(shard["replica_ids"])))
        replica.kill9()
        self.log("kill", replica)
        self._wait_out_of_isr(replica, shard["id"])
        primary.kill9()
        self.log("kill", primary, why="empty its replication backlog")
        primary.start()
        self.log("start", primary)
        self.cluster.wait_settled(self.log_timeout_s)
        time.sleep(self.rng.uniform(0.3, 1.0))  # writes the replica has missed
        mark, replica_mark = primary.log_path.stat().st_size, replica.log_path.stat().st_size
        replica.start()
        self.log("start", replica)
        victim = self.rng.choice([replica, replica, primary])
        if not self._wait_line(primary, mark, f"{self.FULL_SYNC_LINE}{replica.node_id[:12]}"):
            self.log("no-full-sync", replica)
            replica.wait_ready()
            return
        replica.pause()
        mid_sync = not self._wait_line(replica, replica_mark, self.INSTALLED_LINE, timeout_s=0)
        self.log("full-sync-crash", victim, replica=replica.name, mid_sync=mid_sync)
        self._kill_and_restart([victim], self.rng.uniform(0.5, 1.5), while_down=replica.resume)
        replica.wait_ready()

    def _wait_out_of_isr(self, node: Node, shard_id: str) -> None:
        deadline = time.monotonic() + self.log_timeout_s
        while node.node_id in self._isr(shard_id):
            if time.monotonic() > deadline:
                raise ClusterError(f"{node.name} was down {self.log_timeout_s:.0f}s and still in the in-sync set")
            time.sleep(0.1)

    def _wait_line(self, node: Node, offset: int, needle: str, timeout_s: float | None = None) -> bool:
        """Whether ``needle`` appears in the node's log after byte ``offset`` within the timeout."""
        deadline = time.monotonic() + (self.log_timeout_s if timeout_s is None else timeout_s)
        while True:
            with open(node.log_path, "rb") as fh:
                fh.seek(offset)
                if needle.encode() in fh.read():
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)


class ClockStep(Nemesis):
    """Step one node's wall clock forward or backward, hold, step it back."""

    name = "clock-step"
    clock_shim = True
    step_s_min, step_s_max = 1.0, 2.0
    clock_margin_s = DEFAULT_CLOCK_MARGIN_S + step_s_max  # a deadline set on one node, judged on another

    def cycle(self) -> None:
        node = self._pick(self.cluster.nodes)
        offset_s = self.rng.choice((-1, 1)) * self.rng.uniform(self.step_s_min, self.step_s_max)
        node.set_clock_offset(offset_s)
        self.faults += 1
        self.log("clock-step", node, offset_s=round(offset_s, 3))
        time.sleep(self.hold_s())
        node.set_clock_offset(0.0)
        self.log("clock-step", node, offset_s=0.0)

    def heal_all(self) -> None:
        for node in self.cluster.nodes:
            node.set_clock_offset(0.0)
        super().heal_all()


class Migrate(Nemesis):
    """Kill, pause or partition a node of either shard while :class:`~.mover.Mover` moves slots between them."""

    name = "migrate"
    in_flight_wait_s = 3.0  # a fault waits this long for a migration to be in flight, then strikes anyway

    def __init__(self, cluster: LocalCluster, rng: random.Random, log: Log, node_timeout_ms: int) -> None:
        super().__init__(cluster, rng, log, node_timeout_ms)
        self.mover = Mover(cluster, rng, log)

    def start(self) -> None:
        self.mover.start()

    def hold_s(self) -> float:
        """Sometimes shorter than a failover: a source or target that comes back still primary, mid-migration."""
        return self.node_timeout_s * self.rng.uniform(0.3, 2.5)

    def cycle(self) -> None:
        if self.mover.error:
            raise ClusterError(self.mover.error)
        self.mover.in_flight.wait(self.in_flight_wait_s)
        fault = self.rng.choice(("kill", "pause", "partition"))
        nodes = self._targets()
        if fault == "kill":
            self._kill_and_restart(nodes, self.hold_s())
        elif fault == "partition":
            self._partition(nodes)
        else:
            for node in nodes[1:]:
                node.pause()
                self.log("pause", node)
            self._pause_and_resume(nodes[0])
            for node in nodes[1:]:
                node.resume()
                self.log("resume", node)

    def _targets(self) -> list[Node]:
        """Both primaries (the source and the target) one time in five, else one node of a random shard."""
        shards = sorted(self.cluster.shards(), key=lambda s: s["id"])
        if self.rng.random() < 0.2:
            return [self.cluster.by_id(s["primary_id"]) for s in shards]
        shard = self.rng.choice(shards)
        primary = self.rng.random() < 0.6 or not shard.get("replica_ids")
        ids = [shard["primary_id"]] if primary else shard["replica_ids"]
        return [self._pick([self.cluster.by_id(i) for i in ids])]

    def heal_all(self) -> None:
        super().heal_all()
        self.mover.stop()  # after the heal: the migration in flight can end
        if self.mover.error:
            raise ClusterError(self.mover.error)

    def close(self) -> None:
        self.mover.stop(abandon=True)

    def summary(self) -> str:
        return f"migrations: {self.mover.summary()}"


NEMESES: dict[str, type[Nemesis]] = {
    cls.name: cls
    for cls in (KillPrimary, KillLeader, KillRandom, KillMinority, RestartAll, PausePrimary, PartitionPrimary,
                PartitionRandom, TornTail, ReplicaChurn, DoubleFailover, FullSyncCrash, ClockStep, Migrate)
}


def event(action: str, node: Node | None, t: float, **detail: Any) -> dict[str, Any]:
    return {"time": t, "action": action, "node": node.name if node else "*", **detail}
